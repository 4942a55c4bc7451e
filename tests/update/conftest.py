"""The update flow's world: the test database with published firmware and an active rollout for a model of
its own, a signed-in user owning a registered device, that device emulated over a real GATT stack, and the
local cloud backend (its Storage object server included)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from dualtetrax.admin import LocalStackBackend, publish_firmware
from dualtetrax.ble.client import DualTetraXClient
from dualtetrax.ble.ota import OtaTimeouts
from dualtetrax.ble.protocol.enums import OtaState
from dualtetrax.cli import main
from dualtetrax.cloud import AuthSession, DtxCloud, LocalCloudBackend
from dualtetrax.emulator import EmulatedDualTetraX, EmulatorWorld, Faults
from dualtetrax.firmware import build_test_image
from dualtetrax.update import UpdateProgress, UpdateResult, update_device
from tests.db.ota_support import rollout
from tests.support.stack import LocalStack

Db = psycopg.Connection[dict[str, Any]]

#: Short limits: the emulated link is unpaced, so these are far above what it needs.
FAST = OtaTimeouts(command=2.0, ready=1.0, write_stall=3.0, validating=2.0, applying=2.0, status_poll=0.2,
                   reboot=2.0, reconnect=5.0)
IMAGE_SIZE = 96 * 1024

#: ota_report_status's allowed moves (private.ota_transition_ok), plus a check-in confirming an update.
ALLOWED = {
    "offered": {"downloading", "transferring", "installing", "succeeded", "failed", "cancelled"},
    "downloading": {"transferring", "failed", "cancelled"},
    "transferring": {"installing", "succeeded", "failed", "cancelled"},
    "installing": {"succeeded", "failed"},
    "failed": {"downloading", "transferring", "cancelled", "succeeded"},
    "timed_out": {"downloading", "transferring", "installing", "succeeded", "failed", "cancelled"},
    "cancelled": {"downloading", "transferring", "succeeded", "offered"},  # a check-in offers it again
}


@pytest.fixture(scope="session")
def image() -> bytes:
    return build_test_image(version="1.1.0", size=IMAGE_SIZE)


@dataclass
class UpdateEnv:
    stack: LocalStack
    db: Db
    storage: Path
    cache: Path
    model: str
    image: bytes
    firmware_id: uuid.UUID
    rollout_id: uuid.UUID
    storage_path: str
    world: EmulatorWorld
    device: EmulatedDualTetraX
    device_id: uuid.UUID
    session: AuthSession
    clouds: list[DtxCloud] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.image).hexdigest()

    async def cloud(self, backend_wrapper: Callable[[LocalCloudBackend], Any] | None = None) -> DtxCloud:
        """A fresh client signed in as the device's owner (a new process would restore its cached session)."""
        backend = LocalCloudBackend(self.stack.dsn(), self.storage)
        cloud = DtxCloud(backend_wrapper(backend) if backend_wrapper else backend)
        await cloud.restore(self.session)
        self.clouds.append(cloud)
        return cloud

    def ble(self) -> DualTetraXClient:
        return DualTetraXClient(self.device.address, backends=self.world.backends, timeout=5.0, scan_timeout=5.0)

    async def update(self, cloud: DtxCloud | None = None, *, progress: Callable[[UpdateProgress], None] | None = None,
                     **options: Any) -> UpdateResult:
        options.setdefault("ota_timeouts", FAST)
        options.setdefault("download_backoff_s", 0.001)
        return await update_device(cloud or await self.cloud(), self.ble(), device_id=self.device_id,
                                   cache_dir=self.cache, progress=progress, **options)

    def history(self) -> list[tuple[str, int | None]]:
        rows = self.db.execute("select phase, error_code from firmware_update_history where device_id = %s"
                               " order by id", (self.device_id,)).fetchall()
        return [(r["phase"], r["error_code"]) for r in rows]

    def phases(self) -> list[str]:
        return [phase for phase, _ in self.history()]

    def status(self) -> dict[str, Any]:
        row = self.db.execute("select * from device_firmware_status where device_id = %s", (self.device_id,)).fetchone()
        assert row is not None
        return dict(row)

    def server_version(self) -> str | None:
        row = self.db.execute("select firmware_version from devices where id = %s", (self.device_id,)).fetchone()
        assert row is not None
        return row["firmware_version"]

    def ota_starts(self) -> int:
        return sum(1 for event in self.device.events if event.startswith("ota: START"))

    async def settle(self) -> None:
        """Wait until the emulated device is idle and advertising, and a reboot into an image it applied (which
        it does even when told to cancel while validating, as the OTA engine does on a cancelled task) is over."""
        device = self.device
        await asyncio.sleep(0.05)  # let the device's own tasks (validation, reboot) start
        for _ in range(300):
            if device.is_advertising and not device.connections and \
                    device.ota_status.state in (OtaState.IDLE, OtaState.ERROR) and \
                    (device.applied_image is None or device.reboots > 0):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the device did not settle: {self.device.ota_status} {self.device.events[-3:]}")

    def assert_legal_history(self) -> None:
        phases = self.phases()
        assert phases[:1] in ([], ["offered"]), phases
        for before, after in itertools.pairwise(phases):
            assert after in ALLOWED[before], f"{before} → {after} in {phases}"

    def assert_updated_once(self) -> None:
        """The server and the device agree on 1.1.0, and the device installed it exactly once."""
        status = self.status()
        assert (status["phase"], status["current_version"]) == ("succeeded", "1.1.0"), status
        assert status["verified_at"] is not None
        assert self.server_version() == "1.1.0"
        assert self.device.firmware_version == "1.1.0" and self.device.applied_image == self.image
        assert self.device.reboots == 1
        assert self.phases().count("succeeded") == 1
        self.assert_legal_history()


@pytest.fixture
async def update_env(stack: LocalStack, db: Db, tmp_path: Path, image: bytes) -> AsyncIterator[UpdateEnv]:
    model = f"UpdTest-{uuid.uuid4().hex[:8]}"  # one live rollout per model: each test has its own
    storage = tmp_path / "storage"
    async with LocalStackBackend(stack.dsn(), storage) as admin:
        published = await publish_firmware(admin, image, version="1.1.0", model=model, publish=True)
    firmware_id = uuid.UUID(published.firmware_id)
    rollout_id = rollout(db, firmware_id, "all_at_once")
    serial = f"DTX-{uuid.uuid4().hex[:10].upper()}"
    owner = DtxCloud(LocalCloudBackend(stack.dsn(), storage))
    session = await owner.sign_up(f"updater-{uuid.uuid4().hex[:10]}@example.test", "correct-horse-battery")
    device_row = await owner.register_device(serial, model=model, firmware_version="1.0.0")
    await owner.close()
    async with EmulatorWorld(air=None) as world:
        device = await world.add_device(firmware_version="1.0.0", serial_number=serial,
                                        faults=Faults(reboot_delay_s=0.02))
        env = UpdateEnv(stack, db, storage, tmp_path / "cache", model, image, firmware_id, rollout_id,
                        published.storage_path, world, device, device_row.id, session)
        try:
            yield env
        finally:
            for cloud in env.clouds:
                await cloud.close()


# --------------------------------------------------------------------------------------------- the CLI

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

    def env(self) -> dict[str, str]:
        """What `dtx` reads: the local stack, its objects, this user's credentials, a private cache."""
        return {"DTX_DATABASE_URL": self.stack.dsn(), "DTX_STORAGE_DIR": str(self.storage),
               "DTX_TOKEN_CACHE": str(self.tmp / "session.json"), "DTX_CONFIG": str(self.tmp / "none.toml"),
               "DTX_EMAIL": self.email, "DTX_PASSWORD": PASSWORD, "DTX_FIRMWARE_CACHE": str(self.tmp / "cache"),
               "DTX_SUPABASE_URL": "", "SUPABASE_URL": "", "DTX_SUPABASE_ANON_KEY": "", "SUPABASE_ANON_KEY": ""}

    def invoke(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["ota", "update", "--device-id", str(self.device_id), "--emulate",
                                         "--emulate-speed", "fast", *args], env=self.env())

    def history(self) -> list[tuple[str, int | None]]:
        rows = self.db.execute("select phase, error_code from firmware_update_history where device_id = %s order by id",
                               (self.device_id,)).fetchall()
        return [(r["phase"], r["error_code"]) for r in rows]

    def server_version(self) -> str | None:
        row = self.db.execute("select firmware_version from devices where id = %s", (self.device_id,)).fetchone()
        assert row is not None
        return row["firmware_version"]


@pytest.fixture
def cli_world(stack: LocalStack, db: Db, tmp_path: Path, image: bytes) -> CliWorld:
    return CliWorld(stack, db, tmp_path, image)
