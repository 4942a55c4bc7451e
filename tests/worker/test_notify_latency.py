"""LISTEN/NOTIFY wake-ups measured: `dtx-worker run` polls only every 30 s, yet every job and every upload is
handled within a fraction of a second of its commit, so the work starts on the notification, not on the poll.

Times come from the database clock: `clock_timestamp()` taken before the commit (so a delay is never
under-measured) against the job's `finished_at` / the day's `computed_at` (the recomputing transaction's
start). Not a performance claim: the bound (2 s) is 15× below the poll interval."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.support.pgrest import PostgrestSession, user
from tests.support.stack import LocalStack
from tests.worker.test_run_command import WorkerProcess, wait_until

POLL = 30.0
BOUND = 2.0
Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def slow_polling_worker(stack: LocalStack) -> Iterator[WorkerProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
    w = WorkerProcess({**env, "DATABASE_URL": stack.dsn(), "DTX_WORKER_POLL_INTERVAL": str(POLL),
                       "DTX_WORKER_WORKER_ID": "latency-worker"})
    try:
        w.wait_for_event("listening")
        yield w
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def now(db: Conn) -> datetime:
    row = db.execute("select clock_timestamp() as t").fetchone()
    assert row is not None
    t: datetime = row["t"]
    return t


def test_work_starts_on_notify_not_on_the_poll(slow_polling_worker: WorkerProcess, db: Conn, api: PostgrestSession,
                                               make_user: MakeUser) -> None:
    time.sleep(1.0)  # let the start-up wake-up and schedules settle
    rng = random.Random(3)
    job_delays: list[float] = []
    for _ in range(10):
        row = db.execute("select private.enqueue_job('jobs.prune', '{\"older_than_days\": 30}') as id,"
                         " clock_timestamp() as at").fetchone()
        assert row is not None

        def finished(r: dict[str, Any] = row) -> bool:
            done = db.execute("select finished_at from jobs where id = %s and status = 'done'", (r["id"],)).fetchone()
            if done:
                job_delays.append((done["finished_at"] - r["at"]).total_seconds())
            return done is not None

        wait_until(finished, timeout=POLL / 2)
        time.sleep(rng.uniform(0.05, 0.3))

    me = user(make_user(meta={"timezone": "America/Sao_Paulo"}))
    dev = api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"]
    stats_delays: list[float] = []
    for day in range(1, 9):
        before = now(db)
        res = api.rpc(me, "upload_sessions", device_id=dev, sessions=[
            {"id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 2, "level": 2,
             "start_time": f"2026-07-{day:02d}T15:00:00Z", "working_duration": 60}])
        assert res["stored"] == 1

        def computed(d: int = day, t0: datetime = before) -> bool:
            r = db.execute("select computed_at from daily_statistics where user_id = %s and stat_date = %s",
                           (me.user_id, f"2026-07-{d:02d}")).fetchone()
            if r:
                stats_delays.append((r["computed_at"] - t0).total_seconds())
            return r is not None

        wait_until(computed, timeout=POLL / 2)
        time.sleep(rng.uniform(0.05, 0.3))

    summary = {name: {"n": len(d), "median_s": round(statistics.median(d), 4), "max_s": round(max(d), 4)}
               for name, d in (("job_commit_to_done", job_delays), ("upload_commit_to_recompute", stats_delays))}
    print(json.dumps({"poll_interval_s": POLL, **summary}))
    assert max(job_delays) < BOUND and max(stats_delays) < BOUND, summary
    assert min(job_delays) > 0 and min(stats_delays) > 0  # measured after the commit, on one clock
