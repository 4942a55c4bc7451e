"""SupabaseBackend's requests, exactly as Supabase's Storage and PostgREST receive them (httpx.MockTransport),
and publish_firmware's all-or-nothing over HTTP."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import httpx
import pytest

from dualtetrax.admin import (
    DuplicateVersionError,
    RegistrationError,
    RpcError,
    StorageError,
    SupabaseBackend,
    publish_firmware,
)
from dualtetrax.firmware import build_test_image

URL = "https://abcdefghijklmnop.supabase.co"
KEY = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
IMAGE = build_test_image(version="1.4.0", size=8 * 1024)
PATH = "DualTetraX/1.4.0/dualtetrax-1.4.0.bin"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    def __init__(self, storage: httpx.Response | None = None, rest: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.storage = storage or httpx.Response(200, json={"Key": f"firmware-binaries/{PATH}", "Id": "obj-1"})
        self.rest = rest

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if request.url.path.startswith("/storage/v1/object") and request.method == "POST":
            return self.storage
        if request.url.path.startswith("/storage/v1/object") and request.method == "DELETE":
            return httpx.Response(200, json=[{"name": PATH}])
        if request.url.path.startswith("/rest/v1/rpc/"):
            if self.rest is not None:
                return self.rest
            body = json.loads(request.content)
            name = request.url.path.rsplit("/", 1)[1]
            status = "published" if name == "admin_set_firmware_status" else "draft"
            return httpx.Response(200, json={"id": "fw-1", **body, "status": status})
        return httpx.Response(404, json={"message": "unexpected"})

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


async def backend(recorder: Recorder) -> SupabaseBackend:
    return await SupabaseBackend.connect(URL, KEY, httpx_client=httpx.AsyncClient(transport=httpx.MockTransport(recorder)))


def assert_service_role(request: httpx.Request) -> None:
    assert request.headers["apikey"] == KEY
    assert request.headers["authorization"] == f"Bearer {KEY}"


async def test_publish_request_shapes() -> None:
    rec = Recorder()
    result = await publish_firmware(await backend(rec), IMAGE, version="1.4.0", changelog="Night mode", publish=True)
    assert rec.calls() == [
        ("POST", f"/storage/v1/object/firmware-binaries/{PATH}"),
        ("POST", "/rest/v1/rpc/admin_register_firmware"),
        ("POST", "/rest/v1/rpc/admin_set_firmware_status"),
    ]
    upload, register, publish = rec.requests
    for r in rec.requests:
        assert_service_role(r)
    assert upload.headers["x-upsert"] == "false"
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert b'filename="dualtetrax-1.4.0.bin"' in upload.content and b"Content-Type: application/octet-stream" in upload.content
    assert IMAGE in upload.content
    assert register.headers["content-type"] == "application/json"
    assert json.loads(register.content) == {
        "version": "1.4.0", "version_code": 10400, "storage_path": PATH, "size_bytes": len(IMAGE),
        "sha256": hashlib.sha256(IMAGE).hexdigest(), "model": "DualTetraX", "channel": "stable",
        "changelog": "Night mode", "hardware_revisions": [], "min_version_code": None, "is_required": False,
    }
    assert json.loads(publish.content) == {"firmware_id": "fw-1", "status": "published"}
    assert result.firmware["status"] == "published" and result.storage_path == PATH


async def test_refused_registration_deletes_the_object() -> None:
    rec = Recorder(rest=httpx.Response(400, json={
        "code": "22023", "message": "version_code: must be greater than every existing version code of model DualTetraX",
        "details": "version_code", "hint": None}))
    with pytest.raises(RegistrationError, match="version_code: must be greater") as caught:
        await publish_firmware(await backend(rec), IMAGE, version="1.4.0")
    assert caught.value.cause.code == "22023" and caught.value.cause.field == "version_code"
    assert rec.calls() == [
        ("POST", f"/storage/v1/object/firmware-binaries/{PATH}"),
        ("POST", "/rest/v1/rpc/admin_register_firmware"),
        ("DELETE", "/storage/v1/object/firmware-binaries"),
    ]
    assert json.loads(rec.requests[2].content) == {"prefixes": [PATH]}
    assert_service_role(rec.requests[2])


async def test_existing_object_registers_nothing() -> None:
    rec = Recorder(storage=httpx.Response(400, json={"statusCode": "409", "error": "Duplicate",
                                                     "message": "The resource already exists"}))
    with pytest.raises(DuplicateVersionError):
        await publish_firmware(await backend(rec), IMAGE, version="1.4.0")
    assert rec.calls() == [("POST", f"/storage/v1/object/firmware-binaries/{PATH}")]


async def test_failed_upload_registers_nothing() -> None:
    rec = Recorder(storage=httpx.Response(413, json={"statusCode": "413", "error": "Payload too large",
                                                     "message": "The object exceeded the maximum allowed size"}))
    with pytest.raises(StorageError, match="maximum allowed size") as caught:
        await publish_firmware(await backend(rec), IMAGE, version="1.4.0")
    assert caught.value.status == 413
    assert rec.calls() == [("POST", f"/storage/v1/object/firmware-binaries/{PATH}")]


async def test_rpc_error_and_rollout_rpc_shape() -> None:
    rec = Recorder(rest=httpx.Response(404, json={"code": "P0002", "message": "rollout not found", "details": None,
                                                  "hint": None}))
    b = await backend(rec)
    with pytest.raises(RpcError, match="rollout not found") as caught:
        await b.rpc("admin_pause_rollout", {"rollout_id": "00000000-0000-0000-0000-000000000000", "reason": "x"})
    assert caught.value.code == "P0002"
    [request] = rec.requests
    assert (request.method, request.url.path) == ("POST", "/rest/v1/rpc/admin_pause_rollout")
    assert json.loads(request.content) == {"rollout_id": "00000000-0000-0000-0000-000000000000", "reason": "x"}
