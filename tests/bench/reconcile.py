"""Nightly reconciliation over 1,000,000 sessions of 10,000 users: the `stats.reconcile` job's handler
(dtx_worker.handlers.statistics.reconcile_statistics: private.reconcile_daily_statistics, then the drain of
the days it marked), in-process against a fresh durable cluster.

Setup, not timed: users in six timezones, one device each, 100 sessions per user spread over the last 30
local days, inserted server-side with `insert ... select generate_series` (the dirty-marking triggers fire as
for uploads); the statistics drain (private.refresh_daily_statistics) brings daily_statistics up to date and
an independent aggregate over usage_sessions confirms it is exact; then drift is written straight into
daily_statistics (bypassing the marks): rows with wrong counts, rows deleted, rows for days without sessions.

Timed: one job with `days` = 30, so every one of the 1,000,000 sessions and every daily_statistics row is
checked (the schedule's own job checks 3 days; timed too, as `nightly_3_days_s`). Afterwards the drift must
be reported exactly and corrected, and the statistics exact again. Goal: <= 30 s. No prior design runs side
by side; `baseline` is the goal and `ratio` = goal / measured (above 1 meets it).

    .venv/bin/python tests/bench/reconcile.py [--sessions 1000000] [--users 10000] [--port 54337]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from typing import Any

import psycopg
from _common import ROOT, fresh_stack, report
from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, str(ROOT / "workers"))
from dtx_worker.handlers.statistics import reconcile_statistics
from dtx_worker.jobs import Job, JobContext

WINDOW_DAYS = 30
TIMEZONES = ["Asia/Seoul", "Europe/Madrid", "America/Sao_Paulo", "America/Los_Angeles", "Asia/Kolkata", "UTC"]
DRIFT_UPDATED, DRIFT_DELETED, DRIFT_INSERTED = 300, 100, 100

USERS = """
insert into auth.users (id, email, raw_user_meta_data)
select md5('u' || g)::uuid, 'u' || g || '@bench.test',
       jsonb_build_object('timezone', (%(tz)s::text[])[1 + g %% cardinality(%(tz)s::text[])])
  from generate_series(0, %(users)s - 1) g
"""
DEVICES = """
insert into devices (id, owner_id, serial_number)
select md5('d' || g)::uuid, md5('u' || g)::uuid, 'R-' || g from generate_series(0, %(users)s - 1) g
"""

# session g belongs to user g mod users; start times are spread over the 28 days before an hour ago, so every
# session lies inside its user's window of 30 local days whatever the timezone and the time of day
SESSIONS = """
insert into usage_sessions (id, device_id, user_id, shot_type, device_mode, level, start_time, end_time,
  working_duration, pause_duration, pause_count, completion_percent, had_temperature_warning,
  had_battery_warning, time_synced)
select md5('s' || g)::uuid, md5('d' || (g %% %(users)s))::uuid, md5('u' || (g %% %(users)s))::uuid,
       g %% 3, (array[1, 17, 33])[1 + g %% 3] + case when g %% 3 < 2 then (g / 3) %% 4 else 0 end, 1 + (g / 7) %% 3,
       t, t + interval '7 minutes', 300 + g %% 240, g %% 30, g %% 3, 100, g %% 41 = 0, g %% 53 = 0, g %% 17 <> 0
  from generate_series(%(lo)s, %(hi)s) g,
       lateral (select now() - interval '1 hour'
                       - make_interval(secs => ((g::bigint * 7919) %% ((%(window)s - 2) * 86400))::float8)) x(t)
"""

EXACT = """
with expected as (
  select s.user_id, s.device_id, (s.start_time at time zone p.timezone)::date as d, count(*) as n,
         sum(s.working_duration) as w, sum(s.pause_duration) as pz, count(*) filter (where s.shot_type = 1) as e,
         count(*) filter (where s.had_temperature_warning) as tw, count(*) filter (where not s.time_synced) as est,
         min(s.start_time) as f, max(s.start_time) as l
    from usage_sessions s join profiles p on p.id = s.user_id group by 1, 2, 3)
select count(*) filter (where ds.user_id is null or e.user_id is null or ds.sessions <> e.n or ds.working_seconds <> e.w
                              or ds.pause_seconds <> e.pz or ds.eshot_sessions <> e.e or ds.temperature_warnings <> e.tw
                              or ds.estimated_sessions <> e.est or ds.first_session_at <> e.f or ds.last_session_at <> e.l
                              or (select sum((v ->> 'sessions')::int) from jsonb_each(ds.mode_breakdown) x(k, v)) <> e.n
                              or (select sum((v ->> 'seconds')::int) from jsonb_each(ds.level_breakdown) x(k, v)) <> e.w),
       count(*)
  from expected e full join daily_statistics ds on ds.user_id = e.user_id and ds.device_id = e.device_id and ds.stat_date = e.d
"""

DRIFT = f"""
update daily_statistics set sessions = sessions + 1, ushot_sessions = ushot_sessions + 1
 where (user_id, device_id, stat_date) in (select user_id, device_id, stat_date from daily_statistics
                                           order by md5(user_id::text || stat_date) limit {DRIFT_UPDATED});
delete from daily_statistics
 where (user_id, device_id, stat_date) in (select user_id, device_id, stat_date from daily_statistics
                                           order by md5(user_id::text || stat_date) desc limit {DRIFT_DELETED});
-- rows for days without sessions: second devices that never uploaded, two days ago (inside every window)
insert into devices (id, owner_id, serial_number)
select md5('x' || g)::uuid, md5('u' || g)::uuid, 'R-X-' || g from generate_series(1, {DRIFT_INSERTED}) g;
insert into daily_statistics (user_id, device_id, stat_date, sessions, ushot_sessions)
select md5('u' || g)::uuid, md5('x' || g)::uuid, current_date - 2, 1, 1 from generate_series(1, {DRIFT_INSERTED}) g;
"""


def build(dsn: str, users: int, sessions: int) -> dict[str, float]:
    took: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute(USERS, {"users": users, "tz": TIMEZONES})
        conn.execute(DEVICES, {"users": users})
        chunk = 200_000
        for lo in range(0, sessions, chunk):
            conn.execute(SESSIONS, {"users": users, "lo": lo, "hi": min(sessions, lo + chunk) - 1, "window": WINDOW_DAYS})
        took["insert_s"] = time.perf_counter() - t
        conn.execute("vacuum analyze")
        t = time.perf_counter()
        while True:
            row = conn.execute("select private.refresh_daily_statistics(100000)").fetchone()
            if row is None or row[0] == 0:
                break
        took["initial_refresh_s"] = time.perf_counter() - t
        conn.execute("vacuum analyze")
    return took


def exactness(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(EXACT).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def run_job(dsn: str, days: int) -> float:
    async with AsyncConnectionPool(dsn, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False) as pool:
        await pool.open(wait=True)
        t = time.perf_counter()
        await reconcile_statistics(Job(id=1, kind="stats.reconcile", payload={"days": days}, attempts=1, max_attempts=3),
                                   JobContext(pool=pool, worker_id="bench"))
        return time.perf_counter() - t


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--port", type=int, default=54337)
    args = ap.parse_args()
    stack = fresh_stack(args.port)
    captured = Captured()
    logging.getLogger("dtx_worker.stats").addHandler(captured)
    logging.getLogger("dtx_worker.stats").setLevel(logging.INFO)
    try:
        dsn = stack.dsn()
        setup = build(dsn, args.users, args.sessions)
        wrong, days = exactness(dsn)
        assert wrong == 0, f"{wrong} of {days} days wrong before the timed run"
        print(f"setup: {setup}, {days} daily_statistics rows, exact", file=sys.stderr)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(DRIFT)
        wrong_before, _ = exactness(dsn)
        assert wrong_before == DRIFT_UPDATED + DRIFT_DELETED + DRIFT_INSERTED, wrong_before

        load = os.getloadavg()[0]
        seconds = asyncio.run(run_job(dsn, WINDOW_DAYS))
        drifted: Any = [r for r in captured.records if r.getMessage() == "statistics drift corrected"]
        assert len(drifted) == 1, [r.getMessage() for r in captured.records]
        rec = drifted[0].__dict__
        found = {"updated": rec["updated"], "deleted": rec["deleted"], "inserted": rec["inserted"]}
        # a bogus row is "deleted" by reconcile; a deleted row must be "inserted"
        assert found == {"updated": DRIFT_UPDATED, "deleted": DRIFT_INSERTED, "inserted": DRIFT_DELETED}, found
        wrong_after, days_after = exactness(dsn)
        assert wrong_after == 0, f"{wrong_after} days still wrong after reconciliation"

        captured.records.clear()
        nightly = asyncio.run(run_job(dsn, 3))
        assert [r.getMessage() for r in captured.records] == ["statistics reconciled; no drift"]
        report(name="reconcile", value=round(seconds, 2), unit="s", baseline=30.0, ratio=round(30.0 / seconds, 2),
               goal="<= 30 s for 1,000,000 sessions / 10,000 users", sessions=args.sessions, users=args.users,
               window_days=WINDOW_DAYS, rows_checked=rec["rows_checked"], daily_rows=days_after,
               drift_corrected=sum(found.values()), exact=True, nightly_3_days_s=round(nightly, 2),
               setup_insert_s=round(setup["insert_s"], 1), setup_refresh_s=round(setup["initial_refresh_s"], 1),
               loadavg=round(load, 2))
    finally:
        stack.run("stop")


if __name__ == "__main__":
    main()
