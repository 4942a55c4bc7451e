"""Plausible stored sessions for the emulated device."""

from __future__ import annotations

import random
import time
import uuid

from dualtetrax.ble.protocol.enums import ShotType, SyncStatus, TerminationReason
from dualtetrax.ble.protocol.sessions import BatteryPoint, SessionRecord


def sample_sessions(count: int = 3, *, now_ms: int | None = None, seed: int = 7) -> list[SessionRecord]:
    """``count`` completed sessions, one a day going back from ``now_ms``, with battery samples."""
    rng = random.Random(seed)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    sessions = []
    for index in range(count):
        shot = rng.choice([ShotType.U_SHOT, ShotType.E_SHOT, ShotType.LED_CARE])
        working = rng.choice([480, 480, 300, 120])
        pause = rng.choice([0, 0, 15, 40])
        start_ms = now_ms - (count - index) * 86_400_000 + rng.randrange(3_600_000)
        start_mv = rng.randrange(3900, 4200)
        samples = tuple(BatteryPoint(60 * minute, start_mv - 12 * minute) for minute in range(working // 60 + 1))
        sessions.append(
            SessionRecord(
                session_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                start_time_ms=start_ms,
                end_time_ms=start_ms + (working + pause) * 1000,
                shot=shot,
                mode_index=0 if shot is ShotType.LED_CARE else rng.randrange(4),
                level_index=rng.randrange(3),
                led_pattern=rng.randrange(4) if shot is ShotType.LED_CARE else 0,
                working_duration_s=working,
                pause_duration_s=pause,
                termination_reason=TerminationReason.TIMEOUT_8MIN
                if working == 480
                else TerminationReason.MANUAL_POWER_OFF,
                pause_count=1 if pause else 0,
                completion_percent=min(100, working * 100 // 480),
                time_synced=True,
                start_battery_mv=start_mv,
                end_battery_mv=samples[-1].voltage_mv,
                battery_samples=samples,
                device_sync_status=SyncStatus.NOT_SYNCED,
            )
        )
    return sessions
