"""The Supabase Realtime wake-up feed against `fake_realtime.FakeRealtime` (only Realtime is faked; the jobs
live in the real test database and the real executor claims them). The poll interval is 30 s throughout, so
work that starts within a second or two was started by a Realtime event or a (re)subscription wake-up."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from dtx_worker.health import health
from dtx_worker.jobs import ExecutorLimits, Job, JobContext, JobExecutor
from dtx_worker.realtime import RealtimeFeed, RealtimeOptions
from dtx_worker.wakeups import Wakeups
from tests.conftest import MakeUser
from tests.support.pgrest import PostgrestSession, user
from tests.support.stack import LocalStack
from tests.worker.fake_realtime import FakeRealtime, feed_from_database
from tests.worker.test_run_command import DTX_WORKER, WorkerProcess

KEY = "test-service-role-key"
POLL = 30.0
Conn = psycopg.Connection[dict[str, Any]]


async def eventually(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtime]:
    server = await FakeRealtime().start()
    yield server
    await server.stop()


@pytest.fixture
async def pool(stack: LocalStack) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(stack.dsn(), min_size=1, max_size=4, kwargs={"autocommit": True}) as p:
        yield p


class Harness:
    """The real executor (for one private job kind) woken only by a RealtimeFeed pointed at the fake."""

    def __init__(self, pool: AsyncConnectionPool, db: Conn, fake: FakeRealtime, **options: Any) -> None:
        self.db = db
        self.kind = f"t{uuid.uuid4().hex[:10]}.realtime"
        self.started: dict[int, float] = {}
        self.wakeups = Wakeups()
        self.feed = RealtimeFeed(RealtimeOptions(fake.url, KEY, **{"initial_backoff": 0.1, "timeout": 2,
                                                                   "max_backoff": 0.3, **options}), self.wakeups)
        self.executor = JobExecutor(pool, "realtime-test", {self.kind: self._handle},
                                    ExecutorLimits(poll_interval=POLL, lease_seconds=30))
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def _handle(self, job: Job, _ctx: JobContext) -> None:
        self.started[job.id] = time.monotonic()

    async def __aenter__(self) -> Harness:
        self.tasks = [asyncio.create_task(self.feed.run()),
                      asyncio.create_task(self.executor.run(self.wakeups.jobs, self.stopping))]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.stopping.set()
        self.wakeups.all()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.db.execute("delete from jobs where kind = %s", (self.kind,))

    def enqueue(self) -> int:
        row = self.db.execute("select private.enqueue_job(%s, '{}') as id", (self.kind,)).fetchone()
        assert row is not None
        return int(row["id"])

    async def subscribed(self, count: int = 1, within: float = 10) -> None:
        await eventually(lambda: self.feed.subscriptions >= count and self.wakeups.connected, within,
                         f"subscription #{count}")
        await asyncio.sleep(0.3)  # let the wake-up of the subscription itself find the queue empty

    async def started_within(self, job_id: int, seconds: float, after: Awaitable[Any] | None = None) -> float:
        t0 = time.monotonic()
        if after is not None:
            await after
        await eventually(lambda: job_id in self.started, seconds, f"job {job_id} to start")
        return self.started[job_id] - t0


async def test_an_insert_event_wakes_the_job_loop(pool: AsyncConnectionPool, db: Conn, fake: FakeRealtime) -> None:
    async with Harness(pool, db, fake) as h:
        await h.subscribed()
        job = h.enqueue()
        await asyncio.sleep(1.0)
        assert job not in h.started, "nothing but an event (or the 30 s poll) may start it"
        delay = await h.started_within(job, 2.0, fake.emit_insert("jobs", {"id": job}))
        assert delay < 1.0

        h.wakeups.stats.clear()
        assert await fake.emit_insert("stats_dirty_days", {"user_id": str(uuid.uuid4()), "device_id": str(uuid.uuid4()),
                                                           "local_date": "2026-05-01"}) == 1
        await eventually(h.wakeups.stats.is_set, 2.0, "the stats wake-up")


async def test_join_payload_heartbeat_and_handshake_have_supabase_shapes(
        pool: AsyncConnectionPool, db: Conn, fake: FakeRealtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with Harness(pool, db, fake) as h:
        await h.subscribed()
    assert caplog.records and not [r.getMessage() for r in caplog.records if KEY in r.getMessage()], \
        "the service role key must not reach the logs, even at DEBUG"
    assert fake.handshakes[0] == {"apikey": [KEY], "vsn": ["1.0.0"]}
    (join,) = fake.joins()
    assert join["topic"] == "realtime:dtx-worker" and join["event"] == "phx_join"
    assert isinstance(join["ref"], str) and join["join_ref"] == join["ref"]
    assert join["payload"] == {
        "config": {"broadcast": {"ack": False, "self": False}, "presence": {"key": "", "enabled": False},
                   "private": False,
                   "postgres_changes": [{"event": "INSERT", "schema": "public", "table": "jobs"},
                                        {"event": "INSERT", "schema": "public", "table": "stats_dirty_days"}]},
        "access_token": KEY}
    beats = [m for m in fake.received if m["event"] == "heartbeat"]
    assert beats and beats[0] == {"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": None,
                                  "join_ref": None}


async def test_server_side_disconnect_reconnects_resubscribes_and_wakes_everything(
        pool: AsyncConnectionPool, db: Conn, fake: FakeRealtime) -> None:
    async with Harness(pool, db, fake) as h:
        await h.subscribed()
        await fake.drop_connections()  # the client reconnects by itself
        await h.subscribed(2)
        assert len(fake.joins()) == 2 and h.feed.rebuilds == 0
        job = h.enqueue()
        assert await h.started_within(job, 2.0, fake.emit_insert("jobs", {"id": job})) < 1.0

        # work enqueued while disconnected produces no event; the resubscription itself wakes the loop
        fake.refusing = True
        await fake.drop_connections()
        await eventually(lambda: not h.wakeups.connected, 2.0, "the disconnect to be noticed")
        missed = h.enqueue()
        await asyncio.sleep(0.3)
        fake.refusing = False
        await eventually(lambda: missed in h.started, 5.0, "the job enqueued while disconnected")
        assert h.feed.subscriptions == 3


async def test_supervisor_rebuilds_the_client_after_it_gives_up(
        pool: AsyncConnectionPool, db: Conn, fake: FakeRealtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dtx_worker.realtime")
    async with Harness(pool, db, fake, max_retries=2) as h:
        await h.subscribed()
        code, checks = await health(pool, h.wakeups)
        assert (code, checks) == (200, {"database": True, "listener": True})

        fake.refusing = True
        await fake.drop_connections()
        # two refused attempts (0.1 s apart) and the client's task ends; the supervisor notices and rebuilds
        await eventually(lambda: h.feed.rebuilds >= 3, 10.0, "three rebuilt clients")
        assert fake.refused >= 6
        code, checks = await health(pool, h.wakeups)
        assert (code, checks) == (503, {"database": True, "listener": False})
        lost = [r for r in caplog.records if r.getMessage() == "realtime client lost; rebuilding it (polling continues)"]
        assert "gave up" in lost[0].reason and all(0 < r.retry_in <= 0.3 for r in lost)  # type: ignore[attr-defined]

        missed = h.enqueue()
        fake.refusing = False
        await eventually(lambda: missed in h.started, 5.0, "recovery (the resubscription wake-up)")
        await h.subscribed(2)
        job = h.enqueue()
        assert await h.started_within(job, 2.0, fake.emit_insert("jobs", {"id": job})) < 1.0
        assert (await health(pool, h.wakeups))[0] == 200


async def test_a_crashed_channel_is_rejoined_and_a_closed_one_rebuilt(
        pool: AsyncConnectionPool, db: Conn, fake: FakeRealtime) -> None:
    async with Harness(pool, db, fake) as h:
        await h.subscribed()
        await fake.channel_event("phx_error")  # the client rejoins by itself, on the same socket
        await h.subscribed(2, within=5)
        assert len(fake.joins()) == 2 and len(fake.handshakes) == 1 and h.feed.rebuilds == 0

        await fake.channel_event("phx_close")  # the client forgets the channel; only a new client helps
        await h.subscribed(3, within=5)
        assert h.feed.rebuilds == 1 and len(fake.handshakes) == 2
        job = h.enqueue()
        assert await h.started_within(job, 2.0, fake.emit_insert("jobs", {"id": job})) < 1.0


def test_the_realtime_migration_exposes_only_key_columns_to_the_service_role(db: Conn) -> None:
    published = {r["tablename"] for r in db.execute(
        "select tablename from pg_publication_tables where pubname = 'supabase_realtime'").fetchall()}
    assert {"jobs", "stats_dirty_days"} <= published
    cols = {(r["table_name"], r["column_name"]) for r in db.execute(
        "select table_name, column_name from information_schema.column_privileges where grantee = 'service_role'"
        " and privilege_type = 'SELECT' and table_name in ('jobs', 'stats_dirty_days')").fetchall()}
    assert cols == {("jobs", "id"), ("stats_dirty_days", "user_id"), ("stats_dirty_days", "device_id"),
                    ("stats_dirty_days", "local_date")}


# ------------------------------------------------------------------------------------- dtx-worker run


@pytest.mark.parametrize(("env", "named"), [
    ({"SUPABASE_URL": "https://p.supabase.co"}, "SUPABASE_SERVICE_ROLE_KEY"),
    ({"SUPABASE_SERVICE_ROLE_KEY": KEY}, "SUPABASE_URL"),
    ({"SUPABASE_URL": "ftp://p.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": KEY}, "SUPABASE_URL"),
    ({"DTX_WORKER_WAKEUPS": "realtime"}, "DTX_WORKER_WAKEUPS"),
])
def test_bad_supabase_settings_stop_the_worker_at_start(stack: LocalStack, env: dict[str, str], named: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
    res = subprocess.run([DTX_WORKER, "run"], env={**base, "DATABASE_URL": stack.dsn(), **env},
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2, res.stderr
    assert f"{named}:" in res.stderr and KEY not in res.stderr


@pytest.fixture
def realtime_worker(stack: LocalStack, fake: FakeRealtime) -> Iterator[WorkerProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
    w = WorkerProcess({**env, "DATABASE_URL": stack.dsn(), "SUPABASE_URL": fake.url, "SUPABASE_SERVICE_ROLE_KEY": KEY,
                       "DTX_WORKER_POLL_INTERVAL": str(POLL), "DTX_WORKER_WORKER_ID": "realtime-worker"})
    try:
        yield w
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


async def test_run_with_supabase_url_is_woken_by_realtime(
        realtime_worker: WorkerProcess, fake: FakeRealtime, stack: LocalStack, db: Conn,
        api: PostgrestSession, make_user: MakeUser) -> None:
    feeder = asyncio.create_task(feed_from_database(fake, stack.dsn()))
    try:
        await asyncio.to_thread(realtime_worker.wait_for_event, "realtime subscribed")
        await asyncio.sleep(1.0)  # past the subscription's own wake-up and the start-up schedules
        t0 = time.monotonic()
        row = db.execute("select private.enqueue_job('jobs.prune', '{\"older_than_days\": 30}') as id").fetchone()
        assert row is not None

        def status() -> str:
            r = db.execute("select status from jobs where id = %s", (row["id"],)).fetchone()
            return r["status"] if r else "gone"

        await eventually(lambda: status() == "done", 5.0, "the job to be done")
        job_delay = time.monotonic() - t0

        uid = make_user(meta={"timezone": "Asia/Seoul"})
        me = user(uid)
        dev = api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"]
        t0 = time.monotonic()
        api.rpc(me, "upload_sessions", device_id=dev, sessions=[
            {"id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 2, "level": 2,
             "start_time": "2026-05-01T07:00:00Z", "working_duration": 300}])
        await eventually(lambda: db.execute("select count(*) as n from daily_statistics where user_id = %s",
                                            (uid,)).fetchone() == {"n": 1}, 5.0, "statistics")
        stats_delay = time.monotonic() - t0
        print(json.dumps({"realtime_job_delay_s": round(job_delay, 3), "realtime_stats_delay_s": round(stats_delay, 3)}))
        assert job_delay < 3.0 and stats_delay < 3.0  # the poll interval is 30 s
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
    events = [e.get("event") for e in realtime_worker.lines]
    assert "wake-ups from Supabase Realtime" in events and "listening" not in events
    realtime_worker.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(realtime_worker.proc.wait, 15) == 0
