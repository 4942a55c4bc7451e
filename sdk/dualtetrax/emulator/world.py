"""An emulated radio neighbourhood: one link, any number of emulated DualTetraX devices,
and the bleak backends that reach them.

>>> async with EmulatorWorld() as world:                         # doctest: +SKIP
...     device = await world.add_device(firmware_version="1.0.0")
...     async with DualTetraXClient.connect(device.address, backends=world.backends) as client:
...         print(await client.read_firmware_revision())
"""

from __future__ import annotations

import itertools
from types import TracebackType
from typing import Any

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from dualtetrax.ble.backends import BleBackends
from dualtetrax.emulator.bleak_backend import BumbleBleakClient, BumbleBleakScanner
from dualtetrax.emulator.device import EmulatedDualTetraX
from dualtetrax.emulator.radio import AirModel, EmulatedLink

_world_numbers = itertools.count(1)


class EmulatorWorld:
    """Owns the link and the devices on it. Must be created inside a running event loop."""

    def __init__(self, *, air: AirModel | None = None, central_mtu: int | None = 517) -> None:
        """
        Args:
            air: pace the link with this air-time model (``None``: as fast as the CPU).
            central_mtu: the MTU the emulated central (this computer) asks for on connect,
                517 like BlueZ; ``None`` skips the exchange (MTU 23).
        """
        self.link = EmulatedLink(air)
        self.devices: list[EmulatedDualTetraX] = []
        number = next(_world_numbers)
        attributes: dict[str, Any] = {"link": self.link, "requested_mtu": central_mtu}
        self.client_backend: type[BaseBleakClient] = type(
            f"BumbleBleakClient{number}", (BumbleBleakClient,), attributes
        )
        self.scanner_backend: type[BaseBleakScanner] = type(
            f"BumbleBleakScanner{number}", (BumbleBleakScanner,), {"link": self.link}
        )
        self.backends = BleBackends(client=self.client_backend, scanner=self.scanner_backend)

    @property
    def air(self) -> AirModel | None:
        return self.link.air

    async def add_device(self, **options: Any) -> EmulatedDualTetraX:
        """Create, power on and start advertising an emulated DualTetraX.

        Options are those of :class:`~dualtetrax.emulator.device.EmulatedDualTetraX`
        (address, firmware_version, generation, battery_percent, serial_number, sessions,
        faults, ...). Devices get distinct addresses by default.
        """
        options.setdefault("address", f"F0:F1:F2:F3:A1:{0xB1 + len(self.devices):02X}")
        device = EmulatedDualTetraX(self.link, **options)
        await device.start()
        self.devices.append(device)
        return device

    async def close(self) -> None:
        for device in self.devices:
            await device.stop()
        self.devices.clear()

    async def __aenter__(self) -> EmulatorWorld:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
