"""A worker process SIGKILLed while storing a report: no object is published, and the retry completes it once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from dtx_worker.handlers.reports import process_request
from dtx_worker.storage import LocalObjectStore
from tests.conftest import MakeUser
from tests.reports_jobs.conftest import Conn, seed_user
from tests.support.pgrest import PostgrestSession
from tests.support.stack import LocalStack

WORKER = """
import asyncio, sys, time, uuid
from pathlib import Path
from psycopg_pool import AsyncConnectionPool
from dtx_worker.handlers.reports import process_request
from dtx_worker.storage import LocalObjectStore

class Stalls(LocalObjectStore):
    def _before_rename(self, tmp, final):  # the temp file is written and fsynced; now wait to be killed
        Path(sys.argv[3]).write_text(str(tmp))
        time.sleep(120)

async def main():
    pool = AsyncConnectionPool(sys.argv[1], min_size=1, max_size=2, open=False, kwargs={"autocommit": True})
    await pool.open(wait=True)
    await process_request(pool, Stalls(Path(sys.argv[2]), pool, secret=b"k"), uuid.UUID(sys.argv[4]))

asyncio.run(main())
"""


async def test_sigkill_mid_store_then_retry_exactly_once(stack: LocalStack, api: PostgrestSession, db: Conn,
                                                         make_user: MakeUser, pool: AsyncConnectionPool,
                                                         tmp_path: Path) -> None:
    u = seed_user(api, db, make_user, tz="Europe/Madrid", month=(2026, 10), seed=21, devices=1)
    req = api.rpc(u.caller, "request_report", kind="monthly", period_start="2026-10-01", locale="es")
    root, marker = tmp_path / "storage", tmp_path / "marker"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER, stack.dsn(), str(root), str(marker),
                                                req["id"])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.returncode is None, "the worker exited before storing"
            assert time.monotonic() < deadline, "the worker never reached the store"
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    folder = root / "reports" / str(u.id)
    final = folder / "2026-10-es.pdf"
    assert not final.exists()
    assert [p.name.startswith(".tmp-2026-10-es.pdf-") for p in folder.iterdir()] == [True]  # unpublished, ignored
    assert db.execute("select count(*) as n from storage.objects where name like %s", (f"{u.id}/%",)).fetchone() == {"n": 0}
    assert db.execute("select status from report_requests where id = %s", (req["id"],)).fetchone() == {"status": "rendering"}
    assert db.execute("select count(*) as n from notifications where user_id = %s", (u.id,)).fetchone() == {"n": 0}

    store = LocalObjectStore(root, pool, secret=b"k")
    assert await process_request(pool, store, uuid.UUID(req["id"])) is True
    assert await process_request(pool, store, uuid.UUID(req["id"])) is False
    assert final.read_bytes()[:5] == b"%PDF-"
    assert db.execute("select status, attempts from report_requests where id = %s",
                      (req["id"],)).fetchone() == {"status": "ready", "attempts": 2}
    assert db.execute("select count(*) as n from storage.objects where name like %s", (f"{u.id}/%",)).fetchone() == {"n": 1}
    notes = db.execute("select title, body from notifications where user_id = %s", (u.id,)).fetchall()
    assert notes == [{"title": "Informe de uso mensual", "body": "octubre de 2026"}]
