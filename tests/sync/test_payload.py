"""The upload payload and the app's re-timing, with exact values."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from dualtetrax.ble.protocol.enums import ShotType, TerminationReason
from dualtetrax.ble.protocol.sessions import BatteryPoint, SessionRecord
from dualtetrax.sync.payload import Retimer, device_timing, is_too_short, iso_utc, retime, upload_payload

SID = uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")


def record(**changes: object) -> SessionRecord:
    base = SessionRecord(
        session_id=SID, start_time_ms=1_772_000_000_250, end_time_ms=1_772_000_500_250, shot=ShotType.E_SHOT,
        mode_index=2, level_index=1, led_pattern=0, working_duration_s=480, pause_duration_s=20,
        termination_reason=TerminationReason.TIMEOUT_8MIN, pause_count=1, completion_percent=100, time_synced=True,
        start_battery_mv=4100, end_battery_mv=3990,
        battery_samples=(BatteryPoint(0, 4100), BatteryPoint(60, 4090), BatteryPoint(60, 4080), BatteryPoint(120, 4070)),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_payload_maps_every_field() -> None:
    item = upload_payload(record(), device_timing(record()))
    assert item == {
        "id": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
        "shot_type": 1,
        "device_mode": 0x13,  # E-Shot, 0-based mode 2 → Line
        "level": 2,  # 0-based 1 → level 2
        "led_pattern": 0,
        "start_time": "2026-02-25T06:13:20.250Z",
        "end_time": "2026-02-25T06:21:40.250Z",
        "working_duration": 480,
        "pause_duration": 20,
        "pause_count": 1,
        "termination_reason": 0,
        "completion_percent": 100,
        "battery_start_mv": 4100,
        "battery_end_mv": 3990,
        "time_synced": True,
        # a repeated elapsed time keeps its first sample (the server refuses repeats)
        "battery_samples": [{"elapsed_seconds": 0, "voltage_mv": 4100}, {"elapsed_seconds": 60, "voltage_mv": 4090},
                            {"elapsed_seconds": 120, "voltage_mv": 4070}],
    }


@pytest.mark.parametrize(("shot", "mode_index", "code"), [
    (ShotType.U_SHOT, 0, 0x01), (ShotType.U_SHOT, 3, 0x04), (ShotType.E_SHOT, 0, 0x11), (ShotType.E_SHOT, 3, 0x14),
    (ShotType.LED_CARE, 0, 0x21), (ShotType.U_SHOT, 4, 0x00),  # out of range: sent as unknown, the server rejects
])
def test_device_mode_from_shot_and_0_based_mode(shot: ShotType, mode_index: int, code: int) -> None:
    item = upload_payload(record(shot=shot, mode_index=mode_index), device_timing(record()))
    assert (item["shot_type"], item["device_mode"]) == (int(shot), code)


def test_missing_end_and_battery_are_null() -> None:
    r = record(end_time_ms=0, end_battery_mv=0, start_battery_mv=0, battery_samples=())
    item = upload_payload(r, device_timing(r))
    assert (item["end_time"], item["battery_end_mv"], item["battery_start_mv"], item["battery_samples"]) == (
        None, None, None, [])


def test_at_most_500_battery_samples() -> None:
    r = record(battery_samples=tuple(BatteryPoint(i, 4000) for i in range(255)))
    assert len(upload_payload(r, device_timing(r))["battery_samples"]) == 255
    many = record(battery_samples=())
    object.__setattr__(many, "battery_samples", tuple(BatteryPoint(i, 4000) for i in range(600)))
    assert len(upload_payload(many, device_timing(many))["battery_samples"]) == 500


def test_too_short_is_below_three_seconds() -> None:
    assert is_too_short(record(working_duration_s=2)) and not is_too_short(record(working_duration_s=3))


def test_retime_follows_the_app() -> None:
    """start = base + offset; end = start + working + pause; offset += working + pause + 1 s."""
    base = 1_772_000_000_000
    first, second = record(working_duration_s=480, pause_duration_s=20), record(working_duration_s=60,
                                                                                pause_duration_s=0)
    t1, r1 = retime(first, Retimer(base))
    t2, r2 = retime(second, r1)
    assert (t1.start_ms, t1.end_ms, t1.estimated) == (base, base + 500_000, True)
    assert r1 == Retimer(base, 501_000)
    assert (t2.start_ms, t2.end_ms) == (base + 501_000, base + 561_000)
    assert r2 == Retimer(base, 562_000)
    assert iso_utc(t2.start_ms) == "2026-02-25T06:21:41.000Z"
