"""The job executor: claims ready jobs of the kinds it has handlers for (FOR UPDATE SKIP LOCKED under a
lease), runs each with a concurrency limit and a time limit, and records the outcome. A handler that raises,
or a payload it rejects, is retried with backoff by the database and dead-lettered after max_attempts; it
never blocks other jobs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from dtx_worker.metrics import WorkerMetrics
from dtx_worker.wakeups import wait_or_poll

log = logging.getLogger("dtx_worker.jobs")


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class JobContext:
    pool: AsyncConnectionPool
    worker_id: str


Handler = Callable[[Job, JobContext], Awaitable[None]]


@dataclass(frozen=True)
class ExecutorLimits:
    concurrency: int = 4
    batch_size: int = 10
    lease_seconds: int = 300
    poll_interval: float = 5.0
    shutdown_grace: float = 20.0
    retry_base_seconds: float = 5.0  # first retry after 0.5-1x this; doubles per attempt, capped at an hour


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:4000]


class JobExecutor:
    def __init__(self, pool: AsyncConnectionPool, worker_id: str, handlers: Mapping[str, Handler],
                 limits: ExecutorLimits, metrics: WorkerMetrics | None = None) -> None:
        self.pool = pool
        self.metrics = metrics
        self.worker_id = worker_id
        self.handlers = dict(handlers)
        self.limits = limits
        self._running: set[asyncio.Task[None]] = set()

    async def claim(self, n: int) -> list[Job]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "select id, kind, payload, attempts, max_attempts"
                " from private.claim_jobs(%s, %s, %s, make_interval(secs => %s))",
                (self.worker_id, sorted(self.handlers), n, self.limits.lease_seconds))
            jobs = [Job(**row) for row in await cur.fetchall()]
        if self.metrics:
            for job in jobs:
                self.metrics.claimed(job.kind)
        return jobs

    async def execute(self, job: Job) -> None:
        ctx = JobContext(self.pool, self.worker_id)
        fields = {"job_id": job.id, "kind": job.kind, "attempt": job.attempts}
        started = time.monotonic()
        try:
            # finish well before the lease runs out, so that nobody else can be running it too
            async with asyncio.timeout(self.limits.lease_seconds * 0.9):
                await self.handlers[job.kind](job, ctx)
        except asyncio.CancelledError:
            log.warning("job interrupted by shutdown; its lease will expire and it will run again", extra=fields)
            raise
        except Exception as exc:
            error = describe_error(exc)
            dead = job.attempts >= job.max_attempts
            if self.metrics:
                self.metrics.finished(job.kind, "dead" if dead else "failed", time.monotonic() - started)
            log.log(logging.ERROR if dead else logging.WARNING,
                    "job dead-lettered" if dead else "job failed; will retry", extra={**fields, "error": error})
            await self._record("select private.fail_job(%s, %s, %s, make_interval(secs => %s))",
                               (job.id, error, self.worker_id, self.limits.retry_base_seconds), fields)
            return
        if self.metrics:
            self.metrics.finished(job.kind, "succeeded", time.monotonic() - started)
        await self._record("select private.complete_job(%s, %s)", (job.id, self.worker_id), fields)
        log.info("job done", extra=fields)

    async def _record(self, sql: str, params: tuple[Any, ...], fields: dict[str, Any]) -> None:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(sql, params)
                row = await cur.fetchone()
            if not (row and row[0]):
                log.warning("lease was lost before the job finished; outcome not recorded", extra=fields)
        except Exception:
            log.exception("could not record the job's outcome; its lease will expire and it will run again",
                          extra=fields)

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self.execute(job), name=f"job-{job.id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def run(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """Claim and run jobs until `stopping` is set, then give running jobs `shutdown_grace` seconds."""
        while not stopping.is_set():
            free = self.limits.concurrency - len(self._running)
            if free > 0 and self.handlers:
                try:
                    jobs = await self.claim(min(free, self.limits.batch_size))
                except Exception:
                    log.exception("claiming jobs failed; retrying after the poll interval")
                    jobs = []
                for job in jobs:
                    self._start(job)
                if jobs and len(jobs) == min(free, self.limits.batch_size):
                    continue  # there may be more ready right now
            await wait_or_poll(wake, self.limits.poll_interval if free > 0 else min(self.limits.poll_interval, 0.2))
        await self.drain_running()

    async def drain_running(self) -> None:
        if not self._running:
            return
        log.info("waiting for running jobs", extra={"jobs": len(self._running)})
        _, pending = await asyncio.wait(set(self._running), timeout=self.limits.shutdown_grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
