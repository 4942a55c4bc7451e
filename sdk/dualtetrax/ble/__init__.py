"""BLE access to DualTetraX devices: protocol codecs, device client and OTA transfer.

The protocol codecs (:mod:`dualtetrax.ble.protocol`) and errors are pure Python. The
client, scanner and OTA engine need ``bleak`` (the ``ble`` extra) and are imported on
first use, so ``import dualtetrax.ble`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dualtetrax.ble import errors, protocol
from dualtetrax.ble.errors import (
    CommandRejectedError,
    ConnectionFailedError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    DeviceTimeoutError,
    DualTetraXBleError,
    MalformedFrameError,
    MalformedPayloadError,
    OtaCancelledError,
    OtaDisconnectedError,
    OtaError,
    OtaLowBatteryError,
    OtaRejectedError,
    OtaTimeoutError,
    OtaTransferFailedError,
    OtaValidationFailedError,
    OtaVersionMismatchError,
    ProtocolError,
    UnsupportedDeviceError,
)
from dualtetrax.ble.progress import OtaPhase, OtaProgress, OtaResult
from dualtetrax.ble.protocol import DeviceStatus, StatusGeneration

_LAZY = {
    "BleBackends": "dualtetrax.ble.backends",
    "DiscoveredDevice": "dualtetrax.ble.scanner",
    "scan": "dualtetrax.ble.scanner",
    "find_device": "dualtetrax.ble.scanner",
    "DualTetraXClient": "dualtetrax.ble.client",
    "DeviceInfo": "dualtetrax.ble.client",
    "OtaTimeouts": "dualtetrax.ble.ota",
    "OtaTransfer": "dualtetrax.ble.ota",
    "update_firmware": "dualtetrax.ble.ota",
}

if TYPE_CHECKING:
    from dualtetrax.ble.backends import BleBackends
    from dualtetrax.ble.client import DeviceInfo, DualTetraXClient
    from dualtetrax.ble.ota import OtaTimeouts, OtaTransfer, update_firmware
    from dualtetrax.ble.scanner import DiscoveredDevice, find_device, scan


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dualtetrax.ble' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [  # noqa: RUF022 - grouped by topic
    "errors",
    "protocol",
    "DeviceStatus",
    "StatusGeneration",
    "OtaPhase",
    "OtaProgress",
    "OtaResult",
    "BleBackends",
    "DiscoveredDevice",
    "scan",
    "find_device",
    "DualTetraXClient",
    "DeviceInfo",
    "OtaTimeouts",
    "OtaTransfer",
    "update_firmware",
    "CommandRejectedError",
    "ConnectionFailedError",
    "DeviceDisconnectedError",
    "DeviceNotFoundError",
    "DeviceTimeoutError",
    "DualTetraXBleError",
    "MalformedFrameError",
    "MalformedPayloadError",
    "OtaCancelledError",
    "OtaDisconnectedError",
    "OtaError",
    "OtaLowBatteryError",
    "OtaRejectedError",
    "OtaTimeoutError",
    "OtaTransferFailedError",
    "OtaValidationFailedError",
    "OtaVersionMismatchError",
    "ProtocolError",
    "UnsupportedDeviceError",
]
