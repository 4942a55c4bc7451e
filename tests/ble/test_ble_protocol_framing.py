"""Generation-2 framing and messages: known vectors, round trips, malformed input."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualtetrax.ble.errors import (
    FrameChecksumError,
    FrameLengthError,
    FrameTooShortError,
    MalformedFrameError,
    MalformedPayloadError,
    ProtocolError,
    UnknownMessageError,
)
from dualtetrax.ble.protocol import (
    RESPONSE_FOR,
    BatteryPoint,
    BatterySampleNotice,
    BatteryState,
    ConfirmSyncRequest,
    ConfirmSyncResponse,
    DeleteSessionRequest,
    DeleteSessionResponse,
    DeviceLevel,
    DeviceMode,
    GetSessionDetailRequest,
    GetSessionsRequest,
    GetSessionsResponse,
    Message,
    MessageType,
    ResponseStatus,
    SessionDetailResponse,
    SessionEnded,
    SessionFilter,
    SessionRecord,
    SessionStarted,
    SessionSummary,
    ShotType,
    StatusGeneration,
    StatusUpdate,
    SyncStatus,
    TerminationReason,
    TimeSyncRequest,
    TimeSyncResponse,
    WarningFlags,
    WorkingState,
    decode_frame,
    decode_message,
    encode_frame,
)

SESSION = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")

# ------------------------------------------------------------------ known vectors (hand-computed)


def test_time_sync_vector() -> None:
    # 1_700_000_000_123 ms = 0x018BCFE5687B; check = XOR of all preceding bytes = 0xAB.
    frame = bytes.fromhex("10 08 00 7b 68 e5 cf 8b 01 00 00 ab")
    assert TimeSyncRequest(1_700_000_000_123).encode() == frame
    assert decode_message(frame) == TimeSyncRequest(1_700_000_000_123)


def test_get_sessions_vector() -> None:
    frame = bytes.fromhex("11 02 00 0a 01 18")  # 0x11^0x02^0x0a^0x01
    assert GetSessionsRequest(10, SessionFilter.UNSYNCED).encode() == frame
    assert decode_message(frame) == GetSessionsRequest()


def test_confirm_sync_vector_carries_raw_uuid_bytes() -> None:
    frame = ConfirmSyncRequest(SESSION).encode()
    assert frame[:3] == bytes.fromhex("13 10 00")
    assert frame[3:19] == bytes.fromhex("00112233445566778899aabbccddeeff")
    assert (
        frame[19]
        == 0x13
        ^ 0x10
        ^ 0x00
        ^ 0x11
        ^ 0x22
        ^ 0x33
        ^ 0x44
        ^ 0x55
        ^ 0x66
        ^ 0x77
        ^ 0x88
        ^ 0x99
        ^ 0xAA
        ^ 0xBB
        ^ 0xCC
        ^ 0xDD
        ^ 0xEE
        ^ 0xFF
    )


def test_status_update_vector() -> None:
    frame = bytes.fromhex("01 0c 00 00 02 02 01 3c 0f 00 01 7d 00 03 00 40")
    message = decode_message(frame)
    assert message == StatusUpdate(
        shot=ShotType.U_SHOT,
        mode=DeviceMode.TONEUP,
        level=DeviceLevel.LEVEL_2,
        working_state=WorkingState.WORKING,
        battery_mv=3900,
        battery_state=BatteryState.SUFFICIENT,
        warnings=WarningFlags.TEMPERATURE,
        elapsed_s=125,
        is_charging=True,
        session_active=True,
    )
    assert message.encode() == frame
    status = message.to_status()
    assert status.generation is StatusGeneration.FRAMED
    assert status.battery_percent == 70  # linear 3200..4200 mV
    assert status.to_dict()["warnings"] == ["temperature"]


def test_time_sync_response_vector() -> None:
    assert decode_message(bytes.fromhex("90 01 00 00 91")) == TimeSyncResponse(ResponseStatus.SUCCESS)
    assert decode_message(bytes.fromhex("90 01 00 05 94")).status is ResponseStatus.BUSY
    # Unknown status codes count as errors, as in the app.
    assert decode_message(bytes.fromhex("90 01 00 42 d3")).status is ResponseStatus.ERROR


def test_empty_payload_frame() -> None:
    assert encode_frame(0x7F, b"") == bytes.fromhex("7f 00 00 7f")
    assert decode_frame(bytes.fromhex("7f 00 00 7f")).payload == b""


U = "00112233445566778899aabbccddeeff"  # SESSION as raw bytes, in order
_RECORD_HEX = (
    "03 000000"
    + U  # version 3, reserved, uuid
    + "00 c0 2c c8 99 01 00 00"  # start 1_760_000_000_000 ms
    + "20 61 34 c8 99 01 00 00"  # end   1_760_000_500_000 ms
    + "01 02 01 00"  # feature E-Shot, mode index 2, level index 1, led pattern 0
    + "e0 01 14 00"  # working 480 s, pause 20 s
    + "00 01 64 00"  # termination timeout_8min, pause count 1, completion 100 %, device sync 0
    + "01 00 01 00"  # 1 battery sample, storage index 0, time synced, reserved
    + "04 10 3c 0f"  # start 4100 mV, end 3900 mV
    + "00 00 04 10"  # sample: 0 s, 4100 mV
)


def _payload(message: Message) -> bytes:
    frame = message.encode()
    check = 0
    for byte in frame[:-1]:
        check ^= byte
    assert frame[-1] == check and int.from_bytes(frame[1:3], "little") == len(frame) - 4
    return frame[3:-1]


@pytest.mark.parametrize(
    ("message", "payload_hex"),
    [
        (
            SessionStarted(SESSION, ShotType.E_SHOT, DeviceMode.FIRM, DeviceLevel.LEVEL_2, 0, 4000),
            U + "01 12 02 00 a0 0f 00 00",
        ),
        (
            SessionEnded(SESSION, 1_760_000_500_000, 480, 20, 1, 0, 100, 3900, 9),
            U + "20 61 34 c8 99 01 00 00 e0 01 14 00 01 00 64 3c 0f 09 00 00 00 00 00 00",
        ),
        (BatterySampleNotice(SESSION, 120, 3950, 1, 2), U + "78 00 6e 0f 01 02"),
        (GetSessionDetailRequest(SESSION), U),
        (DeleteSessionRequest(SESSION), U),
        (
            GetSessionsResponse(
                ResponseStatus.SUCCESS,
                2,
                (SessionSummary(SESSION, 1_760_000_000_000, 480, ShotType.U_SHOT, 1, 0, SyncStatus.NOT_SYNCED),),
            ),
            "00 02 00" + U + "00 c0 2c c8 99 01 00 00 e0 01 00 01 00 00 00 00",
        ),
        (SessionDetailResponse(ResponseStatus.SUCCESS, None), "00"),
        (ConfirmSyncResponse(ResponseStatus.NOT_FOUND), "04"),
        (DeleteSessionResponse(ResponseStatus.SUCCESS), "00"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Message) else "",
)
def test_known_payload_layouts(message: Message, payload_hex: str) -> None:
    payload = bytes.fromhex(payload_hex)
    assert _payload(message) == payload
    frame = encode_frame(message.TYPE.value, payload)
    if not isinstance(message, SessionDetailResponse):  # a success without a record is not decodable
        assert decode_message(frame) == message


def test_session_detail_known_vector() -> None:
    record_bytes = bytes.fromhex(_RECORD_HEX)
    assert len(record_bytes) == 56 + 4
    decoded = decode_message(encode_frame(0x92, b"\x00" + record_bytes))
    assert isinstance(decoded, SessionDetailResponse) and decoded.record == _record(samples=1)
    assert decoded.record.battery_samples == (BatteryPoint(0, 4100),)
    assert _payload(decoded) == b"\x00" + record_bytes


# ------------------------------------------------------------------ malformed frames


@pytest.mark.parametrize("data", ["", "01", "01 00 00"])
def test_frame_too_short(data: str) -> None:
    with pytest.raises(FrameTooShortError):
        decode_frame(bytes.fromhex(data))


def test_frame_truncated_names_the_mtu() -> None:
    frame = GetSessionsResponse(ResponseStatus.SUCCESS, 1, (_summary(),)).encode()
    with pytest.raises(FrameLengthError, match="declares a 35-byte payload") as raised:
        decode_frame(frame[:20])  # what an MTU-23 notification would carry
    assert "MTU" in str(raised.value)


def test_frame_with_padding_is_rejected() -> None:
    with pytest.raises(FrameLengthError, match="padded"):
        decode_frame(TimeSyncResponse(ResponseStatus.SUCCESS).encode() + b"\x00")


def test_frame_bad_check() -> None:
    frame = bytearray(TimeSyncRequest(1).encode())
    frame[-1] ^= 0xFF
    with pytest.raises(FrameChecksumError, match="check byte"):
        decode_frame(bytes(frame))


def test_bit_flip_anywhere_is_detected() -> None:
    frame = StatusUpdate(
        ShotType.E_SHOT,
        DeviceMode.FIRM,
        DeviceLevel.LEVEL_3,
        WorkingState.PAUSE,
        4000,
        BatteryState.LOW,
        WarningFlags.NONE,
        10,
        False,
        True,
    ).encode()
    for position in range(3, len(frame) - 1):  # payload bytes: length stays consistent
        corrupted = bytearray(frame)
        corrupted[position] ^= 0x10
        with pytest.raises(FrameChecksumError):
            decode_frame(bytes(corrupted))


def test_unknown_message_type() -> None:
    with pytest.raises(UnknownMessageError, match="0x55") as raised:
        decode_message(encode_frame(0x55, b"\x00"))
    assert raised.value.message_type == 0x55


@pytest.mark.parametrize(
    ("message_type", "size"),
    [
        (MessageType.STATUS_UPDATE, 11),
        (MessageType.SESSION_START, 23),
        (MessageType.SESSION_END, 39),
        (MessageType.BATTERY_SAMPLE, 21),
        (MessageType.TIME_SYNC, 7),
        (MessageType.TIME_SYNC, 9),
        (MessageType.GET_SESSIONS, 1),
        (MessageType.GET_SESSION_DETAIL, 15),
        (MessageType.CONFIRM_SYNC, 17),
        (MessageType.DELETE_SESSION, 0),
        (MessageType.TIME_SYNC_RESPONSE, 0),
        (MessageType.GET_SESSIONS_RESPONSE, 2),
        (MessageType.GET_SESSION_DETAIL_RESPONSE, 30),
    ],
)
def test_payload_of_wrong_size_is_rejected(message_type: MessageType, size: int) -> None:
    with pytest.raises(MalformedPayloadError):
        decode_message(encode_frame(message_type, bytes(size)))


def test_malformed_errors_share_a_base() -> None:
    assert issubclass(FrameChecksumError, MalformedFrameError)
    assert issubclass(MalformedFrameError, ProtocolError)
    assert issubclass(MalformedPayloadError, ProtocolError)


def test_get_sessions_bad_filter() -> None:
    with pytest.raises(MalformedPayloadError, match="filter must be 0 or 1"):
        decode_message(encode_frame(MessageType.GET_SESSIONS, b"\x0a\x07"))


def test_get_sessions_response_misaligned_body() -> None:
    with pytest.raises(MalformedPayloadError, match="not a multiple of 32"):
        decode_message(encode_frame(MessageType.GET_SESSIONS_RESPONSE, b"\x00\x01\x00" + bytes(31)))


def test_error_responses_may_omit_the_body() -> None:
    assert decode_message(encode_frame(0x91, b"\x05")) == GetSessionsResponse(ResponseStatus.BUSY)
    assert decode_message(encode_frame(0x92, b"\x04")) == SessionDetailResponse(ResponseStatus.NOT_FOUND)


def test_session_record_version_checked() -> None:
    payload = bytearray(_record().encode())
    payload[0] = 2
    with pytest.raises(MalformedPayloadError, match="version 2"):
        SessionRecord.decode(bytes(payload))


def test_session_record_sample_count_checked() -> None:
    encoded = _record(samples=3).encode()
    with pytest.raises(MalformedPayloadError, match="announces 3 battery samples"):
        SessionRecord.decode(encoded[:-4])
    with pytest.raises(MalformedPayloadError):
        SessionRecord.decode(encoded[:40])


def test_response_types_pair_with_requests() -> None:
    for request, response in RESPONSE_FOR.items():
        assert response.TYPE.value == request.value + 0x80


# ------------------------------------------------------------------ record semantics


def _summary() -> SessionSummary:
    return SessionSummary(SESSION, 1_760_000_000_000, 480, ShotType.E_SHOT, 1, 2, SyncStatus.NOT_SYNCED)


def _record(samples: int = 2) -> SessionRecord:
    return SessionRecord(
        session_id=SESSION,
        start_time_ms=1_760_000_000_000,
        end_time_ms=1_760_000_500_000,
        shot=ShotType.E_SHOT,
        mode_index=2,
        level_index=1,
        led_pattern=0,
        working_duration_s=480,
        pause_duration_s=20,
        termination_reason=TerminationReason.TIMEOUT_8MIN,
        pause_count=1,
        completion_percent=100,
        time_synced=True,
        start_battery_mv=4100,
        end_battery_mv=3900,
        battery_samples=tuple(BatteryPoint(60 * i, 4100 - 10 * i) for i in range(samples)),
    )


def test_record_layout_and_derived_fields() -> None:
    record = _record()
    encoded = record.encode()
    assert len(encoded) == 56 + 2 * 4
    assert encoded[0] == 3 and encoded[4:20] == SESSION.bytes
    assert encoded[36:40] == bytes([1, 2, 1, 0])  # feature, mode, level (0-based), led
    assert encoded[48] == 2 and encoded[50] == 1  # sample count, time_synced
    assert record.mode is DeviceMode.LINE  # E-Shot, index 2 -> 0x13
    assert record.level is DeviceLevel.LEVEL_2
    assert record.ended_at is not None and record.started_at.year == 2025
    as_dict = record.to_dict()
    assert as_dict["mode"] == 0x13 and as_dict["termination_reason"] == "timeout_8min"
    assert as_dict["battery_samples"][1] == {"elapsed_s": 60, "voltage_mv": 4090}


def test_record_without_end_time() -> None:
    record = SessionRecord.decode(_record(samples=0).encode()[:28] + bytes(8) + _record(samples=0).encode()[36:])
    assert record.end_time_ms == 0 and record.ended_at is None


# ------------------------------------------------------------------ round trips

uuids_ = st.uuids()
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u64 = st.integers(0, 2**64 - 1)
shots = st.sampled_from([s for s in ShotType])
modes = st.sampled_from(list(DeviceMode))
levels = st.sampled_from(list(DeviceLevel))
states = st.sampled_from(list(WorkingState))
batteries = st.sampled_from([BatteryState.SUFFICIENT, BatteryState.LOW, BatteryState.CRITICAL, BatteryState.UNKNOWN])
warnings = st.integers(0, 7).map(WarningFlags)
statuses = st.sampled_from(list(ResponseStatus))
summaries = st.builds(SessionSummary, uuids_, u64, u16, shots, u8, u8, st.sampled_from(list(SyncStatus)), u16)
records = st.builds(
    SessionRecord,
    session_id=uuids_,
    start_time_ms=u64,
    end_time_ms=u64,
    shot=shots,
    mode_index=u8,
    level_index=u8,
    led_pattern=u8,
    working_duration_s=u16,
    pause_duration_s=u16,
    termination_reason=st.sampled_from(list(TerminationReason)),
    pause_count=u8,
    completion_percent=st.integers(0, 100),
    time_synced=st.booleans(),
    start_battery_mv=u16,
    end_battery_mv=u16,
    battery_samples=st.lists(st.builds(BatteryPoint, u16, u16), max_size=12).map(tuple),
    device_sync_status=st.sampled_from(list(SyncStatus)),
    battery_storage_index=u8,
)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        StatusUpdate,
        shots,
        modes,
        levels,
        states,
        u16,
        batteries,
        warnings,
        u16,
        st.booleans(),
        st.booleans(),
        u8,
    ),
    st.builds(SessionStarted, uuids_, shots, modes, levels, u8, u16, st.binary(min_size=2, max_size=6)),
    st.builds(SessionEnded, uuids_, u64, u16, u16, u8, u8, u8, u16, u8, st.binary(min_size=6, max_size=6)),
    st.builds(BatterySampleNotice, uuids_, u16, u16, u8, u8),
    st.builds(TimeSyncRequest, u64),
    st.builds(GetSessionsRequest, u8, st.sampled_from(list(SessionFilter))),
    st.builds(GetSessionDetailRequest, uuids_),
    st.builds(ConfirmSyncRequest, uuids_),
    st.builds(DeleteSessionRequest, uuids_),
    st.builds(TimeSyncResponse, statuses),
    st.builds(ConfirmSyncResponse, statuses),
    st.builds(DeleteSessionResponse, statuses),
    st.builds(GetSessionsResponse, st.just(ResponseStatus.SUCCESS), u16, st.lists(summaries, max_size=10).map(tuple)),
    st.builds(SessionDetailResponse, st.just(ResponseStatus.SUCCESS), records),
)


@settings(max_examples=300, deadline=None)
@given(message=messages)
def test_every_message_round_trips(message: Message) -> None:
    frame = message.encode()
    assert decode_message(frame) == message
    assert decode_frame(frame).message_type == message.TYPE.value


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=80))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_message(data)
