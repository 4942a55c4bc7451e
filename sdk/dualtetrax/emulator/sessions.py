"""Plausible stored sessions for the emulated device."""

from __future__ import annotations

import dataclasses
import random
import time
import uuid

from dualtetrax.ble.protocol.enums import ShotType, SyncStatus, TerminationReason
from dualtetrax.ble.protocol.sessions import BatteryPoint, SessionRecord

_DAY_MS = 86_400_000


def sample_sessions(
    count: int = 3,
    *,
    now_ms: int | None = None,
    seed: int = 7,
    mixed: bool = False,
) -> list[SessionRecord]:
    """``count`` completed sessions going back from ``now_ms``, with battery samples: one a day,
    or evenly over the last year when there are more than 365.

    ``mixed`` also makes every 25th session too short to keep (2 s of work) and the last tenth
    (at most 20: what the real device's RAM holds) sessions recorded without a time sync
    (uptime-based times, ``time_synced`` false), as after a power cycle with no app connected.
    """
    rng = random.Random(seed)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    spacing_ms = min(_DAY_MS, 365 * _DAY_MS // max(count, 1))
    untimed_from = count - min(max(count // 10, 1), 20)
    sessions = []
    for index in range(count):
        shot = rng.choice([ShotType.U_SHOT, ShotType.E_SHOT, ShotType.LED_CARE])
        working = rng.choice([480, 480, 300, 120])
        pause = rng.choice([0, 0, 15, 40])
        start_ms = now_ms - (count - index) * spacing_ms + rng.randrange(min(3_600_000, spacing_ms // 2 or 1))
        start_mv = rng.randrange(3900, 4200)
        samples = tuple(BatteryPoint(60 * minute, start_mv - 12 * minute) for minute in range(working // 60 + 1))
        record = SessionRecord(
            session_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            start_time_ms=start_ms,
            end_time_ms=start_ms + (working + pause) * 1000,
            shot=shot,
            mode_index=0 if shot is ShotType.LED_CARE else rng.randrange(4),
            level_index=rng.randrange(3),
            led_pattern=rng.randrange(4) if shot is ShotType.LED_CARE else 0,
            working_duration_s=working,
            pause_duration_s=pause,
            termination_reason=TerminationReason.TIMEOUT_8MIN if working == 480 else TerminationReason.MANUAL_POWER_OFF,
            pause_count=1 if pause else 0,
            completion_percent=min(100, working * 100 // 480),
            time_synced=True,
            start_battery_mv=start_mv,
            end_battery_mv=samples[-1].voltage_mv,
            battery_samples=samples,
            device_sync_status=SyncStatus.NOT_SYNCED,
        )
        if mixed and index % 25 == 24:
            record = dataclasses.replace(
                record,
                working_duration_s=2,
                pause_duration_s=0,
                pause_count=0,
                completion_percent=0,
                end_time_ms=record.start_time_ms + 2000,
                battery_samples=record.battery_samples[:1],
                end_battery_mv=record.start_battery_mv,
            )
        if mixed and index >= untimed_from:
            uptime_ms = 60_000 + index * 1000
            span = (record.working_duration_s + record.pause_duration_s) * 1000
            record = dataclasses.replace(
                record, time_synced=False, start_time_ms=uptime_ms, end_time_ms=uptime_ms + span
            )
        sessions.append(record)
    return sessions
