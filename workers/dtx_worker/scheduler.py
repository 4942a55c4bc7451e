"""Time-based work on APScheduler (AsyncIOScheduler, in the worker's event loop): the entries of
`dtx_worker.schedules.SCHEDULES` (which only enqueue deduplicated jobs), plus this replica's own periodic
tasks, which are idempotent single statements safe to run on every replica: lease reaping every poll interval
and, when metrics are on, refreshing the queue gauges."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from psycopg_pool import AsyncConnectionPool

from dtx_worker.maintenance import reap_expired_leases
from dtx_worker.schedules import SCHEDULES, Schedule

log = logging.getLogger("dtx_worker.scheduler")

LocalTask = Callable[[AsyncConnectionPool], Awaitable[None]]


def _enqueue_entry(pool: AsyncConnectionPool, entry: Schedule) -> Callable[[], Awaitable[None]]:
    async def fire() -> None:
        try:
            job_id = await entry.enqueue(pool)
            log.debug("scheduled job enqueued", extra={"schedule": entry.name, "job_id": job_id})
        except Exception:
            log.exception("scheduled enqueue failed; the next firing tries again", extra={"schedule": entry.name})

    return fire


def _local_task(pool: AsyncConnectionPool, name: str, task: LocalTask) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await task(pool)
        except Exception:
            log.exception("periodic task failed; retrying at its next run", extra={"task": name})

    return run


async def reap_leases(pool: AsyncConnectionPool) -> None:
    reaped = await reap_expired_leases(pool)
    if reaped:
        log.warning("expired leases returned to the queue", extra={"jobs": reaped})


def build_scheduler(pool: AsyncConnectionPool, poll_interval: float, schedules: Sequence[Schedule] = SCHEDULES,
                    local_tasks: Sequence[tuple[str, float, LocalTask]] = ()) -> AsyncIOScheduler:
    """A scheduler (not started) for `schedules`, lease reaping every `poll_interval` seconds, and any
    (name, every_seconds, task) local tasks. Call `.start()` inside the running event loop."""
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every firing at INFO
    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                                              "misfire_grace_time": 600})
    now = datetime.now(UTC)
    for entry in schedules:
        scheduler.add_job(_enqueue_entry(pool, entry), entry.trigger, id=f"schedule:{entry.name}", name=entry.name,
                          **({"next_run_time": now} if entry.run_at_start else {}))
    tasks = [("reap expired leases", poll_interval, reap_leases), *local_tasks]
    for name, every, task in tasks:
        scheduler.add_job(_local_task(pool, name, task), IntervalTrigger(seconds=every), id=f"local:{name}",
                          name=name, next_run_time=now)
    return scheduler
