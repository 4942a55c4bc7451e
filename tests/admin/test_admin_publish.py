"""Publishing firmware end to end against the test database: the image check, the local object store, the
registry row, and all-or-nothing on every failure path; the `dtx firmware` and `dtx rollout` commands."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from dualtetrax.admin import (
    DuplicateVersionError,
    LocalStackBackend,
    RegistrationError,
    RpcError,
    VersionMismatchError,
    publish_firmware,
    storage_path_for,
    version_code_for,
)
from dualtetrax.cli import ExitCode, main
from dualtetrax.firmware import build_test_image
from dualtetrax.firmware.errors import ChecksumMismatchError, FirmwareImageError
from tests.support.stack import LocalStack

BUCKET = "firmware-binaries"
Db = psycopg.Connection[dict[str, Any]]


def model() -> str:
    return f"PubTest-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def image() -> bytes:
    return build_test_image(version="1.2.0", size=16 * 1024)


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
async def backend(stack: LocalStack, storage: Path) -> Any:
    async with LocalStackBackend(stack.dsn(), storage) as b:
        yield b


def rows(db: Db, m: str) -> list[dict[str, Any]]:
    return db.execute("select * from firmware_versions where model = %s", (m,)).fetchall()


def objects(db: Db, m: str) -> list[str]:
    return [r["name"] for r in db.execute(
        "select name from storage.objects where bucket_id = %s and name like %s", (BUCKET, f"{m}/%")).fetchall()]


def files(storage: Path) -> list[str]:
    return sorted(str(p.relative_to(storage)) for p in storage.rglob("*") if p.is_file())


def test_version_codes() -> None:
    assert version_code_for("1.0.23") == 10023
    assert version_code_for("2.10.3-rc1") == 21003
    with pytest.raises(ValueError, match="semantic version"):
        version_code_for("1.2")
    with pytest.raises(ValueError, match="above 99"):
        version_code_for("1.100.0")


async def test_publish_stores_object_and_registers_row(db: Db, backend: LocalStackBackend, storage: Path,
                                                       image: bytes) -> None:
    m = model()
    result = await publish_firmware(backend, image, version="1.2.0", model=m, channel="beta",
                                    changelog="Faster charging", min_version_code=10000, required=True)
    path = storage_path_for(m, "1.2.0")
    assert result.storage_path == path == f"{m}/1.2.0/dualtetrax-1.2.0.bin"
    [row] = rows(db, m)
    assert (row["version"], row["version_code"], row["channel"], row["status"]) == ("1.2.0", 10200, "beta", "draft")
    assert row["sha256"] == hashlib.sha256(image).hexdigest() == result.summary()["sha256"]
    assert (row["size_bytes"], row["storage_path"], row["changelog"]) == (len(image), path, "Faster charging")
    assert (row["min_version_code"], row["is_required"]) == (10000, True)
    assert (storage / BUCKET / path).read_bytes() == image
    assert files(storage) == [f"{BUCKET}/{path}"]  # no temporary file left behind
    assert objects(db, m) == [path]
    obj = db.execute("select metadata from storage.objects where bucket_id = %s and name = %s", (BUCKET, path)).fetchone()
    assert obj is not None and obj["metadata"]["size"] == len(image)
    audit = db.execute("select action from audit_log where target_id = %s", (str(row["id"]),)).fetchall()
    assert [a["action"] for a in audit] == ["firmware.registered"]


async def test_publish_flag_sets_published(db: Db, backend: LocalStackBackend, image: bytes) -> None:
    m = model()
    result = await publish_firmware(backend, image, version="1.2.0", model=m, version_code=77, publish=True)
    [row] = rows(db, m)
    assert (row["status"], row["version_code"]) == ("published", 77)
    assert row["published_at"] is not None and result.firmware["status"] == "published"


async def test_corrupted_image_is_refused_before_upload(db: Db, backend: LocalStackBackend, storage: Path,
                                                        image: bytes) -> None:
    m = model()
    corrupted = bytearray(image)
    corrupted[2000] ^= 0xFF
    with pytest.raises(FirmwareImageError):
        await publish_firmware(backend, bytes(corrupted), version="1.2.0", model=m)
    not_an_image = b"\x7fELF" + bytes(4096)
    with pytest.raises(FirmwareImageError, match="0xE9"):
        await publish_firmware(backend, not_an_image, version="1.2.0", model=m)
    with pytest.raises(FirmwareImageError):
        await publish_firmware(backend, image[:-100], version="1.2.0", model=m)
    assert rows(db, m) == [] and objects(db, m) == [] and files(storage) == []


async def test_version_mismatch_is_refused(db: Db, backend: LocalStackBackend, storage: Path, image: bytes) -> None:
    m = model()
    with pytest.raises(VersionMismatchError, match=r"says version '1\.2\.0', not '1\.3\.0'"):
        await publish_firmware(backend, image, version="1.3.0", model=m)
    assert rows(db, m) == [] and objects(db, m) == [] and files(storage) == []


async def test_refused_registration_removes_the_upload(db: Db, backend: LocalStackBackend, storage: Path,
                                                       image: bytes) -> None:
    m = model()
    # a version code not above the model's existing ones: the upload succeeds, the registration does not
    await publish_firmware(backend, build_test_image(version="1.1.0", size=8 * 1024), version="1.1.0", model=m)
    with pytest.raises(RegistrationError, match="version_code") as caught:
        await publish_firmware(backend, image, version="1.2.0", model=m, version_code=5)
    assert caught.value.cause.code == "22023"
    assert [r["version"] for r in rows(db, m)] == ["1.1.0"]
    assert objects(db, m) == [storage_path_for(m, "1.1.0")]
    assert files(storage) == [f"{BUCKET}/{storage_path_for(m, '1.1.0')}"]


async def test_failing_upload_registers_nothing(db: Db, backend: LocalStackBackend, image: bytes) -> None:
    class BrokenStore(LocalStackBackend):
        async def upload_object(self, bucket: str, path: str, data: bytes, content_type: str) -> None:
            raise OSError("disk full")

    m = model()
    broken = BrokenStore(backend.database_url, backend.storage_dir)
    try:
        with pytest.raises(OSError, match="disk full"):
            await publish_firmware(broken, image, version="1.2.0", model=m)
    finally:
        await broken.close()
    assert rows(db, m) == []


async def test_duplicate_version_is_refused_cleanly(db: Db, backend: LocalStackBackend, storage: Path,
                                                    image: bytes) -> None:
    m = model()
    await publish_firmware(backend, image, version="1.2.0", model=m, publish=True)
    with pytest.raises(DuplicateVersionError, match="already"):
        await publish_firmware(backend, image, version="1.2.0", model=m, version_code=20000)
    # the first release is untouched: its row, its object row and its file
    [row] = rows(db, m)
    assert (row["version_code"], row["status"]) == (10200, "published")
    assert (storage / BUCKET / storage_path_for(m, "1.2.0")).read_bytes() == image
    assert objects(db, m) == [storage_path_for(m, "1.2.0")]


async def test_duplicate_registration_with_the_object_gone_removes_the_new_upload(
        db: Db, backend: LocalStackBackend, storage: Path, image: bytes) -> None:
    m = model()
    await publish_firmware(backend, image, version="1.2.0", model=m)
    await backend.delete_object(BUCKET, storage_path_for(m, "1.2.0"))  # e.g. removed by hand
    with pytest.raises(DuplicateVersionError, match="already registered"):
        await publish_firmware(backend, image, version="1.2.0", model=m, version_code=20000)
    assert objects(db, m) == [] and files(storage) == []


async def test_rpc_errors_are_typed(backend: LocalStackBackend) -> None:
    with pytest.raises(RpcError) as caught:
        await backend.rpc("admin_set_firmware_status", {"firmware_id": str(uuid.uuid4()), "status": "published"})
    assert caught.value.code == "P0002" and caught.value.detail == "firmware version not found"
    with pytest.raises(RpcError, match="no function"):
        await backend.rpc("admin_set_firmware_status", {"bogus": 1})


# ------------------------------------------------------------------------------------------ command line


def dtx(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def local(stack: LocalStack, storage: Path) -> list[str]:
    return ["--database-url", stack.dsn(), "--storage-dir", str(storage)]


def test_cli_publish_list_and_rollout_json(db: Db, stack: LocalStack, storage: Path, tmp_path: Path,
                                           image: bytes) -> None:
    m = model()
    file = tmp_path / "release.bin"
    file.write_bytes(image)
    out = dtx("--json", "firmware", "publish", str(file), "--version", "1.2.0", "--model", m, "--channel", "stable",
              "--changelog", "Better LED timing", "--publish", *local(stack, storage))
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    fw = payload["firmware"]
    assert payload["ok"] is True
    assert (fw["version"], fw["version_code"], fw["status"], fw["model"]) == ("1.2.0", 10200, "published", m)
    assert fw["storage_path"] == storage_path_for(m, "1.2.0") and fw["bucket"] == BUCKET
    assert fw["sha256"] == hashlib.sha256(image).hexdigest()
    assert (storage / BUCKET / fw["storage_path"]).is_file()

    listed = json.loads(dtx("firmware", "list", "--model", m, "--json", *local(stack, storage)).stdout)
    assert [f["id"] for f in listed["firmware"]] == [fw["id"]]

    out = dtx("--json", "rollout", "create", fw["id"], "--name", "cli test", "--stages", "10:1,100:0",
              "--min-sample-size", "2", *local(stack, storage))
    assert out.exit_code == 0, out.output
    ro = json.loads(out.stdout)["rollout"]
    assert (ro["status"], ro["stages"], ro["min_sample_size"]) == ("draft", [{"percent": 10, "soak_minutes": 1},
                                                                           {"percent": 100, "soak_minutes": 0}], 2)
    for action, status, stage in [("start", "active", 0), ("pause", "paused", 0), ("resume", "active", 0),
                                  ("advance", "active", 1)]:
        out = dtx("--json", "rollout", action, ro["id"], "--reason", f"test {action}", *local(stack, storage))
        assert out.exit_code == 0, out.output
        moved = json.loads(out.stdout)["rollout"]
        assert (moved["status"], moved["current_stage"], moved["status_reason"]) == (status, stage, f"test {action}")
    overview = json.loads(dtx("--json", "rollout", "overview", *local(stack, storage)).stdout)
    assert any(r["id"] == ro["id"] and r["percent"] == 100 for r in overview["rollouts"])
    text = dtx("rollout", "abort", ro["id"], *local(stack, storage))
    assert text.exit_code == 0 and "aborted" in text.stdout
    out = dtx("--json", "rollout", "start", ro["id"], *local(stack, storage))
    assert out.exit_code == ExitCode.ERROR
    assert json.loads(out.stdout)["error"]["message"] == "cannot start a rollout that is aborted"


def test_cli_refusals_exit_codes(db: Db, stack: LocalStack, storage: Path, tmp_path: Path, image: bytes) -> None:
    m = model()
    file = tmp_path / "release.bin"
    file.write_bytes(image)
    out = dtx("--json", "firmware", "publish", str(file), "--version", "2.0.0", "--model", m, *local(stack, storage))
    assert out.exit_code == ExitCode.INVALID_IMAGE
    error = json.loads(out.stdout)["error"]
    assert error["type"] == "VersionMismatchError" and "'1.2.0'" in error["message"]

    bad = tmp_path / "bad.bin"
    corrupted = bytearray(image)
    corrupted[-40] ^= 0x01  # the checksum byte's neighbourhood: the segment checksum no longer matches
    bad.write_bytes(bytes(corrupted))
    out = dtx("--json", "firmware", "publish", str(bad), "--version", "1.2.0", "--model", m, *local(stack, storage))
    assert out.exit_code == ExitCode.INVALID_IMAGE
    assert json.loads(out.stdout)["error"]["type"] in {ChecksumMismatchError.__name__, "DigestMismatchError"}

    assert dtx("firmware", "publish", str(file), "--version", "1.2.0", "--model", m, *local(stack, storage)).exit_code == 0
    out = dtx("firmware", "publish", str(file), "--version", "1.2.0", "--model", m, *local(stack, storage))
    assert out.exit_code == ExitCode.ERROR
    assert "already" in out.stderr and "bump the version" in out.stderr
    assert len(rows(db, m)) == 1 and files(storage) == [f"{BUCKET}/{storage_path_for(m, '1.2.0')}"]
