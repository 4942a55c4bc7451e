"""Crash safety with real processes: `dtx-worker run` SIGKILLed at random moments while uploads continue, then
one clean run, leaves exact statistics and no job stuck in `running`; two workers at once never run a job
twice and agree on the statistics."""

from __future__ import annotations

import os
import random
import signal
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.db.test_daily_statistics import BASE, MODES, Session, drain, oracle, stored
from tests.support.pgrest import Caller, PostgrestSession, user
from tests.support.stack import LocalStack
from tests.worker.test_run_command import WorkerProcess, wait_until

Conn = psycopg.Connection[dict[str, Any]]


class Uploader:
    """A user with two devices who keeps uploading (and sometimes deleting) sessions; `model` is the truth."""

    def __init__(self, api: PostgrestSession, make_user: MakeUser, seed: int) -> None:
        self.api = api
        self.rng = random.Random(seed)
        self.tz = "America/New_York"
        self.uid = make_user(meta={"timezone": self.tz})
        self.me: Caller = user(self.uid)
        self.devices = [uuid.UUID(api.rpc(self.me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"])
                        for _ in range(2)]
        self.model: dict[str, Session] = {}

    def session(self) -> Session:
        shot = self.rng.randrange(3)
        return Session(str(uuid.uuid4()), self.rng.randrange(2), shot, self.rng.choice(MODES[shot]),
                       self.rng.randint(1, 3), BASE + timedelta(minutes=self.rng.randrange(5 * 24 * 60)),
                       self.rng.randrange(7200), self.rng.randrange(600), self.rng.random() < 0.2,
                       self.rng.random() < 0.2, self.rng.random() < 0.8)

    def step(self) -> None:
        if self.model and self.rng.random() < 0.2:
            victim = self.rng.choice(sorted(self.model))
            self.api.query(self.me, "delete from usage_sessions where id = %s", (victim,))
            del self.model[victim]
            return
        batch = [self.session() for _ in range(self.rng.randint(1, 8))]
        by_device: dict[int, list[Session]] = defaultdict(list)
        for s in batch:
            by_device[s.device].append(s)
        for dev, items in by_device.items():
            res = self.api.rpc(self.me, "upload_sessions", device_id=self.devices[dev], sessions=[s.item() for s in items])
            assert res["rejected"] == 0, res
        self.model.update({s.id: s for s in batch})

    def exact(self, db: Conn) -> bool:
        return stored(db, self.uid) == oracle(self.model, self.devices, self.tz)


def start_worker(stack: LocalStack, worker_id: str, **extra: str) -> WorkerProcess:
    env = dict(os.environ, DATABASE_URL=stack.dsn(), DTX_WORKER_WORKER_ID=worker_id, DTX_WORKER_POLL_INTERVAL="0.2",
               DTX_WORKER_LEASE_SECONDS="5", DTX_WORKER_LOG_LEVEL="INFO", **extra)
    return WorkerProcess(env)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def enqueue_jobs(db: Conn, n: int, uid: uuid.UUID) -> list[int]:
    """Real jobs (a reconciliation of the user's last 30 days) that kills may interrupt; ready since yesterday,
    so they come before whatever earlier tests left in the queue."""
    payload = psycopg.types.json.Jsonb({"days": 30, "user_id": str(uid)})
    rows = [db.execute("select private.enqueue_job('stats.reconcile', %s, null, now() - interval '1 day', 20) as id",
                       (payload,)).fetchone() for _ in range(n)]
    return [r["id"] for r in rows if r]


def test_sigkill_at_random_moments_loses_nothing(stack: LocalStack, api: PostgrestSession, db: Conn,
                                                 make_user: MakeUser, workers: list[WorkerProcess]) -> None:
    rng = random.Random(7)
    drain(db)  # days other tests left dirty would only slow the workers down
    up = Uploader(api, make_user, seed=11)
    jobs = enqueue_jobs(db, 12, up.uid)
    for round_no in range(5):
        w = start_worker(stack, f"chaos-{round_no}")
        workers.append(w)
        w.wait_for_event("worker ready")
        for _ in range(rng.randint(1, 4)):
            up.step()
        w.proc.send_signal(signal.SIGKILL)
        w.proc.wait()
        up.step()  # uploads continue while no worker runs

    final = start_worker(stack, "chaos-final")
    workers.append(final)

    def settled() -> bool:
        left = db.execute("select count(*) as n from jobs where id = any(%s) and status <> 'done'", (jobs,)).fetchone()
        dirty = db.execute("select count(*) as n from stats_dirty_days where user_id = %s", (up.uid,)).fetchone()
        return left == {"n": 0} and dirty == {"n": 0}

    wait_until(settled, timeout=25)  # a killed job waits for its 5 s lease to expire
    assert up.exact(db)
    stuck = db.execute("select count(*) as n from jobs where status = 'running' and lease_expires_at < now()").fetchone()
    assert stuck == {"n": 0}
    final.proc.send_signal(signal.SIGTERM)
    assert final.proc.wait(timeout=15) == 0


def test_two_workers_never_run_a_job_twice(stack: LocalStack, api: PostgrestSession, db: Conn,
                                           make_user: MakeUser, workers: list[WorkerProcess]) -> None:
    drain(db)
    a, b = start_worker(stack, "twin-a"), start_worker(stack, "twin-b")
    workers += [a, b]
    a.wait_for_event("listening")
    b.wait_for_event("listening")
    up = Uploader(api, make_user, seed=5)
    jobs = [r["id"] for r in (db.execute("select private.enqueue_job('jobs.prune', '{}', null,"
                                         " now() - interval '1 day') as id").fetchone() for _ in range(60)) if r]
    for _ in range(10):
        up.step()

    def settled() -> bool:
        left = db.execute("select count(*) as n from jobs where id = any(%s) and status <> 'done'", (jobs,)).fetchone()
        dirty = db.execute("select count(*) as n from stats_dirty_days where user_id = %s", (up.uid,)).fetchone()
        return left == {"n": 0} and dirty == {"n": 0}

    wait_until(settled, timeout=20)
    for w in (a, b):
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(timeout=15) == 0
    done = Counter(e["job_id"] for w in (a, b) for e in w.lines if e.get("event") == "job done" and e["job_id"] in jobs)
    assert sorted(done) == sorted(jobs) and set(done.values()) == {1}
    by_worker = {w: sum(1 for e in w.lines if e.get("event") == "job done" and e["job_id"] in jobs) for w in (a, b)}
    assert all(by_worker.values()), by_worker  # both took part
    attempts = db.execute("select max(attempts) as n from jobs where id = any(%s)", (jobs,)).fetchone()
    assert attempts == {"n": 1}
    assert not [e for w in (a, b) for e in w.lines if e.get("event", "").startswith("lease was lost")]
    assert up.exact(db)
