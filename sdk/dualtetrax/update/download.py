"""Streamed, resumable, verified firmware downloads over HTTP (a Storage signed URL).

>>> result = await download_firmware(url, sha256=offer.sha256, size=offer.size_bytes,   # doctest: +SKIP
...                                  cache_dir="~/.cache/dualtetrax/firmware")
>>> result.path.name, result.bytes_fetched
('9f86d08….bin', 1572864)

Bytes go to ``<cache>/<sha256>.part`` as they arrive. A dropped connection is retried with exponential
backoff and resumed with ``Range: bytes=<have>-``; a later call (another process, after a kill) resumes the
same file. Only a file whose size and SHA-256 both match is renamed to ``<sha256>.bin``, so a ``.bin`` in the
cache is always a verified file and is reused without a request.

How responses are handled (Supabase Storage's shapes):

* ``206`` with ``Content-Range: bytes <start>-<end>/<total>``: appended, if ``start`` is what we have;
* ``200`` to a ranged request (a server or proxy that ignores ``Range``): the part file is restarted from zero;
* ``416`` with ``Content-Range: bytes */<total>``: our part file is not a prefix of the object — a size
  mismatch if ``total`` is not the expected size, otherwise the part file is bogus and is restarted;
* ``408``, ``429`` and ``5xx``: retried like network errors; ``400``/``401``/``403`` (an expired or refused
  signed URL): a fresh URL is asked for once when the source is a callable; other statuses raise the cloud
  client's typed error for that status.

A part file that is already complete is verified locally without a request. A hash mismatch on bytes resumed
from an earlier run restarts the download once from zero (those bytes may be stale); on bytes fetched from zero
by this call it deletes the part file and raises :class:`~dualtetrax.update.errors.HashMismatchError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dualtetrax.cloud.errors import (
    AuthError,
    CloudError,
    NetworkError,
    ServerError,
    error_from_status,
    error_from_storage,
)
from dualtetrax.update.errors import CacheError, HashMismatchError, SizeMismatchError

logger = logging.getLogger(__name__)

UrlSource = str | Callable[[], Awaitable[str]]
"""A URL, or an async callable returning a fresh one (called again once if the URL is refused)."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes\s+\*/(\d+)$")
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 522, 524})
_REFUSED_STATUSES = frozenset({400, 401, 403})
_PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class DownloadProgress:
    bytes_have: int
    """Bytes of the file on disk (resumed plus fetched)."""
    total_bytes: int
    bytes_fetched: int
    """Bytes received over the network by this call."""
    attempt: int
    message: str = ""


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    """``<cache>/<sha256>.bin``, verified."""
    sha256: str
    size: int
    bytes_fetched: int
    """Bytes received over the network by this call (0 when the cache already had the file)."""
    resumed_from: int
    """Bytes already in the part file when this call started and kept (0 for a fresh download)."""
    requests: int
    """HTTP requests made."""
    network_errors: int
    """Failed requests that were retried."""
    restarts: int
    """Times the part file was discarded and the download restarted from zero."""
    cached: bool
    """The verified file was already in the cache."""

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "size": self.size,
                "bytes_fetched": self.bytes_fetched, "resumed_from": self.resumed_from, "requests": self.requests,
                "network_errors": self.network_errors, "restarts": self.restarts, "cached": self.cached}


def cache_paths(cache_dir: str | Path, sha256: str) -> tuple[Path, Path]:
    """``(<sha256>.bin, <sha256>.part)`` in ``cache_dir``."""
    cache = Path(cache_dir).expanduser()
    return cache / f"{sha256}.bin", cache / f"{sha256}.part"


def default_cache_dir() -> Path:
    """``$DTX_FIRMWARE_CACHE``, else ``$XDG_CACHE_HOME/dualtetrax/firmware`` (``~/.cache/…``)."""
    explicit = os.environ.get("DTX_FIRMWARE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "dualtetrax" / "firmware"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


class _Retry(Exception):
    """A failed request worth retrying (network error or a transient status)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        super().__init__(str(error))


class _Restart(Exception):
    """The part file was discarded: request again from zero (not a network failure)."""


async def download_firmware(
    source: UrlSource,
    *,
    sha256: str,
    size: int,
    cache_dir: str | Path,
    client: httpx.AsyncClient | None = None,
    retries: int = 5,
    backoff_s: float = 0.5,
    max_backoff_s: float = 8.0,
    timeout_s: float = 30.0,
    on_progress: Callable[[DownloadProgress], None] | None = None,
) -> DownloadResult:
    """Download ``source`` into ``cache_dir`` and return the verified file.

    ``client`` is used as given (tests pass one over ``httpx.MockTransport``); without one a client is made and
    closed. Raises :class:`~dualtetrax.cloud.errors.NetworkError` when every retry failed (the part file is kept
    for the next call), :class:`~dualtetrax.update.errors.HashMismatchError` /
    :class:`~dualtetrax.update.errors.SizeMismatchError` (the part file is deleted), a
    :class:`~dualtetrax.cloud.errors.CloudError` for a refused download, and
    :class:`~dualtetrax.update.errors.CacheError` when the cache cannot be written.
    """
    sha256 = sha256.strip().lower()
    if not _SHA256.match(sha256):
        raise ValueError(f"sha256 must be 64 hex digits, not {sha256!r}")
    if size <= 0:
        raise ValueError("size must be positive")
    if retries < 0:
        raise ValueError("retries must be 0 or more")
    final, part = cache_paths(cache_dir, sha256)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CacheError(f"Cannot create the download cache {final.parent}: {error}.") from error
    lock = await _lock_file(final.with_name(f"{sha256}.lock"))
    try:  # one download of an image at a time: two devices updating in parallel share the part file
        if final.is_file():
            if final.stat().st_size == size and file_sha256(final) == sha256:
                return DownloadResult(final, sha256, size, 0, 0, 0, 0, 0, cached=True)
            logger.warning("discarding %s: it does not match its name", final)
            final.unlink(missing_ok=True)
        own_client = client is None
        http = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=True)
        try:
            job = _Download(source, sha256, size, final, part, http, on_progress)
            return await job.run(retries, backoff_s, max_backoff_s)
        finally:
            if own_client:
                await http.aclose()
    finally:
        os.close(lock)  # releases the lock


async def _lock_file(path: Path) -> int:
    """An exclusive ``flock`` on ``path`` (created if needed), waited for without blocking the event loop and
    without leaving a waiting thread behind if the caller is cancelled."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise CacheError(f"Cannot open the download lock {path}: {error}.") from error
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                await asyncio.sleep(0.05)
    except BaseException:
        os.close(fd)
        raise


class _Download:
    def __init__(self, source: UrlSource, sha256: str, size: int, final: Path, part: Path,
                 http: httpx.AsyncClient, on_progress: Callable[[DownloadProgress], None] | None) -> None:
        self.source = source
        self.sha256 = sha256
        self.size = size
        self.final = final
        self.part = part
        self.http = http
        self.on_progress = on_progress
        self.url: str | None = None
        self.url_refreshed = False
        self.fetched = 0
        self.requests = 0
        self.network_errors = 0
        self.restarts = 0
        self.resumed_from = 0
        self.from_earlier_run = False
        """The part file starts with bytes an earlier call wrote (they may be stale)."""
        self._next_report = 0.0

    # -- part file

    def _have(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0
        except OSError as error:
            raise CacheError(f"Cannot read {self.part}: {error}.") from error

    def _discard(self, why: str, *, count: bool = True) -> None:
        logger.info("restarting the download of %s from zero: %s", self.final.name, why)
        self.part.unlink(missing_ok=True)
        self.restarts += count
        self.from_earlier_run = False
        if self.restarts > 3:  # a server that keeps contradicting itself: stop rather than loop
            raise SizeMismatchError(f"The download of {self.final.name} had to restart {self.restarts} times ({why}).")

    def _size_mismatch(self, total: int, where: str) -> SizeMismatchError:
        self.part.unlink(missing_ok=True)
        return SizeMismatchError(f"The server's object is {total:,} bytes ({where}), not the expected {self.size:,}.")

    def _report(self, attempt: int, message: str = "", force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if force or now >= self._next_report:
            self._next_report = now + _PROGRESS_INTERVAL_S
            self.on_progress(DownloadProgress(self._have(), self.size, self.fetched, attempt, message))

    # -- the loop

    async def run(self, retries: int, backoff_s: float, max_backoff_s: float) -> DownloadResult:
        have = self._have()
        if have > self.size:
            self._discard(f"the part file has {have:,} bytes, more than the {self.size:,} expected", count=False)
        elif have:
            self.resumed_from = have
            self.from_earlier_run = True
        while True:
            have = self._have()
            if have > self.size:
                self._discard(f"the part file grew to {have:,} bytes, more than the {self.size:,} expected")
                continue
            if have == self.size:
                if self._verify():
                    return self._result()
                continue
            try:
                await self._fetch(have)
            except _Restart:
                continue
            except _Retry as retry:
                self.network_errors += 1
                if self.network_errors > retries:
                    kept = self._have()
                    raise NetworkError(
                        f"The firmware download failed after {self.network_errors} attempts: {retry.error} "
                        f"({kept:,} of {self.size:,} bytes are kept; running the update again resumes).",
                        hint="Check the network connection and run the update again.") from retry.error
                delay = min(max_backoff_s, backoff_s * 2 ** (self.network_errors - 1)) * random.uniform(0.8, 1.0)
                logger.warning("download attempt %d failed (%s); resuming in %.1f s", self.network_errors,
                               retry.error, delay)
                self._report(self.requests, f"retrying in {delay:.1f} s: {retry.error}", force=True)
                await asyncio.sleep(delay)

    def _verify(self) -> bool:
        """True (and renamed to ``.bin``) when the complete part file has the expected hash."""
        actual = file_sha256(self.part)
        if actual == self.sha256:
            try:
                os.replace(self.part, self.final)
            except OSError as error:
                raise CacheError(f"Cannot move {self.part} to {self.final}: {error}.") from error
            return True
        if self.from_earlier_run:
            self._discard(f"SHA-256 {actual[:12]}… of the resumed file is not the expected {self.sha256[:12]}…")
            return False
        self.part.unlink(missing_ok=True)
        raise HashMismatchError(
            f"The downloaded firmware's SHA-256 is {actual}, not the expected {self.sha256}; the download was "
            "deleted.")

    def _result(self) -> DownloadResult:
        return DownloadResult(self.final, self.sha256, self.size, self.fetched, self.resumed_from, self.requests,
                              self.network_errors, self.restarts, cached=False)

    async def _resolve_url(self) -> str:
        if self.url is None:
            if isinstance(self.source, str):
                self.url = self.source
            else:
                try:
                    self.url = await self.source()
                except NetworkError as error:
                    raise _Retry(error) from error
        return self.url

    async def _fetch(self, have: int) -> None:
        """One request from ``have``; returns when the body ended, raises :class:`_Retry` / :class:`_Restart`."""
        url = await self._resolve_url()
        headers = {"Range": f"bytes={have}-"} if have else {}
        self.requests += 1
        attempt = self.requests
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                mode = await self._judge(response, have)
                await self._write(response, mode, attempt)
        except httpx.TransportError as error:  # connect, read, write, pool, protocol (a body cut short), timeouts
            raise _Retry(error) from error
        if self._have() < self.size:  # the body ended early without the transport noticing
            raise _Retry(NetworkError(f"the response ended after {self._have():,} of {self.size:,} bytes"))

    async def _judge(self, response: httpx.Response, have: int) -> str:
        """The file mode to write the body with, or raise."""
        status = response.status_code
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", "").strip())
            if match is None:
                self._discard("a 206 without a usable Content-Range")
                raise _Restart
            start, total = int(match.group(1)), match.group(3)
            if total != "*" and int(total) != self.size:
                raise self._size_mismatch(int(total), "Content-Range")
            if start != have:
                self._discard(f"asked for bytes from {have:,}, the server sent from {start:,}")
                raise _Restart
            return "ab"
        if status == 200:
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) != self.size:
                raise self._size_mismatch(int(length), "Content-Length")
            if have:
                logger.info("the server ignored Range (200 to bytes=%d-): restarting from zero", have)
                self.restarts += 1
                self.from_earlier_run = False
            return "wb"
        if status == 416:
            match = _UNSATISFIED_RANGE.match(response.headers.get("content-range", "").strip())
            if match is not None and int(match.group(1)) != self.size:
                raise self._size_mismatch(int(match.group(1)), "416 Content-Range")
            self._discard(f"the server refused bytes={have}- (416): the part file is not a prefix of the object")
            raise _Restart
        if status in _RETRY_STATUSES:
            raise _Retry(ServerError(f"the download answered HTTP {status}", status=status))
        if status in _REFUSED_STATUSES and not isinstance(self.source, str) and not self.url_refreshed:
            logger.info("the signed URL was refused (HTTP %d); asking for a fresh one", status)
            self.url, self.url_refreshed = None, True
            raise _Restart
        await response.aread()
        raise _refused(response)

    async def _write(self, response: httpx.Response, mode: str, attempt: int) -> None:
        have = self._have() if mode == "ab" else 0
        try:
            with self.part.open(mode) as handle:
                async for chunk in response.aiter_bytes():
                    if have + len(chunk) > self.size:
                        handle.close()
                        raise self._size_mismatch(have + len(chunk), "more bytes than expected arrived")
                    handle.write(chunk)
                    have += len(chunk)
                    self.fetched += len(chunk)
                    self._report(attempt)
        except OSError as error:
            raise CacheError(f"Cannot write {self.part}: {error}.") from error
        self._report(attempt, force=True)


def _refused(response: httpx.Response) -> CloudError:
    """Storage's ``{"statusCode", "error", "message"}`` error body as the cloud client's typed error."""
    try:
        data = response.json() if response.content else None
    except (httpx.HTTPError, ValueError):
        data = None
    error = error_from_storage(response.status_code, data, "the firmware download")
    if isinstance(error, AuthError):  # the download's own retry logic treats an expired URL as a refusal to re-sign
        return error_from_status(response.status_code, error.message)
    return error
