"""Device-side session records of the generation-2 protocol (device-protocol.md §3.5).

The device keeps completed sessions in RAM (max 20) until the app confirms them. Each has
a device-generated UUID, the natural key end to end. Times are Unix milliseconds when the
device was time-synced (``time_synced``), otherwise derived from its uptime.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dualtetrax.ble.errors import MalformedPayloadError
from dualtetrax.ble.protocol.enums import DeviceLevel, DeviceMode, ShotType, SyncStatus, TerminationReason

SUMMARY_SIZE = 32
RECORD_SIZE = 56
RECORD_VERSION = 3
BATTERY_POINT_SIZE = 4

_SUMMARY = struct.Struct("<16sQHBBBBH")
_RECORD = struct.Struct("<B3s16sQQBBBBHHBBBBBBBBHH")
assert _SUMMARY.size == SUMMARY_SIZE and _RECORD.size == RECORD_SIZE


def live_battery_percent(millivolts: int) -> int:
    """Battery % for live status, as the app shows it: linear 3200 mV → 0 %, 4200 mV → 100 %."""
    return max(0, min(100, (millivolts - 3200) * 100 // 1000))


def session_battery_percent(millivolts: int) -> int:
    """Battery % for session data (the app's piecewise curve, battery_sample.dart)."""
    if millivolts >= 4200:
        return 100
    if millivolts <= 3000:
        return 0
    if millivolts >= 4000:
        return 80 + (millivolts - 4000) * 20 // 200
    if millivolts >= 3700:
        return 20 + (millivolts - 3700) * 60 // 300
    return (millivolts - 3000) * 20 // 700


def _ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class BatteryPoint:
    """One battery sample of a session (taken once a minute)."""

    elapsed_s: int
    voltage_mv: int

    def encode(self) -> bytes:
        return struct.pack("<HH", self.elapsed_s, self.voltage_mv)


@dataclass(frozen=True)
class SessionSummary:
    """An entry of the GET_SESSIONS response (32 bytes)."""

    session_id: uuid.UUID
    start_time_ms: int
    duration_s: int
    shot: ShotType
    mode_code: int
    """Mode as the summary carries it (numbering not documented; the detail record is authoritative)."""
    level_code: int
    sync_status: SyncStatus
    reserved: int = 0

    def encode(self) -> bytes:
        return _SUMMARY.pack(
            self.session_id.bytes,
            self.start_time_ms,
            self.duration_s,
            self.shot.value,
            self.mode_code,
            self.level_code,
            self.sync_status.value,
            self.reserved,
        )

    @classmethod
    def decode(cls, data: bytes) -> SessionSummary:
        if len(data) != SUMMARY_SIZE:
            raise MalformedPayloadError(f"A session summary is {SUMMARY_SIZE} bytes, got {len(data)}.")
        raw_id, start, duration, shot, mode, level, sync, reserved = _SUMMARY.unpack(data)
        return cls(
            session_id=uuid.UUID(bytes=raw_id),
            start_time_ms=start,
            duration_s=duration,
            shot=ShotType.from_code(shot),
            mode_code=mode,
            level_code=level,
            sync_status=SyncStatus.from_code(sync),
            reserved=reserved,
        )


@dataclass(frozen=True)
class SessionRecord:
    """A complete session (``UserActivityLogEntryV3``) with its battery samples."""

    session_id: uuid.UUID
    start_time_ms: int
    end_time_ms: int
    """0 when the device has no end time."""
    shot: ShotType
    mode_index: int
    """0-based within the shot type; see :attr:`mode`."""
    level_index: int
    """0-based (0–2); see :attr:`level`."""
    led_pattern: int
    working_duration_s: int
    pause_duration_s: int
    termination_reason: TerminationReason
    pause_count: int
    completion_percent: int
    time_synced: bool
    start_battery_mv: int
    end_battery_mv: int
    """0 when unknown."""
    battery_samples: tuple[BatteryPoint, ...] = field(default=())
    device_sync_status: SyncStatus = SyncStatus.NOT_SYNCED
    battery_storage_index: int = 0

    @property
    def mode(self) -> DeviceMode:
        return DeviceMode.from_record(self.shot, self.mode_index)

    @property
    def level(self) -> DeviceLevel:
        return DeviceLevel.from_record(self.level_index)

    @property
    def started_at(self) -> datetime:
        return _ms_to_datetime(self.start_time_ms)

    @property
    def ended_at(self) -> datetime | None:
        return _ms_to_datetime(self.end_time_ms) if self.end_time_ms else None

    def encode(self) -> bytes:
        if len(self.battery_samples) > 0xFF:
            raise ValueError("at most 255 battery samples fit a record")
        head = _RECORD.pack(
            RECORD_VERSION,
            bytes(3),
            self.session_id.bytes,
            self.start_time_ms,
            self.end_time_ms,
            self.shot.value,
            self.mode_index,
            self.level_index,
            self.led_pattern,
            self.working_duration_s,
            self.pause_duration_s,
            self.termination_reason.value,
            self.pause_count,
            self.completion_percent,
            self.device_sync_status.value,
            len(self.battery_samples),
            self.battery_storage_index,
            int(self.time_synced),
            0,
            self.start_battery_mv,
            self.end_battery_mv,
        )
        return head + b"".join(sample.encode() for sample in self.battery_samples)

    @classmethod
    def decode(cls, data: bytes) -> SessionRecord:
        """Parse a record followed by exactly its battery samples."""
        if len(data) < RECORD_SIZE:
            raise MalformedPayloadError(f"A session record is at least {RECORD_SIZE} bytes, got {len(data)}.")
        (
            version,
            _reserved,
            raw_id,
            start,
            end,
            shot,
            mode,
            level,
            led,
            working,
            pause,
            reason,
            pause_count,
            completion,
            sync,
            sample_count,
            storage_index,
            time_synced,
            _reserved2,
            start_mv,
            end_mv,
        ) = _RECORD.unpack_from(data)
        if version != RECORD_VERSION:
            raise MalformedPayloadError(
                f"Session record version {version}; this SDK reads version {RECORD_VERSION}.",
                hint="Update the SDK to read this firmware's session records.",
            )
        expected = RECORD_SIZE + sample_count * BATTERY_POINT_SIZE
        if len(data) != expected:
            raise MalformedPayloadError(
                f"The record announces {sample_count} battery samples ({expected} bytes) but {len(data)} bytes arrived."
            )
        samples = tuple(
            BatteryPoint(*struct.unpack_from("<HH", data, RECORD_SIZE + i * BATTERY_POINT_SIZE))
            for i in range(sample_count)
        )
        return cls(
            session_id=uuid.UUID(bytes=raw_id),
            start_time_ms=start,
            end_time_ms=end,
            shot=ShotType.from_code(shot),
            mode_index=mode,
            level_index=level,
            led_pattern=led,
            working_duration_s=working,
            pause_duration_s=pause,
            termination_reason=TerminationReason.from_code(reason),
            pause_count=pause_count,
            completion_percent=completion,
            device_sync_status=SyncStatus.from_code(sync),
            battery_storage_index=storage_index,
            time_synced=bool(time_synced),
            start_battery_mv=start_mv,
            end_battery_mv=end_mv,
            battery_samples=samples,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (enums by name, times as ISO-8601 UTC)."""
        return {
            "id": str(self.session_id),
            "start_time": self.started_at.isoformat(),
            "end_time": self.ended_at.isoformat() if self.ended_at else None,
            "time_synced": self.time_synced,
            "shot_type": self.shot.value,
            "shot": self.shot.label,
            "mode": self.mode.value,
            "mode_name": self.mode.label,
            "level": self.level.value,
            "led_pattern": self.led_pattern,
            "working_duration_s": self.working_duration_s,
            "pause_duration_s": self.pause_duration_s,
            "pause_count": self.pause_count,
            "termination_reason": self.termination_reason.name.lower(),
            "completion_percent": self.completion_percent,
            "start_battery_mv": self.start_battery_mv,
            "end_battery_mv": self.end_battery_mv or None,
            "battery_samples": [{"elapsed_s": s.elapsed_s, "voltage_mv": s.voltage_mv} for s in self.battery_samples],
        }
