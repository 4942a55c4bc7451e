"""Wake-ups from Supabase Realtime: `postgres_changes` INSERT on `public.jobs` and `public.stats_dirty_days`
(both in the `supabase_realtime` publication) set the same `Wakeups` events as LISTEN/NOTIFY.

The `realtime` client reconnects by itself only `max_retries` times; after that the exception ends its
background task and it stays disconnected for good. So `RealtimeFeed.run` supervises it: it watches the
connection and the channel, and when the client has given up (or the channel has not been joined for longer
than the client's own retries can take) it closes the client, waits with capped, jittered backoff and builds
a new one, forever. Every (re)subscription wakes every consumer, since work enqueued while we were deaf
produced no event. Events are hints: the loops poll regardless.

The client calls callbacks synchronously inside its websocket read loop, so they only set events and flags."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realtime import (
    AsyncRealtimeChannel,
    AsyncRealtimeClient,
    RealtimePostgresChangesListenEvent,
    RealtimeSubscribeStates,
)

from dtx_worker.wakeups import Backoff, Wakeups

log = logging.getLogger("dtx_worker.realtime")

TOPIC = "dtx-worker"  # the client prefixes it: `realtime:dtx-worker`
TABLES = (("jobs", "jobs"), ("stats_dirty_days", "stats"))  # (public table, Wakeups event) pairs


@dataclass(frozen=True)
class RealtimeOptions:
    project_url: str  # https://<ref>.supabase.co (or any http(s) base that serves /realtime/v1/websocket)
    key: str  # the service role key: sent as `apikey` and as the channel's `access_token`
    max_retries: int = 5  # the client's own reconnect attempts before it gives up
    initial_backoff: float = 1.0  # the client's first reconnect delay (doubles, capped at 60 s)
    timeout: int = 10  # connect and join timeout
    max_backoff: float = 60.0  # cap of our delay between rebuilding clients
    check_interval: float = 0.25  # how often the supervisor looks at the client
    heartbeat_interval: int = 25

    @property
    def websocket_base(self) -> str:
        return f"{self.project_url.rstrip('/')}/realtime/v1"

    def unjoined_budget(self) -> float:
        """Longest the client may plausibly spend getting back by itself: its reconnect sleeps, a connect and
        a join timeout per attempt, and a margin."""
        sleeps = sum(min(self.initial_backoff * 2.0 ** i, 60.0) for i in range(self.max_retries))
        return sleeps + (self.max_retries + 2) * self.timeout + 10.0


def _gave_up(client: AsyncRealtimeClient) -> BaseException | None:
    """The client's read loop has ended while disconnected: it has stopped reconnecting. (`_listen_task` is
    private; a changed client makes this None, and the unjoined budget still catches a dead client.)"""
    task: asyncio.Task[None] | None = getattr(client, "_listen_task", None)
    if client.is_connected or task is None or not task.done():
        return None
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception() or ConnectionError("the realtime read loop ended")


class RealtimeFeed:
    def __init__(self, options: RealtimeOptions, wakeups: Wakeups) -> None:
        self.options = options
        self.wakeups = wakeups
        self.generation = 0  # one per client built; callbacks of older clients are ignored
        self.subscriptions = 0  # SUBSCRIBED replies received, over all clients (tests and logs)
        self.postgres_ready = 0  # "Subscribed to PostgreSQL" system messages: the server streams changes now
        self.rebuilds = 0  # clients thrown away
        # websockets logs the handshake (`?apikey=<service role key>`) and every frame at DEBUG: never show those
        ws_log = logging.getLogger("websockets")
        ws_log.setLevel(max(ws_log.level, logging.INFO))

    # ----------------------------------------------------------------- callbacks (inside the read loop)

    def _wake(self, event: asyncio.Event) -> Callable[[Any], None]:
        def callback(_payload: Any) -> None:
            event.set()

        return callback

    def _on_state(self, generation: int) -> Callable[[RealtimeSubscribeStates, Exception | None], None]:
        def callback(state: RealtimeSubscribeStates, _error: Exception | None) -> None:
            if generation != self.generation:
                return
            if state == RealtimeSubscribeStates.SUBSCRIBED:
                self.subscriptions += 1
                self.wakeups.connected = True
                self.wakeups.all()
            else:
                self.wakeups.connected = False

        return callback

    def _on_system(self, generation: int) -> Callable[[Any], None]:
        def callback(_payload: Any) -> None:  # "Subscribed to PostgreSQL": replication is ready now
            if generation == self.generation:
                self.postgres_ready += 1
                self.wakeups.all()

        return callback

    # ----------------------------------------------------------------- supervision

    def _build(self) -> tuple[AsyncRealtimeClient, AsyncRealtimeChannel]:
        o = self.options
        self.generation += 1
        client = AsyncRealtimeClient(o.websocket_base, token=o.key, max_retries=o.max_retries,
                                     initial_backoff=o.initial_backoff, timeout=o.timeout,
                                     hb_interval=o.heartbeat_interval)
        channel = client.channel(TOPIC)
        for table, event in TABLES:
            channel.on_postgres_changes(RealtimePostgresChangesListenEvent.Insert, schema="public", table=table,
                                        callback=self._wake(getattr(self.wakeups, event)))
        channel.on_system(self._on_system(self.generation))
        return client, channel

    async def run(self) -> None:
        """Subscribe, watch, rebuild; until cancelled."""
        backoff = Backoff(base=self.options.initial_backoff, cap=self.options.max_backoff)
        while True:
            client, channel = self._build()
            reason = "unknown"
            healthy_for = 0.0
            try:
                await channel.subscribe(self._on_state(self.generation))
                reason, healthy_for = await self._watch(client, channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self.wakeups.connected = False
                await self._close(client)
            if healthy_for >= 30.0:  # it worked for a while: start the backoff over
                backoff.reset()
            self.rebuilds += 1
            delay = backoff.next_delay()
            log.warning("realtime client lost; rebuilding it (polling continues)",
                        extra={"reason": reason[:500], "retry_in": round(delay, 2), "attempt": backoff.failures})
            await asyncio.sleep(delay)

    async def _watch(self, client: AsyncRealtimeClient, channel: AsyncRealtimeChannel) -> tuple[str, float]:
        """Return (why the client is dead, how long it was subscribed in total)."""
        seen = 0
        unjoined_since: float | None = time.monotonic()
        joined_since: float | None = None
        healthy = 0.0
        budget = self.options.unjoined_budget()
        while True:
            joined = client.is_connected and channel.is_joined
            self.wakeups.connected = joined
            now = time.monotonic()
            if joined:
                if joined_since is None:
                    joined_since = now
                unjoined_since = None
                if self.subscriptions != seen:
                    seen = self.subscriptions
                    log.info("realtime subscribed", extra={"topic": channel.topic, "subscriptions": seen,
                                                            "tables": [t for t, _ in TABLES]})
            else:
                if joined_since is not None:
                    healthy += now - joined_since
                    joined_since = None
                if unjoined_since is None:
                    unjoined_since = now
                    log.warning("realtime disconnected; the client is reconnecting (polling continues)",
                                extra={"topic": channel.topic, "channel_state": channel.state.value})
                error = _gave_up(client)
                if error is not None:
                    return f"the client gave up reconnecting: {type(error).__name__}: {error}", healthy
                if channel.is_closed:  # phx_close from the server: the client never rejoins a closed channel
                    return "the server closed the channel", healthy
                if now - unjoined_since > budget:
                    return f"not subscribed for {budget:.0f} s (channel {channel.state.value})", healthy
            await asyncio.sleep(self.options.check_interval)

    async def _close(self, client: AsyncRealtimeClient) -> None:
        """Stop everything the client runs (timers, pushes, tasks) and collect its tasks' exceptions."""
        self.generation += 1  # silence late callbacks of this client
        for channel in list(client.channels.values()):
            channel.rejoin_timer.reset()
            channel.join_push.destroy()
            for push in list(channel.messages_waiting_for_ack.values()):
                push.destroy()
        tasks = [t for t in (getattr(client, "_listen_task", None), getattr(client, "_heartbeat_task", None)) if t]
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await client.close()
        for task in tasks:
            if not task.done():
                task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.debug("realtime task ended", extra={"error": str(outcome)})
