"""Fault knobs of the emulated DualTetraX.

A :class:`Faults` instance belongs to one emulated device and may be changed while it
runs (tests flip knobs between attempts). Every knob defaults to "behave like a healthy
device".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dualtetrax.ble.protocol.enums import OtaState


@dataclass
class Faults:
    disconnect_after_bytes: int | None = None
    """The device drops the link once it has received this many OTA bytes (like a user walking away)."""
    disconnect_every_time: bool = False
    """With ``disconnect_after_bytes``: drop every attempt, not only the first."""
    drop_status: frozenset[OtaState] = field(default_factory=frozenset)
    """OTA status notifications for these states are never sent (the value is still readable)."""
    status_not_readable: bool = False
    """The OTA Status characteristic is notify-only (read at start-up: set it before the device starts)."""
    status_delay_s: float = 0.0
    """Every OTA status notification leaves this much later than it should."""
    max_mtu: int | None = None
    """The largest ATT MTU the device accepts in the MTU exchange (e.g. 23, 247)."""
    reject_start_att_error: int | None = None
    """Answer START with this ATT error code (e.g. 0x80, application error) instead of starting."""
    battery_drop_after_bytes: int | None = None
    """After this many OTA bytes the battery level falls to ``battery_drop_to``."""
    battery_drop_to: int = 45
    validation_delay_s: float = 0.0
    """How long the device spends validating the image after FINISH."""
    apply_delay_s: float = 0.0
    """How long the device spends applying (switching partitions) after validation."""
    corrupt_received_byte: int | None = None
    """Flip this byte offset of the received image before validation (a flash write error)."""
    drop_chunks: frozenset[int] = field(default_factory=frozenset)
    """Chunk indexes lost on the way (the device notices the gap and reports an error)."""
    boot_previous_version: bool = False
    """After reporting success, boot back into the old firmware (a rollback at first boot)."""
    reboot_delay_s: float = 0.2
    """Time between the SUCCESS notification's reboot and advertising again."""

    def update(self, **changes: Any) -> None:
        """Change knobs by name; unknown names raise ``TypeError``."""
        known = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise TypeError(f"unknown fault knob {name!r}; known: {', '.join(sorted(known))}")
            setattr(self, name, value)

    @classmethod
    def knob_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def parse_assignment(cls, text: str) -> tuple[str, Any]:
        """Parse ``name=value`` as given on a command line (ints, floats, booleans, state lists)."""
        name, _, raw = text.partition("=")
        name = name.strip().replace("-", "_")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if name not in fields or not _:
            raise ValueError(f"expected NAME=VALUE with NAME one of: {', '.join(fields)}; got {text!r}")
        raw = raw.strip()
        default = getattr(cls(), name)
        value: Any
        if isinstance(default, bool):
            value = raw.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, frozenset):
            items = [item for item in raw.replace(";", ",").split(",") if item]
            if name == "drop_status":
                value = frozenset(
                    OtaState[item.upper()] if not item.isdigit() else OtaState(int(item)) for item in items
                )
            else:
                value = frozenset(int(item) for item in items)
        elif isinstance(default, float):
            value = float(raw)
        elif name in ("reject_start_att_error",):
            value = int(raw, 0)
        else:
            value = int(raw) if raw.lower() not in ("", "none") else None
        return name, value
