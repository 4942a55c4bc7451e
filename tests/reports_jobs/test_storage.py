"""The object-store adapters without a database: Supabase Storage's exact HTTP shapes (httpx.MockTransport),
the local folder's atomic writes and HMAC-signed URLs, and the choice between them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from dtx_worker.storage import (
    InvalidSignedUrl,
    LocalObjectStore,
    StorageError,
    SupabaseObjectStore,
    object_store_from_env,
)

UID = "0b7f3c1e-2a4d-4e8f-9c6b-1d2e3f405162"


async def test_supabase_upload_and_sign_shapes() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.startswith("/storage/v1/object/sign/"):
            return httpx.Response(200, json={"signedURL": f"/object/sign/reports/{UID}/2026-10-ko.pdf?token=abc"})
        return httpx.Response(200, json={"Key": f"reports/{UID}/2026-10-ko.pdf", "Id": "x"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    store = SupabaseObjectStore("https://proj.supabase.co", "service-key", http_client=client)
    await store.put("reports", f"{UID}/2026-10-ko.pdf", b"%PDF-1.4 body", "application/pdf")
    url = await store.signed_url("reports", f"{UID}/2026-10-ko.pdf", 3600)
    await client.aclose()

    up, sign = seen
    assert (up.method, up.url.host, up.url.path) == ("POST", "proj.supabase.co",
                                                     f"/storage/v1/object/reports/{UID}/2026-10-ko.pdf")
    assert up.headers["x-upsert"] == "true"
    assert up.headers["authorization"] == "Bearer service-key" and up.headers["apikey"] == "service-key"
    body = up.read()
    assert b"%PDF-1.4 body" in body and b"application/pdf" in body  # multipart file part with its type
    assert (sign.method, sign.url.path) == ("POST", f"/storage/v1/object/sign/reports/{UID}/2026-10-ko.pdf")
    assert json.loads(sign.read()) == {"expiresIn": "3600"}
    assert sign.headers["authorization"] == "Bearer service-key"
    assert url == f"https://proj.supabase.co/storage/v1/object/sign/reports/{UID}/2026-10-ko.pdf?token=abc"


async def test_supabase_errors_name_the_object() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(
        lambda r: httpx.Response(400, json={"statusCode": "403", "error": "Unauthorized", "message": "denied"})))
    store = SupabaseObjectStore("https://proj.supabase.co", "k", http_client=client)
    with pytest.raises(StorageError, match=f"reports/{UID}/a.pdf: upload failed"):
        await store.put("reports", f"{UID}/a.pdf", b"x", "application/pdf")
    await client.aclose()


async def test_local_store_writes_atomically_and_signs(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path, secret=b"s3cret")
    await store.put("reports", f"{UID}/2026-10-en.pdf", b"one", "application/pdf")
    await store.put("reports", f"{UID}/2026-10-en.pdf", b"two", "application/pdf")
    path = tmp_path / "reports" / UID / "2026-10-en.pdf"
    assert path.read_bytes() == b"two" and [p.name for p in path.parent.iterdir()] == ["2026-10-en.pdf"]

    url = await store.signed_url("reports", f"{UID}/2026-10-en.pdf", 60)
    assert url.startswith("file://") and "token=" in url and "expires=" in url
    assert store.verify(url) == path.resolve()
    with pytest.raises(InvalidSignedUrl, match="expired"):
        store.verify(url, now=time.time() + 61)
    with pytest.raises(InvalidSignedUrl, match="does not match"):
        store.verify(url.replace("2026-10-en.pdf", "2026-09-en.pdf"))
    expires = int(url.split("expires=")[1].split("&")[0])
    with pytest.raises(InvalidSignedUrl, match="does not match"):
        store.verify(url.replace(f"expires={expires}", f"expires={expires + 3600}"))
    with pytest.raises(InvalidSignedUrl, match="does not match"):
        LocalObjectStore(tmp_path, secret=b"other").verify(url)
    with pytest.raises(StorageError, match="not found"):
        await store.signed_url("reports", f"{UID}/missing.pdf", 60)


@pytest.mark.parametrize("name", ["../escape.pdf", f"{UID}/../../x.pdf", "/abs.pdf", f"{UID}//x.pdf", ""])
async def test_local_store_refuses_names_outside_the_bucket(tmp_path: Path, name: str) -> None:
    with pytest.raises(StorageError):
        await LocalObjectStore(tmp_path, secret=b"k").put("reports", name, b"x", "application/pdf")


def test_local_signing_key_is_created_once_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DTX_WORKER_STORAGE_SECRET", raising=False)
    a = LocalObjectStore(tmp_path)._secret()
    assert LocalObjectStore(tmp_path)._secret() == a
    assert (tmp_path / ".signing-key").stat().st_mode & 0o077 == 0


def test_store_choice_follows_the_environment(tmp_path: Path) -> None:
    local = object_store_from_env(None, {"DTX_WORKER_STORAGE_DIR": str(tmp_path)})
    assert isinstance(local, LocalObjectStore) and local.root == tmp_path
    assert isinstance(object_store_from_env(None, {}), LocalObjectStore)
    remote = object_store_from_env(None, {"SUPABASE_URL": "https://p.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "k"})
    assert isinstance(remote, SupabaseObjectStore)
