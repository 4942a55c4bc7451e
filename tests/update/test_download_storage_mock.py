"""The resumable download against Supabase Storage's exact response shapes (httpx.MockTransport): 206 with
Content-Range, 416, a 200 that ignores Range, connections dropped mid-body, transient statuses, refused URLs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from dualtetrax.cloud.errors import NetworkError, NotFoundError, ValidationError
from dualtetrax.update import HashMismatchError, SizeMismatchError, cache_paths, download_firmware
from dualtetrax.update.download import DownloadProgress
from tests.update.storage_mock import StorageMock

SIZE = 300_000
DATA = os.urandom(SIZE)
SHA = hashlib.sha256(DATA).hexdigest()


async def fetch(mock: StorageMock, cache: Path, source: object = None, **options: object):  # type: ignore[no-untyped-def]
    options.setdefault("backoff_s", 0.001)
    async with mock.client() as client:
        return await download_firmware(source or mock.url(), sha256=SHA, size=SIZE, cache_dir=cache,  # type: ignore[arg-type]
                                       client=client, **options)  # type: ignore[arg-type]


def part_file(cache: Path, data: bytes) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    _, part = cache_paths(cache, SHA)
    part.write_bytes(data)
    return part


async def test_fresh_download_is_verified_and_renamed(tmp_path: Path) -> None:
    mock = StorageMock(DATA)
    events: list[DownloadProgress] = []
    result = await fetch(mock, tmp_path, on_progress=events.append)
    final, part = cache_paths(tmp_path, SHA)
    assert result.path == final and final.read_bytes() == DATA and not part.exists()
    assert (result.bytes_fetched, result.resumed_from, result.requests, result.cached) == (SIZE, 0, 1, False)
    assert [(s.range, s.status) for s in mock.log] == [(None, 200)]
    assert events[-1].bytes_have == SIZE and [e.bytes_have for e in events] == sorted(e.bytes_have for e in events)


async def test_cached_file_is_reused_without_a_request(tmp_path: Path) -> None:
    mock = StorageMock(DATA)
    await fetch(mock, tmp_path)
    again = await fetch(mock, tmp_path)
    assert again.cached and again.bytes_fetched == 0 and len(mock.log) == 1


async def test_corrupt_cached_file_is_replaced(tmp_path: Path) -> None:
    final, _ = cache_paths(tmp_path, SHA)
    final.write_bytes(b"x" * SIZE)
    mock = StorageMock(DATA)
    result = await fetch(mock, tmp_path)
    assert not result.cached and final.read_bytes() == DATA and mock.body_bytes == SIZE


async def test_resume_from_an_earlier_part_file_uses_range(tmp_path: Path) -> None:
    part_file(tmp_path, DATA[:123_456])
    mock = StorageMock(DATA)
    result = await fetch(mock, tmp_path)
    assert [(s.range, s.status) for s in mock.log] == [("bytes=123456-", 206)]
    assert (result.resumed_from, result.bytes_fetched, mock.body_bytes) == (123_456, SIZE - 123_456, SIZE - 123_456)
    assert result.path.read_bytes() == DATA


async def test_connection_drops_mid_body_resume_where_they_stopped(tmp_path: Path) -> None:
    mock = StorageMock(DATA, drops={1: 100_000, 2: 50_000})
    result = await fetch(mock, tmp_path)
    assert [(s.range, s.status, s.body_bytes) for s in mock.log] == [
        (None, 200, 100_000), ("bytes=100000-", 206, 50_000), ("bytes=150000-", 206, 150_000)]
    assert result.bytes_fetched == SIZE == mock.body_bytes  # nothing fetched twice
    assert (result.network_errors, result.requests, result.restarts) == (2, 3, 0)
    assert result.path.read_bytes() == DATA


async def test_a_body_that_ends_early_without_an_error_is_resumed(tmp_path: Path) -> None:
    mock = StorageMock(DATA, short={1: 200_000})
    result = await fetch(mock, tmp_path)
    assert [(s.range, s.status) for s in mock.log] == [(None, 200), ("bytes=200000-", 206)]
    assert result.bytes_fetched == SIZE and result.path.read_bytes() == DATA


async def test_transient_statuses_are_retried(tmp_path: Path) -> None:
    mock = StorageMock(DATA, statuses={1: 503, 2: 429}, drops={3: 10_000})
    result = await fetch(mock, tmp_path)
    assert [s.status for s in mock.log] == [503, 429, 200, 206]
    assert result.network_errors == 3 and result.path.read_bytes() == DATA


async def test_retries_exhausted_raise_network_error_and_keep_the_part(tmp_path: Path) -> None:
    mock = StorageMock(DATA, drops={1: 70_000, 2: 10_000, 3: 0})
    with pytest.raises(NetworkError, match="after 3 attempts") as caught:
        await fetch(mock, tmp_path, retries=2)
    assert "80,000 of 300,000 bytes are kept" in caught.value.message
    _, part = cache_paths(tmp_path, SHA)
    assert part.read_bytes() == DATA[:80_000]
    # the next run resumes: only the rest crosses the network
    second = StorageMock(DATA)
    result = await fetch(second, tmp_path)
    assert [(s.range, s.status) for s in second.log] == [("bytes=80000-", 206)]
    assert result.resumed_from == 80_000 and result.bytes_fetched == SIZE - 80_000


async def test_a_server_ignoring_range_restarts_from_zero(tmp_path: Path) -> None:
    part_file(tmp_path, DATA[:100_000])
    mock = StorageMock(DATA, ignore_range=True, drops={1: 40_000})
    result = await fetch(mock, tmp_path)
    # asked for bytes=100000-, got 200: the part file is rewritten from the start (no duplicated prefix)
    assert [(s.range, s.status, s.body_bytes) for s in mock.log] == [
        ("bytes=100000-", 200, 40_000), ("bytes=40000-", 200, SIZE)]
    assert result.restarts == 2 and result.path.read_bytes() == DATA


async def test_complete_part_file_is_verified_without_a_request(tmp_path: Path) -> None:
    part_file(tmp_path, DATA)
    mock = StorageMock(DATA)
    result = await fetch(mock, tmp_path)
    assert mock.log == [] and result.bytes_fetched == 0 and result.path.read_bytes() == DATA


async def test_complete_but_stale_part_file_restarts_once(tmp_path: Path) -> None:
    stale = bytearray(DATA)
    stale[5] ^= 0xFF
    part_file(tmp_path, bytes(stale))
    mock = StorageMock(DATA)
    result = await fetch(mock, tmp_path)
    assert [(s.range, s.status) for s in mock.log] == [(None, 200)]
    assert result.restarts == 1 and result.path.read_bytes() == DATA


async def test_416_naming_another_size_is_a_size_mismatch(tmp_path: Path) -> None:
    """Our part file is longer than the object: Storage refuses the range and names the real size."""
    part_file(tmp_path, DATA[:260_000])
    mock = StorageMock(DATA[:250_000])
    with pytest.raises(SizeMismatchError, match="250,000 bytes"):
        await fetch(mock, tmp_path)
    assert [(s.range, s.status) for s in mock.log] == [("bytes=260000-", 416)]
    assert not cache_paths(tmp_path, SHA)[1].exists()


async def test_416_without_content_range_discards_the_part_and_restarts(tmp_path: Path) -> None:
    part_file(tmp_path, b"?" * 1000)  # a bogus part file, and a 416 that does not say why
    mock = StorageMock(DATA, range_416_without_content_range=True, statuses={1: 416})
    result = await fetch(mock, tmp_path)
    assert [(s.range, s.status) for s in mock.log] == [("bytes=1000-", 416), (None, 200)]
    assert (result.restarts, result.resumed_from, result.bytes_fetched) == (1, 1000, SIZE)
    assert result.path.read_bytes() == DATA


async def test_hash_mismatch_deletes_the_part_and_says_so(tmp_path: Path) -> None:
    corrupt = bytearray(DATA)
    corrupt[SIZE // 2] ^= 0x01
    mock = StorageMock(bytes(corrupt))
    with pytest.raises(HashMismatchError, match="the download was deleted") as caught:
        await fetch(mock, tmp_path)
    assert caught.value.code == 102
    final, part = cache_paths(tmp_path, SHA)
    assert not part.exists() and not final.exists()


async def test_object_larger_than_offered_is_refused(tmp_path: Path) -> None:
    mock = StorageMock(DATA + b"extra")
    with pytest.raises(SizeMismatchError, match="300,005 bytes"):
        await fetch(mock, tmp_path)
    assert [n for n in os.listdir(tmp_path) if not n.endswith('.lock')] == []


async def test_expired_signed_url_is_refreshed_once(tmp_path: Path) -> None:
    mock = StorageMock(DATA, valid_tokens={"fresh"})
    tokens = iter(["expired", "fresh"])

    async def signed_url() -> str:
        return mock.url(next(tokens))

    result = await fetch(mock, tmp_path, source=signed_url)
    assert [s.status for s in mock.log] == [400, 200] and result.path.read_bytes() == DATA


async def test_refused_url_raises_typed_errors(tmp_path: Path) -> None:
    mock = StorageMock(DATA, valid_tokens=set())
    with pytest.raises(ValidationError, match="InvalidJWT jwt expired"):
        await fetch(mock, tmp_path)
    missing = StorageMock(DATA, path="other.bin")
    with pytest.raises(NotFoundError, match="Object not found"):
        await fetch(missing, tmp_path, source=missing.url().replace("other.bin", "gone.bin"))


async def test_unreachable_server_is_a_network_error(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(NetworkError, match="after 2 attempts"):
            await download_firmware("https://x.test/f.bin", sha256=SHA, size=SIZE, cache_dir=tmp_path,
                                    client=client, retries=1, backoff_s=0.001)


async def test_parallel_downloads_of_one_image_share_it_instead_of_the_part_file(tmp_path: Path) -> None:
    """Two devices updating to the same image at once: one download, the other waits and reuses the file."""
    import asyncio

    mock = StorageMock(DATA)
    first, second = await asyncio.gather(fetch(mock, tmp_path), fetch(mock, tmp_path))
    assert sorted([first.cached, second.cached]) == [False, True]
    assert len(mock.log) == 1 and mock.body_bytes == SIZE
    assert cache_paths(tmp_path, SHA)[0].read_bytes() == DATA
