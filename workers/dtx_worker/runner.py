"""`dtx-worker run`: one asyncio process with a connection pool, wake-ups (LISTEN/NOTIFY, or Supabase Realtime
when SUPABASE_URL is set) plus polling, the job executor, the statistics drain and the scheduler
(`dtx_worker.schedules`); SIGTERM/SIGINT stop it gracefully (exit 0)."""

from __future__ import annotations

import asyncio
import logging
import signal
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dtx_worker.config import WorkerSettings
from dtx_worker.handlers import HANDLERS
from dtx_worker.health import HealthServer
from dtx_worker.jobs import ExecutorLimits, JobExecutor
from dtx_worker.metrics import WorkerMetrics
from dtx_worker.realtime import RealtimeFeed, RealtimeOptions
from dtx_worker.scheduler import build_scheduler
from dtx_worker.stats import run_stats_loop
from dtx_worker.wakeups import Wakeups, listen

log = logging.getLogger("dtx_worker")


def start_wakeups(settings: WorkerSettings, wakeups: Wakeups) -> asyncio.Task[None]:
    """The wake-up feed chosen by configuration, as a task that runs (and reconnects) until cancelled."""
    if settings.use_realtime and settings.supabase_url and settings.supabase_service_role_key:
        options = RealtimeOptions(
            settings.supabase_url, settings.supabase_service_role_key.get_secret_value(),
            max_retries=settings.realtime_max_retries, initial_backoff=settings.realtime_initial_backoff,
            timeout=settings.realtime_timeout, max_backoff=settings.realtime_max_backoff)
        log.info("wake-ups from Supabase Realtime", extra={"url": options.websocket_base})
        return asyncio.create_task(RealtimeFeed(options, wakeups).run(), name="realtime")
    return asyncio.create_task(listen(settings.database_url, wakeups, settings.poll_interval), name="listen")


def redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{parts.username or ''}@{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


async def run_worker(settings: WorkerSettings) -> int:
    stopping = asyncio.Event()
    wakeups = Wakeups()
    loop = asyncio.get_running_loop()

    def stop(signame: str) -> None:
        if not stopping.is_set():
            log.info("stopping", extra={"signal": signame})
        stopping.set()
        wakeups.all()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)

    try:  # one clear error instead of the pool's retry loop when the database is unreachable
        probe = await psycopg.AsyncConnection.connect(settings.database_url, connect_timeout=10)
        await probe.close()
    except psycopg.OperationalError as exc:
        log.error("cannot reach the database; check DATABASE_URL (and run `make db` for the local stack)",
                  extra={"database": redacted(settings.database_url), "error": str(exc).strip()})
        return 1
    # check on checkout: after a database restart every idle connection is dead; hand out only live ones
    pool = AsyncConnectionPool(settings.database_url, min_size=2, max_size=settings.pool_size, open=False,
                               kwargs={"autocommit": True}, name="dtx-worker",
                               check=AsyncConnectionPool.check_connection)
    try:
        await pool.open(wait=True, timeout=15)
    except PoolTimeout:
        log.error("cannot reach the database; check DATABASE_URL (and run `make db` for the local stack)",
                  extra={"database": redacted(settings.database_url)})
        return 1
    metrics = WorkerMetrics() if settings.metrics_port is not None else None
    health_server = HealthServer(pool, wakeups, metrics) if metrics else None
    if health_server and settings.metrics_port is not None:
        try:
            await health_server.start(settings.metrics_host, settings.metrics_port)
        except OSError as exc:
            log.error("cannot serve metrics; check DTX_WORKER_METRICS_PORT and DTX_WORKER_METRICS_HOST",
                      extra={"host": settings.metrics_host, "port": settings.metrics_port, "error": str(exc)})
            await pool.close()
            return 1
    listener = start_wakeups(settings, wakeups)
    executor = JobExecutor(pool, settings.worker_id, HANDLERS, ExecutorLimits(
        concurrency=settings.concurrency, batch_size=settings.batch_size, lease_seconds=settings.lease_seconds,
        poll_interval=settings.poll_interval, shutdown_grace=settings.shutdown_grace,
        retry_base_seconds=settings.retry_base_seconds), metrics)
    scheduler = build_scheduler(pool, settings.poll_interval, local_tasks=[
        ("refresh queue metrics", settings.poll_interval, metrics.refresh_queue)] if metrics else [])
    try:
        scheduler.start()
        log.info("worker ready", extra={"worker_id": settings.worker_id, "database": redacted(settings.database_url),
                                        "kinds": sorted(HANDLERS)})
        await asyncio.gather(
            executor.run(wakeups.jobs, stopping),
            run_stats_loop(pool, settings.stats_batch_size, wakeups.stats, stopping, settings.poll_interval),
        )
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        if health_server:
            await health_server.close()
        await pool.close()
    log.info("worker stopped", extra={"worker_id": settings.worker_id})
    return 0
