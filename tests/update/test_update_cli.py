"""`dtx ota update` against the local stack and the emulated device: output, JSON, exit codes, server state."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from dualtetrax.admin import LocalStackBackend, publish_firmware
from dualtetrax.cli import ExitCode, main
from dualtetrax.cloud import DtxCloud, LocalCloudBackend
from tests.db.ota_support import rollout
from tests.support.stack import LocalStack

Db = psycopg.Connection[dict[str, Any]]
PASSWORD = "correct-horse-battery"


class CliWorld:
    def __init__(self, stack: LocalStack, db: Db, tmp: Path, image: bytes) -> None:
        self.stack, self.db, self.tmp, self.image = stack, db, tmp, image
        self.storage = tmp / "storage"
        self.email = f"cli-{uuid.uuid4().hex[:10]}@example.test"
        self.model = f"CliUpd-{uuid.uuid4().hex[:8]}"
        self.device_id, self.storage_path = asyncio.run(self._prepare())

    async def _prepare(self) -> tuple[uuid.UUID, str]:
        async with LocalStackBackend(self.stack.dsn(), self.storage) as admin:
            published = await publish_firmware(admin, self.image, version="1.1.0", model=self.model, publish=True)
        rollout(self.db, uuid.UUID(published.firmware_id), "all_at_once")
        cloud = DtxCloud(LocalCloudBackend(self.stack.dsn(), self.storage))
        try:
            await cloud.sign_up(self.email, PASSWORD)
            device = await cloud.register_device(f"CLI-{uuid.uuid4().hex[:10]}", model=self.model,
                                                 firmware_version="1.0.0")
        finally:
            await cloud.close()
        return device.id, published.storage_path

    def invoke(self, *args: str) -> Result:
        env = {"DTX_DATABASE_URL": self.stack.dsn(), "DTX_STORAGE_DIR": str(self.storage),
               "DTX_TOKEN_CACHE": str(self.tmp / "session.json"), "DTX_CONFIG": str(self.tmp / "none.toml"),
               "DTX_EMAIL": self.email, "DTX_PASSWORD": PASSWORD, "DTX_FIRMWARE_CACHE": str(self.tmp / "cache"),
               "DTX_SUPABASE_URL": "", "SUPABASE_URL": "", "DTX_SUPABASE_ANON_KEY": "", "SUPABASE_ANON_KEY": ""}
        return CliRunner().invoke(main, ["ota", "update", "--device-id", str(self.device_id), "--emulate",
                                         "--emulate-speed", "fast", *args], env=env)

    def history(self) -> list[tuple[str, int | None]]:
        rows = self.db.execute("select phase, error_code from firmware_update_history where device_id = %s order by id",
                               (self.device_id,)).fetchall()
        return [(r["phase"], r["error_code"]) for r in rows]


@pytest.fixture
def world(stack: LocalStack, db: Db, tmp_path: Path, image: bytes) -> CliWorld:
    return CliWorld(stack, db, tmp_path, image)


def test_update_json(world: CliWorld) -> None:
    result = world.invoke("--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True
    outcome = payload["result"]
    assert (outcome["outcome"], outcome["previous_version"], outcome["version"]) == ("updated", "1.0.0", "1.1.0")
    assert outcome["reported"] == ["downloading", "transferring", "installing", "succeeded"]
    assert outcome["download"]["bytes_fetched"] == len(world.image) and outcome["ota"]["verified"] is True
    assert [p for p, _ in world.history()] == ["offered", "downloading", "transferring", "installing", "succeeded"]


def test_update_text_output(world: CliWorld) -> None:
    result = world.invoke()
    assert result.exit_code == 0, result.output
    assert "✓ Updated DualTetraX-A1B1 from 1.0.0 to 1.1.0" in result.stdout
    assert f"{len(world.image):,} bytes downloaded" in result.stdout


def test_dropped_link_exits_4_with_the_reported_code(world: CliWorld) -> None:
    result = world.invoke("--json", "--retries", "0", "--emulate-fault", "disconnect_after_bytes=20000")
    assert result.exit_code == ExitCode.CONNECTION == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert (error["type"], error["cause"], error["phase"]) == ("UpdateFailedError", "OtaDisconnectedError",
                                                               "transferring")
    assert (error["error_code"], error["error_code_name"], error["reported"]) == (122, "DISCONNECTED", True)
    assert world.history()[-1] == ("failed", 122)

    text = world.invoke("--retries", "0", "--emulate-fault", "disconnect_after_bytes=20000")
    assert text.exit_code == 4
    assert "error code 122 (DISCONNECTED), reported to the server" in text.stderr


def test_corrupt_binary_exits_6(world: CliWorld) -> None:
    stored = world.storage / "firmware-binaries" / world.storage_path
    data = bytearray(stored.read_bytes())
    data[100] ^= 1
    stored.write_bytes(bytes(data))
    result = world.invoke("--json")
    assert result.exit_code == ExitCode.INVALID_IMAGE == 6, result.output
    error = json.loads(result.stdout)["error"]
    assert (error["cause"], error["error_code"], error["reported"]) == ("HashMismatchError", 102, True)


def test_not_signed_in_exits_10(world: CliWorld) -> None:
    world.email = "nobody@example.test"
    result = world.invoke("--json")
    assert result.exit_code == ExitCode.NOT_SIGNED_IN == 10, result.output
