"""Helpers for cloud tests on the local stack: signed-in ``DtxCloud`` clients over ``LocalCloudBackend``."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from dualtetrax.cloud import DtxCloud, LocalCloudBackend

PASSWORD = "correct horse battery"


def new_email(prefix: str = "cloud") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.test"


async def signed_up(dsn: str, storage_dir: Path, **profile: Any) -> DtxCloud:
    """A new account, signed in (the caller closes it)."""
    cloud = DtxCloud(LocalCloudBackend(dsn, storage_dir, password_hash_cost=4))
    await cloud.sign_up(new_email(), PASSWORD, **profile)
    return cloud


def session_payload(start: dt.datetime, *, minutes: int = 5, **overrides: Any) -> dict[str, Any]:
    """One valid upload item (docs/schema.md, Session upload)."""
    item: dict[str, Any] = {
        "id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 1, "level": 2,
        "start_time": start.isoformat(), "end_time": (start + dt.timedelta(minutes=minutes)).isoformat(),
        "working_duration": minutes * 60, "pause_duration": 0, "pause_count": 0, "completion_percent": 100,
        "termination_reason": 0, "time_synced": True,
        "battery_samples": [{"elapsed_seconds": 0, "voltage_mv": 4100}, {"elapsed_seconds": 60, "voltage_mv": 4050}],
    }
    item.update(overrides)
    return item
