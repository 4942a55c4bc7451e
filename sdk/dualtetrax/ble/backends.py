"""Which bleak backend classes the SDK uses.

``BleBackends()`` (the default everywhere) means bleak's platform backend: BlueZ on Linux,
CoreBluetooth on macOS, WinRT on Windows. The emulator provides a :class:`BleBackends`
that reaches emulated devices instead (``EmulatorWorld.backends``); nothing else in the SDK
changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bleak.backends.client import BaseBleakClient
    from bleak.backends.scanner import BaseBleakScanner


@dataclass(frozen=True)
class BleBackends:
    client: type[BaseBleakClient] | None = None
    """Passed as ``BleakClient(..., backend=client)``; ``None`` = the platform's."""
    scanner: type[BaseBleakScanner] | None = None
    """Passed as ``BleakScanner(..., backend=scanner)``; ``None`` = the platform's."""


PLATFORM = BleBackends()
