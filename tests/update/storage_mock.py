"""Supabase Storage's signed-URL download endpoint as an ``httpx.MockTransport``, with faults.

Shapes follow Storage (``GET /storage/v1/object/sign/<bucket>/<path>?token=<jwt>``):

* ``200`` with the whole object, ``Content-Type: application/octet-stream``, ``Content-Length``,
  ``Accept-Ranges: bytes``, ``ETag``, ``Last-Modified``, ``Cache-Control``;
* ``Range: bytes=<start>-[<end>]`` → ``206 Partial Content`` with ``Content-Range: bytes <start>-<end>/<size>``;
  a start at or past the end → ``416`` with ``Content-Range: bytes */<size>`` and Storage's JSON error body;
* a bad or expired token → ``400`` ``{"statusCode": "400", "error": "InvalidJWT", "message": "jwt expired"}``;
  an unknown object → ``400`` ``{"statusCode": "404", "error": "not_found", "message": "Object not found"}``.

Faults: ``ignore_range`` (answer ``200`` with everything, as a proxy that drops ``Range`` does), ``drops``
(per request, cut the body after that many bytes with a read error, like a connection reset), ``short`` (per
request, end the body early without an error), ``statuses`` (per request, answer with this status instead).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

BUCKET = "firmware-binaries"
PATH = "DualTetraX/1.1.0/dualtetrax-1.1.0.bin"
PREFIX = f"/storage/v1/object/sign/{BUCKET}/"


@dataclass
class Served:
    range: str | None
    status: int
    body_bytes: int


@dataclass
class StorageMock:
    data: bytes
    path: str = PATH
    valid_tokens: set[str] = field(default_factory=lambda: {"good"})
    ignore_range: bool = False
    drops: dict[int, int] = field(default_factory=dict)
    """request number (1-based) → bytes of the body sent before the connection breaks."""
    short: dict[int, int] = field(default_factory=dict)
    """request number → bytes of the body sent before it ends quietly."""
    statuses: dict[int, int] = field(default_factory=dict)
    """request number → an error status answered instead (e.g. 503)."""
    range_416_without_content_range: bool = False
    log: list[Served] = field(default_factory=list)

    def url(self, token: str = "good") -> str:
        return f"https://project.supabase.co{PREFIX}{self.path}?token={token}"

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport)

    @property
    def body_bytes(self) -> int:
        return sum(s.body_bytes for s in self.log)

    def _error(self, status: int, code: str, error: str, message: str, wanted: str | None) -> httpx.Response:
        self.log.append(Served(wanted, status, 0))
        return httpx.Response(status, json={"statusCode": code, "error": error, "message": message})

    def _unsatisfiable(self, wanted: str | None) -> httpx.Response:
        self.log.append(Served(wanted, 416, 0))
        headers = {} if self.range_416_without_content_range else {"Content-Range": f"bytes */{len(self.data)}"}
        body = {"statusCode": "416", "error": "InvalidRange", "message": "The requested range is not satisfiable"}
        return httpx.Response(416, headers=headers, json=body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        number = len(self.log) + 1
        wanted = request.headers.get("range")
        assert request.method == "GET"
        if number in self.statuses:
            status = self.statuses[number]
            if status == 416:
                return self._unsatisfiable(wanted)
            return self._error(status, str(status), "Service Unavailable", "upstream unavailable", wanted)
        if not request.url.path.startswith(PREFIX) or request.url.path[len(PREFIX):] != self.path:
            return self._error(400, "404", "not_found", "Object not found", wanted)
        if request.url.params.get("token") not in self.valid_tokens:
            return self._error(400, "400", "InvalidJWT", "jwt expired", wanted)
        size = len(self.data)
        start, end, status = 0, size - 1, 200
        if wanted and not self.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)
            assert match, f"unexpected Range {wanted!r}"
            start = int(match.group(1))
            end = min(size - 1, int(match.group(2))) if match.group(2) else size - 1
            if start >= size:
                return self._unsatisfiable(wanted)
            status = 206
        body = self.data[start:end + 1]
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(body)),
            "Accept-Ranges": "bytes",
            "ETag": f'"{hashlib.md5(self.data).hexdigest()}"',
            "Last-Modified": "Sun, 22 Nov 2026 09:00:00 GMT",
            "Cache-Control": "max-age=3600",
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        sent = len(body)
        cut, error = None, False
        if number in self.drops:
            cut, error = self.drops[number], True
        elif number in self.short:
            cut = self.short[number]
        if cut is not None:
            sent = min(cut, len(body))
        self.log.append(Served(wanted, status, sent))
        return httpx.Response(status, headers=headers, content=_body(body, sent, error))


async def _body(body: bytes, sent: int, error: bool) -> AsyncIterator[bytes]:
    for offset in range(0, sent, 16 * 1024):
        yield body[offset:min(offset + 16 * 1024, sent)]
        await asyncio.sleep(0)  # a network body arrives over time: other tasks run in between
    if error:
        raise httpx.ReadError("connection reset by peer")
