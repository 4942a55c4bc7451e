"""Periodic housekeeping every replica runs: expired leases go back to the queue, and an hourly prune of
done jobs is enqueued (deduplicated, so many replicas enqueue it once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("dtx_worker.maintenance")

PRUNE_EVERY_SECONDS = 3600
EVALUATE_ROLLOUTS_EVERY_SECONDS = 60


async def reap_expired_leases(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("select private.reap_expired_leases()")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def enqueue_prune(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute("select private.enqueue_job('jobs.prune', '{}'::jsonb,"
                           " 'jobs.prune:' || to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24'))")


async def enqueue_rollout_evaluation(pool: AsyncConnectionPool) -> None:
    """Soak times elapse and in-progress updates time out without any event: evaluate every minute too."""
    async with pool.connection() as conn:
        await conn.execute("select private.enqueue_job('rollouts.evaluate', '{}'::jsonb,"
                           " 'rollouts.evaluate:' || to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI'))")


async def run_maintenance_loop(pool: AsyncConnectionPool, stopping: asyncio.Event, interval: float) -> None:
    next_prune = time.monotonic()
    next_evaluation = time.monotonic()
    while not stopping.is_set():
        try:
            reaped = await reap_expired_leases(pool)
            if reaped:
                log.warning("expired leases returned to the queue", extra={"jobs": reaped})
            if time.monotonic() >= next_prune:
                await enqueue_prune(pool)
                next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
            if time.monotonic() >= next_evaluation:
                await enqueue_rollout_evaluation(pool)
                next_evaluation = time.monotonic() + EVALUATE_ROLLOUTS_EVERY_SECONDS
        except Exception:
            log.exception("maintenance failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
