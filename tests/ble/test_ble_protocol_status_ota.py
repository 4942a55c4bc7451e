"""Generation-1 status characteristics, enums and the OTA wire format."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualtetrax.ble.errors import MalformedPayloadError
from dualtetrax.ble.protocol import (
    CANCEL,
    FINISH,
    GET_INFO,
    BatteryState,
    DeviceLevel,
    DeviceMode,
    DeviceStatus,
    LegacyStatusAssembler,
    OtaCommand,
    OtaErrorCode,
    OtaState,
    OtaStatus,
    ResponseStatus,
    ShotType,
    SimpleCommand,
    StartCommand,
    StatusGeneration,
    WarningFlags,
    WorkingState,
    chunk_count,
    chunk_payload_size,
    decode_chunk,
    decode_control,
    decode_legacy_characteristic,
    encode_chunk,
    encode_legacy_characteristics,
    live_battery_percent,
    session_battery_percent,
    uuids,
)

# ------------------------------------------------------------------ generation 1


def test_legacy_characteristics_known_values() -> None:
    assert decode_legacy_characteristic(uuids.SHOT_TYPE, b"\x02") == {"shot": ShotType.E_SHOT}
    assert decode_legacy_characteristic(uuids.MODE, b"\x13") == {"mode": DeviceMode.LINE}
    assert decode_legacy_characteristic(uuids.LEVEL, b"\x03") == {"level": DeviceLevel.LEVEL_3}
    assert decode_legacy_characteristic(uuids.WORKING_STATE, b"\x04") == {"working_state": WorkingState.TIMEOUT}
    assert decode_legacy_characteristic(uuids.BATTERY_STATUS, b"\x55\x04") == {
        "battery_percent": 85,
        "battery_state": BatteryState.CHARGING,
    }
    assert decode_legacy_characteristic(uuids.WARNING_STATUS, b"\x06") == {
        "warnings": WarningFlags.BATTERY_LOW | WarningFlags.BATTERY_CRITICAL
    }
    assert decode_legacy_characteristic(uuids.ELAPSED_TIME, b"\xe0\x01") == {"elapsed_s": 480}


def test_legacy_unknown_codes_become_unknown() -> None:
    assert decode_legacy_characteristic(uuids.SHOT_TYPE, b"\x09")["shot"] is ShotType.UNKNOWN
    assert decode_legacy_characteristic(uuids.MODE, b"\x99")["mode"] is DeviceMode.UNKNOWN
    assert decode_legacy_characteristic(uuids.WORKING_STATE, b"\x77")["working_state"] is WorkingState.UNKNOWN


@pytest.mark.parametrize(
    ("uuid", "value", "match"),
    [
        (uuids.SHOT_TYPE, b"", "needs 1 byte"),
        (uuids.BATTERY_STATUS, b"\x50", "needs 2 byte"),
        (uuids.ELAPSED_TIME, b"\x01", "needs 2 byte"),
        (uuids.BATTERY_STATUS, b"\x65\x01", "out of range"),
    ],
)
def test_legacy_malformed(uuid: str, value: bytes, match: str) -> None:
    with pytest.raises(MalformedPayloadError, match=match):
        decode_legacy_characteristic(uuid, value)


def test_legacy_rejects_other_characteristics() -> None:
    with pytest.raises(ValueError, match="not a generation-1 status"):
        decode_legacy_characteristic(uuids.OTA_STATUS, b"\x00")


def test_legacy_assembler_round_trip() -> None:
    status = DeviceStatus(
        generation=StatusGeneration.PER_CHARACTERISTIC,
        shot=ShotType.LED_CARE,
        mode=DeviceMode.LED_MODE,
        level=DeviceLevel.LEVEL_1,
        working_state=WorkingState.WORKING,
        battery_percent=64,
        battery_state=BatteryState.LOW,
        warnings=WarningFlags.TEMPERATURE,
        elapsed_s=33,
    )
    assembler = LegacyStatusAssembler()
    for uuid, value in encode_legacy_characteristics(status).items():
        assembler.apply(uuid, value)
    assert assembler.status == status


# ------------------------------------------------------------------ enums


def test_shot_type_numbering() -> None:
    assert [ShotType.from_legacy_code(c) for c in range(5)] == [
        ShotType.UNKNOWN,
        ShotType.U_SHOT,
        ShotType.E_SHOT,
        ShotType.LED_CARE,
        ShotType.UNKNOWN,
    ]
    assert ShotType.E_SHOT.value == 1 and ShotType.E_SHOT.legacy_code == 2
    assert ShotType.from_code(0xFF) is ShotType.UNKNOWN and ShotType.U_SHOT.label == "U-Shot"


def test_mode_from_session_record() -> None:
    assert DeviceMode.from_record(ShotType.U_SHOT, 0) is DeviceMode.GLOW
    assert DeviceMode.from_record(ShotType.U_SHOT, 3) is DeviceMode.VOLUME
    assert DeviceMode.from_record(ShotType.E_SHOT, 3) is DeviceMode.LIFT
    assert DeviceMode.from_record(ShotType.LED_CARE, 0) is DeviceMode.LED_MODE
    assert DeviceMode.from_record(ShotType.U_SHOT, 4) is DeviceMode.UNKNOWN
    assert DeviceLevel.from_record(0) is DeviceLevel.LEVEL_1 and DeviceLevel.from_record(3) is DeviceLevel.UNKNOWN


def test_mode_names_and_shots() -> None:
    assert (DeviceMode.LINE.label, DeviceMode.LINE.legacy_label, DeviceMode.LINE.short) == (
        "Line",
        "Lifting",
        "LN",
    )
    assert DeviceMode.TONEUP.legacy_label == "Tuning"
    assert DeviceMode.CLEAN.shot is ShotType.E_SHOT and DeviceMode.LED_MODE.shot is ShotType.LED_CARE
    assert DeviceMode.UNKNOWN.shot is ShotType.UNKNOWN


def test_battery_state_codes_per_generation() -> None:
    assert BatteryState.from_code(4) is BatteryState.CHARGING
    assert BatteryState.from_framed_code(0) is BatteryState.SUFFICIENT
    assert BatteryState.from_framed_code(2) is BatteryState.CRITICAL
    assert BatteryState.from_framed_code(3) is BatteryState.UNKNOWN


def test_response_status_unknown_is_error() -> None:
    assert ResponseStatus.from_code(0x42) is ResponseStatus.ERROR
    assert "busy" in ResponseStatus.BUSY.description


@pytest.mark.parametrize(
    ("mv", "live", "session"),
    [
        (2900, 0, 0),
        (3200, 0, 5),
        (3700, 50, 20),
        (3850, 65, 50),
        (4000, 80, 80),
        (4100, 90, 90),
        (4300, 100, 100),
    ],
)
def test_battery_conversions(mv: int, live: int, session: int) -> None:
    assert live_battery_percent(mv) == live
    assert session_battery_percent(mv) == session


# ------------------------------------------------------------------ OTA


def test_ota_command_vectors() -> None:
    assert StartCommand(65536, 274).encode() == bytes.fromhex("01 00 00 01 00 12 01 00 00")
    assert FINISH.encode() == b"\x02" and CANCEL.encode() == b"\x03" and GET_INFO.encode() == b"\x04"
    assert decode_control(bytes.fromhex("01 00 00 01 00 12 01 00 00")) == StartCommand(65536, 274)
    assert decode_control(b"\x03") == SimpleCommand(OtaCommand.CANCEL)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "Empty"),
        (b"\x09", "Unknown OTA command"),
        (b"\x01\x00", "START is 9"),
        (b"\x02\x00", "FINISH is 1"),
    ],
)
def test_ota_control_malformed(data: bytes, match: str) -> None:
    with pytest.raises(MalformedPayloadError, match=match):
        decode_control(data)


def test_ota_chunk_vector() -> None:
    assert encode_chunk(258, b"\xaa\xbb") == bytes.fromhex("02 01 00 00 aa bb")
    assert decode_chunk(bytes.fromhex("02 01 00 00 aa bb")) == (258, b"\xaa\xbb")
    with pytest.raises(MalformedPayloadError, match="more than 4 bytes"):
        decode_chunk(b"\x00\x00\x00\x00")


def test_ota_status_vectors() -> None:
    assert OtaStatus.decode(bytes.fromhex("05 01 00 40")) == OtaStatus(OtaState.ERROR, OtaErrorCode.LOW_BATTERY, 0, 64)
    assert OtaStatus.decode(bytes.fromhex("04 00 64 57")) == OtaStatus(OtaState.SUCCESS, OtaErrorCode.NONE, 100, 87)
    assert OtaStatus(OtaState.DOWNLOADING, progress=42, battery_percent=90).encode() == bytes.fromhex("01 00 2a 5a")
    assert "Battery level too low" in str(OtaStatus(OtaState.ERROR, OtaErrorCode.LOW_BATTERY))


@pytest.mark.parametrize("data", ["", "01 00 00", "06 00 00 64", "01 0b 00 64", "01 00 65 64", "01 00 00 ff"])
def test_ota_status_malformed(data: str) -> None:
    with pytest.raises(MalformedPayloadError):
        OtaStatus.decode(bytes.fromhex(data))


@settings(max_examples=100, deadline=None)
@given(
    state=st.sampled_from(list(OtaState)),
    error=st.sampled_from(list(OtaErrorCode)),
    progress=st.integers(0, 100),
    battery=st.integers(0, 100),
)
def test_ota_status_round_trip(state: OtaState, error: OtaErrorCode, progress: int, battery: int) -> None:
    status = OtaStatus(state, error, progress, battery)
    assert OtaStatus.decode(status.encode()) == status


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, 2**32 - 1), count=st.integers(0, 2**32 - 1))
def test_ota_start_round_trip(size: int, count: int) -> None:
    assert decode_control(StartCommand(size, count).encode()) == StartCommand(size, count)


@pytest.mark.parametrize(
    ("max_write", "payload"),
    [(20, 16), (244, 240), (509, 505), (512, 508), (514, 508), (65535, 508)],
)
def test_chunk_payload_never_exceeds_the_attribute_limit(max_write: int, payload: int) -> None:
    assert chunk_payload_size(max_write) == payload
    assert payload + 4 <= 512


def test_chunk_payload_needs_room() -> None:
    with pytest.raises(ValueError, match="no room"):
        chunk_payload_size(4)


def test_chunk_count() -> None:
    assert chunk_count(1000, 240) == 5 and chunk_count(960, 240) == 4 and chunk_count(0, 240) == 0
