"""Helpers shared by the BLE tests (imported as a plain module: the tests folder is not a package)."""

from __future__ import annotations

import asyncio
from typing import Any

from dualtetrax.ble.ota import OtaTimeouts
from dualtetrax.ble.protocol.enums import OtaState
from dualtetrax.emulator import EmulatedDualTetraX, EmulatorWorld, Faults

#: Short limits so that fault tests fail fast; still far above what the emulated link needs.
FAST_TIMEOUTS = OtaTimeouts(
    command=2.0,
    ready=1.0,
    write_stall=3.0,
    validating=1.0,
    applying=1.0,
    status_poll=0.2,
    reboot=1.0,
    reconnect=4.0,
)


async def add_device(world: EmulatorWorld, **options: Any) -> EmulatedDualTetraX:
    faults = options.pop("faults", None) or Faults()
    if "reboot_delay_s" not in options.pop("_keep", ()):
        faults.reboot_delay_s = min(faults.reboot_delay_s, 0.02)
    return await world.add_device(faults=faults, **options)


async def assert_clean(world: EmulatorWorld, device: EmulatedDualTetraX) -> None:
    """After a failure: the device is idle and advertising again, and no central is left on the link."""
    await device.wait_advertising(timeout_s=3.0)
    assert device.ota_status.state is OtaState.IDLE, device.ota_status
    assert not device.connections
    for _ in range(50):  # the central's controller leaves the link once its disconnection completes
        if len(world.link.controllers) == len(world.devices):
            break
        await asyncio.sleep(0.01)
    assert len(world.link.controllers) == len(world.devices), world.link.controllers
