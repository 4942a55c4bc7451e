"""`dtx-worker run` as a real process against the test cluster: it computes daily statistics for uploaded
sessions, runs jobs, and exits 0 on SIGTERM; a bad setting stops it at start with the variable's name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.support.pgrest import PostgrestSession, user
from tests.support.stack import LocalStack

DTX_WORKER = str(Path(sys.executable).parent / "dtx-worker")


class WorkerProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([DTX_WORKER, "run"], env=env, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.lines.append(json.loads(line))
            except json.JSONDecodeError:
                self.lines.append({"event": line.rstrip()})

    def wait_for_event(self, event: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in list(self.lines):
                if entry.get("event") == event:
                    return entry
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"worker never logged {event!r}; log: {self.lines}")


@pytest.fixture
def worker(stack: LocalStack) -> Iterator[WorkerProcess]:
    env = dict(os.environ, DATABASE_URL=stack.dsn(), DTX_WORKER_POLL_INTERVAL="30", DTX_WORKER_WORKER_ID="test-worker")
    w = WorkerProcess(env)
    try:
        w.wait_for_event("worker ready")
        yield w
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def wait_until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_run_computes_statistics_on_notify_and_stops_cleanly_on_sigterm(
        worker: WorkerProcess, api: PostgrestSession, db: psycopg.Connection, make_user: MakeUser) -> None:
    worker.wait_for_event("listening")
    uid = make_user(meta={"timezone": "Europe/London"})
    me = user(uid)
    dev = api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"]
    items = [{"id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 2, "level": 2, "start_time": f"2026-05-0{d}T07:00:00Z",
              "working_duration": 300, "battery_start_mv": 4100} for d in (1, 1, 2)]
    api.rpc(me, "upload_sessions", device_id=dev, sessions=items)

    def computed() -> bool:
        row = db.execute("select count(*) as days, sum(sessions) as n from daily_statistics where user_id = %s",
                         (uid,)).fetchone()
        return row == {"days": 2, "n": 3}

    # the poll interval is 30 s, so this is the NOTIFY wake-up at work
    wait_until(computed, timeout=10)

    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=15) == 0
    events = [e.get("event") for e in worker.lines]
    assert "stopping" in events and events[-1] == "worker stopped"


def test_run_executes_jobs_and_dead_letters_a_malformed_payload(
        worker: WorkerProcess, db: psycopg.Connection) -> None:
    good = db.execute("select private.enqueue_job('jobs.prune', '{\"older_than_days\": 30}') as id").fetchone()
    bad = db.execute("select private.enqueue_job('jobs.prune', '{\"older_than_days\": \"soon\"}', null, null, 1)"
                     " as id").fetchone()
    assert good and bad

    def status(job_id: int) -> str:
        row = db.execute("select status from jobs where id = %s", (job_id,)).fetchone()
        return row["status"] if row else "gone"

    wait_until(lambda: status(good["id"]) == "done" and status(bad["id"]) == "dead")
    err = db.execute("select last_error from jobs where id = %s", (bad["id"],)).fetchone()
    assert err is not None and err["last_error"].startswith("ValidationError") and "older_than_days" in err["last_error"]
    worker.proc.send_signal(signal.SIGINT)
    assert worker.proc.wait(timeout=15) == 0


def test_bad_setting_fails_at_start_naming_the_variable(stack: LocalStack) -> None:
    env = dict(os.environ, DATABASE_URL=stack.dsn(), DTX_WORKER_CONCURRENCY="many")
    res = subprocess.run([DTX_WORKER, "run"], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "DTX_WORKER_CONCURRENCY" in res.stderr and "'many'" in res.stderr


def test_unreachable_database_is_reported(tmp_path: Path) -> None:
    env = dict(os.environ, DATABASE_URL="postgresql://postgres:secret@127.0.0.1:9/postgres")
    res = subprocess.run([DTX_WORKER, "run"], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert "cannot reach the database" in res.stderr and "secret" not in res.stderr


def test_run_evaluates_rollouts_when_devices_report(worker: WorkerProcess, db: psycopg.Connection,
                                                   su_api: PostgrestSession) -> None:
    """A device's success report enqueues rollouts.evaluate in the same transaction; the worker runs it and the
    all-at-once rollout with a sample size of one completes."""
    from tests.db.ota_support import check, fleet, publish, report, rollout

    model = f"SIM{uuid.uuid4().hex[:8]}"
    fw = publish(db, "1.1.0", 10100, model=model)
    d = fleet(db, 1, model=model)[0]
    rid = rollout(db, fw, min_sample_size=1)
    ans = check(su_api, d, "1.0.0")
    for phase in ("downloading", "transferring", "installing", "succeeded"):
        report(su_api, d, ans["rollout_id"], phase)

    def completed() -> bool:
        row = db.execute("select status from firmware_rollouts where id = %s", (rid,)).fetchone()
        return row is not None and row["status"] == "completed"

    try:
        wait_until(completed, timeout=15)
    except AssertionError as timed_out:
        jobs = db.execute("select kind, status, run_after > now() as later, attempts, count(*) as n from jobs"
                          " where status in ('queued', 'running') group by 1, 2, 3, 4 order by 1").fetchall()
        raise AssertionError(f"the rollout did not complete; unfinished jobs: {jobs};"
                             f" worker log: {worker.lines[-20:]}") from timed_out
    done = db.execute("select count(*) as n from jobs where kind = 'rollouts.evaluate' and status = 'done'").fetchone()
    assert done is not None and done["n"] >= 1
