"""A small Supabase Realtime stand-in: a Phoenix-protocol (vsn 1.0.0, JSON) websocket server on 127.0.0.1.

It speaks the messages the real server sends (`reference/supabase-local.md` §3; Realtime's
`realtime_channel.ex`, `message_dispatcher.ex`, `replication_poller.ex`; Phoenix's V1 JSON serializer, which
writes every message as {topic, event, payload, ref, join_ref}):
- `phx_join` → `phx_reply` {status: ok, response: {postgres_changes: [<client bindings + id>]}}, then the
  `system` message "Subscribed to PostgreSQL";
- `heartbeat` on topic `phoenix` → `phx_reply` {status: ok, response: {}};
- `emit_insert` → `postgres_changes` {ids, data: {schema, table, commit_timestamp, type, columns, record,
  errors}} to every joined channel with a matching INSERT binding;
- `drop_connections` closes every socket server-side; `refuse` answers new handshakes with HTTP 503.

`feed_from_database` turns real commits into events: it LISTENs on `dtx_jobs` (the NOTIFY that the jobs and
dirty-days triggers send) and emits an INSERT for every new `jobs` row, like Realtime reading the WAL."""

from __future__ import annotations

import contextlib
import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

PATH = "/realtime/v1/websocket"
COLUMNS = {
    "jobs": [{"name": "id", "type": "int8"}],
    "stats_dirty_days": [{"name": "user_id", "type": "uuid"}, {"name": "device_id", "type": "uuid"},
                         {"name": "local_date", "type": "date"}],
}


def binding_id(binding: dict[str, Any]) -> int:
    """Stands in for the server's `:erlang.phash2(params)` (a 27-bit hash of the client's binding)."""
    return zlib.crc32(json.dumps(binding, sort_keys=True).encode()) & (2 ** 27 - 1)


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

    @property
    def url(self) -> str:
        """What the worker gets as SUPABASE_URL."""
        return f"http://127.0.0.1:{self.port}"

    def joins(self) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("event") == "phx_join"]

    async def start(self) -> FakeRealtime:
        self.server = await serve(self._handle, "127.0.0.1", 0, process_request=self._process_request,
                                  ping_interval=None)
        self.port = int(next(iter(self.server.sockets)).getsockname()[1])
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

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
        except Exception:
            pass
        finally:
            self.joined = [j for j in self.joined if j.socket is not ws]

    async def _answer(self, ws: ServerConnection, msg: dict[str, Any]) -> None:
        topic, event, ref = str(msg.get("topic")), msg.get("event"), msg.get("ref")
        if topic == "phoenix" and event == "heartbeat":
            await self._send(ws, "phoenix", "phx_reply", {"status": "ok", "response": {}}, ref)
        elif event == "phx_join":
            config = msg["payload"]["config"]
            bindings = [{**b, "id": binding_id(b)} for b in config.get("postgres_changes", [])]
            self.joined = [j for j in self.joined if not (j.socket is ws and j.topic == topic)]
            self.joined.append(Joined(ws, topic, bindings))
            await self._send(ws, topic, "phx_reply", {"status": "ok", "response": {"postgres_changes": bindings}},
                             ref, msg.get("join_ref"))
            if bindings:
                await self._send(ws, topic, "system", {"channel": topic.removeprefix("realtime:"),
                                                       "extension": "postgres_changes", "status": "ok",
                                                       "message": "Subscribed to PostgreSQL"}, None)
        elif event == "phx_leave":
            self.joined = [j for j in self.joined if not (j.socket is ws and j.topic == topic)]
            await self._send(ws, topic, "phx_reply", {"status": "ok", "response": {}}, ref, msg.get("join_ref"))
        elif event == "access_token":
            pass

    @staticmethod
    async def _send(ws: ServerConnection, topic: Any, event: str, payload: dict[str, Any], ref: Any,
                    join_ref: Any = None) -> None:
        await ws.send(json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref,
                                  "join_ref": join_ref}))

    async def emit_insert(self, table: str, record: dict[str, Any], schema: str = "public") -> int:
        """Send an INSERT change to every subscriber of it; returns how many channels got it."""
        data = {"schema": schema, "table": table, "type": "INSERT",
                "commit_timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "columns": COLUMNS.get(table, [{"name": k, "type": "text"} for k in record]),
                "record": record, "errors": None}
        sent = 0
        for j in list(self.joined):
            ids = [b["id"] for b in j.bindings if b.get("schema") == schema and b.get("table") == table
                   and b.get("event") in ("INSERT", "*")]
            if ids:
                with contextlib.suppress(Exception):
                    await self._send(j.socket, j.topic, "postgres_changes", {"ids": ids, "data": data}, None)
                    sent += 1
        return sent

    async def channel_event(self, event: str) -> None:
        """Send `phx_error` (the channel process crashed: clients rejoin) or `phx_close` (the server ended the
        channel: clients drop it) to every joined channel, as Phoenix does (ref = join_ref)."""
        for j in list(self.joined):
            join_ref = next((m.get("join_ref") for m in reversed(self.joins()) if m["topic"] == j.topic), None)
            with contextlib.suppress(Exception):
                await self._send(j.socket, j.topic, event, {}, join_ref, join_ref)
        self.joined.clear()

    async def drop_connections(self, code: int = 1011, reason: str = "server shutting down") -> None:
        """Close every client socket from the server side (1011: an error close, as when a node restarts)."""
        sockets = {j.socket for j in self.joined} | (set(self.server.connections) if self.server else set())
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close(code, reason)
        self.joined.clear()


async def feed_from_database(fake: FakeRealtime, dsn: str) -> None:
    """Emit a `jobs` INSERT for every job committed from now on, and a `stats_dirty_days` INSERT whenever
    days are marked dirty, until cancelled (Realtime's replication poller, in miniature)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener, \
            await psycopg.AsyncConnection.connect(dsn, autocommit=True) as reader:
        cur = await reader.execute("select coalesce(max(id), 0) from jobs")
        row = await cur.fetchone()
        last = int(row[0]) if row else 0
        await listener.execute("listen dtx_jobs")
        async for note in listener.notifies():
            if note.payload == "stats":
                cur = await reader.execute("select user_id::text, device_id::text, local_date::text"
                                           " from stats_dirty_days order by marked_at desc limit 1")
                mark = await cur.fetchone()
                if mark:
                    await fake.emit_insert("stats_dirty_days", dict(zip(("user_id", "device_id", "local_date"),
                                                                        mark, strict=True)))
                continue
            cur = await reader.execute("select id from jobs where id > %s order by id", (last,))
            for (job_id,) in await cur.fetchall():
                last = max(last, int(job_id))
                await fake.emit_insert("jobs", {"id": job_id})
