"""Upload throughput through upload_sessions, as PostgREST would call it for authenticated users.

Batches of 100 sessions with 10 battery samples each, 2 client connections, on a fresh durable cluster.
Baseline in the same run: the same rows inserted one statement per row (each session, then its battery
curve row), one transaction per batch, also over 2 connections. Goal: >= 5,000 sessions/s and >= 5x baseline.

    .venv/bin/python tests/bench/ingest.py [--batches 400] [--baseline-batches 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from _common import fresh_stack, make_users_with_devices, report

CONNECTIONS = 2
BATCH = 100
SAMPLES = 10


def make_batch(start: datetime) -> list[dict[str, Any]]:
    items = []
    for i in range(BATCH):
        t = start + timedelta(minutes=15 * i)
        items.append({
            "id": str(uuid.uuid4()), "shot_type": i % 3, "device_mode": (1, 17, 33)[i % 3], "level": 1 + i % 3,
            "start_time": t.isoformat(), "end_time": (t + timedelta(seconds=500)).isoformat(),
            "working_duration": 480, "pause_duration": 20, "pause_count": 1, "termination_reason": 0,
            "completion_percent": 100, "had_temperature_warning": i % 17 == 0, "had_battery_warning": False,
            "battery_start_mv": 4100, "battery_end_mv": 3900, "time_synced": True,
            "battery_samples": [{"elapsed_seconds": 60 * k, "voltage_mv": 4100 - 10 * k} for k in range(SAMPLES)],
        })
    return items


def plan(pairs: list[tuple[uuid.UUID, uuid.UUID]], batches: int) -> list[tuple[uuid.UUID, uuid.UUID, list[dict[str, Any]]]]:
    base = datetime(2023, 1, 1, tzinfo=UTC)
    return [(pairs[b % len(pairs)][0], pairs[b % len(pairs)][1], make_batch(base + timedelta(days=b)))
            for b in range(batches)]


def run_parallel(work: list[Any], fn: Any) -> float:
    chunks = [work[i::CONNECTIONS] for i in range(CONNECTIONS)]
    errors: list[BaseException] = []

    def runner(chunk: list[Any]) -> None:
        try:
            fn(chunk)
        except BaseException as exc:  # surfaced after join
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(c,)) for c in chunks]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def rpc_uploads(dsn: str, work: list[tuple[uuid.UUID, uuid.UUID, list[dict[str, Any]]]]) -> float:
    payloads = [(uid, did, json.dumps(items)) for uid, did, items in work]

    def upload(chunk: list[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for uid, did, body in chunk:
                claims = json.dumps({"sub": str(uid), "role": "authenticated", "aud": "authenticated"})
                with conn.transaction():
                    conn.execute("select set_config('search_path', '\"public\", \"extensions\"', true),"
                                 " set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
                                 (claims,))
                    row = conn.execute("select public.upload_sessions(%s, %s::jsonb)", (did, body)).fetchone()
                    assert row is not None and row[0]["stored"] == BATCH, [
                        r for r in row[0]["results"] if r["status"] != "stored"][:3] if row else row

    return run_parallel(payloads, upload)


def row_by_row(dsn: str, work: list[tuple[uuid.UUID, uuid.UUID, list[dict[str, Any]]]], *,
               transaction_per_batch: bool = True) -> float:
    def insert(chunk: list[tuple[uuid.UUID, uuid.UUID, list[dict[str, Any]]]]) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for uid, did, items in chunk:
                with conn.transaction() if transaction_per_batch else contextlib.nullcontext():
                    for s in items:
                        conn.execute(
                            "insert into usage_sessions (id, device_id, user_id, shot_type, device_mode, level, start_time,"
                            " end_time, working_duration, pause_duration, pause_count, termination_reason, completion_percent,"
                            " had_temperature_warning, had_battery_warning, battery_start_mv, battery_end_mv, time_synced)"
                            " values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                            (s["id"], did, uid, s["shot_type"], s["device_mode"], s["level"], s["start_time"], s["end_time"],
                             s["working_duration"], s["pause_duration"], s["pause_count"], s["termination_reason"],
                             s["completion_percent"], s["had_temperature_warning"], s["had_battery_warning"],
                             s["battery_start_mv"], s["battery_end_mv"], s["time_synced"]))
                        conn.execute("insert into battery_samples (session_id, elapsed_seconds, voltage_mv) values (%s,%s,%s)",
                                     (s["id"], [b["elapsed_seconds"] for b in s["battery_samples"]],
                                      [b["voltage_mv"] for b in s["battery_samples"]]))

    return run_parallel(work, insert)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=400)
    ap.add_argument("--baseline-batches", type=int, default=100)
    ap.add_argument("--port", type=int, default=54331)
    args = ap.parse_args()
    stack = fresh_stack(args.port)
    try:
        pairs = make_users_with_devices(stack.dsn(), 20)
        warm = plan(pairs, 4)
        rpc_uploads(stack.dsn("authenticator"), warm)
        ours_work = plan(pairs, args.batches)
        base_work = plan(pairs, args.baseline_batches)
        ours_s = rpc_uploads(stack.dsn("authenticator"), ours_work)
        base_s = row_by_row(stack.dsn(), base_work)
        auto_work = plan(pairs, args.baseline_batches // 5)
        auto_s = row_by_row(stack.dsn(), auto_work, transaction_per_batch=False)
        ours = args.batches * BATCH / ours_s
        base = args.baseline_batches * BATCH / base_s
        auto = len(auto_work) * BATCH / auto_s
        report(name="ingest", value=round(ours, 1), unit="sessions/s", baseline=round(base, 1),
               ratio=round(ours / base, 2), goal=">= 5000 sessions/s and >= 5x baseline",
               sessions=args.batches * BATCH, samples_per_session=SAMPLES, connections=CONNECTIONS,
               baseline_desc="one INSERT statement per row (session, then its battery curve), one transaction per batch",
               autocommit_baseline=round(auto, 1), ratio_vs_autocommit=round(ours / auto, 2))
    finally:
        stack.run("stop")


if __name__ == "__main__":
    main()
