"""`/healthz` and `/metrics` on an optional port: a minimal HTTP/1.1 server on the worker's event loop.

`/healthz` answers 200 when a pooled connection runs `select 1` within 2 s and the wake-up feed is up (the
LISTEN connection, or the joined Realtime channel when SUPABASE_URL is set; reported as `listener` either way),
503 otherwise (with a JSON body saying which); `/metrics` is the Prometheus text format."""

from __future__ import annotations

import asyncio
import json
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import AsyncConnectionPool

from dtx_worker.metrics import WorkerMetrics
from dtx_worker.wakeups import Wakeups

log = logging.getLogger("dtx_worker.health")

REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


async def database_works(pool: AsyncConnectionPool, within: float = 2.0) -> bool:
    try:
        async with asyncio.timeout(within), pool.connection(timeout=within) as conn:
            await conn.execute("select 1")
    except Exception:
        return False
    return True


async def health(pool: AsyncConnectionPool, wakeups: Wakeups) -> tuple[int, dict[str, bool]]:
    checks = {"database": await database_works(pool), "listener": wakeups.connected}
    return (200 if all(checks.values()) else 503), checks


class HealthServer:
    def __init__(self, pool: AsyncConnectionPool, wakeups: Wakeups, metrics: WorkerMetrics) -> None:
        self.pool = pool
        self.wakeups = wakeups
        self.metrics = metrics
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 picks a free port); returns the port."""
        self.server = await asyncio.start_server(self._serve, host, port)
        bound = int(self.server.sockets[0].getsockname()[1])
        log.info("metrics server listening", extra={"host": host, "port": bound})
        return bound

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n"
        if path == "/healthz":
            status, checks = await health(self.pool, self.wakeups)
            body = {"status": "ok" if status == 200 else "unavailable", **checks}
            return status, "application/json", json.dumps(body).encode() + b"\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        return 404, "text/plain", b"try /healthz or /metrics\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = (await reader.readline()).decode("latin-1").split()
                while (await reader.readline()).strip():
                    pass  # headers are not needed
                if len(request) < 2:
                    return
                status, content_type, body = await self._respond(request[0], request[1])
                head = (f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\nContent-Type: {content_type}\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
                writer.write(head.encode() + (b"" if request[0] == "HEAD" else body))
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
