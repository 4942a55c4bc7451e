"""Benchmark: 10,000 stored sessions moved from the emulated device to the local database, end to end.

Run alone:  .venv/bin/python tests/bench/sync.py [--sessions 10000] [--port 54338]     (about 3 minutes)

Everything is the production path: the emulated DualTetraX on bumble's GATT stack, reached through the SDK's bleak
client (``EmulatorWorld(air=None)``: the link is as fast as the CPU; device, link and client share this process and
its CPU), ``sync_device`` with its SQLite outbox, and ``DtxCloud`` over the local backend to a fresh *durable*
cluster (fsync on) on its own port. Runs, each with a new user and device:

* **sync** (the headline): ``sync_device`` from connection to "done", 10,000 sessions.
* **baseline**, the app's strategy (device-protocol.md §3.6, upstream-backend.md §6.2), made safe the minimal way:
  GET_SESSIONS of 10, GET_SESSION_DETAIL one at a time, one upload per listing, then CONFIRM_SYNC one at a time.
* **listing10**: ``sync_device`` against a device whose firmware caps a listing at 10 summaries (as many as the app
  asks for), to show what the listing size is worth.
* **paired**: the sync and the baseline alternately, 3 × 2,000 sessions each, for a ratio less exposed to the
  background load of a shared machine (the median of the three ratios).
* **paced link**: ``sync_device`` and the baseline over ``AirModel.le_1m_dle()`` (air time of every PDU, unlimited
  connection events: the best a real link reaches), 600 sessions each.
* **killed**: ``dtx sync --emulate-state …`` as a process (the device's sessions in a state file), SIGKILLed twice at
  random moments while it confirms sessions, then run to completion. ``duplicates`` counts server rows beyond one per
  session id for that device; the server's id set is compared with the device's.

The listing is the window onto the device: it shows unconfirmed sessions only, as many as one notification carries
(15 at MTU 517), and moves only when sessions are confirmed, which the sync does only after the server accepted
them. So every round is listing → details → upload → confirms, strictly in that order.

Progress lines go to stderr; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from _common import ROOT, bench_stack, fresh_stack, report

from dualtetrax.ble.client import DualTetraXClient
from dualtetrax.cloud import DtxCloud
from dualtetrax.cloud.local_backend import LocalCloudBackend
from dualtetrax.emulator import AirModel, EmulatorWorld, sample_sessions
from dualtetrax.emulator.state import DeviceStateFile
from dualtetrax.sync import Outbox, sync_device


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def new_cloud(dsn: str, storage: Path) -> tuple[DtxCloud, str, str]:
    email, password = f"bench-sync-{uuid.uuid4().hex[:10]}@example.test", "bench password"
    cloud = DtxCloud(LocalCloudBackend(dsn, storage))
    await cloud.sign_up(email, password)
    return cloud, email, password


def server_check(dsn: str, device_id: str, device_ids: set[str]) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select id::text, count(*) over (partition by id) from usage_sessions"
                            " where device_id = %s", (device_id,)).fetchall()
    ids = {row[0] for row in rows}
    return {"rows": len(rows), "duplicates": len(rows) - len(ids), "same_set_as_device": ids == device_ids,
            "max_rows_per_id": max((row[1] for row in rows), default=0)}


async def run_engine(dsn: str, storage: Path, count: int, *, listing_cap: int | None = None,
                     air: AirModel | None = None) -> dict[str, Any]:
    cloud, _, _ = await new_cloud(dsn, storage)
    records = sample_sessions(count, seed=random.randrange(1 << 62))
    with tempfile.TemporaryDirectory() as scratch:
        async with EmulatorWorld(air=air) as world, cloud:
            device = await world.add_device(serial_number=f"BENCH-{uuid.uuid4().hex[:8]}", sessions=records,
                                            max_listed_sessions=listing_cap)
            with Outbox(Path(scratch) / "outbox.sqlite") as outbox:
                started = time.perf_counter()
                async with DualTetraXClient(device.address, backends=world.backends) as ble:
                    result = await sync_device(ble, cloud, outbox)
                elapsed = time.perf_counter() - started
                commits = outbox.commits
            assert all(stored.synced for stored in device.sessions.values())
    assert result.device_id is not None
    check = server_check(dsn, result.device_id, {str(r.session_id) for r in records})
    assert check["same_set_as_device"] and check["duplicates"] == 0, check
    return {"rate": count / elapsed, "elapsed_s": elapsed, "rounds": result.rounds,
            "listing": result.largest_listing, "outbox_commits": commits, **check}


async def run_baseline(dsn: str, storage: Path, count: int, *, air: AirModel | None = None) -> dict[str, Any]:
    """The app's request pattern: one request at a time, 10 per listing, an upload per listing."""
    from dualtetrax.sync.payload import device_timing, upload_payload

    cloud, _, _ = await new_cloud(dsn, storage)
    records = sample_sessions(count, seed=random.randrange(1 << 62))
    async with EmulatorWorld(air=air) as world, cloud:
        device = await world.add_device(serial_number=f"BENCH-{uuid.uuid4().hex[:8]}", sessions=records)
        started = time.perf_counter()
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            await ble.sync_time()
            info = await ble.read_device_info()
            assert info.serial_number
            registered = await cloud.register_device(info.serial_number)
            while True:
                listing = await ble.list_sessions(10)
                if not listing.sessions:
                    break
                details = [await ble.get_session(s.session_id) for s in listing.sessions]
                result = await cloud.upload_sessions(registered.id, [upload_payload(r, device_timing(r))
                                                                     for r in details])
                assert len(result.accepted_ids) == len(details)
                for record in details:
                    await ble.confirm_session(record.session_id)
        elapsed = time.perf_counter() - started
    check = server_check(dsn, str(registered.id), {str(r.session_id) for r in records})
    assert check["same_set_as_device"] and check["duplicates"] == 0, check
    return {"rate": count / elapsed, "elapsed_s": elapsed}


def confirmed_on_device(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as state:
            return int(state.execute("select count(*) from sessions where synced = 1").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


async def _account(dsn: str, storage: Path) -> tuple[str, str]:
    cloud, email, password = await new_cloud(dsn, storage)
    await cloud.close()
    return email, password


def run_killed(dsn: str, storage: Path, count: int, kills: int) -> dict[str, Any]:
    email, password = asyncio.run(_account(dsn, storage))
    with tempfile.TemporaryDirectory() as scratch_text:
        scratch = Path(scratch_text)
        env = dict(os.environ, DTX_DATABASE_URL=dsn, DTX_STORAGE_DIR=str(storage), DTX_EMAIL=email,
                   DTX_PASSWORD=password, DTX_TOKEN_CACHE=str(scratch / "session.json"),
                   DTX_CONFIG=str(scratch / "none.toml"))
        state = scratch / "device.sqlite"
        command = [sys.executable, "-c", "from dualtetrax.cli import main; main()", "--json", "sync", "--emulate",
                   "--emulate-speed", "fast", "--emulate-sessions", str(count), "--emulate-state", str(state),
                   "--outbox", str(scratch / "outbox.sqlite")]
        rng = random.Random()
        killed_at = []
        for _ in range(kills):
            before = confirmed_on_device(state)
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       cwd=ROOT)
            while process.poll() is None and confirmed_on_device(state) == before:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.5, 4.0))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()
            killed_at.append(confirmed_on_device(state))
            log(f"  killed with {killed_at[-1]} of {count} confirmed on the device")
        started = time.perf_counter()
        final = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
        rerun_s = time.perf_counter() - started
        assert final.returncode == 0, final.stderr
        result = json.loads(final.stdout)
        with sqlite3.connect(scratch / "outbox.sqlite") as outbox:
            rejected = int(outbox.execute("select count(*) from sessions where outcome = 'rejected'").fetchone()[0])
        device_state = DeviceStateFile(state)
        loaded = device_state.load_sessions()
        device_state.close()
    records = [record for record, _ in loaded]
    assert all(synced for _, synced in loaded) and len(records) == count
    kept = {str(r.session_id) for r in records if r.working_duration_s >= 3}
    check = server_check(dsn, result["sync"]["device_id"], kept)
    assert check["same_set_as_device"] and rejected == 0, (check, rejected)
    return {"rejected": rejected, "killed_at_confirmed": killed_at, "rerun_s": rerun_s, "rerun": result["sync"], "skipped_short":
            count - len(kept), **check}


async def measure_headline(args: argparse.Namespace, dsn: str, storage: Path) -> dict[str, Any]:
    log(f"sync_device, {args.sessions} sessions …")
    ours = await run_engine(dsn, storage, args.sessions)
    log(f"  {ours['rate']:.0f} sessions/s ({ours['elapsed_s']:.1f} s, {ours['rounds']} rounds of "
        f"≤{ours['listing']})")
    return ours


async def measure(args: argparse.Namespace, dsn: str, storage: Path) -> dict[str, Any]:
    ours = await measure_headline(args, dsn, storage)
    log(f"baseline (the app's request pattern), {args.baseline_sessions} sessions …")
    base = await run_baseline(dsn, storage, args.baseline_sessions)
    log(f"  {base['rate']:.0f} sessions/s")
    log(f"sync_device with a 10-summary listing cap, {args.capped_sessions} sessions …")
    capped = await run_engine(dsn, storage, args.capped_sessions, listing_cap=10)
    log(f"  {capped['rate']:.0f} sessions/s")
    pairs: list[tuple[float, float]] = []
    log(f"paired: sync_device and the baseline alternately, {args.pairs}× {args.capped_sessions} sessions each …")
    for _ in range(args.pairs):  # the machine is shared: alternate, so both see the same background load
        engine_rate = (await run_engine(dsn, storage, args.capped_sessions))["rate"]
        baseline_rate = (await run_baseline(dsn, storage, args.capped_sessions))["rate"]
        pairs.append((engine_rate, baseline_rate))
        log(f"  {engine_rate:.0f} vs {baseline_rate:.0f} sessions/s")
    log(f"on a link paced like LE 1M PHY with DLE, {args.air_sessions} sessions: sync_device, then the baseline …")
    air_ours = await run_engine(dsn, storage, args.air_sessions, air=AirModel.le_1m_dle())
    air_base = await run_baseline(dsn, storage, args.air_sessions, air=AirModel.le_1m_dle())
    log(f"  {air_ours['rate']:.0f} vs {air_base['rate']:.0f} sessions/s")
    return {"ours": ours, "base": base, "capped": capped, "air_ours": air_ours, "air_base": air_base,
            "pairs": pairs}


def run_headline_only(args: argparse.Namespace, dsn: str, storage: Path) -> None:
    """``--only-sync``: the headline run alone (for quick before/after comparisons); not the benchmark's report."""
    ours = asyncio.run(measure_headline(args, dsn, storage))
    report(name="sync (headline run only)", value=round(ours["rate"], 1), unit="sessions/s",
           sessions=args.sessions, elapsed_s=round(ours["elapsed_s"], 2), rounds=ours["rounds"],
           sessions_per_listing=ours["listing"], outbox_commits=ours["outbox_commits"],
           duplicates=ours["duplicates"])


def run(args: argparse.Namespace, dsn: str, storage: Path) -> None:
    measured = asyncio.run(measure(args, dsn, storage))
    ours, base, capped = measured["ours"], measured["base"], measured["capped"]
    log(f"dtx sync killed {args.kills}× then rerun, {args.sessions} sessions …")
    killed = run_killed(dsn, storage, args.sessions, args.kills)
    log(f"  rerun {killed['rerun_s']:.1f} s, duplicates {killed['duplicates']}, "
        f"same set {killed['same_set_as_device']}")
    report(name="sync", value=round(ours["rate"], 1), unit="sessions/s", baseline=round(base["rate"], 1),
           ratio=round(ours["rate"] / base["rate"], 2), goal=">= 1000 sessions/s; 0 duplicates after kill+resume",
           duplicates=killed["duplicates"] + ours["duplicates"],
           sessions=args.sessions, elapsed_s=round(ours["elapsed_s"], 2), rounds=ours["rounds"],
           sessions_per_listing=ours["listing"], outbox_commits=ours["outbox_commits"],
           link="EmulatorWorld(air=None): bumble GATT stack, device and client in one process, MTU 517",
           baseline_desc="app pattern: GET_SESSIONS(10), detail one by one, upload per listing, confirm one by one",
           baseline_sessions=args.baseline_sessions,
           listing10_sessions_per_s=round(capped["rate"], 1), listing10_sessions=args.capped_sessions,
           paired={"sessions": args.capped_sessions, "sessions_per_s": [round(a, 1) for a, _ in measured["pairs"]],
                   "baseline_sessions_per_s": [round(b, 1) for _, b in measured["pairs"]],
                   "median_ratio": round(statistics.median(a / b for a, b in measured["pairs"]), 2)},
           paced_link={"model": "AirModel.le_1m_dle()", "sessions": args.air_sessions,
                       "sessions_per_s": round(measured["air_ours"]["rate"], 1),
                       "baseline_sessions_per_s": round(measured["air_base"]["rate"], 1)},
           killed_resumed={"kills": args.kills, "killed_at_confirmed": killed["killed_at_confirmed"],
                           "rerun_s": round(killed["rerun_s"], 2), "server_rows": killed["rows"],
                           "too_short_not_uploaded": killed["skipped_short"], "rejected": killed["rejected"],
                           "same_set_as_device": killed["same_set_as_device"],
                           "rerun_resumed": killed["rerun"]["resumed"],
                           "rerun_duplicates_answered": killed["rerun"]["duplicates"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--baseline-sessions", type=int, default=10_000)
    parser.add_argument("--capped-sessions", type=int, default=2_000)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--air-sessions", type=int, default=600)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--port", type=int, default=54338)
    parser.add_argument("--only-sync", action="store_true",
                        help="run only the headline sync_device run (quick comparisons); not the full report")
    args = parser.parse_args()
    logging.getLogger("bumble").setLevel(logging.CRITICAL)
    try:
        stack = fresh_stack(args.port)
    except BaseException:
        bench_stack(args.port).run("stop")  # a reset that failed half way may have left the cluster running
        raise
    try:
        with tempfile.TemporaryDirectory() as storage:
            (run_headline_only if args.only_sync else run)(args, stack.dsn(), Path(storage))
    finally:
        stack.run("stop")


if __name__ == "__main__":
    main()
