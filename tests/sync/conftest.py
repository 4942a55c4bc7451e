"""Fixtures for the sync tests: the test stack's database through the production cloud client, an emulated world,
and helpers that read what the server holds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dualtetrax.cloud import DtxCloud
from dualtetrax.cloud.local_backend import LocalCloudBackend
from dualtetrax.emulator import EmulatorWorld
from tests.support.stack import LocalStack


@pytest.fixture
async def world() -> AsyncIterator[EmulatorWorld]:
    async with EmulatorWorld(air=None) as emulated:
        yield emulated


@pytest.fixture
def cloud_factory(stack: LocalStack, tmp_path: Path) -> Callable[[], LocalCloudBackend]:
    def make() -> LocalCloudBackend:
        return LocalCloudBackend(stack.dsn(), storage_dir=tmp_path / "storage")

    return make


@pytest.fixture
async def account(cloud_factory: Callable[[], LocalCloudBackend]) -> tuple[str, str]:
    """A fresh signed-up user: (email, password)."""
    email, password = f"sync-{uuid.uuid4().hex[:12]}@example.test", "correct horse battery"
    async with DtxCloud(cloud_factory()) as cloud:
        await cloud.sign_up(email, password)
    return email, password


@pytest.fixture
async def cloud(cloud_factory: Callable[[], LocalCloudBackend], account: tuple[str, str]) -> AsyncIterator[DtxCloud]:
    client = DtxCloud(cloud_factory())
    await client.sign_in(*account)
    yield client
    await client.close()


def server_rows(db: psycopg.Connection[dict[str, Any]], device_id: str) -> dict[str, dict[str, Any]]:
    """The device's sessions on the server by id (as text), with their battery sample counts."""
    rows = db.execute(
        "select s.*, s.id::text as id, coalesce(cardinality(b.elapsed_seconds), 0) as samples,"
        " b.elapsed_seconds, b.voltage_mv from usage_sessions s left join battery_samples b on b.session_id = s.id"
        " where s.device_id = %s", (device_id,)).fetchall()
    return {row["id"]: row for row in rows}


def server_duplicates(db: psycopg.Connection[dict[str, Any]], device_id: str) -> int:
    row = db.execute("select count(*) - count(distinct id) as d from usage_sessions where device_id = %s",
                     (device_id,)).fetchone()
    assert row is not None
    return int(row["d"])
