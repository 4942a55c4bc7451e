"""Wake-ups: hints that work may be waiting. Against a plain Postgres, LISTEN on `dtx_jobs` over a dedicated
connection (this module); against Supabase, Realtime `postgres_changes` (`dtx_worker.realtime`). Either way the
loops also poll, so a lost feed only means waiting for the next poll until it is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass

import psycopg

CHANNEL = "dtx_jobs"
STATS_PAYLOAD = "stats"

log = logging.getLogger("dtx_worker.wakeups")


class Wakeups:
    """One event per consumer: `jobs` for enqueued jobs, `stats` for dirty statistics days."""

    def __init__(self) -> None:
        self.jobs = asyncio.Event()
        self.stats = asyncio.Event()
        self.connected = False  # the wake-up feed (LISTEN connection or Realtime channel) is up (for /healthz)

    def all(self) -> None:
        self.jobs.set()
        self.stats.set()

    def dispatch(self, payload: str) -> None:
        (self.stats if payload == STATS_PAYLOAD else self.jobs).set()


@dataclass
class Backoff:
    """Exponential backoff with jitter: the n-th consecutive failure waits min(cap, base·2^(n-1))·U[0.5, 1)."""

    base: float = 0.5
    cap: float = 10.0
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        return min(self.cap, self.base * 2.0 ** min(self.failures - 1, 30)) * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


async def wait_or_poll(event: asyncio.Event, poll_seconds: float) -> None:
    """Return when the event is set or after poll_seconds, whichever comes first; then clear it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), poll_seconds)
    event.clear()


async def listen(database_url: str, wakeups: Wakeups, max_retry_delay: float) -> None:
    """LISTEN until cancelled, reconnecting with backoff after failures; wakes everything after each
    (re)connect so that anything enqueued while we were not listening is picked up at once."""
    backoff = Backoff(base=0.5, cap=max(0.5, min(max_retry_delay, 10.0)))
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True,
                                                              connect_timeout=10) as conn:
                await conn.execute(f"listen {CHANNEL}")
                log.info("listening", extra={"channel": CHANNEL, "after_failures": backoff.failures})
                backoff.reset()
                wakeups.connected = True
                wakeups.all()
                async for note in conn.notifies():
                    wakeups.dispatch(note.payload)
        except (psycopg.Error, OSError) as exc:
            wakeups.connected = False
            delay = backoff.next_delay()
            log.warning("listen connection lost; relying on polling until it is back",
                        extra={"error": str(exc).strip(), "retry_in": round(delay, 2), "attempt": backoff.failures})
            await asyncio.sleep(delay)
        finally:
            wakeups.connected = False
