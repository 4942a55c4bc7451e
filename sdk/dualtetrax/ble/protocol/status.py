"""Live device status: one model for both protocol generations.

Generation 1 exposes one characteristic per field (device-protocol.md §2.2); this module
decodes and encodes each of them and merges them into :class:`DeviceStatus`. Generation 2
sends the whole status in a STATUS_UPDATE frame (see :mod:`.messages`), which converts to
the same model.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import Any

from dualtetrax.ble.errors import MalformedPayloadError
from dualtetrax.ble.protocol import uuids
from dualtetrax.ble.protocol.enums import (
    BatteryState,
    DeviceLevel,
    DeviceMode,
    ShotType,
    StatusGeneration,
    WarningFlags,
    WorkingState,
)


@dataclass(frozen=True)
class DeviceStatus:
    """What the device reports about itself right now."""

    generation: StatusGeneration
    shot: ShotType = ShotType.UNKNOWN
    mode: DeviceMode = DeviceMode.UNKNOWN
    level: DeviceLevel = DeviceLevel.UNKNOWN
    working_state: WorkingState = WorkingState.UNKNOWN
    battery_percent: int | None = None
    battery_mv: int | None = None
    """Generation 2 only."""
    battery_state: BatteryState = BatteryState.UNKNOWN
    warnings: WarningFlags = WarningFlags.NONE
    elapsed_s: int = 0
    """Seconds of the current working run."""
    is_charging: bool | None = None
    """Generation 2 only."""
    session_active: bool | None = None
    """Generation 2 only."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation.value,
            "shot": self.shot.label,
            "shot_type": None if self.shot is ShotType.UNKNOWN else self.shot.value,
            "mode": self.mode.label,
            "mode_code": self.mode.value,
            "level": self.level.value,
            "working_state": self.working_state.name.lower(),
            "battery_percent": self.battery_percent,
            "battery_mv": self.battery_mv,
            "battery_state": self.battery_state.name.lower(),
            "warnings": self.warnings.labels,
            "elapsed_s": self.elapsed_s,
            "is_charging": self.is_charging,
            "session_active": self.session_active,
        }


# Generation 1: one characteristic per field --------------------------------------------------

#: Status characteristics of generation 1 and the :class:`DeviceStatus` field(s) each feeds.
LEGACY_STATUS_CHARACTERISTICS: dict[str, str] = {
    uuids.SHOT_TYPE: "shot",
    uuids.MODE: "mode",
    uuids.LEVEL: "level",
    uuids.WORKING_STATE: "working_state",
    uuids.BATTERY_STATUS: "battery",
    uuids.WARNING_STATUS: "warnings",
    uuids.ELAPSED_TIME: "elapsed_s",
}


def decode_legacy_characteristic(characteristic_uuid: str, data: bytes | bytearray) -> dict[str, Any]:
    """Decode one generation-1 status characteristic value into :class:`DeviceStatus` fields."""
    data = bytes(data)
    key = characteristic_uuid.lower()
    field = LEGACY_STATUS_CHARACTERISTICS.get(key)
    if field is None:
        raise ValueError(f"{characteristic_uuid} is not a generation-1 status characteristic")
    needed = 2 if field in ("battery", "elapsed_s") else 1
    if len(data) < needed:
        raise MalformedPayloadError(
            f"The {field} characteristic needs {needed} byte(s), got {len(data)}: {data.hex() or 'empty'}."
        )
    if field == "shot":
        return {"shot": ShotType.from_legacy_code(data[0])}
    if field == "mode":
        return {"mode": DeviceMode.from_code(data[0])}
    if field == "level":
        return {"level": DeviceLevel.from_code(data[0])}
    if field == "working_state":
        return {"working_state": WorkingState.from_code(data[0])}
    if field == "battery":
        if data[0] > 100:
            raise MalformedPayloadError(f"Battery level {data[0]} % is out of range 0–100.")
        return {"battery_percent": data[0], "battery_state": BatteryState.from_code(data[1])}
    if field == "warnings":
        return {"warnings": WarningFlags(data[0] & 0x07)}
    return {"elapsed_s": struct.unpack_from("<H", data)[0]}


def encode_legacy_characteristics(status: DeviceStatus) -> dict[str, bytes]:
    """The value of every generation-1 status characteristic for ``status`` (used by the emulator)."""
    return {
        uuids.SHOT_TYPE: bytes([status.shot.legacy_code]),
        uuids.MODE: bytes([status.mode.value]),
        uuids.LEVEL: bytes([status.level.value]),
        uuids.WORKING_STATE: bytes([status.working_state.value]),
        uuids.BATTERY_STATUS: bytes([status.battery_percent or 0, status.battery_state.value]),
        uuids.WARNING_STATUS: bytes([int(status.warnings)]),
        uuids.ELAPSED_TIME: struct.pack("<H", status.elapsed_s),
    }


class LegacyStatusAssembler:
    """Merges generation-1 characteristic values into one :class:`DeviceStatus`."""

    def __init__(self) -> None:
        self._status = DeviceStatus(generation=StatusGeneration.PER_CHARACTERISTIC)

    @property
    def status(self) -> DeviceStatus:
        return self._status

    def apply(self, characteristic_uuid: str, data: bytes | bytearray) -> DeviceStatus:
        self._status = dataclasses.replace(self._status, **decode_legacy_characteristic(characteristic_uuid, data))
        return self._status
