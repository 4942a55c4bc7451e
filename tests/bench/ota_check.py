"""ota_check_update throughput and latency, as device owners would call it through PostgREST.

100,000 devices of 5 models (20,000 owners), 50 published versions (10 per model), 5 active rollouts
(staged, all-at-once, beta, manual and a staged downgrade-free one), 2 client connections, each call a
PostgREST-style transaction: BEGIN; the role and JWT-claims preamble; the call; COMMIT. Every device checks in
once (in a shuffled order), then a random quarter checks again. Goal: >= 3,000 checks/s and p99 <= 5 ms. There is
no baseline system to run side by side; `baseline` is the goal itself and `ratio` = measured / goal.

The load generator is PostgreSQL's own pgbench (``--client pgbench``, the default): a compiled client with
prepared statements, as PostgREST is, so the figure is the database's and not a Python client's (which shares
the same two cores). The call order is a table the pgbench script reads with a sequence, so each device's
first check and the re-checks happen exactly as described. ``--client python`` runs the same transactions from
two Python processes (psycopg, one simple-query message per request) for comparison.

    .venv/bin/python tests/bench/ota_check.py [--devices 100000] [--client pgbench|python]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from _common import fresh_stack, report

MODELS = [f"DTX-M{i}" for i in range(5)]


def build_fleet(dsn: str, devices: int) -> None:
    owners = devices // 5
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) select md5('o' || g)::uuid, 'owner' || g || '@bench.test'"
                     " from generate_series(1, %s) g", (owners,))
        conn.execute(
            "insert into devices (id, owner_id, serial_number, model, hardware_revision, firmware_version, is_beta, tags)"
            " select md5('d' || g)::uuid, md5('o' || (1 + g %% %s))::uuid, 'BENCH-' || g, 'DTX-M' || (g %% 5), 'rev-c',"
            "  '1.' || (g %% 5) || '.0', g %% 50 = 0, case when g %% 97 = 0 then '{qa}'::text[] else '{}' end"
            " from generate_series(1, %s) g", (owners, devices))
        for _m, model in enumerate(MODELS):
            for v in range(10):
                conn.execute(
                    "insert into firmware_versions (version, version_code, model, storage_path, size_bytes, sha256, status)"
                    " values (%s, %s, %s, %s, 1500000, repeat('a', 64), 'draft')",
                    (f"1.{v}.0", 10000 + v * 100, model, f"{model}/1.{v}.0.bin"))
            conn.execute("update firmware_versions set status = 'published' where model = %s", (model,))
        strategies = [("staged", '[{"percent": 10, "soak_minutes": 0}, {"percent": 100, "soak_minutes": 0}]'),
                      ("all_at_once", '[{"percent": 100, "soak_minutes": 0}]'),
                      ("beta", '[{"percent": 100, "soak_minutes": 0}]'),
                      ("staged", '[{"percent": 50, "soak_minutes": 0}, {"percent": 100, "soak_minutes": 0}]'),
                      ("all_at_once", '[{"percent": 100, "soak_minutes": 0}]')]
        for model, (strategy, stages) in zip(MODELS, strategies, strict=True):
            fw = conn.execute("select id from firmware_versions where model = %s and version = '1.9.0'", (model,)).fetchone()
            assert fw is not None
            r = conn.execute("select (public.admin_create_rollout(%s, %s, %s, %s::jsonb, beta_tags => '{qa}')).id",
                             (fw[0], f"{model} 1.9.0", strategy, stages)).fetchone()
            assert r is not None
            conn.execute("select public.admin_start_rollout(%s)", (r[0],))
        conn.execute("analyze")


PREAMBLE = ("select set_config('search_path', '\"public\", \"extensions\"', true),"
            " set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)")
#: A PostgREST request's transaction, sent as one simple-query message (one round trip; the server runs the
#: same four statements PostgREST runs: BEGIN, the role/claims preamble, the call, COMMIT).
REQUEST = f"begin; {PREAMBLE}; select public.ota_check_update(%s, %s); commit"


def _client(args: tuple[str, list[tuple[uuid.UUID, uuid.UUID, str]]]) -> list[float]:
    """One client process on one connection, calling as each device's owner in turn; latencies in seconds."""
    dsn, chunk = args
    latencies = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        for owner, device, version in chunk:
            claims = json.dumps({"sub": str(owner), "role": "authenticated", "aud": "authenticated"})
            t = time.perf_counter()
            cur.execute(REQUEST, (claims, device, version))
            cur.nextset()  # the preamble's row
            cur.nextset()  # the call's row
            row = cur.fetchone()
            latencies.append(time.perf_counter() - t)
            assert row is not None and isinstance(row[0], dict) and "update_available" in row[0], row
    return latencies


def run_checks(dsn: str, calls: list[tuple[uuid.UUID, uuid.UUID, str]]) -> tuple[list[float], float]:
    """Two client processes (devices are independent clients; processes keep the GIL out of the numbers), one
    connection each. Returns the latencies and the wall time from the first call to the last."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_client, [(dsn, [])] * 2)  # warm the workers before the clock starts
        t = time.perf_counter()
        parts = pool.map(_client, [(dsn, calls[i::2]) for i in range(2)])
        elapsed = time.perf_counter() - t
    return [x for part in parts for x in part], elapsed


PGBENCH_SCRIPT = (
    "BEGIN;\n"
    "select set_config('search_path', '\"public\", \"extensions\"', true), set_config('role', 'authenticated', true),"
    " set_config('request.jwt.claims', json_build_object('sub', c.owner, 'role', 'authenticated',"
    " 'aud', 'authenticated')::text, true), c.device, c.version"
    " from bench.calls c where c.n = (select nextval('bench.call_seq')) \\gset\n"
    "select public.ota_check_update(:device, :version);\n"
    "COMMIT;\n"
)


def pgbench_checks(stack: Any, calls: list[tuple[uuid.UUID, uuid.UUID, str]], workdir: Path
                   ) -> tuple[list[float], float]:
    """Run the calls through pgbench (2 clients, prepared statements); latencies (s) and the wall time."""
    import glob
    import subprocess

    with psycopg.connect(stack.dsn(), autocommit=True) as conn:
        conn.execute("create schema if not exists bench")
        conn.execute("create table bench.calls (n bigint primary key, owner uuid, device uuid, version text)")
        with conn.cursor().copy("copy bench.calls (n, owner, device, version) from stdin") as copy:
            for n, (owner, device, version) in enumerate(calls, start=1):
                copy.write_row((n, owner, device, version))
        conn.execute("create sequence bench.call_seq")
        conn.execute("grant usage on schema bench to authenticator, authenticated;"
                     " grant select on bench.calls to authenticator, authenticated;"
                     " grant usage on bench.call_seq to authenticator, authenticated")
        conn.execute("analyze bench.calls")
        conn.execute("checkpoint")  # the load is not part of the run: start without its dirty buffers
    script = workdir / "ota_check.pgb"
    script.write_text(PGBENCH_SCRIPT)
    pgbench = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), "pgbench")
    per_client = len(calls) // 2
    t = time.perf_counter()
    done = subprocess.run([pgbench, "-h", "127.0.0.1", "-p", str(stack.port), "-U", "authenticator", "-n", "-c", "2",
                    "-j", "2", "-M", "prepared", "-t", str(per_client), "-f", str(script), "-l",
                    f"--log-prefix={workdir / 'lat'}", "postgres"],
                          capture_output=True, text=True, env={**os.environ, "PGPASSWORD": "postgres"})
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
    elapsed = time.perf_counter() - t
    latencies = []
    for log in workdir.glob("lat.*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            latencies.append(int(fields[2]) / 1e6)  # client, transaction, latency in µs, …
    assert len(latencies) == 2 * per_client, (len(latencies), per_client)
    return latencies, elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--port", type=int, default=54332)
    ap.add_argument("--client", choices=["pgbench", "python"], default="pgbench")
    args = ap.parse_args()
    stack = fresh_stack(args.port)
    try:
        t0 = time.perf_counter()
        build_fleet(stack.dsn(), args.devices)
        print(f"fleet built in {time.perf_counter() - t0:.1f} s", flush=True)
        owners = args.devices // 5
        rng = random.Random(7)
        ids = list(range(1, args.devices + 1))
        rng.shuffle(ids)
        import hashlib

        def uid(s: str) -> uuid.UUID:
            return uuid.UUID(hashlib.md5(s.encode()).hexdigest())

        calls = [(uid(f"o{1 + g % owners}"), uid(f"d{g}"), f"1.{g % 5}.0") for g in ids]
        calls += rng.sample(calls, len(calls) // 4)
        if args.client == "pgbench":
            import tempfile

            with tempfile.TemporaryDirectory() as workdir:
                lat, elapsed = pgbench_checks(stack, calls, Path(workdir))
        else:
            lat, elapsed = run_checks(stack.dsn("authenticator"), calls)
        rate = len(calls) / elapsed
        lat_ms = sorted(x * 1000 for x in lat)
        p99 = lat_ms[int(len(lat_ms) * 0.99)]
        with psycopg.connect(stack.dsn()) as conn:
            offered = conn.execute("select count(*) from device_firmware_status where phase = 'offered'").fetchone()
        report(name="ota_check", value=round(rate, 1), unit="checks/s", baseline=3000, ratio=round(rate / 3000, 2),
               goal=">= 3000 checks/s and p99 <= 5 ms", p99_ms=round(p99, 2), p50_ms=round(statistics.median(lat_ms), 2),
               checks=len(lat), devices=args.devices, offered=offered[0] if offered else None, connections=2,
               client=args.client)
    finally:
        stack.run("stop")


if __name__ == "__main__":
    main()
