"""Fixtures for the report/export job tests: an async pool, a user with sessions whose statistics are drained,
and a local object store in a temporary folder."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from dtx_worker.storage import LocalObjectStore
from tests.conftest import MakeUser
from tests.support.pgrest import Caller, PostgrestSession, user
from tests.support.stack import LocalStack

Conn = psycopg.Connection[dict[str, Any]]
MODES = {0: [1, 2, 3, 4], 1: [17, 18, 19, 20], 2: [33]}


@pytest.fixture(autouse=True)
def leave_no_report_work(db: Conn) -> Iterator[None]:
    """The database is shared with later tests that run a real worker: leave no queued report jobs for it, and
    no back-dated user the hourly schedule would owe a report."""
    yield
    db.execute("delete from jobs where kind in ('reports.render', 'reports.schedule') and status = 'queued'")
    db.execute("update notification_settings set monthly_report = false, weekly_report = false"
               " where user_id in (select id from profiles where created_at < now() - interval '1 day')")


@pytest.fixture
async def pool(stack: LocalStack) -> AsyncIterator[AsyncConnectionPool]:
    p = AsyncConnectionPool(stack.dsn(), min_size=1, max_size=4, open=False, kwargs={"autocommit": True})
    await p.open(wait=True)
    yield p
    await p.close()


@pytest.fixture
def store(tmp_path: Path, pool: AsyncConnectionPool) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "storage", pool, secret=b"test-secret")


def drain(db: Conn) -> None:
    while db.execute("select private.refresh_daily_statistics(500) as n").fetchone() != {"n": 0}:
        pass


@dataclass
class Seeded:
    id: uuid.UUID
    caller: Caller
    devices: list[uuid.UUID]
    sessions: list[dict[str, Any]]


def session(start: datetime, rng: random.Random) -> dict[str, Any]:
    shot = rng.choice((0, 0, 1, 2))
    working = rng.choice((480, 480, 300, 137, 29, 31))
    return {"id": str(uuid.uuid4()), "shot_type": shot, "device_mode": rng.choice(MODES[shot]),
            "level": rng.randint(1, 3), "start_time": start.isoformat(),
            "end_time": (start + timedelta(seconds=working + 30)).isoformat(), "working_duration": working,
            "pause_duration": rng.choice((0, 15, 40)), "pause_count": 1, "termination_reason": 0,
            "completion_percent": 100, "had_temperature_warning": rng.random() < 0.1, "had_battery_warning": False,
            "battery_start_mv": 4100, "battery_end_mv": 3900, "time_synced": True,
            "battery_samples": [{"elapsed_seconds": 60 * k, "voltage_mv": 4100 - 20 * k} for k in range(4)]}


def seed_user(api: PostgrestSession, db: Conn, make_user: MakeUser, *, tz: str = "Asia/Seoul", locale: str = "en",
              month: tuple[int, int] = (2026, 10), seed: int = 1, devices: int = 2) -> Seeded:
    """A user with `devices` devices and sessions over the month and the one before, statistics drained."""
    uid = make_user(meta={"timezone": tz, "locale": locale, "display_name": "Test Person"})
    me = user(uid)
    devs = [uuid.UUID(api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:10].upper()}")["id"])
            for _ in range(devices)]
    db.execute("update devices set nickname = 'Bathroom', firmware_version = '1.4.2' where id = %s", (devs[0],))
    rng = random.Random(seed)
    y, m = month
    start = datetime(y, m, 1, tzinfo=UTC) - timedelta(days=31)
    items: list[tuple[uuid.UUID, dict[str, Any]]] = []
    for day in range(62):
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            t = start + timedelta(days=day, minutes=rng.randrange(0, 24 * 60))
            items.append((rng.choice(devs), session(t, rng)))
    for dev in devs:
        batch = [s for d, s in items if d == dev]
        for i in range(0, len(batch), 100):
            res = api.rpc(me, "upload_sessions", device_id=dev, sessions=batch[i:i + 100])
            assert res["rejected"] == 0, res
    drain(db)
    return Seeded(uid, me, devs, [s for _, s in items])
