"""`dtx ota update` against the local stack and the emulated device: output, JSON, exit codes, server state."""

from __future__ import annotations

import json

from dualtetrax.cli import ExitCode
from tests.update.conftest import CliWorld


def test_update_json(cli_world: CliWorld) -> None:
    result = cli_world.invoke("--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True
    outcome = payload["result"]
    assert (outcome["outcome"], outcome["previous_version"], outcome["version"]) == ("updated", "1.0.0", "1.1.0")
    assert outcome["reported"] == ["downloading", "transferring", "installing", "succeeded"]
    assert outcome["download"]["bytes_fetched"] == len(cli_world.image) and outcome["ota"]["verified"] is True
    assert [p for p, _ in cli_world.history()] == ["offered", "downloading", "transferring", "installing", "succeeded"]


def test_update_text_output(cli_world: CliWorld) -> None:
    result = cli_world.invoke()
    assert result.exit_code == 0, result.output
    assert "✓ Updated DualTetraX-A1B1 from 1.0.0 to 1.1.0" in result.stdout
    assert f"{len(cli_world.image):,} bytes downloaded" in result.stdout


def test_dropped_link_exits_4_with_the_reported_code(cli_world: CliWorld) -> None:
    result = cli_world.invoke("--json", "--retries", "0", "--emulate-fault", "disconnect_after_bytes=20000")
    assert result.exit_code == ExitCode.CONNECTION == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert (error["type"], error["cause"], error["phase"]) == ("UpdateFailedError", "OtaDisconnectedError",
                                                               "transferring")
    assert (error["error_code"], error["error_code_name"], error["reported"]) == (122, "DISCONNECTED", True)
    assert cli_world.history()[-1] == ("failed", 122)

    text = cli_world.invoke("--retries", "0", "--emulate-fault", "disconnect_after_bytes=20000")
    assert text.exit_code == 4
    assert "error code 122 (DISCONNECTED), reported to the server" in text.stderr


def test_corrupt_binary_exits_6(cli_world: CliWorld) -> None:
    stored = cli_world.storage / "firmware-binaries" / cli_world.storage_path
    data = bytearray(stored.read_bytes())
    data[100] ^= 1
    stored.write_bytes(bytes(data))
    result = cli_world.invoke("--json")
    assert result.exit_code == ExitCode.INVALID_IMAGE == 6, result.output
    error = json.loads(result.stdout)["error"]
    assert (error["cause"], error["error_code"], error["reported"]) == ("HashMismatchError", 102, True)


def test_not_signed_in_exits_10(cli_world: CliWorld) -> None:
    cli_world.email = "nobody@example.test"
    result = cli_world.invoke("--json")
    assert result.exit_code == ExitCode.NOT_SIGNED_IN == 10, result.output
