"""Housekeeping statements every replica may run (the schedule for them is in `dtx_worker.scheduler`)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


async def reap_expired_leases(pool: AsyncConnectionPool) -> int:
    """Running jobs whose lease expired go back to the queue (or to dead); returns how many."""
    async with pool.connection() as conn:
        cur = await conn.execute("select private.reap_expired_leases()")
        row = await cur.fetchone()
    return int(row[0]) if row else 0
