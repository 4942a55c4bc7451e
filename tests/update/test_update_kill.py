"""`dtx ota update` as a real process, SIGKILLed mid-transfer (no chance to report anything), then run again.

The emulated device lives in the killed process, so it dies with it mid-transfer — as a device that loses
the link discards its partial image, the next process's emulated device runs the old firmware again. What
must survive the kill is on the server and on disk: the rerun closes the stopped attempt as ``failed``
(``INTERRUPTED``), reuses the verified download, and finishes the update.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.stack import ROOT
from tests.update.conftest import CliWorld


def test_sigkill_mid_transfer_then_rerun(cli_world: CliWorld) -> None:
    env = {**os.environ, **cli_world.env()}
    command = [sys.executable, "-c", "from dualtetrax.cli import main; main()", "--json", "ota", "update",
               "--device-id", str(cli_world.device_id), "--emulate"]  # realistic link speed: ~1 s of transfer
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while ("transferring", None) not in cli_world.history():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the update never started transferring"
            time.sleep(0.02)
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
    assert process.returncode == -signal.SIGKILL
    assert cli_world.history() == [("offered", None), ("downloading", None), ("transferring", None)]
    cache = Path(env["DTX_FIRMWARE_CACHE"])
    assert [p.suffix for p in cache.iterdir()] == [".bin"]  # verified before the transfer began

    rerun = cli_world.invoke("--json")
    assert rerun.exit_code == 0, rerun.output
    result = json.loads(rerun.stdout)["result"]
    assert result["outcome"] == "updated" and result["version"] == "1.1.0"
    assert result["reported"] == ["failed", "downloading", "transferring", "installing", "succeeded"]
    assert result["download"]["cached"] is True and result["download"]["bytes_fetched"] == 0
    assert cli_world.history()[2:] == [("transferring", None), ("failed", 130), ("downloading", None),
                                   ("transferring", None), ("installing", None), ("succeeded", None)]
    row = cli_world.db.execute("select firmware_version from devices where id = %s", (cli_world.device_id,)).fetchone()
    assert row is not None and row["firmware_version"] == "1.1.0"
