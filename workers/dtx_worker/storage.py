"""Where the worker puts files (report PDFs, exports): Supabase Storage, or a local folder.

Two adapters with the same surface (`ObjectStore`):

* `SupabaseObjectStore` — Supabase Storage through `storage3` (what `supabase` uses), with the service role
  key: `POST /storage/v1/object/<bucket>/<name>` with `x-upsert: true`, and
  `POST /storage/v1/object/sign/<bucket>/<name>` for signed URLs. Used when `SUPABASE_URL` and
  `SUPABASE_SERVICE_ROLE_KEY` are set. The Storage server writes an object atomically and records it in
  `storage.objects` itself.
* `LocalObjectStore` — a folder (`DTX_WORKER_STORAGE_DIR`, default `.local/storage/`) holding
  `<bucket>/<name>`, for the local stack. Every write goes to a temporary file in the object's own
  directory, is fsynced and then renamed over the final name, so a process killed at any instant leaves
  either the old object or the new one, never half of one (stray `.tmp-*` files are ignored and cleaned
  up by the next write). After the rename the object is recorded in `storage.objects` the way Supabase
  Storage records it (bucket, name, metadata with size, mimetype, eTag), so storage RLS policies apply to it.

Local signed URLs are `file://<absolute path>?expires=<unix time>&token=<hmac>` where the token is
HMAC-SHA256 (key: `DTX_WORKER_STORAGE_SECRET`, else a random key kept in `<root>/.signing-key`, mode 0600)
over `<bucket>/<name>:<expires>`, base64url without padding. `verify_local_signed_url(url, secret)`
checks the token and the expiry and returns the file's path; it raises `InvalidSignedUrl` otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
from psycopg_pool import AsyncConnectionPool

DEFAULT_STORAGE_DIR = ".local/storage"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class StorageError(RuntimeError):
    """Storing or signing an object failed; the message says which object and why."""


class InvalidSignedUrl(ValueError):
    """A local signed URL whose token does not match, has expired, or is malformed."""


def check_name(bucket: str, name: str) -> None:
    """Refuse bucket and object names that could leave the bucket's folder (`..`, absolute paths)."""
    if not _BUCKET.match(bucket):
        raise StorageError(f"bucket: {bucket!r} is not a valid bucket id")
    if not _NAME.match(name) or any(part in ("", ".", "..") for part in name.split("/")):
        raise StorageError(f"name: {name!r} must be a relative path of [A-Za-z0-9_.-] segments")


class ObjectStore(Protocol):
    async def put(self, bucket: str, name: str, data: bytes, content_type: str) -> None:
        """Store (or replace) an object atomically."""
        ...

    async def signed_url(self, bucket: str, name: str, expires_in: int) -> str:
        """A URL that downloads the object without credentials until `expires_in` seconds from now."""
        ...


# ---------------------------------------------------------------------------------------- local folder


def _sign(secret: bytes, bucket: str, name: str, expires: int) -> str:
    mac = hmac.new(secret, f"{bucket}/{name}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def load_or_create_secret(root: Path) -> bytes:
    """`DTX_WORKER_STORAGE_SECRET`, else the key file under the storage root (created on first use)."""
    env = os.environ.get("DTX_WORKER_STORAGE_SECRET")
    if env:
        return env.encode()
    root.mkdir(parents=True, exist_ok=True)
    path = root / ".signing-key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def verify_local_signed_url(url: str, secret: bytes, root: Path, now: float | None = None) -> Path:
    """The file a local signed URL points to, after checking its token and expiry."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise InvalidSignedUrl("not a file:// URL")
    query = parse_qs(parts.query)
    try:
        expires = int(query["expires"][0])
        token = query["token"][0]
    except (KeyError, ValueError, IndexError):
        raise InvalidSignedUrl("expires and token are required") from None
    path = Path(unquote(parts.path)).resolve()
    base = root.resolve()
    try:
        rel = path.relative_to(base)
    except ValueError:
        raise InvalidSignedUrl("the path is outside the storage folder") from None
    if len(rel.parts) < 2:
        raise InvalidSignedUrl("the path names no object")
    bucket, name = rel.parts[0], "/".join(rel.parts[1:])
    if not hmac.compare_digest(token, _sign(secret, bucket, name, expires)):
        raise InvalidSignedUrl("the token does not match")
    if (time.time() if now is None else now) >= expires:
        raise InvalidSignedUrl("the URL has expired")
    return path


_RECORD_OBJECT = """
insert into storage.objects (bucket_id, name, owner, owner_id, metadata, version)
values (%(bucket)s, %(name)s, null, null, %(metadata)s::jsonb, %(version)s)
on conflict (bucket_id, name) do update
   set metadata = excluded.metadata, version = excluded.version, updated_at = now(), last_accessed_at = now()
"""


@dataclass
class LocalObjectStore:
    """Objects as files under `root/<bucket>/<name>`, written atomically, recorded in `storage.objects` when a
    pool is given."""

    root: Path
    pool: AsyncConnectionPool | None = None
    secret: bytes | None = None

    def path_of(self, bucket: str, name: str) -> Path:
        check_name(bucket, name)
        return self.root / bucket / name

    def write_atomically(self, bucket: str, name: str, data: bytes) -> Path:
        """Temp file in the same directory → write → fsync → rename → fsync the directory."""
        final = self.path_of(bucket, name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{final.name}-{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._before_rename(tmp, final)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        for stale in final.parent.glob(f".tmp-{final.name}-*"):  # left by a process killed mid-write
            if time.time() - stale.stat().st_mtime > 3600:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        return final

    def _before_rename(self, tmp: Path, final: Path) -> None:
        """A seam for tests that simulate a crash between writing and publishing."""

    async def put(self, bucket: str, name: str, data: bytes, content_type: str) -> None:
        self.write_atomically(bucket, name, data)
        if self.pool is None:
            return
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        metadata = {"eTag": f'"{etag}"', "size": len(data), "mimetype": content_type, "cacheControl": "max-age=3600",
                    "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                    "contentLength": len(data), "httpStatusCode": 200}
        async with self.pool.connection() as conn:
            await conn.execute(_RECORD_OBJECT, {"bucket": bucket, "name": name, "metadata": json.dumps(metadata),
                                                "version": secrets.token_hex(16)})

    def _secret(self) -> bytes:
        if self.secret is None:
            self.secret = load_or_create_secret(self.root)
        return self.secret

    async def signed_url(self, bucket: str, name: str, expires_in: int) -> str:
        path = self.path_of(bucket, name)
        if not path.is_file():
            raise StorageError(f"{bucket}/{name}: object not found")
        expires = int(time.time()) + int(expires_in)
        token = _sign(self._secret(), bucket, name, expires)
        return f"file://{quote(str(path.resolve()))}?expires={expires}&token={token}"

    def verify(self, url: str, now: float | None = None) -> Path:
        return verify_local_signed_url(url, self._secret(), self.root, now)


# ---------------------------------------------------------------------------------------- Supabase Storage


class SupabaseObjectStore:
    """Supabase Storage with the service role key, over storage3's async client."""

    def __init__(self, url: str, service_role_key: str, http_client: httpx.AsyncClient | None = None) -> None:
        from storage3 import AsyncStorageClient

        headers = {"apikey": service_role_key, "Authorization": f"Bearer {service_role_key}"}
        if http_client is not None:
            http_client.headers.update(headers)
        self.client = AsyncStorageClient(f"{url.rstrip('/')}/storage/v1/", headers, http_client=http_client)

    async def put(self, bucket: str, name: str, data: bytes, content_type: str) -> None:
        check_name(bucket, name)
        try:
            await self.client.from_(bucket).upload(name, data, {"content-type": content_type, "upsert": "true",
                                                                "cache-control": "3600"})
        except Exception as exc:
            raise StorageError(f"{bucket}/{name}: upload failed: {exc}") from exc

    async def signed_url(self, bucket: str, name: str, expires_in: int) -> str:
        check_name(bucket, name)
        try:
            res = await self.client.from_(bucket).create_signed_url(name, expires_in)
        except Exception as exc:
            raise StorageError(f"{bucket}/{name}: signing failed: {exc}") from exc
        url = res.get("signedURL") or res.get("signedUrl")
        if not url:
            raise StorageError(f"{bucket}/{name}: the server returned no signed URL")
        return str(url)


# ---------------------------------------------------------------------------------------- choice


def storage_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("DTX_WORKER_STORAGE_DIR") or DEFAULT_STORAGE_DIR)


_REMOTE_STORES: dict[tuple[str, str], SupabaseObjectStore] = {}


def object_store_from_env(pool: AsyncConnectionPool | None, env: Mapping[str, str] | None = None) -> ObjectStore:
    """Supabase Storage when SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set, else the local folder."""
    env = os.environ if env is None else env
    url, key = env.get("SUPABASE_URL"), env.get("SUPABASE_SERVICE_ROLE_KEY")
    if url and key:
        if (url, key) not in _REMOTE_STORES:  # one HTTP client per process, reused by every job
            _REMOTE_STORES[(url, key)] = SupabaseObjectStore(url, key)
        return _REMOTE_STORES[(url, key)]
    return LocalObjectStore(storage_dir(env), pool)
