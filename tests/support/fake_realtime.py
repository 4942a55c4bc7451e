"""A small Supabase Realtime stand-in: a Phoenix-protocol (vsn 1.0.0, JSON) websocket server on 127.0.0.1, used
by the worker's wake-up tests and the cloud client's tests.

It speaks the messages the real server sends (`reference/supabase-local.md` §3; Realtime's
`realtime_channel.ex`, `message_dispatcher.ex`, `replication_poller.ex`; Phoenix's V1 JSON serializer, which
writes every message as {topic, event, payload, ref, join_ref}):
- `phx_join` → `phx_reply` {status: ok, response: {postgres_changes: [<client bindings + id>]}}, then the
  `system` message "Subscribed to PostgreSQL";
- `heartbeat` on topic `phoenix` and `phx_leave` → `phx_reply` {status: ok, response: {}};
- `emit` → `postgres_changes` {ids, data: {schema, table, commit_timestamp, type, columns, record, old_record,
  errors}} to every joined channel whose binding matches the table, the event and its `col=eq.value` filter
  (evaluated server-side, as Realtime does); `emit_insert` is the INSERT case;
- `channel_event` sends `phx_error`/`phx_close`; `drop_connections` closes every socket server-side;
  `refusing` answers new handshakes with HTTP 503."""

from __future__ import annotations

import asyncio
import contextlib
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
#: Column types of the tables the worker subscribes to (other tables: every column as text).
COLUMNS = {
    "jobs": [{"name": "id", "type": "int8"}],
    "stats_dirty_days": [{"name": "user_id", "type": "uuid"}, {"name": "device_id", "type": "uuid"},
                         {"name": "local_date", "type": "date"}],
}


def binding_id(binding: dict[str, Any]) -> int:
    """Stands in for the server's `:erlang.phash2(params)` (a 27-bit hash of the client's binding)."""
    return zlib.crc32(json.dumps(binding, sort_keys=True).encode()) & (2 ** 27 - 1)


def matches(filter_: str | None, record: dict[str, Any]) -> bool:
    """Realtime's filter for the `eq` conditions these tests use (comma = AND)."""
    for condition in (filter_ or "").split(","):
        if not condition:
            continue
        column, _, rest = condition.partition("=")
        op, _, value = rest.partition(".")
        if op != "eq" or str(record.get(column)) != value:
            return False
    return True


@dataclass
class Joined:
    socket: ServerConnection
    topic: str
    bindings: list[dict[str, Any]]  # as replied: the client's bindings plus `id`


@dataclass
class FakeRealtime:
    received: list[dict[str, Any]] = field(default_factory=list)  # every client message, parsed
    handshakes: list[dict[str, list[str]]] = field(default_factory=list)  # query of each accepted handshake
    refused: int = 0
    refusing: bool = False
    joined: list[Joined] = field(default_factory=list)
    server: Server | None = None
    port: int = 0
    _news: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """The project URL to give a client (Realtime lives at ``ws://…/realtime/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    def joins(self) -> list[dict[str, Any]]:
        return self.events("phx_join")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("event") == name]

    async def start(self) -> FakeRealtime:
        self.server = await serve(self._handle, "127.0.0.1", 0, process_request=self._process_request,
                                  ping_interval=None)
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
        """The ``count``-th join with bindings, once the server has answered it."""
        async with asyncio.timeout(5):
            await self.until(lambda: len([j for j in self.joined if j.bindings]) >= count)
        return self.joins()[count - 1]

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path != PATH:
            return conn.respond(HTTPStatus.NOT_FOUND, "no such endpoint\n")
        if self.refusing:
            self.refused += 1
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "try later\n")
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
            self.joined = [j for j in self.joined if j.socket is not ws]

    async def _answer(self, ws: ServerConnection, msg: dict[str, Any]) -> None:
        topic, event, ref = str(msg.get("topic")), msg.get("event"), msg.get("ref")
        if topic == "phoenix" and event == "heartbeat":
            await _send(ws, "phoenix", "phx_reply", {"status": "ok", "response": {}}, ref)
        elif event == "phx_join":
            config = msg["payload"]["config"]
            bindings = [{**b, "id": binding_id(b)} for b in config.get("postgres_changes", [])]
            self.joined = [j for j in self.joined if not (j.socket is ws and j.topic == topic)]
            self.joined.append(Joined(ws, topic, bindings))
            await _send(ws, topic, "phx_reply", {"status": "ok", "response": {"postgres_changes": bindings}},
                        ref, msg.get("join_ref"))
            if bindings:
                await _send(ws, topic, "system", {"channel": topic.removeprefix("realtime:"),
                                                  "extension": "postgres_changes", "status": "ok",
                                                  "message": "Subscribed to PostgreSQL"}, None)
        elif event == "phx_leave":
            self.joined = [j for j in self.joined if not (j.socket is ws and j.topic == topic)]
            await _send(ws, topic, "phx_reply", {"status": "ok", "response": {}}, ref, msg.get("join_ref"))

    async def emit(self, table: str, type_: str, record: dict[str, Any], *, old_record: dict[str, Any] | None = None,
                   schema: str = "public") -> int:
        """Send one change to every matching subscriber; returns how many channels got it."""
        data: dict[str, Any] = {
            "schema": schema, "table": table, "type": type_,
            "commit_timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "columns": COLUMNS.get(table, [{"name": k, "type": "text"} for k in record]), "errors": None,
        }
        if type_ in ("INSERT", "UPDATE"):
            data["record"] = record
        if type_ in ("UPDATE", "DELETE"):
            data["old_record"] = old_record or {k: v for k, v in record.items() if k == "id"}
        sent = 0
        for j in list(self.joined):
            ids = [b["id"] for b in j.bindings
                   if b.get("schema") == schema and b.get("table") == table and b.get("event") in (type_, "*")
                   and matches(b.get("filter"), record if type_ != "DELETE" else data["old_record"])]
            if ids:
                with contextlib.suppress(Exception):
                    await _send(j.socket, j.topic, "postgres_changes", {"ids": ids, "data": data}, None)
                    sent += 1
        return sent

    async def emit_insert(self, table: str, record: dict[str, Any], schema: str = "public") -> int:
        """An INSERT change to every subscriber of it; returns how many channels got it."""
        return await self.emit(table, "INSERT", record, schema=schema)

    async def channel_event(self, event: str) -> None:
        """Send `phx_error` (the channel process crashed: clients rejoin) or `phx_close` (the server ended the
        channel: clients drop it) to every joined channel, as Phoenix does (ref = join_ref)."""
        for j in list(self.joined):
            join_ref = next((m.get("join_ref") for m in reversed(self.joins()) if m["topic"] == j.topic), None)
            with contextlib.suppress(Exception):
                await _send(j.socket, j.topic, event, {}, join_ref, join_ref)
        self.joined.clear()

    async def drop_connections(self, code: int = 1011, reason: str = "server shutting down") -> None:
        """Close every client socket from the server side (1011: an error close, as when a node restarts)."""
        sockets = {j.socket for j in self.joined} | (set(self.server.connections) if self.server else set())
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close(code, reason)
        self.joined.clear()


async def _send(ws: ServerConnection, topic: Any, event: str, payload: dict[str, Any], ref: Any,
                join_ref: Any = None) -> None:
    await ws.send(json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref}))
