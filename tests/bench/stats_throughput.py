"""Upload throughput until statistics have converged, three designs side by side on fresh clusters:

- ours: upload_sessions marks (user, device, local day) keys; `dtx-worker run` (the real process: NOTIFY
  wake-ups, the statistics drain private.refresh_daily_statistics in batches of 500) recomputes each marked
  day from the source rows. The worker is started (idle) before the clock starts, like a deployed worker;
- (a) the seed design: a per-row trigger that increments daily_statistics synchronously;
- (b) the existing backend's design: the touched days are recomputed inside each upload call (an idealised,
  in-database version: our upload_sessions, then the same recomputation, in one transaction).

And a reference that is not a design: upload_sessions with no statistics at all (the dirty-marking trigger
disabled), the ceiling of any design that shares this upload, so of every ratio below.

100,000 sessions in batches of 100 from 2 client connections (PostgREST-style transactions as the device
owners); the clock stops when every upload has returned and the statistics have converged (no dirty mark
left; an uncommitted claim still counts as a mark). Statistics must be exact in all three (checked against an
aggregate computed from usage_sessions). Each design runs `--rounds` times, interleaved, on a fresh cluster
each time; its median counts (the machine is shared, so single runs are noisy). Goal: ours >= 3x (a) and
>= 3x (b) in uploads per second; `value` = ours, `ratio` = the smaller of the two ratios.

    .venv/bin/python tests/bench/stats_throughput.py [--sessions 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from _common import ROOT, fresh_stack, report

TIMEZONES = ["Asia/Seoul", "Asia/Tokyo", "Europe/Madrid", "America/Sao_Paulo", "Asia/Bangkok", "America/Los_Angeles"]
BATCH = 100

INCREMENT_TRIGGER = """
create function private.bench_increment() returns trigger language plpgsql security definer set search_path = '' as $$
declare
  day date := (select (new.start_time at time zone p.timezone)::date from public.profiles p where p.id = new.user_id);
  m text := new.device_mode::text;
  l text := new.level::text;
begin
  insert into public.daily_statistics as d (user_id, device_id, stat_date, sessions, working_seconds, pause_seconds,
    ushot_sessions, ushot_seconds, eshot_sessions, eshot_seconds, led_sessions, led_seconds, mode_breakdown,
    level_breakdown, warning_sessions, temperature_warnings, battery_warnings, estimated_sessions,
    first_session_at, last_session_at)
  values (new.user_id, new.device_id, day, 1, new.working_duration, new.pause_duration,
    (new.shot_type = 0)::int, case when new.shot_type = 0 then new.working_duration else 0 end,
    (new.shot_type = 1)::int, case when new.shot_type = 1 then new.working_duration else 0 end,
    (new.shot_type = 2)::int, case when new.shot_type = 2 then new.working_duration else 0 end,
    jsonb_build_object(m, jsonb_build_object('sessions', 1, 'seconds', new.working_duration)),
    jsonb_build_object(l, jsonb_build_object('sessions', 1, 'seconds', new.working_duration)),
    (new.had_temperature_warning or new.had_battery_warning)::int, new.had_temperature_warning::int,
    new.had_battery_warning::int, (not new.time_synced)::int, new.start_time, new.start_time)
  on conflict (user_id, device_id, stat_date) do update set
    sessions = d.sessions + 1, working_seconds = d.working_seconds + excluded.working_seconds,
    pause_seconds = d.pause_seconds + excluded.pause_seconds,
    ushot_sessions = d.ushot_sessions + excluded.ushot_sessions, ushot_seconds = d.ushot_seconds + excluded.ushot_seconds,
    eshot_sessions = d.eshot_sessions + excluded.eshot_sessions, eshot_seconds = d.eshot_seconds + excluded.eshot_seconds,
    led_sessions = d.led_sessions + excluded.led_sessions, led_seconds = d.led_seconds + excluded.led_seconds,
    mode_breakdown = d.mode_breakdown || jsonb_build_object(m, jsonb_build_object(
      'sessions', coalesce((d.mode_breakdown -> m ->> 'sessions')::int, 0) + 1,
      'seconds', coalesce((d.mode_breakdown -> m ->> 'seconds')::int, 0) + new.working_duration)),
    level_breakdown = d.level_breakdown || jsonb_build_object(l, jsonb_build_object(
      'sessions', coalesce((d.level_breakdown -> l ->> 'sessions')::int, 0) + 1,
      'seconds', coalesce((d.level_breakdown -> l ->> 'seconds')::int, 0) + new.working_duration)),
    warning_sessions = d.warning_sessions + excluded.warning_sessions,
    temperature_warnings = d.temperature_warnings + excluded.temperature_warnings,
    battery_warnings = d.battery_warnings + excluded.battery_warnings,
    estimated_sessions = d.estimated_sessions + excluded.estimated_sessions,
    first_session_at = least(d.first_session_at, excluded.first_session_at),
    last_session_at = greatest(d.last_session_at, excluded.last_session_at);
  return null;
end $$;
alter table public.usage_sessions disable trigger usage_sessions_dirty_ins;
create trigger bench_increment after insert on public.usage_sessions for each row execute function private.bench_increment();
"""

RECOMPUTE_IN_UPLOAD = """
create function public.bench_upload_and_recompute(device_id uuid, sessions jsonb) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare r jsonb;
begin
  r := public.upload_sessions(bench_upload_and_recompute.device_id, bench_upload_and_recompute.sessions);
  perform private.refresh_daily_statistics(100000);
  return r;
end $$;
grant execute on function public.bench_upload_and_recompute(uuid, jsonb) to authenticated;
"""

EXACT = """
with expected as (
  select s.user_id, s.device_id, (s.start_time at time zone p.timezone)::date as d, count(*) as n,
         sum(s.working_duration) as w, count(*) filter (where s.shot_type = 1) as e
    from usage_sessions s join profiles p on p.id = s.user_id group by 1, 2, 3)
select count(*) filter (where ds.user_id is null or e.user_id is null or ds.sessions <> e.n or ds.working_seconds <> e.w
                              or ds.eshot_sessions <> e.e) as wrong, count(*) as days
  from expected e full join daily_statistics ds on ds.user_id = e.user_id and ds.device_id = e.device_id and ds.stat_date = e.d
"""

BREAKDOWN_EXACT = """
select count(*) as wrong from daily_statistics ds
 where (select sum((v ->> 'sessions')::int) from jsonb_each(ds.mode_breakdown) x(k, v)) <> ds.sessions
    or (select sum((v ->> 'seconds')::int) from jsonb_each(ds.level_breakdown) x(k, v)) <> ds.working_seconds
"""


def make_work(dsn: str, sessions: int) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    users = max(10, sessions // 500)
    pairs = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(users):
            uid, did = uuid.uuid4(), uuid.uuid4()
            conn.execute("insert into auth.users (id, email, raw_user_meta_data) values (%s, %s, %s)",
                         (uid, f"s{i}-{uid.hex[:6]}@bench.test", json.dumps({"timezone": TIMEZONES[i % len(TIMEZONES)]})))
            conn.execute("insert into devices (id, owner_id, serial_number) values (%s, %s, %s)", (did, uid, f"S-{did.hex[:12]}"))
            pairs.append((uid, did))
    base = datetime(2026, 1, 1, tzinfo=UTC)
    work = []
    for b in range(sessions // BATCH):
        uid, did = pairs[b % len(pairs)]
        items = []
        for i in range(BATCH):
            t = base + timedelta(minutes=(b // len(pairs)) * BATCH * 37 + i * 37)
            items.append({"id": str(uuid.uuid4()), "shot_type": i % 3, "device_mode": (1, 17, 33)[i % 3] + (i % 4 if i % 3 < 2 else 0),
                          "level": 1 + i % 3, "start_time": t.isoformat(), "working_duration": 300 + i,
                          "pause_duration": i % 7, "had_temperature_warning": i % 13 == 0, "time_synced": i % 11 != 0,
                          "battery_samples": [{"elapsed_seconds": 60 * k, "voltage_mv": 4100 - k} for k in range(5)]})
        work.append((uid, did, json.dumps(items)))
    return work


def upload_all(dsn: str, work: list[tuple[uuid.UUID, uuid.UUID, str]], function: str) -> None:
    errors: list[BaseException] = []

    def run(chunk: list[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for uid, did, body in chunk:
                    with conn.transaction():
                        conn.execute("select set_config('role', 'authenticated', true),"
                                     " set_config('request.jwt.claims', %s, true)",
                                     (json.dumps({"sub": str(uid), "role": "authenticated"}),))
                        conn.execute(f"select public.{function}(%s, %s::jsonb)", (did, body))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(work[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def start_worker(dsn: str, log_path: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DATABASE_URL=dsn, DTX_WORKER_LOG_LEVEL="WARNING")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "dtx-worker"), "run"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as conn:  # ready: its LISTEN connection is up
        while not conn.execute("select exists (select 1 from pg_stat_activity where query ilike 'listen%%')").fetchone()[0]:
            assert proc.poll() is None and time.monotonic() < deadline, Path(log_path).read_text()
            time.sleep(0.1)
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_converged(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute("select count(*) from stats_dirty_days").fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.01)


def run_design(design: str, sessions: int, port: int) -> dict[str, Any]:
    stack = fresh_stack(port)
    worker = None
    try:
        work = make_work(stack.dsn(), sessions)
        with psycopg.connect(stack.dsn(), autocommit=True) as conn:
            if design == "per_row_trigger":
                conn.execute(INCREMENT_TRIGGER)
            if design == "recompute_in_upload":
                conn.execute(RECOMPUTE_IN_UPLOAD)
            if design == "upload_only":
                conn.execute("alter table usage_sessions disable trigger usage_sessions_dirty_ins")
        function = "bench_upload_and_recompute" if design == "recompute_in_upload" else "upload_sessions"
        if design == "ours":
            worker = start_worker(stack.dsn(), str(stack.state_dir / "throughput-worker.log"))
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        upload_all(stack.dsn("authenticator"), work, function)
        if design == "ours":
            wait_converged(stack.dsn())
        elif design == "recompute_in_upload":
            with psycopg.connect(stack.dsn(), autocommit=True) as conn:  # marks of the last commits
                conn.execute("select private.refresh_daily_statistics(100000)")
        elapsed = time.perf_counter() - t0
        with psycopg.connect(stack.dsn()) as conn:
            exact = conn.execute(EXACT).fetchone()
            bad_breakdowns = conn.execute(BREAKDOWN_EXACT).fetchone()
        assert exact is not None and bad_breakdowns is not None
        wrong = 0 if design == "upload_only" else exact[0] + bad_breakdowns[0]
        return {"design": design, "uploads_per_s": round(len(work) * BATCH / elapsed, 1), "seconds": round(elapsed, 2),
                "days": exact[1], "wrong_days": wrong, "loadavg": round(load, 2)}
    finally:
        if worker is not None:
            stop_worker(worker)
        stack.run("stop")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=54336)
    ap.add_argument("--only", help="run only this design (for investigation; prints no report)")
    args = ap.parse_args()
    designs = ("ours", "per_row_trigger", "recompute_in_upload", "upload_only")
    if args.only:
        for _ in range(args.rounds):
            print(json.dumps(run_design(args.only, args.sessions, args.port)), flush=True)
        return
    runs: dict[str, list[dict[str, Any]]] = {d: [] for d in designs}
    for r in range(args.rounds):
        for d in designs[r % len(designs):] + designs[:r % len(designs)]:  # rotate the order each round
            res = run_design(d, args.sessions, args.port)
            print(json.dumps(res), flush=True)
            assert res["wrong_days"] == 0, f"statistics not exact for {d}"
            runs[d].append(res)
    rate = {d: statistics.median(x["uploads_per_s"] for x in runs[d]) for d in designs}
    ours = rate["ours"]
    ra = ours / rate["per_row_trigger"]
    rb = ours / rate["recompute_in_upload"]
    report(name="stats_throughput", value=ours, unit="sessions/s",
           baseline=min(rate["per_row_trigger"], rate["recompute_in_upload"]),
           ratio=round(min(ra, rb), 2), goal=">= 3x (a) per-row increment trigger and >= 3x (b) recompute in upload",
           ratio_vs_per_row_trigger=round(ra, 2), ratio_vs_recompute_in_upload=round(rb, 2),
           per_row_trigger=rate["per_row_trigger"], recompute_in_upload=rate["recompute_in_upload"],
           upload_only=rate["upload_only"], ceiling_vs_recompute_in_upload=round(rate["upload_only"] / rate["recompute_in_upload"], 2),
           sessions=args.sessions, rounds=args.rounds, statistic="median", exact=True)


if __name__ == "__main__":
    main()
