"""Finding DualTetraX devices: by name prefix ``DualTetraX-`` (as the app does), by address or by name."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakBluetoothNotAvailableError, BleakError

from dualtetrax.ble.backends import PLATFORM, BleBackends
from dualtetrax.ble.errors import BluetoothUnavailableError, DeviceNotFoundError

#: Advertised names are ``DualTetraX-XXXX`` (XXXX = last two bytes of the MAC address).
NAME_PREFIX = "DualTetraX-"
_ADDRESS = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")


def looks_like_address(text: str) -> bool:
    """A Bluetooth address ``AA:BB:CC:DD:EE:FF`` or a macOS device UUID."""
    return bool(_ADDRESS.match(text.strip()))


@dataclass(frozen=True)
class DiscoveredDevice:
    """A device seen while scanning."""

    address: str
    name: str | None
    rssi: int | None
    ble_device: BLEDevice = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "name": self.name, "rssi": self.rssi}


def _discovered(device: BLEDevice, advertisement: AdvertisementData) -> DiscoveredDevice:
    return DiscoveredDevice(
        address=device.address,
        name=advertisement.local_name or device.name,
        rssi=advertisement.rssi,
        ble_device=device,
    )


def _backend_args(backends: BleBackends) -> BleakScanner.ExtraArgs:
    extra: BleakScanner.ExtraArgs = {}
    if backends.scanner is not None:
        extra["backend"] = backends.scanner
    return extra


def _unavailable(error: BaseException) -> BluetoothUnavailableError:
    return BluetoothUnavailableError(f"Bluetooth is not available on this computer ({type(error).__name__}: {error}).")


async def scan(
    timeout_s: float = 5.0,
    *,
    name_prefix: str | None = NAME_PREFIX,
    backends: BleBackends = PLATFORM,
) -> list[DiscoveredDevice]:
    """Scan for ``timeout_s`` seconds; return devices whose name starts with ``name_prefix``
    (all devices when ``None``), strongest signal first."""
    try:
        found = await BleakScanner.discover(timeout=timeout_s, return_adv=True, **_backend_args(backends))
    except (BleakBluetoothNotAvailableError, FileNotFoundError, PermissionError) as error:
        raise _unavailable(error) from error
    except BleakError as error:
        if "bluetooth" in str(error).lower() or "adapter" in str(error).lower():
            raise _unavailable(error) from error
        raise
    devices = [
        _discovered(device, advertisement)
        for device, advertisement in found.values()
        if name_prefix is None or (advertisement.local_name or device.name or "").startswith(name_prefix)
    ]
    return sorted(devices, key=lambda d: -(d.rssi if d.rssi is not None else -999))


async def find_device(
    *,
    address: str | None = None,
    name: str | None = None,
    name_prefix: str = NAME_PREFIX,
    timeout_s: float = 10.0,
    backends: BleBackends = PLATFORM,
) -> DiscoveredDevice:
    """The first device matching ``address``, else ``name``, else the first whose name starts
    with ``name_prefix`` (the app's rule). Returns as soon as it is seen.

    Raises :class:`~dualtetrax.ble.errors.DeviceNotFoundError` after ``timeout_s`` seconds.
    """
    wanted_address = address.lower() if address else None

    def matches(device: BLEDevice, advertisement: AdvertisementData) -> bool:
        if wanted_address is not None:
            return device.address.lower() == wanted_address
        advertised = advertisement.local_name or device.name or ""
        if name is not None:
            return advertised == name
        return advertised.startswith(name_prefix)

    result: list[DiscoveredDevice] = []

    def remember(device: BLEDevice, advertisement: AdvertisementData) -> bool:
        if matches(device, advertisement):
            result.append(_discovered(device, advertisement))
            return True
        return False

    try:
        async with asyncio.timeout(timeout_s + 5.0):  # bleak's own timeout is the primary one
            device = await BleakScanner.find_device_by_filter(remember, timeout=timeout_s, **_backend_args(backends))
    except (BleakBluetoothNotAvailableError, FileNotFoundError, PermissionError) as error:
        raise _unavailable(error) from error
    except TimeoutError:
        device = None
    if device is None or not result:
        what = (
            f"address {address}" if address else f"name {name!r}" if name else f"a name starting with {name_prefix!r}"
        )
        raise DeviceNotFoundError(f"No DualTetraX with {what} was seen within {timeout_s:g} s.")
    return result[-1]
