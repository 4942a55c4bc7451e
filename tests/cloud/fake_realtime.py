"""A tiny Supabase Realtime stand-in for the cloud client's tests: Phoenix protocol vsn 1.0.0 (JSON objects
``{topic, event, payload, ref, join_ref}``) over a websocket on 127.0.0.1, answering as the real server does
(supabase-local.md §3; Realtime's ``realtime_channel.ex`` and ``message_dispatcher.ex``):

- ``phx_join`` → ``phx_reply`` ``{status: "ok", response: {postgres_changes: [<the client's bindings + id>]}}``,
  then the ``system`` message "Subscribed to PostgreSQL";
- ``heartbeat`` (topic ``phoenix``) and ``phx_leave`` → ``phx_reply`` ok;
- :meth:`FakeRealtime.emit` → ``postgres_changes`` ``{ids, data: {schema, table, commit_timestamp, type, columns,
  record, old_record, errors}}`` to every joined channel whose binding matches the table, the event and the
  binding's ``col=eq.value`` filter (evaluated server-side, as Realtime does)."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

PATH = "/realtime/v1/websocket"


def binding_id(binding: dict[str, Any]) -> int:
    """Stands in for the server's ``:erlang.phash2(params)``."""
    return zlib.crc32(json.dumps(binding, sort_keys=True).encode()) & (2**27 - 1)


def matches(filter_: str | None, record: dict[str, Any]) -> bool:
    """Realtime's filter for the ``eq`` conditions these tests use (comma = AND)."""
    for condition in (filter_ or "").split(","):
        if not condition:
            continue
        column, _, rest = condition.partition("=")
        op, _, value = rest.partition(".")
        if op != "eq" or str(record.get(column)) != value:
            return False
    return True


@dataclass
class Channel:
    socket: ServerConnection
    topic: str
    bindings: list[dict[str, Any]]


@dataclass
class FakeRealtime:
    received: list[dict[str, Any]] = field(default_factory=list)
    handshakes: list[dict[str, list[str]]] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    server: Server | None = None
    port: int = 0
    _news: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """The project URL to give the client (Realtime lives at ``ws://…/realtime/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    def joins(self) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("event") == "phx_join"]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("event") == name]

    async def start(self) -> FakeRealtime:
        self.server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check_path, ping_interval=None)
        self.port = int(next(iter(self.server.sockets)).getsockname()[1])
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is checked after every message the server handles."""
        while not predicate():
            self._news.clear()
            await self._news.wait()

    async def wait_for_join(self, count: int = 1) -> dict[str, Any]:
        """The ``count``-th join, once the server has answered it."""
        async with asyncio.timeout(5):
            await self.until(lambda: len([c for c in self.channels if c.bindings]) >= count)
        return self.joins()[count - 1]

    def _check_path(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path != PATH:
            return conn.respond(HTTPStatus.NOT_FOUND, "no such endpoint\n")
        self.handshakes.append(parse_qs(parts.query))
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                msg = json.loads(raw)
                self.received.append(msg)
                await self._answer(ws, msg)
                self._news.set()
        except Exception:
            pass
        finally:
            self.channels = [c for c in self.channels if c.socket is not ws]

    async def _answer(self, ws: ServerConnection, msg: dict[str, Any]) -> None:
        topic, event, ref, join_ref = msg.get("topic"), msg.get("event"), msg.get("ref"), msg.get("join_ref")
        if topic == "phoenix" and event == "heartbeat":
            await _send(ws, "phoenix", "phx_reply", {"status": "ok", "response": {}}, ref)
        elif event == "phx_join":
            bindings = [{**b, "id": binding_id(b)} for b in msg["payload"]["config"].get("postgres_changes", [])]
            await _send(ws, topic, "phx_reply", {"status": "ok", "response": {"postgres_changes": bindings}}, ref,
                        join_ref)
            self.channels.append(Channel(ws, str(topic), bindings))
            if bindings:
                await _send(ws, topic, "system", {"channel": str(topic).removeprefix("realtime:"),
                                                  "extension": "postgres_changes", "status": "ok",
                                                  "message": "Subscribed to PostgreSQL"}, None)
        elif event == "phx_leave":
            self.channels = [c for c in self.channels if not (c.socket is ws and c.topic == topic)]
            await _send(ws, topic, "phx_reply", {"status": "ok", "response": {}}, ref, join_ref)

    async def emit(self, table: str, type_: str, record: dict[str, Any], *, old_record: dict[str, Any] | None = None,
                   schema: str = "public") -> int:
        """Send one change to every matching subscriber; how many channels got it."""
        data: dict[str, Any] = {
            "schema": schema, "table": table, "type": type_,
            "commit_timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "columns": [{"name": k, "type": "text"} for k in record], "errors": None,
        }
        if type_ in ("INSERT", "UPDATE"):
            data["record"] = record
        if type_ in ("UPDATE", "DELETE"):
            data["old_record"] = old_record or {k: v for k, v in record.items() if k == "id"}
        sent = 0
        for channel in list(self.channels):
            ids = [b["id"] for b in channel.bindings
                   if b.get("schema") == schema and b.get("table") == table and b.get("event") in (type_, "*")
                   and matches(b.get("filter"), record if type_ != "DELETE" else data["old_record"])]
            if ids:
                await _send(channel.socket, channel.topic, "postgres_changes", {"ids": ids, "data": data}, None)
                sent += 1
        return sent


async def _send(ws: ServerConnection, topic: Any, event: str, payload: dict[str, Any], ref: Any,
                join_ref: Any = None) -> None:
    await ws.send(json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref}))
