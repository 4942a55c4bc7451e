"""Scheduled work: the schedule table's entries enqueue one job per period however many replicas fire them,
the APScheduler-based scheduler fires them and reaps expired leases, and the nightly reconciliation job
repairs statistics that drifted from usage_sessions and logs what it corrected."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from apscheduler.triggers.interval import IntervalTrigger
from psycopg_pool import AsyncConnectionPool

from dtx_worker.handlers import HANDLERS
from dtx_worker.handlers.statistics import reconcile_statistics
from dtx_worker.jobs import Job, JobContext
from dtx_worker.scheduler import build_scheduler
from dtx_worker.schedules import SCHEDULES, Schedule, every_period
from tests.conftest import MakeUser
from tests.db.test_daily_statistics import drain
from tests.support.pgrest import PostgrestSession, user
from tests.support.stack import LocalStack


@pytest.fixture
async def pool(stack: LocalStack) -> AsyncIterator[AsyncConnectionPool]:
    p = AsyncConnectionPool(stack.dsn(), min_size=2, max_size=6, open=False, kwargs={"autocommit": True})
    await p.open(wait=True)
    yield p
    await p.close()


async def fetch(pool: AsyncConnectionPool, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        cur = await conn.execute(sql, params)
        return await cur.fetchall()


def test_every_scheduled_kind_has_a_handler() -> None:
    names = [s.name for s in SCHEDULES]
    assert len(names) == len(set(names))
    assert {"prune jobs", "evaluate rollouts", "reconcile statistics"} <= set(names)


async def test_replicas_firing_a_schedule_make_one_job_per_period(pool: AsyncConnectionPool) -> None:
    kind = f"t{uuid.uuid4().hex[:8]}.tick"
    enqueue = every_period(kind, "%Y-%m-%d", {"n": 1})
    ids = await asyncio.gather(*(enqueue(pool) for _ in range(8)))  # eight replicas at once
    assert len(set(ids)) == 1
    await fetch(pool, "update jobs set status = 'done', finished_at = now() where id = %s returning id", ids[0])
    assert await enqueue(pool) == ids[0]  # finished already: still not enqueued again for this period
    rows = await fetch(pool, "select dedupe_key, payload from jobs where kind = %s", kind)
    assert rows == [(f"{kind}:{datetime.now(UTC):%Y-%m-%d}", {"n": 1})]
    for entry in SCHEDULES:  # the real entries enqueue kinds the worker handles
        job_id = await entry.enqueue(pool)
        (kind_of,) = (await fetch(pool, "select kind from jobs where id = %s", job_id))[0]
        assert kind_of in HANDLERS


async def test_scheduler_fires_entries_and_reaps_expired_leases(pool: AsyncConnectionPool) -> None:
    kind = f"t{uuid.uuid4().hex[:8]}.often"
    (stuck,) = (await fetch(pool, "select private.enqueue_job(%s)", f"{kind}.stuck"))[0]
    claimed = await fetch(pool, "select id from private.claim_jobs('dead-worker', %s, 1, interval '10 ms')",
                          [f"{kind}.stuck"])
    assert claimed == [(stuck,)]
    entry = Schedule("test often", IntervalTrigger(seconds=0.2), every_period(kind, "%Y-%m-%dT%H:%M:%S.%f"),
                     run_at_start=True)
    scheduler = build_scheduler(pool, poll_interval=0.1, schedules=[entry])
    scheduler.start()
    try:
        await asyncio.sleep(1.0)
    finally:
        scheduler.shutdown(wait=False)
    (fired,) = (await fetch(pool, "select count(*) from jobs where kind = %s", kind))[0]
    assert fired >= 3  # at start, then every 0.2 s
    status, error = (await fetch(pool, "select status, last_error from jobs where id = %s", stuck))[0]
    assert status == "queued" and error.startswith("lease expired: worker dead-worker")


async def test_reconciliation_job_repairs_drift_and_logs_it(
        pool: AsyncConnectionPool, api: PostgrestSession, db: psycopg.Connection[dict[str, Any]],
        make_user: MakeUser, caplog: pytest.LogCaptureFixture) -> None:
    uid = make_user(meta={"timezone": "UTC"})
    me = user(uid)
    dev = api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"]
    start = datetime.now(UTC) - timedelta(hours=2)
    api.rpc(me, "upload_sessions", device_id=dev, sessions=[
        {"id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 3, "level": 2, "start_time": start.isoformat(),
         "working_duration": 420, "battery_start_mv": 4100}])
    drain(db)
    day = start.date()
    row = "select sessions, working_seconds, ushot_seconds from daily_statistics where user_id = %s and stat_date = %s"
    good = db.execute(row, (uid, day)).fetchone()
    db.execute("update daily_statistics set working_seconds = 1, ushot_seconds = 1 where user_id = %s", (uid,))
    caplog.set_level(logging.INFO, logger="dtx_worker.stats")
    await reconcile_statistics(Job(1, "stats.reconcile", {"days": 3}, 1, 5), JobContext(pool, "test"))
    assert db.execute(row, (uid, day)).fetchone() == good == {"sessions": 1, "working_seconds": 420,
                                                              "ushot_seconds": 420}
    (record,) = [r for r in caplog.records if r.getMessage() == "statistics drift corrected"]
    mine = [d for d in record.__dict__["drift"] if d["user_id"] == str(uid)]
    assert mine == [{"user_id": str(uid), "device_id": dev, "stat_date": day.isoformat(), "change": "update",
                     "fields": ["ushot_seconds", "working_seconds"]}]
    assert record.__dict__["updated"] >= 1
    json.dumps(record.__dict__["drift"])  # loggable as JSON
    with pytest.raises(ValueError, match="days"):
        await reconcile_statistics(Job(2, "stats.reconcile", {"days": 0}, 1, 5), JobContext(pool, "test"))
