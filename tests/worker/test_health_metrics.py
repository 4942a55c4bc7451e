"""`/healthz` and `/metrics` over HTTP on 127.0.0.1: from a real `dtx-worker run` (job counters, duration
histogram, queue gauges refreshed from the jobs table), and in-process for the unhealthy answers."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg_pool import AsyncConnectionPool

from dtx_worker.health import HealthServer
from dtx_worker.metrics import WorkerMetrics
from dtx_worker.wakeups import Wakeups
from tests.support.stack import LocalStack
from tests.worker.test_run_command import WorkerProcess, wait_until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def metered_worker(stack: LocalStack) -> Iterator[tuple[WorkerProcess, str]]:
    env = dict(os.environ, DATABASE_URL=stack.dsn(), DTX_WORKER_POLL_INTERVAL="0.5", DTX_WORKER_WORKER_ID="metered",
               DTX_WORKER_METRICS_PORT="0", DTX_WORKER_METRICS_HOST="127.0.0.1")
    w = WorkerProcess(env)
    try:
        port = w.wait_for_event("metrics server listening")["port"]
        w.wait_for_event("listening")
        yield w, f"http://127.0.0.1:{port}"
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def test_worker_serves_health_and_job_metrics(metered_worker: tuple[WorkerProcess, str],
                                              db: psycopg.Connection[dict[str, Any]]) -> None:
    worker, base = metered_worker
    health = httpx.get(f"{base}/healthz", timeout=5)
    assert (health.status_code, health.json()) == (200, {"status": "ok", "database": True, "listener": True})
    assert httpx.get(f"{base}/nope", timeout=5).status_code == 404

    waiting = f"t{uuid.uuid4().hex[:8]}.unhandled"
    db.execute("select private.enqueue_job(%s, '{}', null, now() - interval '1 minute')", (waiting,))
    good = db.execute("select private.enqueue_job('jobs.prune', '{}') as id").fetchone()
    bad = db.execute("select private.enqueue_job('jobs.prune', '{\"older_than_days\": 0}', null, null, 1) as id"
                     ).fetchone()
    assert good and bad

    def settled() -> bool:
        rows = db.execute("select status from jobs where id in (%s, %s) order by id", (good["id"], bad["id"])).fetchall()
        return [r["status"] for r in rows] == ["done", "dead"]

    wait_until(settled)
    prune = (("kind", "jobs.prune"),)
    got: dict[Any, float] = {}

    def scraped() -> bool:
        got.clear()
        got.update(samples(httpx.get(f"{base}/metrics", timeout=5).text))
        return got.get(("dtx_worker_queue_depth", (("kind", waiting),)), 0) == 1 and \
            got.get(("dtx_worker_jobs_dead_total", prune), 0) >= 1

    wait_until(scraped)
    assert got[("dtx_worker_jobs_succeeded_total", prune)] >= 1
    assert got[("dtx_worker_jobs_claimed_total", prune)] >= 2
    assert got[("dtx_worker_job_duration_seconds_count", (("kind", "jobs.prune"), ("outcome", "succeeded")))] >= 1
    assert got[("dtx_worker_queue_lag_seconds", (("kind", waiting),))] >= 59
    assert ("dtx_worker_stats_dirty_days", ()) in got
    db.execute("delete from jobs where kind = %s", (waiting,))
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=15) == 0


@pytest.fixture
async def pool(stack: LocalStack) -> AsyncIterator[AsyncConnectionPool]:
    p = AsyncConnectionPool(stack.dsn(), min_size=1, max_size=2, open=False, kwargs={"autocommit": True})
    await p.open(wait=True)
    yield p
    await p.close()


async def test_healthz_is_503_without_listener_or_database(pool: AsyncConnectionPool) -> None:
    wakeups = Wakeups()
    server = HealthServer(pool, wakeups, WorkerMetrics())
    port = await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            r = await http.get("/healthz")
            assert (r.status_code, r.json()) == (503, {"status": "unavailable", "database": True, "listener": False})
            wakeups.connected = True
            assert (await http.get("/healthz")).status_code == 200
            await pool.close()
            r = await http.get("/healthz")
            assert (r.status_code, r.json()["database"]) == (503, False)
            assert (await http.post("/healthz")).status_code == 405
    finally:
        await server.close()
