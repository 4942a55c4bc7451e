"""The download against the local stack's Storage object server (LocalCloudBackend signed URLs): real HTTP,
real Range handling, the user's storage RLS deciding whether a URL is granted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from dualtetrax.cloud.errors import NotFoundError, ValidationError
from dualtetrax.update import HashMismatchError, SizeMismatchError, cache_paths, download_firmware
from tests.update.conftest import UpdateEnv
from tests.update.test_update_flow import DroppingTransport

BUCKET = "firmware-binaries"


def write_part(cache: Path, sha256: str, data: bytes) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    cache_paths(cache, sha256)[1].write_bytes(data)


async def signed(env: UpdateEnv) -> str:
    cloud = await env.cloud()
    return await cloud.backend.signed_url(BUCKET, env.storage_path, 60)


async def test_resume_from_a_part_file_and_a_dropped_connection(update_env: UpdateEnv) -> None:
    env = update_env
    url = await signed(env)
    write_part(env.cache, env.sha256, env.image[:10_000])
    transport = DroppingTransport({1: 20_000})
    async with httpx.AsyncClient(transport=transport) as http:
        result = await download_firmware(url, sha256=env.sha256, size=len(env.image), cache_dir=env.cache,
                                         client=http, backoff_s=0.001)
    assert transport.requests == ["bytes=10000-", "bytes=30000-"]
    assert transport.body_bytes == result.bytes_fetched == len(env.image) - 10_000
    assert (result.resumed_from, result.network_errors, result.restarts) == (10_000, 1, 0)
    assert result.path.read_bytes() == env.image


async def test_the_object_servers_416_names_the_real_size(update_env: UpdateEnv) -> None:
    env = update_env
    url = await signed(env)
    claimed = len(env.image) + 10  # a registry entry that disagrees with the object
    write_part(env.cache, env.sha256, env.image + b"12345")
    with pytest.raises(SizeMismatchError, match=f"{len(env.image):,} bytes"):
        await download_firmware(url, sha256=env.sha256, size=claimed, cache_dir=env.cache)
    assert [n for n in os.listdir(env.cache) if not n.endswith('.lock')] == []


async def test_hash_mismatch_from_the_server(update_env: UpdateEnv) -> None:
    env = update_env
    url = await signed(env)
    wrong = hashlib.sha256(b"another build").hexdigest()
    with pytest.raises(HashMismatchError, match=f"not the expected {wrong}"):
        await download_firmware(url, sha256=wrong, size=len(env.image), cache_dir=env.cache)
    assert [n for n in os.listdir(env.cache) if not n.endswith('.lock')] == []


async def test_a_refused_url_is_signed_again_once(update_env: UpdateEnv) -> None:
    env = update_env
    cloud = await env.cloud()
    urls: list[str] = []

    async def fresh() -> str:
        url = await cloud.backend.signed_url(BUCKET, env.storage_path, 60)
        urls.append(url)
        return url if len(urls) > 1 else url[:-4] + "AAAA"  # the first one's signature is broken

    result = await download_firmware(fresh, sha256=env.sha256, size=len(env.image), cache_dir=env.cache)
    assert len(urls) == 2 and result.path.read_bytes() == env.image

    async def always_broken() -> str:
        return (await cloud.backend.signed_url(BUCKET, env.storage_path, 60))[:-4] + "AAAA"

    with pytest.raises(ValidationError, match="InvalidJWT"):
        await download_firmware(always_broken, sha256=env.sha256, size=len(env.image), cache_dir=env.cache / "x")


async def test_no_url_for_an_unpublished_binary(update_env: UpdateEnv) -> None:
    """Storage RLS: users read published binaries only."""
    env = update_env
    env.db.execute("update firmware_versions set status = 'deprecated' where id = %s", (env.firmware_id,))
    cloud = await env.cloud()
    with pytest.raises(NotFoundError):
        await cloud.backend.signed_url(BUCKET, env.storage_path, 60)
