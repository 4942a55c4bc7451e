"""Real commits as Realtime events for the worker's tests (the server itself is tests/support/fake_realtime.py)."""

from __future__ import annotations

import psycopg

from tests.support.fake_realtime import FakeRealtime

__all__ = ["FakeRealtime", "feed_from_database"]


async def feed_from_database(fake: FakeRealtime, dsn: str) -> None:
    """Emit a `jobs` INSERT for every job committed from now on, and a `stats_dirty_days` INSERT whenever
    days are marked dirty, until cancelled (Realtime's replication poller, in miniature)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener, \
            await psycopg.AsyncConnection.connect(dsn, autocommit=True) as reader:
        cur = await reader.execute("select coalesce(max(id), 0) from jobs")
        row = await cur.fetchone()
        last = int(row[0]) if row else 0
        await listener.execute("listen dtx_jobs")
        async for note in listener.notifies():
            if note.payload == "stats":
                cur = await reader.execute("select user_id::text, device_id::text, local_date::text"
                                           " from stats_dirty_days order by marked_at desc limit 1")
                mark = await cur.fetchone()
                if mark:
                    await fake.emit_insert("stats_dirty_days", dict(zip(("user_id", "device_id", "local_date"),
                                                                        mark, strict=True)))
                continue
            cur = await reader.execute("select id from jobs where id > %s order by id", (last,))
            for (job_id,) in await cur.fetchall():
                last = max(last, int(job_id))
                await fake.emit_insert("jobs", {"id": job_id})
