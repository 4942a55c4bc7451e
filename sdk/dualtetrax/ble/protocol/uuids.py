"""GATT UUIDs of the DualTetraX (device-protocol.md §2.1, §3.1, §4.1).

Beware: the two status protocol generations overlap. ``12340001-…`` is the Shot Type
*characteristic* in generation 1 and the Communication *service* in generation 2.
"""

from __future__ import annotations

_BASE = "-1234-1234-1234-123456789abc"


def _custom(prefix: int) -> str:
    return f"{prefix:08x}{_BASE}"


def _sig(short: int) -> str:
    return f"{short:08x}-0000-1000-8000-00805f9b34fb"


# Device Information (SIG)
DEVICE_INFORMATION_SERVICE = _sig(0x180A)
MODEL_NUMBER = _sig(0x2A24)
SERIAL_NUMBER = _sig(0x2A25)
FIRMWARE_REVISION = _sig(0x2A26)
HARDWARE_REVISION = _sig(0x2A27)
CCCD = _sig(0x2902)

# Generation 1: per-characteristic Realtime Status service (app HEAD)
STATUS_SERVICE = _custom(0x12340000)
SHOT_TYPE = _custom(0x12340001)
MODE = _custom(0x12340002)
LEVEL = _custom(0x12340003)
WORKING_STATE = _custom(0x12340004)
BATTERY_STATUS = _custom(0x12340005)
WARNING_STATUS = _custom(0x12340006)
ELAPSED_TIME = _custom(0x12340007)

# Generation 2: framed Communication service (app v1_0/dev)
COMM_SERVICE = _custom(0x12340001)
COMM_TX = _custom(0x12340002)  # notify, device -> app
COMM_RX = _custom(0x12340003)  # write with response, app -> device

# OTA service (identical in both generations)
OTA_SERVICE = _custom(0x12341111)
OTA_CONTROL = _custom(0x12341101)  # write with response
OTA_STATUS = _custom(0x12341102)  # notify (+ read)
OTA_DATA = _custom(0x12341103)  # write without response
OTA_INFO = _custom(0x12341104)  # design document only; not used
