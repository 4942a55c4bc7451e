"""Device enumerations with names, as the app and firmware define them (device-protocol.md).

Numbering is pinned to the firmware: shot type ("feature type") is **0-based** as in the
generation-2 protocol, the session records and the server schema; the generation-1
characteristic's 1-based code is converted with :meth:`ShotType.from_legacy_code`.

Decoders never invent values: a code the SDK does not know becomes the enum's ``UNKNOWN``
member (status data) or raises a typed error (framing, OTA).
"""

from __future__ import annotations

import enum


class StatusGeneration(enum.IntEnum):
    """Which status protocol a device exposes."""

    NONE = 0
    """No status service (e.g. an OTA-only bootloader build)."""
    PER_CHARACTERISTIC = 1
    """Generation 1: service ``12340000-…`` with one characteristic per field (app HEAD)."""
    FRAMED = 2
    """Generation 2: Communication service ``12340001-…`` with XOR-checked frames (app DEV)."""

    @property
    def label(self) -> str:
        return {0: "none", 1: "per-characteristic (gen 1)", 2: "framed communication (gen 2)"}[self.value]


class ShotType(enum.IntEnum):
    """Treatment type ("feature type"), firmware numbering."""

    U_SHOT = 0
    E_SHOT = 1
    LED_CARE = 2
    UNKNOWN = 0xFF

    @classmethod
    def from_code(cls, code: int) -> ShotType:
        return cls._value2member_map_.get(code, cls.UNKNOWN)  # type: ignore[return-value]

    @classmethod
    def from_legacy_code(cls, code: int) -> ShotType:
        """Generation-1 Shot Type characteristic: 0 unknown, 1 U-Shot, 2 E-Shot, 3 LED Care."""
        return {1: cls.U_SHOT, 2: cls.E_SHOT, 3: cls.LED_CARE}.get(code, cls.UNKNOWN)

    @property
    def legacy_code(self) -> int:
        return {ShotType.U_SHOT: 1, ShotType.E_SHOT: 2, ShotType.LED_CARE: 3}.get(self, 0)

    @property
    def label(self) -> str:
        return {0: "U-Shot", 1: "E-Shot", 2: "LED Care"}.get(self.value, "Unknown")


class DeviceMode(enum.IntEnum):
    """Treatment mode; codes are the same in both app generations, names follow the firmware (DEV)."""

    UNKNOWN = 0x00
    GLOW = 0x01
    TONEUP = 0x02
    RENEW = 0x03
    VOLUME = 0x04
    CLEAN = 0x11
    FIRM = 0x12
    LINE = 0x13
    LIFT = 0x14
    LED_MODE = 0x21

    @classmethod
    def from_code(cls, code: int) -> DeviceMode:
        return cls._value2member_map_.get(code, cls.UNKNOWN)  # type: ignore[return-value]

    @classmethod
    def from_record(cls, shot: ShotType, mode_index: int) -> DeviceMode:
        """Session records store the mode 0-based within its shot type (U: 0x01+i, E: 0x11+i, LED: 0x21)."""
        if shot is ShotType.U_SHOT and 0 <= mode_index <= 3:
            return cls(0x01 + mode_index)
        if shot is ShotType.E_SHOT and 0 <= mode_index <= 3:
            return cls(0x11 + mode_index)
        if shot is ShotType.LED_CARE:
            return cls.LED_MODE
        return cls.UNKNOWN

    @property
    def shot(self) -> ShotType:
        if self is DeviceMode.UNKNOWN:
            return ShotType.UNKNOWN
        return (ShotType.U_SHOT, ShotType.E_SHOT, ShotType.LED_CARE)[self.value >> 4]

    @property
    def label(self) -> str:
        return _MODE_LABELS[self][0]

    @property
    def legacy_label(self) -> str:
        """The name the generation-1 app used (e.g. 0x13 "Lifting" vs the firmware's "Line")."""
        return _MODE_LABELS[self][1]

    @property
    def short(self) -> str:
        return _MODE_LABELS[self][2]


_MODE_LABELS = {
    DeviceMode.UNKNOWN: ("Unknown", "Unknown", "-"),
    DeviceMode.GLOW: ("Glow", "Glow", "GL"),
    DeviceMode.TONEUP: ("Toneup", "Tuning", "TN"),
    DeviceMode.RENEW: ("Renew", "Renewal", "RE"),
    DeviceMode.VOLUME: ("Volume", "Volume", "VO"),
    DeviceMode.CLEAN: ("Clean", "Cleansing", "CL"),
    DeviceMode.FIRM: ("Firm", "Firming", "FM"),
    DeviceMode.LINE: ("Line", "Lifting", "LN"),
    DeviceMode.LIFT: ("Lift", "LF", "LF"),
    DeviceMode.LED_MODE: ("LED Mode", "LED Mode", "LED"),
}


class DeviceLevel(enum.IntEnum):
    UNKNOWN = 0
    LEVEL_1 = 1
    LEVEL_2 = 2
    LEVEL_3 = 3

    @classmethod
    def from_code(cls, code: int) -> DeviceLevel:
        return cls._value2member_map_.get(code, cls.UNKNOWN)  # type: ignore[return-value]

    @classmethod
    def from_record(cls, level_index: int) -> DeviceLevel:
        """Session records store the level 0-based (0–2)."""
        return cls.from_code(level_index + 1) if 0 <= level_index <= 2 else cls.UNKNOWN

    @property
    def label(self) -> str:
        return "Unknown" if self is DeviceLevel.UNKNOWN else f"Level {self.value}"


class WorkingState(enum.IntEnum):
    OFF = 0
    WORKING = 1
    PAUSE = 2
    STANDBY = 3
    TIMEOUT = 4
    """The fixed 8-minute treatment completed; the device powers off."""
    OTA = 5
    """Wi-Fi OTA mode (device AP ``DualTetraX-AP``)."""
    UNKNOWN = 0xFF

    @classmethod
    def from_code(cls, code: int) -> WorkingState:
        return cls._value2member_map_.get(code, cls.UNKNOWN)  # type: ignore[return-value]

    @property
    def label(self) -> str:
        return self.name.capitalize() if self is not WorkingState.OTA else "OTA"


class BatteryState(enum.IntEnum):
    """Battery state as the generation-1 characteristic codes it (1-based)."""

    SUFFICIENT = 1
    LOW = 2
    CRITICAL = 3
    CHARGING = 4
    UNKNOWN = 0xFF

    @classmethod
    def from_code(cls, code: int) -> BatteryState:
        return cls._value2member_map_.get(code, cls.UNKNOWN)  # type: ignore[return-value]

    @classmethod
    def from_framed_code(cls, code: int) -> BatteryState:
        """Generation-2 STATUS_UPDATE codes it 0-based per the firmware comment (0 sufficient, 1 low,
        2 critical). device-protocol.md §9 lists this as an open question."""
        return {0: cls.SUFFICIENT, 1: cls.LOW, 2: cls.CRITICAL}.get(code, cls.UNKNOWN)

    @property
    def framed_code(self) -> int:
        return {BatteryState.SUFFICIENT: 0, BatteryState.LOW: 1, BatteryState.CRITICAL: 2}.get(self, 0xFF)

    @property
    def label(self) -> str:
        return self.name.capitalize()


class WarningFlags(enum.IntFlag):
    NONE = 0
    TEMPERATURE = 0x01
    BATTERY_LOW = 0x02
    BATTERY_CRITICAL = 0x04

    @property
    def labels(self) -> list[str]:
        return [flag.name.lower() for flag in WarningFlags if flag and flag in self and flag.name]


class TerminationReason(enum.IntEnum):
    """Why a session ended, as the session record (V3) codes it."""

    TIMEOUT_8MIN = 0
    MANUAL_POWER_OFF = 1
    BATTERY_DRAIN = 2
    OVERHEAT = 3
    CHARGING_STARTED = 4
    PAUSE_TIMEOUT = 5
    MODE_SWITCH = 6
    POWER_ON = 7
    OVERHEAT_ULTRASONIC = 8
    OVERHEAT_BODY = 9
    OTHER = 255

    @classmethod
    def from_code(cls, code: int) -> TerminationReason:
        return cls._value2member_map_.get(code, cls.OTHER)  # type: ignore[return-value]


class SyncStatus(enum.IntEnum):
    NOT_SYNCED = 0
    SYNCED_TO_APP = 1
    SYNCED_TO_SERVER = 2
    FULLY_SYNCED = 3

    @classmethod
    def from_code(cls, code: int) -> SyncStatus:
        return cls._value2member_map_.get(code, cls.NOT_SYNCED)  # type: ignore[return-value]


class MessageType(enum.IntEnum):
    """Frame types of the generation-2 Communication service. Response = request + 0x80."""

    STATUS_UPDATE = 0x01
    SESSION_START = 0x02
    SESSION_END = 0x03
    BATTERY_SAMPLE = 0x04
    TIME_SYNC = 0x10
    GET_SESSIONS = 0x11
    GET_SESSION_DETAIL = 0x12
    CONFIRM_SYNC = 0x13
    DELETE_SESSION = 0x14
    TIME_SYNC_RESPONSE = 0x90
    GET_SESSIONS_RESPONSE = 0x91
    GET_SESSION_DETAIL_RESPONSE = 0x92
    CONFIRM_SYNC_RESPONSE = 0x93
    DELETE_SESSION_RESPONSE = 0x94

    @property
    def is_response(self) -> bool:
        return self.value >= 0x90


class ResponseStatus(enum.IntEnum):
    SUCCESS = 0x00
    INVALID_TYPE = 0x01
    INVALID_LENGTH = 0x02
    INVALID_PARAM = 0x03
    NOT_FOUND = 0x04
    BUSY = 0x05
    ERROR = 0xFF

    @classmethod
    def from_code(cls, code: int) -> ResponseStatus:
        """Unknown codes count as ``ERROR`` (as the app does)."""
        return cls._value2member_map_.get(code, cls.ERROR)  # type: ignore[return-value]

    @property
    def description(self) -> str:
        return {
            0x00: "success",
            0x01: "the device does not know this request type",
            0x02: "the request had an invalid length",
            0x03: "a request parameter was invalid",
            0x04: "no such session on the device",
            0x05: "the device is busy",
            0xFF: "the device reported an error",
        }[self.value]


class SessionFilter(enum.IntEnum):
    ALL = 0
    UNSYNCED = 1


class OtaCommand(enum.IntEnum):
    START = 0x01
    FINISH = 0x02
    CANCEL = 0x03
    GET_INFO = 0x04


class OtaState(enum.IntEnum):
    """OTA state as the app's code defines it ("matching firmware OTAState")."""

    IDLE = 0
    DOWNLOADING = 1
    VALIDATING = 2
    UPGRADING = 3
    SUCCESS = 4
    ERROR = 5

    @property
    def label(self) -> str:
        return {0: "idle", 1: "receiving", 2: "validating", 3: "applying", 4: "success", 5: "error"}[self.value]


class OtaErrorCode(enum.IntEnum):
    """OTA error as the app's code defines it ("matching firmware OTAError")."""

    NONE = 0
    LOW_BATTERY = 1
    INVALID_IMAGE = 2
    WRITE_FAILED = 3
    CHECKSUM_FAILED = 4
    SIZE_EXCEEDED = 5
    TIMEOUT = 6
    NETWORK_ERROR = 7
    FLASH_ERROR = 8
    INTERNAL_ERROR = 9
    BATTERY_DROPPED = 10

    @property
    def message(self) -> str:
        return {
            0: "No error",
            1: "Battery level too low for update",
            2: "Invalid firmware image",
            3: "Failed to write firmware",
            4: "Firmware checksum verification failed",
            5: "Firmware size too large",
            6: "Update timed out",
            7: "Connection lost during update",
            8: "Flash memory error",
            9: "Internal error occurred",
            10: "Battery dropped during update",
        }[self.value]
