"""The schedule table: time-based work, as (name, trigger, enqueue function) entries.

Every replica runs every entry, so an entry must only ENQUEUE a job, under a dedupe key naming the period it
covers (`<kind>:<UTC period>`): `private.enqueue_scheduled_job` makes one job per key however many replicas fire
(and even after the first job has finished), and the job itself is durable and retried like any other.

To add an entry, append a `Schedule` to `SCHEDULES` (triggers are APScheduler 3 triggers, in UTC unless they
say otherwise) and register a handler for its kind in `dtx_worker.handlers.HANDLERS`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from psycopg_pool import AsyncConnectionPool

EnqueueFunction = Callable[[AsyncConnectionPool], Awaitable[int]]


@dataclass(frozen=True)
class Schedule:
    name: str
    trigger: BaseTrigger
    enqueue: EnqueueFunction
    run_at_start: bool = False  # also fire once when the worker starts (for frequent, catch-up-safe work)


async def enqueue_scheduled(pool: AsyncConnectionPool, kind: str, dedupe_key: str,
                            payload: dict[str, Any] | None = None) -> int:
    """Enqueue `kind` unless a job with `dedupe_key` exists (in any status); returns the job's id."""
    async with pool.connection() as conn:
        cur = await conn.execute("select private.enqueue_scheduled_job(%s, %s::jsonb, %s)",
                                 (kind, json.dumps(payload or {}), dedupe_key))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def every_period(kind: str, period_format: str, payload: dict[str, Any] | None = None) -> EnqueueFunction:
    """An enqueue function whose dedupe key is `<kind>:<now in UTC formatted with period_format>`."""

    async def enqueue(pool: AsyncConnectionPool) -> int:
        return await enqueue_scheduled(pool, kind, f"{kind}:{datetime.now(UTC).strftime(period_format)}", payload)

    enqueue.__name__ = f"enqueue_{kind.replace('.', '_')}"
    return enqueue


HOURLY = "%Y-%m-%dT%H"
MINUTELY = "%Y-%m-%dT%H:%M"
DAILY = "%Y-%m-%d"

SCHEDULES: list[Schedule] = [
    # done jobs older than a week are deleted
    Schedule("prune jobs", IntervalTrigger(hours=1), every_period("jobs.prune", HOURLY), run_at_start=True),
    # soak times elapse and in-progress updates time out without any event
    Schedule("evaluate rollouts", IntervalTrigger(minutes=1), every_period("rollouts.evaluate", MINUTELY),
             run_at_start=True),
    # the last 3 local days of every user, checked against usage_sessions
    Schedule("reconcile statistics", CronTrigger(hour=3, minute=30, timezone=UTC),
             every_period("stats.reconcile", DAILY, {"days": 3})),
    # monthly (and opted-in weekly) reports of every user whose local month or week has ended
    Schedule("due reports", IntervalTrigger(hours=1), every_period("reports.schedule", HOURLY), run_at_start=True),
]
