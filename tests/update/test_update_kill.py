"""`dtx ota update` as a real process, SIGKILLed (no chance to report anything or to tell the device), then run
again. The emulated device keeps its firmware version in a state file (``--emulate-state``), so it outlives the
killed process the way a real device outlives the tool: the partial image of a killed transfer is discarded, an
installed image stays installed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support.stack import ROOT
from tests.update.conftest import CliWorld


def state_version(path: Path) -> str | None:
    with sqlite3.connect(path) as db:
        row = db.execute("select value from meta where key = 'firmware_version'").fetchone()
    return None if row is None else str(row[0])


@contextmanager
def dtx_update(world: CliWorld, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-c", "from dualtetrax.cli import main; main()", "--json", "ota", "update",
               "--device-id", str(world.device_id), "--emulate", *args]
    process = subprocess.Popen(command, env={**os.environ, **world.env()}, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, (what, process.communicate())
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_sigkill_mid_transfer_then_rerun(cli_world: CliWorld, tmp_path: Path) -> None:
    world = cli_world
    state = tmp_path / "device.sqlite"
    with dtx_update(world, "--emulate-state", str(state)) as process:  # realistic link speed: ~1 s of transfer
        wait_for(lambda: ("transferring", None) in world.history(), process, "the transfer")
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert process.returncode == -signal.SIGKILL
    assert world.history() == [("offered", None), ("downloading", None), ("transferring", None)]
    assert state_version(state) == "1.0.0"
    cache = Path(world.env()["DTX_FIRMWARE_CACHE"])
    assert [p.suffix for p in cache.iterdir() if p.suffix != ".lock"] == [".bin"]  # verified before the transfer began

    rerun = world.invoke("--json", "--emulate-state", str(state))
    assert rerun.exit_code == 0, rerun.output
    result = json.loads(rerun.stdout)["result"]
    assert (result["outcome"], result["previous_version"], result["version"]) == ("updated", "1.0.0", "1.1.0")
    assert result["reported"] == ["failed", "downloading", "transferring", "installing", "succeeded"]
    assert result["download"]["cached"] is True and result["download"]["bytes_fetched"] == 0
    assert world.history()[2:] == [("transferring", None), ("failed", 130), ("downloading", None),
                                   ("transferring", None), ("installing", None), ("succeeded", None)]
    assert state_version(state) == "1.1.0" and world.server_version() == "1.1.0"


def test_sigkill_after_install_before_succeeded_then_rerun_confirms(cli_world: CliWorld, tmp_path: Path) -> None:
    """The kill lands exactly between the device's reboot into 1.1.0 and the `succeeded` report: the test holds
    the status row's lock, so the report waits in the database until the process is killed (and its request
    with it)."""
    world = cli_world
    state = tmp_path / "device.sqlite"
    locker = psycopg.connect(world.stack.dsn())
    try:
        with dtx_update(world, "--emulate-speed", "fast", "--emulate-state", str(state),
                        "--emulate-fault", "reboot_delay_s=1.0") as process:
            wait_for(lambda: ("installing", None) in world.history(), process, "the installing report")
            locker.execute("select 1 from device_firmware_status where device_id = %s for update", (world.device_id,))
            waiting: list[int] = []

            def report_blocked() -> bool:
                waiting[:] = [r["pid"] for r in world.db.execute(
                    "select pid from pg_stat_activity where wait_event_type = 'Lock'"
                    " and query like '%%ota_report_status%%'").fetchall()]
                return bool(waiting)

            wait_for(report_blocked, process, "the succeeded report")
            assert state_version(state) == "1.1.0"  # the device rebooted into it before the flow could report
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            world.db.execute("select pg_terminate_backend(pid) from unnest(%s::int[]) pid", (waiting,))
    finally:
        locker.rollback()
        locker.close()
    assert world.history() == [("offered", None), ("downloading", None), ("transferring", None), ("installing", None)]

    rerun = world.invoke("--json", "--emulate-state", str(state))
    assert rerun.exit_code == 0, rerun.output
    result = json.loads(rerun.stdout)["result"]
    assert (result["outcome"], result["previous_version"], result["version"]) == ("confirmed", "1.1.0", "1.1.0")
    assert result["reported"] == ["succeeded"] and result["ota"] is None and result["download"] is None
    assert world.history() == [("offered", None), ("downloading", None), ("transferring", None), ("installing", None),
                               ("succeeded", None)]
    status = world.db.execute("select phase, verified_at from device_firmware_status where device_id = %s",
                              (world.device_id,)).fetchone()
    assert status is not None and status["phase"] == "succeeded" and status["verified_at"] is not None
    assert world.server_version() == "1.1.0"
