"""The statistics drain: recompute dirty (user, device, local day) marks until none are left."""

from __future__ import annotations

import asyncio
import logging

from psycopg_pool import AsyncConnectionPool

from dtx_worker.wakeups import wait_or_poll

log = logging.getLogger("dtx_worker.stats")


async def drain_dirty_days(pool: AsyncConnectionPool, batch_size: int) -> int:
    """Recompute batches until a batch finds nothing; returns the number of days recomputed."""
    total = 0
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute("select private.refresh_daily_statistics(%s)", (batch_size,))
            row = await cur.fetchone()
        n = int(row[0]) if row else 0
        total += n
        if n == 0:
            return total


async def run_stats_loop(pool: AsyncConnectionPool, batch_size: int, wake: asyncio.Event,
                         stopping: asyncio.Event, poll_interval: float, retry_delay: float = 1.0,
                         min_cycle: float = 0.05) -> None:
    """Drain when woken (or every poll_interval). Drain cycles start at most every `min_cycle` seconds: an idle
    loop drains at once, while under a steady stream of uploads the marks committed during the pause are
    claimed together, so a day touched by several uploads is recomputed once and the recomputation's fixed
    cost per statement is shared, instead of one small recomputation per upload."""
    loop = asyncio.get_running_loop()
    last_start = float("-inf")
    while not stopping.is_set():
        pause = last_start + min_cycle - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)
        last_start = loop.time()
        try:
            n = await drain_dirty_days(pool, batch_size)
            if n:
                log.info("daily statistics recomputed", extra={"days": n})
        except Exception:
            log.exception("statistics drain failed; retrying")
            await asyncio.sleep(retry_delay)
            continue
        await wait_or_poll(wake, poll_interval)
