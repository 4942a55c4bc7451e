"""One rollout evaluation (private.evaluate_rollouts, what the worker's rollouts.evaluate job runs) over
1,000,000 device status rows: 5 active rollouts, devices spread over every phase, 2 % of them stuck past the
in-progress timeout (so the first evaluation also expires them, a worst case; the worker evaluates every minute,
so expiries normally trickle). Goal: <= 1 s. No baseline system exists to run
side by side; `baseline` is the goal and `ratio` = goal / measured (above 1 is better).

    .venv/bin/python tests/bench/rollout_eval.py [--devices 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg
from _common import fresh_stack, report

PHASES = ["offered", "downloading", "transferring", "installing", "succeeded", "failed", "cancelled", "idle"]


def build(dsn: str, devices: int) -> None:
    owners = max(1, devices // 10)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) select md5('o' || g)::uuid, 'o' || g || '@bench.test'"
                     " from generate_series(1, %s) g", (owners,))
        conn.execute("insert into devices (id, owner_id, serial_number, model, firmware_version)"
                     " select md5('d' || g)::uuid, md5('o' || (1 + g %% %s))::uuid, 'B-' || g, 'DTX-M' || (g %% 5), '1.0.0'"
                     " from generate_series(1, %s) g", (owners, devices))
        for m in range(5):
            conn.execute("insert into firmware_versions (version, version_code, model, storage_path, size_bytes, sha256)"
                         " values ('1.1.0', 10100, %s, %s, 4096, repeat('a', 64))", (f"DTX-M{m}", f"M{m}/1.1.0.bin"))
        conn.execute("update firmware_versions set status = 'published'")
        conn.execute("select set_config('dtx.clock', '2026-06-01T00:00:00Z', false)")
        for m in range(5):
            conn.execute(
                "select public.admin_start_rollout((public.admin_create_rollout(f.id, 'bench', 'staged',"
                " '[{\"percent\": 50, \"soak_minutes\": 60}, {\"percent\": 100, \"soak_minutes\": 0}]'::jsonb,"
                " min_sample_size => 1000, failure_threshold => 90, success_threshold => 99.9)).id)"
                " from firmware_versions f where f.model = %s", (f"DTX-M{m}",))
        # every device has a status row; phases cycle, 2 % stuck mid-transfer for a day
        conn.execute(
            "insert into device_firmware_status (device_id, current_version, current_version_code, last_check_at,"
            " rollout_id, target_version_id, stage, phase, phase_at)"
            " select d.id, '1.0.0', 10000, '2026-06-02T00:00:00Z', r.id, r.firmware_version_id, 0,"
            "  case when g %% 50 = 0 then 'transferring' else (%s::text[])[1 + g %% 8] end,"
            "  case when g %% 50 = 0 then timestamptz '2026-06-01T00:00:00Z' else timestamptz '2026-06-02T23:00:00Z' end"
            " from generate_series(1, %s) g join devices d on d.id = md5('d' || g)::uuid"
            " join firmware_rollouts r on r.model = d.model", (PHASES, devices))
        conn.execute("vacuum analyze")


def evaluate_once(dsn: str) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("set dtx.clock = '2026-06-03T00:00:00Z'")
        t = time.perf_counter()
        conn.execute("select private.evaluate_rollouts()").fetchone()
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--port", type=int, default=54333)
    args = ap.parse_args()
    stack = fresh_stack(args.port)
    try:
        t0 = time.perf_counter()
        build(stack.dsn(), args.devices)
        print(f"built {args.devices} status rows in {time.perf_counter() - t0:.1f} s", flush=True)
        first = evaluate_once(stack.dsn())  # expires the stuck 2 % too
        steady = [evaluate_once(stack.dsn()) for _ in range(3)]
        with psycopg.connect(stack.dsn()) as conn:
            row = conn.execute("select count(*) filter (where phase = 'timed_out'), count(*) from device_firmware_status").fetchone()
        assert row is not None
        typical = statistics.median(steady)
        report(name="rollout_eval", value=round(typical, 3), unit="s", baseline=1.0, ratio=round(1.0 / typical, 2),
               goal="<= 1 s for one evaluation over 1,000,000 status rows",
               first_run_with_mass_expiry_s=round(first, 3), expired_in_first_run=row[0],
               status_rows=row[1], active_rollouts=5,
               note="value = median of 3 evaluations over the 1M rows; the first evaluation also expires the "
                    "20,000 stuck updates (2 %) at once and writes their history rows")
    finally:
        stack.run("stop")


if __name__ == "__main__":
    main()
