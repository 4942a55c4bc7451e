"""DtxCloud over the Supabase backend, at the HTTP boundary: what the high-level calls put on the wire and how
answers come back as models (httpx.MockTransport with Supabase's shapes)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import httpx
import pytest

from dualtetrax.cloud import DtxCloud, ValidationError
from tests.cloud.supabase_fakes import USER_ID, Recorder
from tests.cloud.test_supabase_backend_http import assert_user, signed_in

RPC = "/rest/v1/rpc/upload_sessions"


def upload_answer(request: httpx.Request) -> httpx.Response:
    """upload_sessions as the database answers it: every item stored, indexes local to the batch."""
    items = json.loads(request.content)["sessions"]
    return httpx.Response(200, json={"stored": len(items), "duplicates": 0, "rejected": 0, "results": [
        {"index": i, "id": item["id"], "status": "stored"} for i, item in enumerate(items)]})


async def test_uploads_go_out_in_batches_of_100_with_global_indexes() -> None:
    rec = Recorder({("POST", RPC): upload_answer})
    backend, token = await signed_in(rec)
    cloud = DtxCloud(backend)
    device = uuid.uuid4()
    items: list[dict[str, Any]] = [{"id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 1, "level": 1,
                                    "start_time": dt.datetime(2026, 11, 1, 9, i // 60, i % 60, tzinfo=dt.UTC)}
                                   for i in range(250)]
    result = await cloud.upload_sessions(device, items)
    assert [len(json.loads(r.content)["sessions"]) for r in rec.requests] == [100, 100, 50]
    for request in rec.requests:
        assert_user(request, token)
        assert request.headers["content-type"] == "application/json"
        sent = json.loads(request.content)
        assert set(sent) == {"device_id", "sessions"} and sent["device_id"] == str(device)
    assert json.loads(rec.requests[2].content)["sessions"][0]["start_time"] == "2026-11-01T09:03:20+00:00"
    assert result.stored == 250 and [r.index for r in result.results] == list(range(250))
    assert [r.id for r in result.results] == [i["id"] for i in items]


async def test_update_check_and_status_report_shapes() -> None:
    device, rollout = uuid.uuid4(), uuid.uuid4()
    offer = {"update_available": True, "rollout_id": str(rollout), "firmware_id": str(uuid.uuid4()),
             "version": "1.2.0", "version_code": 10200, "size_bytes": 1048576, "sha256": "ab" * 32,
             "changelog": "Night mode", "required": False, "is_downgrade": False,
             "storage_path": "DualTetraX/1.2.0/dualtetrax-1.2.0.bin", "bucket": "firmware-binaries",
             "current_version_code": 10100}
    status = {"device_id": str(device), "current_version": "1.1.0", "current_version_code": 10100,
              "last_check_at": "2026-11-22T02:30:00+00:00", "rollout_id": str(rollout),
              "target_version_id": offer["firmware_id"], "stage": 0, "phase": "downloading",
              "phase_at": "2026-11-22T02:30:01+00:00", "attempts": 1, "error_code": None, "error_message": None,
              "verified_at": None}
    rec = Recorder({("POST", "/rest/v1/rpc/ota_check_update"): httpx.Response(200, json=offer),
                    ("POST", "/rest/v1/rpc/ota_report_status"): httpx.Response(200, json=status)})
    backend, token = await signed_in(rec)
    cloud = DtxCloud(backend)
    got = await cloud.check_update(device, "1.1.0")
    assert got.update_available and got.version == "1.2.0" and got.rollout_id == rollout
    reported = await cloud.report_update_status(device, rollout, "downloading")
    assert reported.phase == "downloading" and reported.attempts == 1
    check, report = rec.requests
    assert json.loads(check.content) == {"device_id": str(device), "current_version": "1.1.0"}
    assert json.loads(report.content) == {"device_id": str(device), "rollout_id": str(rollout),
                                          "phase": "downloading", "error_code": None, "error_message": None}
    for request in rec.requests:
        assert_user(request, token)


async def test_profile_changes_are_limited_before_anything_is_sent() -> None:
    rec = Recorder()
    backend, _ = await signed_in(rec)
    with pytest.raises(ValidationError) as caught:
        await DtxCloud(backend).update_profile(role="admin")
    assert caught.value.field == "role" and rec.requests == []
    rec.routes[("PATCH", "/rest/v1/profiles")] = httpx.Response(200, json=[{
        "id": USER_ID, "email": "mina@example.test", "display_name": "Mina", "timezone": "Asia/Seoul",
        "locale": "ko", "role": "user", "is_active": True, "created_at": "2026-11-01T00:00:00+00:00",
        "updated_at": "2026-11-22T00:00:00+00:00"}])
    profile = await DtxCloud(backend).update_profile(display_name="Mina")
    assert profile.display_name == "Mina"
    [patch] = rec.requests
    assert patch.url.params["id"] == f"eq.{USER_ID}" and json.loads(patch.content) == {"display_name": "Mina"}
    assert "return=representation" in patch.headers["prefer"]


async def test_profile_photo_upsert_and_device_log_upload_shapes() -> None:
    device = uuid.uuid4()
    photo = f"/storage/v1/object/profile-images/{USER_ID}/avatar.png"
    log = f"/storage/v1/object/device-logs/{USER_ID}/{device}/boot-1.log"
    rec = Recorder({("POST", photo): httpx.Response(200, json={"Key": f"profile-images/{USER_ID}/avatar.png"}),
                    ("DELETE", "/storage/v1/object/profile-images"): httpx.Response(200, json=[]),
                    ("POST", log): httpx.Response(200, json={"Key": f"device-logs/{USER_ID}/{device}/boot-1.log"})})
    backend, token = await signed_in(rec)
    cloud = DtxCloud(backend)
    assert await cloud.upload_profile_image(b"\x89PNG...", content_type="image/png") == f"{USER_ID}/avatar.png"
    assert await cloud.upload_device_log(device, b"boot ok\n", name="boot-1") == f"{USER_ID}/{device}/boot-1.log"
    upload, *deletes, log_upload = rec.requests
    for request in rec.requests:
        assert_user(request, token)
    assert upload.url.path == photo and upload.headers["x-upsert"] == "true"
    assert b"Content-Type: image/png" in upload.content
    assert [json.loads(d.content) for d in deletes] == [{"prefixes": [f"{USER_ID}/avatar.jpg"]},
                                                        {"prefixes": [f"{USER_ID}/avatar.webp"]}]
    assert log_upload.url.path == log and log_upload.headers["x-upsert"] == "false"
    assert b"Content-Type: text/plain" in log_upload.content and b"boot ok" in log_upload.content
    rec.requests.clear()
    with pytest.raises(ValidationError):
        await cloud.upload_profile_image(b"GIF89a", content_type="image/gif")
    assert rec.requests == []
