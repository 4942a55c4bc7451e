"""Monthly reports for 1,000 users, through the worker's own code path.

On a fresh durable cluster: 1,000 users (eight languages round-robin, time zones from UTC-10 to UTC+14), one
device each, about 1.6 sessions a day over September and October 2026 (~95,000 sessions) inserted into
usage_sessions, statistics drained with private.refresh_daily_statistics. Then the schedule
(private.enqueue_due_reports at 2026-11-01 12:00 UTC) creates the 1,000 October requests with their
reports.render jobs, and the real job executor (dtx_worker.jobs.JobExecutor with the registered handlers,
concurrency 4) renders and stores every PDF in a local object folder until all are ready.

value = seconds from the first claim to the last request ready; median_ms = median of each request's
completed_at - started_at; peak_rss_mb = this process's peak resident set (resource.getrusage). Goal: <= 60 s
for all and peak RSS <= 300 MB. No baseline system exists; `baseline` is the goal and `ratio` = goal / value.

    .venv/bin/python tests/bench/reports_batch.py [--users 1000] [--port 54334]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from _common import fresh_stack, report
from psycopg_pool import AsyncConnectionPool

from dtx_worker.handlers import HANDLERS
from dtx_worker.jobs import ExecutorLimits, JobExecutor

LOCALES = ("en", "ko", "ja", "zh", "es", "pt", "th", "vi")
ZONES = ("Asia/Seoul", "America/New_York", "Europe/Madrid", "Asia/Tokyo", "Asia/Shanghai", "America/Sao_Paulo",
         "Asia/Bangkok", "Asia/Ho_Chi_Minh", "Pacific/Kiritimati", "Pacific/Honolulu", "UTC")

BUILD = """
insert into auth.users (id, email, raw_user_meta_data)
select gen_random_uuid(), 'report' || i || '@bench.test',
       jsonb_build_object('timezone', (%(zones)s::text[])[1 + i %% cardinality(%(zones)s::text[])],
                          'locale', (%(locales)s::text[])[1 + i %% 8], 'display_name', 'Bench User ' || i)
  from generate_series(1, %(users)s) i;
update public.profiles set created_at = '2026-01-01';
insert into public.devices (owner_id, serial_number, nickname, firmware_version)
select p.id, 'BENCH-' || substr(md5(p.id::text), 1, 12), 'Bathroom', '1.4.2' from public.profiles p;
insert into public.usage_sessions (id, device_id, user_id, shot_type, device_mode, level, start_time, end_time,
                                   working_duration, pause_duration, pause_count, completion_percent)
select gen_random_uuid(), d.id, d.owner_id, s.shot, (array[1, 17, 33])[s.shot + 1] + (case when s.shot < 2 then
       (abs(hashtext(d.id::text || n::text)) %% 4) else 0 end), 1 + abs(hashtext(n::text || d.id::text)) %% 3,
       s.t, s.t + interval '9 minutes', s.w, 20, 1, 100
  from public.devices d
  cross join generate_series(0, 99) n
  cross join lateral (select (abs(hashtext(d.id::text || 's' || n)) %% 3)::smallint as shot,
                             timestamptz '2026-09-01 00:00Z' + (abs(hashtext(d.id::text || 't' || n)) %% (61 * 1440))
                               * interval '1 minute' as t,
                             case when n %% 5 = 0 then 137 else 480 end as w) s
 where abs(hashtext(d.id::text || 'keep' || n)) %% 100 < 95;
"""


def build(dsn: str, users: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        params = {"zones": list(ZONES), "locales": list(LOCALES), "users": users}
        for statement in BUILD.split(";\n"):
            if statement.strip():
                t = time.perf_counter()
                conn.execute(statement, params)
                print(f"  {statement.split()[0]} {statement.split()[2]}: {time.perf_counter() - t:.1f} s",
                      file=sys.stderr, flush=True)
        t = time.perf_counter()
        while conn.execute("select private.refresh_daily_statistics(500)").fetchone() != (0,):
            pass
        print(f"  statistics drained: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        row = conn.execute("select count(*) from usage_sessions").fetchone()
        assert row is not None
        return int(row[0])


async def render_all(dsn: str, expected: int) -> float:
    pool = AsyncConnectionPool(dsn, min_size=2, max_size=6, open=False, kwargs={"autocommit": True})
    await pool.open(wait=True)
    executor = JobExecutor(pool, "bench", HANDLERS, ExecutorLimits(concurrency=4, batch_size=8, lease_seconds=300,
                                                                   poll_interval=0.05))
    stopping = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(executor.run(asyncio.Event(), stopping))
    try:
        while True:
            async with pool.connection() as conn:
                cur = await conn.execute("select count(*) filter (where status = 'ready'),"
                                         " count(*) filter (where status = 'failed') from report_requests")
                row = await cur.fetchone()
            assert row is not None
            if row[1]:
                raise SystemExit(f"{row[1]} reports failed")
            if row[0] >= expected:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t0
    finally:
        stopping.set()
        await task
        await pool.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--port", type=int, default=54334)
    args = ap.parse_args()
    stack = fresh_stack(args.port)
    try:
        with tempfile.TemporaryDirectory(prefix="dtx-reports-bench-") as tmp:
            os.environ["DTX_WORKER_STORAGE_DIR"] = tmp
            os.environ.pop("SUPABASE_URL", None)  # the local object store, whatever the shell has
            t = time.perf_counter()
            sessions = build(stack.dsn(), args.users)
            print(f"built {args.users} users, {sessions} sessions, statistics drained in "
                  f"{time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
            with psycopg.connect(stack.dsn(), autocommit=True) as conn:
                created = conn.execute("select private.enqueue_due_reports('2026-11-01T12:00:00Z')").fetchone()
            assert created == (args.users,), created
            total = asyncio.run(render_all(stack.dsn(), args.users))
            with psycopg.connect(stack.dsn(), autocommit=True) as conn:
                spans = [r[0] for r in conn.execute(
                    "select extract(epoch from completed_at - started_at) * 1000 from report_requests"
                    " where status = 'ready'").fetchall()]
                notes = conn.execute("select count(*) from notifications where kind = 'report_ready'").fetchone()
            files = list(Path(tmp, "reports").glob("*/*.pdf"))
            sizes = [p.stat().st_size for p in files]
        assert len(files) == args.users and notes == (args.users,), (len(files), notes)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        report(name="reports_batch", value=round(total, 2), unit="s", baseline=60.0, ratio=round(60.0 / total, 2),
               goal="<= 60 s for 1,000 monthly reports, peak RSS <= 300 MB",
               peak_rss_mb=round(peak_mb, 1), median_ms=round(float(statistics.median(spans)), 1),
               reports=len(files), sessions=sessions, mean_pdf_kib=round(statistics.mean(sizes) / 1024, 1),
               note="value = first claim to last ready through JobExecutor + reports.render (8 locales round-robin, "
                    "local object store); median_ms = median of completed_at - started_at per request")
    finally:
        stack.run("stop")


if __name__ == "__main__":
    main()
