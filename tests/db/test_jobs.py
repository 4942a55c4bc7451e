"""The durable jobs table: enqueue and dedupe, SKIP LOCKED claims, backoff, dead letter, leases, pruning,
NOTIFY on enqueue. Each test uses its own job kind so tests never see each other's jobs."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support.stack import LocalStack

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def kind() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


def enqueue(db: Conn, kind: str, **kw: Any) -> int:
    cols = ", ".join(f"{k} => %({k})s" for k in kw)
    row = db.execute(f"select private.enqueue_job(%(kind)s{', ' + cols if cols else ''}) as id",
                     {"kind": kind, **kw}).fetchone()
    assert row is not None
    return int(row["id"])


def claim(db: Conn, kind: str, worker: str = "w1", batch: int = 10, lease: str = "5 minutes") -> list[dict[str, Any]]:
    return db.execute("select * from private.claim_jobs(%s, %s, %s, %s::interval)",
                      (worker, [kind], batch, lease)).fetchall()


def job(db: Conn, job_id: int) -> dict[str, Any]:
    row = db.execute("select * from jobs where id = %s", (job_id,)).fetchone()
    assert row is not None
    return row


def test_enqueue_and_claim_leases_the_job(db: Conn, kind: str) -> None:
    job_id = enqueue(db, kind, payload=psycopg.types.json.Jsonb({"user_id": "u1"}))
    claimed = claim(db, kind, worker="worker-a")
    assert [c["id"] for c in claimed] == [job_id]
    j = claimed[0]
    assert (j["status"], j["attempts"], j["lease_owner"], j["payload"]) == ("running", 1, "worker-a", {"user_id": "u1"})
    assert j["lease_expires_at"] - j["updated_at"] == timedelta(minutes=5)
    assert claim(db, kind) == []  # nothing left
    assert db.execute("select private.complete_job(%s, 'worker-a') as ok", (job_id,)).fetchone() == {"ok": True}
    done = job(db, job_id)
    assert (done["status"], done["lease_owner"], done["lease_expires_at"]) == ("done", None, None)
    assert done["finished_at"] is not None


def test_claim_respects_run_after_and_order(db: Conn, kind: str) -> None:
    later = enqueue(db, kind, run_after="2999-01-01T00:00:00Z")
    first, second = enqueue(db, kind), enqueue(db, kind)
    assert [c["id"] for c in claim(db, kind, batch=1)] == [first]
    assert [c["id"] for c in claim(db, kind, batch=5)] == [second]
    assert job(db, later)["status"] == "queued"


def test_dedupe_key_allows_one_queued_or_running_job(db: Conn, kind: str) -> None:
    key = f"{kind}:daily"
    a = enqueue(db, kind, dedupe_key=key)
    assert enqueue(db, kind, dedupe_key=key) == a
    claim(db, kind)
    assert enqueue(db, kind, dedupe_key=key) == a  # still running
    db.execute("select private.complete_job(%s)", (a,))
    b = enqueue(db, kind, dedupe_key=key)  # once done, the key is free again
    assert b != a
    assert db.execute("select count(*) as n from jobs where dedupe_key = %s", (key,)).fetchone() == {"n": 2}


def test_two_connections_claiming_concurrently_never_share_a_job(stack: LocalStack, db: Conn, kind: str) -> None:
    ids = {enqueue(db, kind) for _ in range(6)}
    with psycopg.connect(stack.dsn(), row_factory=dict_row) as a, psycopg.connect(stack.dsn(), row_factory=dict_row) as b:
        got_a = {r["id"] for r in claim(a, kind, worker="a", batch=4)}  # a's transaction stays open: rows locked
        got_b = {r["id"] for r in claim(b, kind, worker="b", batch=10)}  # skips a's rows instead of waiting
        a.commit()
        b.commit()
    assert len(got_a) == 4 and len(got_b) == 2
    assert got_a | got_b == ids and not got_a & got_b


def test_many_workers_in_parallel_claim_each_job_exactly_once(stack: LocalStack, db: Conn, kind: str) -> None:
    ids = [enqueue(db, kind) for _ in range(200)]
    claimed: list[list[int]] = [[] for _ in range(4)]

    def work(n: int) -> None:
        with psycopg.connect(stack.dsn(), autocommit=True, row_factory=dict_row) as conn:
            while batch := claim(conn, kind, worker=f"w{n}", batch=3):
                claimed[n] += [r["id"] for r in batch]
                for r in batch:
                    conn.execute("select private.complete_job(%s, %s)", (r["id"], f"w{n}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for c in claimed for i in c]
    assert sorted(flat) == sorted(ids)
    assert db.execute("select count(*) as n from jobs where kind = %s and status = 'done'", (kind,)).fetchone() == {"n": 200}


def test_failure_backs_off_exponentially_with_jitter(db: Conn, kind: str) -> None:
    job_id = enqueue(db, kind, max_attempts=10)
    delays = []
    for attempt in range(1, 5):
        db.execute("update jobs set run_after = now() where id = %s", (job_id,))
        assert [c["id"] for c in claim(db, kind)] == [job_id]
        row = db.execute("select private.fail_job(%s, %s, 'w1', interval '10 seconds') as ok, now() as t",
                         (job_id, f"boom {attempt}")).fetchone()
        assert row is not None and row["ok"] is True
        j = job(db, job_id)
        assert (j["status"], j["attempts"], j["last_error"], j["lease_owner"]) == ("queued", attempt, f"boom {attempt}", None)
        delay = (j["run_after"] - row["t"]).total_seconds()
        full = 10 * 2 ** (attempt - 1)
        assert full * 0.5 <= delay < full, (attempt, delay)
        delays.append(delay)
        assert claim(db, kind) == []  # not ready before run_after
    assert delays == sorted(delays)


def test_backoff_is_capped(db: Conn, kind: str) -> None:
    job_id = enqueue(db, kind, max_attempts=100)
    db.execute("update jobs set attempts = 60 where id = %s", (job_id,))
    claim(db, kind)
    row = db.execute("select private.fail_job(%s, 'x', null, interval '5 seconds', interval '1 minute'), now() as t",
                     (job_id,)).fetchone()
    assert row is not None
    assert 30 <= (job(db, job_id)["run_after"] - row["t"]).total_seconds() < 60


def test_job_is_dead_lettered_after_max_attempts_with_its_error(db: Conn, kind: str) -> None:
    job_id = enqueue(db, kind, max_attempts=2)
    other = enqueue(db, kind)
    for attempt in (1, 2):
        db.execute("update jobs set run_after = now() - interval '1 hour' where id = %s", (job_id,))
        assert [c["id"] for c in claim(db, kind, batch=1)] == [job_id]
        db.execute("select private.fail_job(%s, %s)", (job_id, f"ValueError: bad payload {attempt}"))
    j = job(db, job_id)
    assert (j["status"], j["attempts"], j["last_error"]) == ("dead", 2, "ValueError: bad payload 2")
    assert j["finished_at"] is not None
    assert [c["id"] for c in claim(db, kind)] == [other]  # the dead job never blocks others


def test_only_the_lease_holder_may_finish_a_job(db: Conn, kind: str) -> None:
    job_id = enqueue(db, kind)
    claim(db, kind, worker="a")
    assert db.execute("select private.complete_job(%s, 'b') as ok", (job_id,)).fetchone() == {"ok": False}
    assert db.execute("select private.fail_job(%s, 'x', 'b') as ok", (job_id,)).fetchone() == {"ok": False}
    assert job(db, job_id)["status"] == "running"
    assert db.execute("select private.complete_job(%s, 'a') as ok", (job_id,)).fetchone() == {"ok": True}
    assert db.execute("select private.complete_job(%s, 'a') as ok", (job_id,)).fetchone() == {"ok": False}


def test_expired_lease_returns_the_job_to_the_queue(db: Conn, kind: str) -> None:
    job_id = enqueue(db, kind, max_attempts=2)
    claim(db, kind, worker="crashed")
    assert db.execute("select private.reap_expired_leases() as n").fetchone() == {"n": 0}  # lease still valid
    db.execute("update jobs set lease_expires_at = now() - interval '1 second' where id = %s", (job_id,))
    assert db.execute("select private.reap_expired_leases() as n").fetchone() == {"n": 1}
    j = job(db, job_id)
    assert (j["status"], j["attempts"], j["lease_owner"]) == ("queued", 1, None)
    assert "lease expired: worker crashed" in j["last_error"]
    assert [c["id"] for c in claim(db, kind, worker="rescuer")] == [job_id]
    # the crashed worker comes back and tries to finish: refused
    assert db.execute("select private.complete_job(%s, 'crashed') as ok", (job_id,)).fetchone() == {"ok": False}
    db.execute("update jobs set lease_expires_at = now() - interval '1 second' where id = %s", (job_id,))
    db.execute("select private.reap_expired_leases()")
    assert job(db, job_id)["status"] == "dead"  # both attempts used up


def test_prune_deletes_only_old_done_jobs(db: Conn, kind: str) -> None:
    old, recent, dead = enqueue(db, kind), enqueue(db, kind), enqueue(db, kind, max_attempts=1)
    claim(db, kind)
    for j in (old, recent):
        db.execute("select private.complete_job(%s)", (j,))
    db.execute("select private.fail_job(%s, 'x')", (dead,))
    db.execute("update jobs set finished_at = now() - interval '8 days' where id in (%s, %s)", (old, dead))
    db.execute("select private.prune_jobs(interval '7 days')")
    left = {r["id"] for r in db.execute("select id from jobs where kind = %s", (kind,)).fetchall()}
    assert left == {recent, dead}


def test_enqueue_notifies_dtx_jobs(stack: LocalStack, db: Conn, kind: str) -> None:
    with psycopg.connect(stack.dsn(), autocommit=True) as listener:
        listener.execute("listen dtx_jobs")
        enqueue(db, kind)
        got = next(listener.notifies(timeout=5))
    assert (got.channel, got.payload) == ("dtx_jobs", kind)


@pytest.mark.parametrize(("column", "value"), [
    ("kind", "Bad Kind"), ("payload", "[]"), ("status", "paused"), ("max_attempts", "0"), ("attempts", "-1"),
    ("dedupe_key", ""), ("lease_owner", "w"),
])
def test_constraints_reject_bad_rows(db: Conn, column: str, value: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(f"insert into jobs (kind, {column}) values ('x', %s)" if column != "kind"
                   else "insert into jobs (kind) values (%s)", (value,))


def test_api_roles_cannot_call_job_functions(db: Conn) -> None:
    rows = db.execute(
        "select p.proname, has_function_privilege('authenticated', p.oid, 'execute') as auth,"
        " has_function_privilege('service_role', p.oid, 'execute') as svc"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'private' and p.proname in ('enqueue_job', 'claim_jobs', 'complete_job', 'fail_job',"
        " 'reap_expired_leases', 'prune_jobs')").fetchall()
    assert len(rows) == 6
    assert [r["proname"] for r in rows if r["auth"] or r["svc"]] == []
