"""Wake-ups: LISTEN on `dtx_jobs` over a dedicated connection. Notifications are hints only (the loops also
poll), so a lost connection just means waiting for the next poll until it is re-established."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

CHANNEL = "dtx_jobs"
STATS_PAYLOAD = "stats"

log = logging.getLogger("dtx_worker.wakeups")


class Wakeups:
    """One event per consumer: `jobs` for enqueued jobs, `stats` for dirty statistics days."""

    def __init__(self) -> None:
        self.jobs = asyncio.Event()
        self.stats = asyncio.Event()
        self.connected = False  # the LISTEN connection is up (for /healthz)

    def all(self) -> None:
        self.jobs.set()
        self.stats.set()

    def dispatch(self, payload: str) -> None:
        (self.stats if payload == STATS_PAYLOAD else self.jobs).set()


async def wait_or_poll(event: asyncio.Event, poll_seconds: float) -> None:
    """Return when the event is set or after poll_seconds, whichever comes first; then clear it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), poll_seconds)
    event.clear()


async def listen(database_url: str, wakeups: Wakeups, retry_delay: float) -> None:
    """LISTEN until cancelled, reconnecting after failures; wakes everything after each (re)connect so that
    anything enqueued while we were not listening is picked up at once."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
                await conn.execute(f"listen {CHANNEL}")
                log.info("listening", extra={"channel": CHANNEL})
                wakeups.connected = True
                wakeups.all()
                async for note in conn.notifies():
                    wakeups.dispatch(note.payload)
        except psycopg.OperationalError as exc:
            wakeups.connected = False
            log.warning("listen connection lost; relying on polling until it is back", extra={"error": str(exc)})
            await asyncio.sleep(retry_delay)
        finally:
            wakeups.connected = False
