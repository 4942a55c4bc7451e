"""The dtx command line, end to end against the emulated device (``--emulate``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dualtetrax.ble import errors
from dualtetrax.cli import ExitCode, main
from dualtetrax.cli.exit_codes import exit_code_for
from dualtetrax.firmware import build_test_image
from dualtetrax.firmware.errors import ChecksumMismatchError

FAST = ["--emulate", "--emulate-speed", "fast"]


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fw") / "dualtetrax_v9.9.9.bin"  # the name lies; the image says 1.2.0
    path.write_bytes(build_test_image(version="1.2.0", size=24 * 1024))
    return path


def dtx(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def as_json(result: Result) -> object:
    return json.loads(result.stdout)


def test_help_is_fast_and_light() -> None:
    code = "import sys, dualtetrax.cli; print(sorted(m for m in ('bleak', 'bumble', 'esptool', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = dtx("--help")
    assert result.exit_code == 0 and "Exit codes" in result.stdout
    for group in ("ble", "ota", "emulator"):
        assert group in result.stdout


def test_make_image_and_inspect(tmp_path: Path) -> None:
    target = tmp_path / "fw.bin"
    made = dtx("emulator", "make-image", str(target), "--version", "3.1.4", "--size", "48K")
    assert made.exit_code == 0 and "dtx ota flash" in made.stdout
    inspected = dtx("--json", "ota", "inspect", str(target))
    image = as_json(inspected)["image"]  # type: ignore[index]
    assert (image["version"], image["chip"], image["size"]) == ("3.1.4", "ESP32-S3", 48 * 1024)


def test_flash_json(firmware: Path) -> None:
    result = dtx("--json", "ota", "flash", str(firmware), *FAST)
    assert result.exit_code == 0, result.output
    payload = as_json(result)
    assert payload["ok"] is True  # type: ignore[index]
    outcome = payload["result"]  # type: ignore[index]
    assert (outcome["previous_version"], outcome["new_version"], outcome["verified"]) == ("1.0.0", "1.2.0", True)


def test_flash_human_output_with_progress(firmware: Path) -> None:
    result = dtx("ota", "flash", str(firmware), "--emulate")  # realistic pacing; a small image
    assert result.exit_code == 0, result.output
    assert "✓ Updated DualTetraX-A1B1" in result.stdout and "from 1.0.0 to 1.2.0" in result.stdout
    assert "KB/s" in result.stdout and "chunks of 508 bytes at MTU 517" in result.stdout
    assert "100%" in result.stderr  # the progress bar's final state


@pytest.mark.parametrize(
    ("options", "code", "error_type"),
    [
        (["--emulate-battery", "40"], ExitCode.REFUSED, "OtaLowBatteryError"),
        (["--emulate-fault", "reject_start_att_error=0x80"], ExitCode.REFUSED, "OtaRejectedError"),
        (
            ["--emulate-fault", "disconnect_after_bytes=6000", "--retries", "0"],
            ExitCode.CONNECTION,
            "OtaDisconnectedError",
        ),
        (["--emulate-fault", "corrupt_received_byte=700"], ExitCode.UPDATE_FAILED, "OtaValidationFailedError"),
        (["--emulate-fault", "boot_previous_version=true"], ExitCode.UPDATE_FAILED, "OtaVersionMismatchError"),
        (["--device", "11:22:33:44:55:66", "--scan-timeout", "0.3"], ExitCode.NOT_FOUND, "DeviceNotFoundError"),
    ],
)
def test_flash_failures_have_distinct_exit_codes(
    firmware: Path, options: list[str], code: ExitCode, error_type: str
) -> None:
    result = CliRunner().invoke(main, ["--json", "ota", "flash", str(firmware), *FAST, *options])
    assert result.exit_code == code, result.output
    error = as_json(result)["error"]  # type: ignore[index]
    assert error["type"] == error_type and error["exit_code"] == code and error["hint"]


def test_flash_retries_after_a_dropped_link(firmware: Path) -> None:
    result = dtx("--json", "ota", "flash", str(firmware), *FAST, "--emulate-fault", "disconnect_after_bytes=6000")
    assert result.exit_code == 0, result.output
    assert as_json(result)["result"]["attempts"] == 2  # type: ignore[index]


def test_invalid_image_is_refused_before_connecting(firmware: Path, tmp_path: Path) -> None:
    corrupted = tmp_path / "corrupted.bin"
    data = bytearray(firmware.read_bytes())
    data[4096] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    result = dtx("ota", "flash", str(corrupted))  # no --emulate: nothing may touch Bluetooth
    assert result.exit_code == ExitCode.INVALID_IMAGE
    assert "checksum byte" in result.stderr and "download or copy it again" in result.stderr
    mismatch = dtx("--json", "ota", "flash", str(firmware), "--sha256", "00" * 32)
    assert mismatch.exit_code == ExitCode.INVALID_IMAGE
    assert as_json(mismatch)["error"]["type"] == "ExpectedDigestMismatchError"  # type: ignore[index]


def test_unknown_fault_knob_is_a_usage_error(firmware: Path) -> None:
    result = CliRunner().invoke(main, ["ota", "flash", str(firmware), "--emulate", "--emulate-fault", "nope=1"])
    assert result.exit_code == ExitCode.USAGE and "disconnect_after_bytes" in result.output


def test_scan() -> None:
    listed = dtx("--json", "ble", "scan", "--timeout", "0.3", *FAST)
    assert listed.exit_code == 0
    assert [d["name"] for d in as_json(listed)] == ["DualTetraX-A1B1"]  # type: ignore[union-attr]
    table = dtx("ble", "scan", "--timeout", "0.3", *FAST)
    assert "DualTetraX-A1B1" in table.stdout and "F0:F1:F2:F3:A1:B1" in table.stdout


@pytest.mark.parametrize("generation", ["1", "2"])
def test_status(generation: str) -> None:
    result = dtx("--json", "ble", "status", *FAST, "--emulate-generation", generation, "--emulate-battery", "85")
    assert result.exit_code == 0, result.output
    payload = as_json(result)
    assert payload["device"]["status_generation"] == int(generation)  # type: ignore[index]
    assert payload["device"]["firmware_revision"] == "1.0.0"  # type: ignore[index]
    assert payload["status"]["battery_percent"] == 85 and payload["status"]["working_state"] == "standby"  # type: ignore[index]
    human = dtx("ble", "status", *FAST, "--emulate-generation", generation)
    assert "Firmware" in human.stdout and "standby" in human.stdout


def test_status_watch_streams_changes() -> None:
    result = dtx("--json", "ble", "status", *FAST, "--watch", "--for", "1.6")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"status"')]
    assert len(lines) >= 1 and lines[-1]["status"]["working_state"] in ("working", "pause")


def test_sessions_read_and_confirm() -> None:
    listed = dtx("--json", "ble", "sessions", *FAST)
    assert listed.exit_code == 0, listed.output
    records = as_json(listed)
    assert len(records) == 3 and not any(r["confirmed"] for r in records)  # type: ignore[arg-type, index]
    assert {"id", "start_time", "mode_name", "battery_samples"} <= set(records[0])  # type: ignore[index]
    confirmed = dtx("ble", "sessions", *FAST, "--confirm")
    assert confirmed.exit_code == 0 and "Confirmed 3 session(s)" in confirmed.stdout


def test_sessions_on_generation_1_is_refused() -> None:
    result = dtx("--json", "ble", "sessions", *FAST, "--emulate-generation", "1")
    assert result.exit_code == ExitCode.REFUSED
    assert as_json(result)["error"]["type"] == "UnsupportedDeviceError"  # type: ignore[index]


def test_faults_listing() -> None:
    result = dtx("--json", "emulator", "faults")
    knobs = {row["knob"]: row for row in as_json(result)}  # type: ignore[union-attr]
    assert "disconnect_after_bytes" in knobs and knobs["drop_status"]["description"]


def test_exit_code_mapping() -> None:
    assert exit_code_for(ChecksumMismatchError("x")) is ExitCode.INVALID_IMAGE
    assert exit_code_for(errors.OtaCancelledError("x")) is ExitCode.CANCELLED
    assert exit_code_for(errors.OtaTimeoutError("x")) is ExitCode.TIMEOUT
    assert exit_code_for(errors.ConnectionFailedError("x")) is ExitCode.CONNECTION
    assert exit_code_for(errors.BluetoothUnavailableError("x")) is ExitCode.BLUETOOTH_UNAVAILABLE
    assert exit_code_for(errors.MalformedPayloadError("x")) is ExitCode.ERROR
