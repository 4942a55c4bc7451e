"""Messages of the generation-2 Communication service (device-protocol.md §3.3–3.5).

Each message is a frozen dataclass with ``encode() -> bytes`` (a whole frame) and a
``decode_payload`` class method; :func:`decode_message` parses a frame and dispatches on
its type. Requests go app → device on RX (write with response); responses (type + 0x80)
and notifications come back on TX.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from typing import ClassVar, Self

from dualtetrax.ble.errors import MalformedPayloadError, UnknownMessageError
from dualtetrax.ble.protocol.enums import (
    BatteryState,
    DeviceLevel,
    DeviceMode,
    MessageType,
    ResponseStatus,
    SessionFilter,
    ShotType,
    StatusGeneration,
    WarningFlags,
    WorkingState,
)
from dualtetrax.ble.protocol.framing import decode_frame, encode_frame
from dualtetrax.ble.protocol.sessions import (
    SUMMARY_SIZE,
    SessionRecord,
    SessionSummary,
    live_battery_percent,
)
from dualtetrax.ble.protocol.status import DeviceStatus

_STATUS = struct.Struct("<BBBBHBBHBB")
STATUS_UPDATE_SIZE = _STATUS.size  # 12
SESSION_START_SIZE = 24
SESSION_END_SIZE = 40
BATTERY_SAMPLE_SIZE = 22


def _need(payload: bytes, size: int, what: str, *, exact: bool = False) -> None:
    if len(payload) < size or (exact and len(payload) != size):
        relation = "exactly" if exact else "at least"
        raise MalformedPayloadError(f"{what} needs {relation} {size} payload bytes, got {len(payload)}.")


class Message:
    """Base of every Communication-service message."""

    TYPE: ClassVar[MessageType]

    def encode_payload(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        raise NotImplementedError

    def encode(self) -> bytes:
        """The complete frame."""
        return encode_frame(self.TYPE.value, self.encode_payload())


# ----------------------------------------------------------------------------- notifications


@dataclass(frozen=True)
class StatusUpdate(Message):
    """STATUS_UPDATE (0x01): the device's live status (12 bytes)."""

    TYPE: ClassVar[MessageType] = MessageType.STATUS_UPDATE

    shot: ShotType
    mode: DeviceMode
    level: DeviceLevel
    working_state: WorkingState
    battery_mv: int
    battery_state: BatteryState
    warnings: WarningFlags
    elapsed_s: int
    is_charging: bool
    session_active: bool
    reserved: int = 0

    def encode_payload(self) -> bytes:
        flags = int(self.is_charging) | (int(self.session_active) << 1)
        return _STATUS.pack(
            self.shot.value,
            self.mode.value,
            self.level.value,
            self.working_state.value,
            self.battery_mv,
            self.battery_state.framed_code,
            int(self.warnings),
            self.elapsed_s,
            flags,
            self.reserved,
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> StatusUpdate:
        _need(payload, STATUS_UPDATE_SIZE, "STATUS_UPDATE")
        shot, mode, level, state, mv, battery, warnings, elapsed, flags, reserved = _STATUS.unpack_from(payload)
        return cls(
            shot=ShotType.from_code(shot),
            mode=DeviceMode.from_code(mode),
            level=DeviceLevel.from_code(level),
            working_state=WorkingState.from_code(state),
            battery_mv=mv,
            battery_state=BatteryState.from_framed_code(battery),
            warnings=WarningFlags(warnings & 0x07),
            elapsed_s=elapsed,
            is_charging=bool(flags & 0x01),
            session_active=bool(flags & 0x02),
            reserved=reserved,
        )

    def to_status(self) -> DeviceStatus:
        return DeviceStatus(
            generation=StatusGeneration.FRAMED,
            shot=self.shot,
            mode=self.mode,
            level=self.level,
            working_state=self.working_state,
            battery_percent=live_battery_percent(self.battery_mv),
            battery_mv=self.battery_mv,
            battery_state=self.battery_state,
            warnings=self.warnings,
            elapsed_s=self.elapsed_s,
            is_charging=self.is_charging,
            session_active=self.session_active,
        )


@dataclass(frozen=True)
class SessionStarted(Message):
    """SESSION_START (0x02): a treatment session began (≥ 24 bytes)."""

    TYPE: ClassVar[MessageType] = MessageType.SESSION_START

    session_id: uuid.UUID
    shot: ShotType
    mode: DeviceMode
    level: DeviceLevel
    led_pattern: int
    start_battery_mv: int
    reserved: bytes = b"\x00\x00"

    def encode_payload(self) -> bytes:
        return (
            self.session_id.bytes
            + struct.pack(
                "<BBBBH",
                self.shot.value,
                self.mode.value,
                self.level.value,
                self.led_pattern,
                self.start_battery_mv,
            )
            + self.reserved
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> SessionStarted:
        _need(payload, SESSION_START_SIZE, "SESSION_START")
        shot, mode, level, led, mv = struct.unpack_from("<BBBBH", payload, 16)
        return cls(
            session_id=uuid.UUID(bytes=payload[:16]),
            shot=ShotType.from_code(shot),
            mode=DeviceMode.from_code(mode),
            level=DeviceLevel.from_code(level),
            led_pattern=led,
            start_battery_mv=mv,
            reserved=payload[22:],
        )


@dataclass(frozen=True)
class SessionEnded(Message):
    """SESSION_END (0x03): a session ended; the app re-runs its pull-sync on this (≥ 40 bytes).

    ``termination_code`` is kept raw: the document notes its order differs from the
    session record's :class:`~.enums.TerminationReason` without giving it.
    """

    TYPE: ClassVar[MessageType] = MessageType.SESSION_END

    session_id: uuid.UUID
    end_time_ms: int
    working_s: int
    pause_s: int
    pause_count: int
    termination_code: int
    completion_percent: int
    end_battery_mv: int
    battery_sample_count: int
    reserved: bytes = bytes(6)

    def encode_payload(self) -> bytes:
        return (
            self.session_id.bytes
            + struct.pack(
                "<QHHBBBHB",
                self.end_time_ms,
                self.working_s,
                self.pause_s,
                self.pause_count,
                self.termination_code,
                self.completion_percent,
                self.end_battery_mv,
                self.battery_sample_count,
            )
            + self.reserved
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> SessionEnded:
        _need(payload, SESSION_END_SIZE, "SESSION_END")
        end, working, pause, count, reason, completion, mv, samples = struct.unpack_from("<QHHBBBHB", payload, 16)
        return cls(
            session_id=uuid.UUID(bytes=payload[:16]),
            end_time_ms=end,
            working_s=working,
            pause_s=pause,
            pause_count=count,
            termination_code=reason,
            completion_percent=completion,
            end_battery_mv=mv,
            battery_sample_count=samples,
            reserved=payload[34:],
        )


@dataclass(frozen=True)
class BatterySampleNotice(Message):
    """BATTERY_SAMPLE (0x04): once a minute during a session (≥ 22 bytes)."""

    TYPE: ClassVar[MessageType] = MessageType.BATTERY_SAMPLE

    session_id: uuid.UUID
    elapsed_s: int
    voltage_mv: int
    battery_state_code: int
    sample_index: int

    def encode_payload(self) -> bytes:
        return self.session_id.bytes + struct.pack(
            "<HHBB", self.elapsed_s, self.voltage_mv, self.battery_state_code, self.sample_index
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> BatterySampleNotice:
        _need(payload, BATTERY_SAMPLE_SIZE, "BATTERY_SAMPLE")
        elapsed, mv, state, index = struct.unpack_from("<HHBB", payload, 16)
        return cls(uuid.UUID(bytes=payload[:16]), elapsed, mv, state, index)


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class TimeSyncRequest(Message):
    """TIME_SYNC (0x10): the phone's clock, Unix epoch milliseconds."""

    TYPE: ClassVar[MessageType] = MessageType.TIME_SYNC

    timestamp_ms: int

    def encode_payload(self) -> bytes:
        return struct.pack("<Q", self.timestamp_ms)

    @classmethod
    def decode_payload(cls, payload: bytes) -> TimeSyncRequest:
        _need(payload, 8, "TIME_SYNC", exact=True)
        return cls(struct.unpack("<Q", payload)[0])


@dataclass(frozen=True)
class GetSessionsRequest(Message):
    """GET_SESSIONS (0x11): list up to ``max_count`` sessions (the app asks for 10 unsynced)."""

    TYPE: ClassVar[MessageType] = MessageType.GET_SESSIONS

    max_count: int = 10
    filter: SessionFilter = SessionFilter.UNSYNCED

    def encode_payload(self) -> bytes:
        return bytes([self.max_count, self.filter.value])

    @classmethod
    def decode_payload(cls, payload: bytes) -> GetSessionsRequest:
        _need(payload, 2, "GET_SESSIONS", exact=True)
        if payload[1] not in SessionFilter._value2member_map_:
            raise MalformedPayloadError(f"GET_SESSIONS filter must be 0 or 1, got {payload[1]}.")
        return cls(payload[0], SessionFilter(payload[1]))


@dataclass(frozen=True)
class _SessionIdRequest(Message):
    session_id: uuid.UUID

    def encode_payload(self) -> bytes:
        return self.session_id.bytes

    @classmethod
    def _decode_id(cls, payload: bytes) -> uuid.UUID:
        _need(payload, 16, cls.TYPE.name, exact=True)
        return uuid.UUID(bytes=payload)


@dataclass(frozen=True)
class GetSessionDetailRequest(_SessionIdRequest):
    """GET_SESSION_DETAIL (0x12)."""

    TYPE: ClassVar[MessageType] = MessageType.GET_SESSION_DETAIL

    @classmethod
    def decode_payload(cls, payload: bytes) -> GetSessionDetailRequest:
        return cls(cls._decode_id(payload))


@dataclass(frozen=True)
class ConfirmSyncRequest(_SessionIdRequest):
    """CONFIRM_SYNC (0x13): the app stored the session; the device may mark it synced."""

    TYPE: ClassVar[MessageType] = MessageType.CONFIRM_SYNC

    @classmethod
    def decode_payload(cls, payload: bytes) -> ConfirmSyncRequest:
        return cls(cls._decode_id(payload))


@dataclass(frozen=True)
class DeleteSessionRequest(_SessionIdRequest):
    """DELETE_SESSION (0x14): defined by the protocol, never sent by the app."""

    TYPE: ClassVar[MessageType] = MessageType.DELETE_SESSION

    @classmethod
    def decode_payload(cls, payload: bytes) -> DeleteSessionRequest:
        return cls(cls._decode_id(payload))


# ----------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class Response(Message):
    """Base of responses: the first payload byte is a :class:`~.enums.ResponseStatus`."""

    REQUEST: ClassVar[MessageType]

    status: ResponseStatus

    @property
    def ok(self) -> bool:
        return self.status is ResponseStatus.SUCCESS


@dataclass(frozen=True)
class _StatusOnlyResponse(Response):
    def encode_payload(self) -> bytes:
        return bytes([self.status.value])

    @classmethod
    def _decode_status(cls, payload: bytes) -> ResponseStatus:
        _need(payload, 1, cls.TYPE.name)
        return ResponseStatus.from_code(payload[0])


@dataclass(frozen=True)
class TimeSyncResponse(_StatusOnlyResponse):
    TYPE: ClassVar[MessageType] = MessageType.TIME_SYNC_RESPONSE
    REQUEST: ClassVar[MessageType] = MessageType.TIME_SYNC

    @classmethod
    def decode_payload(cls, payload: bytes) -> TimeSyncResponse:
        return cls(cls._decode_status(payload))


@dataclass(frozen=True)
class ConfirmSyncResponse(_StatusOnlyResponse):
    TYPE: ClassVar[MessageType] = MessageType.CONFIRM_SYNC_RESPONSE
    REQUEST: ClassVar[MessageType] = MessageType.CONFIRM_SYNC

    @classmethod
    def decode_payload(cls, payload: bytes) -> ConfirmSyncResponse:
        return cls(cls._decode_status(payload))


@dataclass(frozen=True)
class DeleteSessionResponse(_StatusOnlyResponse):
    TYPE: ClassVar[MessageType] = MessageType.DELETE_SESSION_RESPONSE
    REQUEST: ClassVar[MessageType] = MessageType.DELETE_SESSION

    @classmethod
    def decode_payload(cls, payload: bytes) -> DeleteSessionResponse:
        return cls(cls._decode_status(payload))


@dataclass(frozen=True)
class GetSessionsResponse(Response):
    """0x91: ``[status][total_count u16][k × 32-byte summary]``."""

    TYPE: ClassVar[MessageType] = MessageType.GET_SESSIONS_RESPONSE
    REQUEST: ClassVar[MessageType] = MessageType.GET_SESSIONS

    total_count: int = 0
    """How many sessions match the filter on the device (may exceed the summaries returned)."""
    sessions: tuple[SessionSummary, ...] = field(default=())

    def encode_payload(self) -> bytes:
        return struct.pack("<BH", self.status.value, self.total_count) + b"".join(
            summary.encode() for summary in self.sessions
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> GetSessionsResponse:
        _need(payload, 1, "GET_SESSIONS response")
        status = ResponseStatus.from_code(payload[0])
        if status is not ResponseStatus.SUCCESS and len(payload) < 3:
            return cls(status)
        _need(payload, 3, "GET_SESSIONS response")
        total = struct.unpack_from("<H", payload, 1)[0]
        body = payload[3:]
        if len(body) % SUMMARY_SIZE:
            raise MalformedPayloadError(
                f"GET_SESSIONS response carries {len(body)} summary bytes, not a multiple of {SUMMARY_SIZE}."
            )
        sessions = tuple(SessionSummary.decode(body[i : i + SUMMARY_SIZE]) for i in range(0, len(body), SUMMARY_SIZE))
        return cls(status, total, sessions)


@dataclass(frozen=True)
class SessionDetailResponse(Response):
    """0x92: ``[status]`` then, on success, the V3 record and its battery samples."""

    TYPE: ClassVar[MessageType] = MessageType.GET_SESSION_DETAIL_RESPONSE
    REQUEST: ClassVar[MessageType] = MessageType.GET_SESSION_DETAIL

    record: SessionRecord | None = None

    def encode_payload(self) -> bytes:
        return bytes([self.status.value]) + (self.record.encode() if self.record else b"")

    @classmethod
    def decode_payload(cls, payload: bytes) -> SessionDetailResponse:
        _need(payload, 1, "GET_SESSION_DETAIL response")
        status = ResponseStatus.from_code(payload[0])
        if status is not ResponseStatus.SUCCESS:
            return cls(status)
        return cls(status, SessionRecord.decode(payload[1:]))


# ----------------------------------------------------------------------------- dispatch

_MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.TYPE.value: cls
    for cls in (
        StatusUpdate,
        SessionStarted,
        SessionEnded,
        BatterySampleNotice,
        TimeSyncRequest,
        GetSessionsRequest,
        GetSessionDetailRequest,
        ConfirmSyncRequest,
        DeleteSessionRequest,
        TimeSyncResponse,
        GetSessionsResponse,
        SessionDetailResponse,
        ConfirmSyncResponse,
        DeleteSessionResponse,
    )
}

#: Response class for each request type.
RESPONSE_FOR: dict[MessageType, type[Response]] = {
    cls.REQUEST: cls
    for cls in (
        TimeSyncResponse,
        GetSessionsResponse,
        SessionDetailResponse,
        ConfirmSyncResponse,
        DeleteSessionResponse,
    )
}


def decode_message(data: bytes | bytearray) -> Message:
    """Parse a frame and decode its message; raise a typed :class:`~dualtetrax.ble.errors.ProtocolError`."""
    frame = decode_frame(data)
    message_class = _MESSAGE_CLASSES.get(frame.message_type)
    if message_class is None:
        raise UnknownMessageError(frame.message_type)
    return message_class.decode_payload(frame.payload)
