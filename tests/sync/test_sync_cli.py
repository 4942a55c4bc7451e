"""``dtx sync`` as a process: JSON output, exit codes, and SIGKILL at random moments followed by a rerun, with the
emulated device kept in a state file so that it outlives each process."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from dualtetrax.emulator.state import DeviceStateFile
from dualtetrax.sync import Outbox
from tests.support.stack import LocalStack
from tests.sync.helpers import assert_complete, assert_never_confirmed_early

SESSIONS = 600
DTX = [sys.executable, "-c", "from dualtetrax.cli import main; main()"]


def environment(stack: LocalStack, tmp_path: Path, account: tuple[str, str]) -> dict[str, str]:
    return dict(os.environ, DTX_DATABASE_URL=stack.dsn(), DTX_STORAGE_DIR=str(tmp_path / "storage"),
                DTX_TOKEN_CACHE=str(tmp_path / "session.json"), DTX_CONFIG=str(tmp_path / "none.toml"),
                DTX_EMAIL=account[0], DTX_PASSWORD=account[1])


def sync_command(tmp_path: Path) -> list[str]:
    return [*DTX, "--json", "sync", "--emulate", "--emulate-speed", "fast", "--emulate-sessions", str(SESSIONS),
            "--emulate-state", str(tmp_path / "device.sqlite"), "--outbox", str(tmp_path / "outbox.sqlite")]


def device_state(tmp_path: Path) -> tuple[list[Any], dict[str, bool]]:
    state = DeviceStateFile(tmp_path / "device.sqlite")
    try:
        loaded = state.load_sessions()
    finally:
        state.close()
    return [record for record, _ in loaded], {str(record.session_id): synced for record, synced in loaded}


def server_device_id(db: psycopg.Connection[dict[str, Any]], email: str) -> str | None:
    row = db.execute("select d.id::text as id from devices d join auth.users u on u.id = d.owner_id"
                     " where u.email = %s and d.serial_number = 'DTX-EMU-0001'", (email,)).fetchone()
    return row["id"] if row else None


def confirmed_count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as state:
            return int(state.execute("select count(*) from sessions where synced = 1").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigkill_at_random_moments_then_rerun(stack: LocalStack, tmp_path: Path, account: tuple[str, str],
                                              db: psycopg.Connection[dict[str, Any]]) -> None:
    env = environment(stack, tmp_path, account)
    rng = random.Random(7)
    kills = mid_sync = 0
    for attempt in range(4):
        before = confirmed_count(tmp_path / "device.sqlite")
        process = subprocess.Popen(sync_command(tmp_path), env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
        if attempt == 0:  # anywhere in start-up: imports, seeding the device, connecting, signing in, registering
            time.sleep(rng.uniform(0.2, 1.2))
        else:  # once it is confirming sessions, a moment later
            deadline = time.monotonic() + 30
            while process.poll() is None and confirmed_count(tmp_path / "device.sqlite") == before:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
        records, confirmed = device_state(tmp_path)
        assert len(records) in (0, SESSIONS)
        mid_sync += 0 < sum(confirmed.values()) < SESSIONS
        assert_never_confirmed_early(confirmed, records, db, server_device_id(db, account[0]))
    assert mid_sync >= 2
    assert kills >= 2
    done = subprocess.run(sync_command(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["outbox"]["confirmed"] == SESSIONS and result["sync"]["device_remaining"] == 0
    records, confirmed = device_state(tmp_path)
    device_id = server_device_id(db, account[0])
    assert device_id is not None and device_id == result["sync"]["device_id"]
    assert_complete(confirmed, records, db, device_id)
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        assert outbox.counts()["confirmed"] == SESSIONS


def test_not_signed_in_exits_10_and_touches_nothing(stack: LocalStack, tmp_path: Path) -> None:
    env = environment(stack, tmp_path, ("nobody@example.test", "wrong password"))
    result = subprocess.run(sync_command(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 10, result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["type"] == "AuthError"
    assert not (tmp_path / "device.sqlite").exists()  # the cloud is checked before the device is touched
