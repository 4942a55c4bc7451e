"""Admin work through DtxCloud with an admin's own session: publishing firmware (storage and registry policies
check the role), rollouts and the fleet overview; a plain user can do none of it and leaves nothing behind."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from dualtetrax.admin import StorageError
from dualtetrax.cloud import DtxCloud, PermissionDeniedError
from dualtetrax.firmware import build_test_image
from tests.cloud.local_support import signed_up
from tests.support.stack import LocalStack

Conn = psycopg.Connection[dict[str, Any]]


async def promoted(dsn: str, storage: Path, db: Conn) -> DtxCloud:
    cloud = await signed_up(dsn, storage)
    db.execute("update profiles set role = 'admin' where id = %s", (cloud.user_id,))
    return cloud


async def test_admin_publishes_and_rolls_out_with_their_own_session(stack: LocalStack, tmp_path: Path,
                                                                     db: Conn) -> None:
    dsn = stack.dsn()
    admin = await promoted(dsn, tmp_path, db)
    owner = await signed_up(dsn, tmp_path)
    model = f"DTX-C{uuid.uuid4().hex[:6].upper()}"
    image = build_test_image(version="2.0.0", size=16 * 1024)
    published = await admin.publish_firmware(image, version="2.0.0", model=model, publish=True,
                                             changelog="Cloud-published")
    path = f"{model}/2.0.0/dualtetrax-2.0.0.bin"
    assert (tmp_path / "firmware-binaries" / path).read_bytes() == image
    row = db.execute("select owner_id, metadata ->> 'size' as size from storage.objects"
                     " where bucket_id = 'firmware-binaries' and name = %s", (path,)).fetchone()
    assert row == {"owner_id": str(admin.user_id), "size": str(len(image))}

    device = await owner.register_device(f"DTX-{uuid.uuid4().hex[:8].upper()}", model=model,
                                         firmware_version="1.0.0")
    assert (await owner.check_update(device.id, "1.0.0")).update_available is False  # no rollout yet
    rollout = await admin.create_rollout(published.firmware_id, "all now", strategy="all_at_once",
                                         stages=[{"percent": 100, "soak_minutes": 0}], start=True)
    assert rollout.status == "active" and rollout.stages[0].percent == 100
    offer = await owner.check_update(device.id, "1.0.0")
    assert offer.update_available and offer.version == "2.0.0"
    assert offer.sha256 == hashlib.sha256(image).hexdigest() and offer.size_bytes == len(image)
    url = await owner.firmware_url(offer)
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).content == image
    overview = await admin.fleet_overview()
    [mine] = [r for r in overview.rollouts if r.id == rollout.id]
    assert (mine.status, mine.version, mine.phases) == ("active", "2.0.0", {"offered": 1})
    assert rollout.id in [r.id for r in await admin.rollouts()]
    paused = await admin.rollout_action(rollout.id, "pause", "checking")
    assert paused.status == "paused" and paused.status_reason == "checking"
    assert (await owner.check_update(device.id, "1.0.0")).update_available is False
    for c in (admin, owner):
        await c.close()


async def test_a_user_cannot_publish_or_steer_rollouts(stack: LocalStack, tmp_path: Path, db: Conn) -> None:
    user = await signed_up(stack.dsn(), tmp_path)
    model = f"DTX-U{uuid.uuid4().hex[:6].upper()}"
    with pytest.raises(StorageError):
        await user.publish_firmware(build_test_image(version="2.0.0", size=8 * 1024), version="2.0.0", model=model)
    assert not [f for f in (tmp_path / "firmware-binaries").rglob("*") if f.is_file()]
    assert db.execute("select count(*) as n from storage.objects where name like %s",
                      (f"{model}/%",)).fetchone() == {"n": 0}
    assert db.execute("select count(*) as n from firmware_versions where model = %s", (model,)).fetchone() == {"n": 0}
    with pytest.raises(PermissionDeniedError):
        await user.fleet_overview()
    with pytest.raises(PermissionDeniedError):
        await user.rollout_action(uuid.uuid4(), "start")
    await user.close()
