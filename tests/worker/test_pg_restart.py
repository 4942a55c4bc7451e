"""PostgreSQL restarted under a running `dtx-worker run`: the worker stays up, logs the lost connection and
its backoff, reconnects (LISTEN included: the poll interval is 30 s), and processes work enqueued afterwards.

The test builds its own cluster (DTX_RESTART_DB_PORT, default 54361, state under a pytest tmp dir) since it
stops the server; the cluster is stopped and deleted at the end, pass or fail."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support.pgrest import PostgrestSession, user
from tests.support.stack import LocalStack
from tests.worker.test_run_command import WorkerProcess, wait_until

PORT = int(os.environ.get("DTX_RESTART_DB_PORT", "54361"))
DOWN_SECONDS = 3.0


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    s = LocalStack(port=PORT, state_dir=tmp_path_factory.mktemp(f"restart-{PORT}"))
    s.run("reset")
    try:
        yield s
    finally:
        s.run("stop")
        data = (s.state_dir / "pgdata").resolve()  # as root a link to /tmp/dtx-pg-…, else the directory
        shutil.rmtree(data, ignore_errors=True)
        Path(f"{data}.log").unlink(missing_ok=True)


@pytest.fixture
def worker(own_stack: LocalStack) -> Iterator[WorkerProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
    w = WorkerProcess({**env, "DATABASE_URL": own_stack.dsn(), "DTX_WORKER_POLL_INTERVAL": "30",
                       "DTX_WORKER_WORKER_ID": "restart-worker"})
    try:
        w.wait_for_event("listening")
        yield w
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


class Work:
    """Enqueues a job and uploads a session for a new user, then tells whether the worker has done both."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def submit(self) -> tuple[int, uuid.UUID]:
        with psycopg.connect(self.stack.dsn(), autocommit=True, row_factory=dict_row) as db:
            row = db.execute("select private.enqueue_job('jobs.prune', '{\"older_than_days\": 30}') as id").fetchone()
            uid = uuid.uuid4()
            db.execute("insert into auth.users (id, aud, role, email, raw_user_meta_data, raw_app_meta_data)"
                       " values (%s, 'authenticated', 'authenticated', %s, '{\"timezone\": \"Europe/Berlin\"}',"
                       " '{\"provider\": \"email\"}')", (uid, f"restart-{uid.hex[:10]}@example.test"))
        api = PostgrestSession(self.stack.dsn("authenticator"))
        try:
            dev = api.rpc(user(uid), "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"]
            api.rpc(user(uid), "upload_sessions", device_id=dev, sessions=[
                {"id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 2, "level": 1,
                 "start_time": f"2026-06-0{d}T09:00:00Z", "working_duration": 120} for d in (1, 2)])
        finally:
            api.close()
        assert row is not None
        return int(row["id"]), uid

    def done(self, job_id: int, uid: uuid.UUID) -> bool:
        with psycopg.connect(self.stack.dsn(), autocommit=True, row_factory=dict_row) as db:
            job = db.execute("select status from jobs where id = %s", (job_id,)).fetchone()
            days = db.execute("select count(*) as n from daily_statistics where user_id = %s", (uid,)).fetchone()
        return job == {"status": "done"} and days == {"n": 2}



def test_worker_survives_a_postgres_restart(own_stack: LocalStack, worker: WorkerProcess) -> None:
    work = Work(own_stack)
    before = work.submit()
    wait_until(lambda: work.done(*before), timeout=10)

    listening_before = sum(1 for e in worker.lines if e.get("event") == "listening")
    seen_before = len(worker.lines)
    own_stack.run("stop")  # pg_ctl -m fast stop: every backend is terminated
    stopped = time.monotonic()
    time.sleep(DOWN_SECONDS)
    assert worker.proc.poll() is None, "the worker exited while the database was down"
    own_stack.run("up")  # start again (platform and migrations are already there)
    restarted = time.monotonic()
    assert worker.proc.poll() is None

    wait_until(lambda: sum(1 for e in worker.lines if e.get("event") == "listening") > listening_before, timeout=15)
    reconnected = time.monotonic()
    submitted = time.monotonic()
    job_id, uid = work.submit()
    wait_until(lambda: work.done(job_id, uid), timeout=10)  # far below the 30 s poll: NOTIFY works again
    processed = time.monotonic()
    assert worker.proc.poll() is None

    outage = worker.lines[seen_before:]
    lost = [e for e in outage if e.get("event") == "listen connection lost; relying on polling until it is back"]
    assert lost and all(e["level"] == "warning" and e["retry_in"] > 0 and e["error"] for e in lost)
    delays = [e["retry_in"] for e in lost]
    assert len(lost) >= 2 and max(delays) > min(delays), f"no backoff: {delays}"
    back = [e for e in outage if e.get("event") == "listening"]
    assert back and back[-1]["after_failures"] >= 1
    print(json.dumps({"down_s": round(restarted - stopped, 2), "relisten_after_restart_s": round(reconnected - restarted, 2),
                      "work_after_resubmit_s": round(processed - submitted, 2), "listen_retries": delays,
                      "log_events_during_outage": sorted({e.get("event", "") for e in outage})}))
