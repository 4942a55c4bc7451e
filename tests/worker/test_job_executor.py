"""The job executor in-process, with test handlers: retries with backoff, dead letter with the error, a
failing job never blocks the others, and two executors never run the same job."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from psycopg_pool import AsyncConnectionPool

from dtx_worker.jobs import ExecutorLimits, Job, JobContext, JobExecutor
from tests.support.stack import LocalStack

FAST = ExecutorLimits(concurrency=4, batch_size=4, lease_seconds=30, poll_interval=0.05, shutdown_grace=2,
                      retry_base_seconds=0.05)


@pytest.fixture
async def pool(stack: LocalStack) -> AsyncIterator[AsyncConnectionPool]:
    p = AsyncConnectionPool(stack.dsn(), min_size=2, max_size=6, open=False, kwargs={"autocommit": True})
    await p.open(wait=True)
    yield p
    await p.close()


async def status_of(pool: AsyncConnectionPool, job_id: int) -> tuple[str, int, str | None]:
    async with pool.connection() as conn:
        cur = await conn.execute("select status, attempts, last_error from jobs where id = %s", (job_id,))
        row = await cur.fetchone()
    assert row is not None
    return row[0], row[1], row[2]


async def enqueue(pool: AsyncConnectionPool, kind: str, max_attempts: int = 5) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("select private.enqueue_job(%s, '{}', null, null, %s)", (kind, max_attempts))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@contextlib.asynccontextmanager
async def running(*executors: JobExecutor) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(e.run(asyncio.Event(), stopping)) for e in executors]
    try:
        yield
    finally:
        stopping.set()
        await asyncio.gather(*tasks)


async def eventually(check: Callable[[], Awaitable[bool]], attempts: int = 200) -> None:
    """Poll check every 50 ms, up to 10 s."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def test_flaky_job_is_retried_and_a_broken_one_dead_lettered_without_blocking_others(
        pool: AsyncConnectionPool) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    calls: Counter[int] = Counter()

    async def flaky(job: Job, ctx: JobContext) -> None:
        calls[job.id] += 1
        if job.attempts < 3:
            raise ConnectionError(f"try {job.attempts}")

    async def broken(job: Job, ctx: JobContext) -> None:
        raise KeyError("user_id")

    async def fine(job: Job, ctx: JobContext) -> None:
        calls[job.id] += 1

    handlers = {f"{prefix}.flaky": flaky, f"{prefix}.broken": broken, f"{prefix}.fine": fine}
    ex = JobExecutor(pool, "exec-1", handlers, FAST)
    async with running(ex):
        flaky_id = await enqueue(pool, f"{prefix}.flaky")
        broken_id = await enqueue(pool, f"{prefix}.broken", max_attempts=2)
        fine_ids = [await enqueue(pool, f"{prefix}.fine") for _ in range(5)]

        async def settled() -> bool:
            states = [await status_of(pool, i) for i in (flaky_id, broken_id, *fine_ids)]
            return all(s[0] in ("done", "dead") for s in states)

        await eventually(settled)
    assert await status_of(pool, flaky_id) == ("done", 3, "ConnectionError: try 2")
    assert await status_of(pool, broken_id) == ("dead", 2, "KeyError: 'user_id'")
    assert [(await status_of(pool, i))[0] for i in fine_ids] == ["done"] * 5
    assert calls[flaky_id] == 3 and all(calls[i] == 1 for i in fine_ids)


async def test_two_executors_never_run_the_same_job(pool: AsyncConnectionPool) -> None:
    kind = f"t{uuid.uuid4().hex[:8]}.count"
    runs: Counter[int] = Counter()

    async def count(job: Job, ctx: JobContext) -> None:
        runs[job.id] += 1
        await asyncio.sleep(0.01)

    ids = [await enqueue(pool, kind) for _ in range(40)]
    a, b = (JobExecutor(pool, w, {kind: count}, FAST) for w in ("exec-a", "exec-b"))
    async with running(a, b):
        async def all_ran() -> bool:
            return sum(runs.values()) >= 40

        await eventually(all_ran)
        await asyncio.sleep(0.2)
    assert sorted(runs) == sorted(ids) and set(runs.values()) == {1}
    async with pool.connection() as conn:
        cur = await conn.execute("select count(*) from jobs where kind = %s and status = 'done'", (kind,))
        assert await cur.fetchone() == (40,)


async def test_unknown_kinds_are_left_for_a_worker_that_knows_them(pool: AsyncConnectionPool) -> None:
    other = await enqueue(pool, f"t{uuid.uuid4().hex[:8]}.future")
    async def known(job: Job, ctx: JobContext) -> None:
        pass

    ex = JobExecutor(pool, "exec-old", {"t.known": known}, FAST)
    async with running(ex):
        await asyncio.sleep(0.3)
    assert (await status_of(pool, other))[0] == "queued"
