"""Prometheus metrics of one worker process: job outcomes and durations counted by the executor, and queue
gauges refreshed from the jobs table (so every replica reports the same queue)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from psycopg_pool import AsyncConnectionPool

QUEUE_SQL = """
select kind,
       count(*) filter (where status = 'queued' and run_after <= now()) as ready,
       count(*) filter (where status = 'queued' and run_after > now()) as scheduled,
       count(*) filter (where status = 'running') as running,
       count(*) filter (where status = 'dead') as dead,
       coalesce(extract(epoch from now() - min(run_after) filter (where status = 'queued' and run_after <= now())),
                0)::float8 as lag
  from public.jobs where status in ('queued', 'running', 'dead') group by kind
"""


class WorkerMetrics:
    """Metrics in their own registry (so that tests and embedders can make several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_claimed = Counter("dtx_worker_jobs_claimed", "Jobs claimed by this process", ["kind"], registry=r)
        self.jobs_succeeded = Counter("dtx_worker_jobs_succeeded", "Jobs completed by this process", ["kind"],
                                      registry=r)
        self.jobs_failed = Counter("dtx_worker_jobs_failed", "Failed attempts that will be retried", ["kind"],
                                   registry=r)
        self.jobs_dead = Counter("dtx_worker_jobs_dead", "Jobs dead-lettered by this process", ["kind"], registry=r)
        self.job_duration = Histogram("dtx_worker_job_duration_seconds", "Handler run time", ["kind", "outcome"],
                                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                                      registry=r)
        self.queue_ready = Gauge("dtx_worker_queue_depth", "Queued jobs ready to run (all workers)", ["kind"],
                                 registry=r)
        self.queue_scheduled = Gauge("dtx_worker_queue_scheduled", "Queued jobs waiting for their run_after",
                                     ["kind"], registry=r)
        self.queue_running = Gauge("dtx_worker_queue_running", "Jobs running (all workers)", ["kind"], registry=r)
        self.queue_dead = Gauge("dtx_worker_queue_dead", "Dead-lettered jobs kept for inspection", ["kind"],
                                registry=r)
        self.queue_lag = Gauge("dtx_worker_queue_lag_seconds", "Age of the oldest ready job", ["kind"], registry=r)
        self.dirty_days = Gauge("dtx_worker_stats_dirty_days", "Statistics days waiting to be recomputed",
                                registry=r)

    def claimed(self, kind: str) -> None:
        self.jobs_claimed.labels(kind).inc()

    def finished(self, kind: str, outcome: str, seconds: float) -> None:
        """outcome: succeeded, failed (will be retried) or dead."""
        counters = {"succeeded": self.jobs_succeeded, "failed": self.jobs_failed, "dead": self.jobs_dead}
        counters[outcome].labels(kind).inc()
        self.job_duration.labels(kind, outcome).observe(seconds)

    async def refresh_queue(self, pool: AsyncConnectionPool) -> None:
        async with pool.connection() as conn:
            rows = await (await conn.execute(QUEUE_SQL)).fetchall()
            dirty = await (await conn.execute("select count(*) from public.stats_dirty_days")).fetchone()
        gauges = (self.queue_ready, self.queue_scheduled, self.queue_running, self.queue_dead, self.queue_lag)
        for gauge in gauges:  # kinds that emptied disappear
            gauge.clear()
        for kind, *values in rows:
            for gauge, value in zip(gauges, values, strict=True):
                gauge.labels(kind).set(value)
        self.dirty_days.set(dirty[0] if dirty else 0)
