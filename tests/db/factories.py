"""Builders for valid request payloads; tests change one field at a time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def session_item(start: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    start = start or datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    item: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "shot_type": 0,
        "device_mode": 1,
        "level": 2,
        "led_pattern": None,
        "start_time": start.isoformat().replace("+00:00", "Z"),
        "end_time": (start + timedelta(seconds=500)).isoformat().replace("+00:00", "Z"),
        "working_duration": 480,
        "pause_duration": 20,
        "pause_count": 1,
        "termination_reason": 0,
        "completion_percent": 100,
        "had_temperature_warning": False,
        "had_battery_warning": False,
        "battery_start_mv": 4100,
        "battery_end_mv": 3900,
        "time_synced": True,
        "battery_samples": [{"elapsed_seconds": 60 * i, "voltage_mv": 4100 - 20 * i} for i in range(9)],
    }
    item.update(overrides)
    return item
