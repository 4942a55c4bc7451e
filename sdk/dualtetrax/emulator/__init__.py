"""An emulated DualTetraX for tools and tests without a device (optional extra ``emulator``).

* :class:`EmulatorWorld` — an in-process radio link with emulated devices on it and the
  bleak backends (:attr:`EmulatorWorld.backends`) that reach them;
* :class:`EmulatedDualTetraX` — a bumble GATT peripheral speaking the real protocol
  (Device Information, status generation 1 or 2 with stored sessions, OTA);
* :class:`Faults` — knobs that make it misbehave (disconnects, lost or late notifications,
  low battery, MTU cap, rejection, slow validation, ...);
* :class:`AirModel` — pace the link like a real connection (LE 1M PHY + DLE ≈ 97 KB/s).

See ``docs/emulator.md``.
"""

from dualtetrax.emulator.bleak_backend import BumbleBleakClient, BumbleBleakScanner
from dualtetrax.emulator.device import EmulatedDualTetraX, StoredSession
from dualtetrax.emulator.faults import Faults
from dualtetrax.emulator.radio import AirModel, EmulatedController, EmulatedLink
from dualtetrax.emulator.sessions import sample_sessions
from dualtetrax.emulator.world import EmulatorWorld

__all__ = [
    "AirModel",
    "BumbleBleakClient",
    "BumbleBleakScanner",
    "EmulatedController",
    "EmulatedDualTetraX",
    "EmulatedLink",
    "EmulatorWorld",
    "Faults",
    "StoredSession",
    "sample_sessions",
]
