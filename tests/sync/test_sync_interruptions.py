"""Interrupted syncs — link lost mid-pull and mid-confirm, network errors before and after the server committed,
cancellation at random points — and the rerun that finishes the job: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import contextlib
import random
import types
import uuid
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from dualtetrax.ble.client import DualTetraXClient
from dualtetrax.ble.errors import DeviceDisconnectedError, DualTetraXBleError
from dualtetrax.ble.protocol.enums import MessageType
from dualtetrax.cloud import DtxCloud
from dualtetrax.cloud.errors import NetworkError
from dualtetrax.cloud.local_backend import LocalCloudBackend
from dualtetrax.emulator import EmulatedDualTetraX, EmulatorWorld, sample_sessions
from dualtetrax.sync import Outbox, SyncReport, sync_device
from tests.sync.conftest import server_rows
from tests.sync.helpers import FlakyBackend, assert_complete, assert_never_confirmed_early

T = TypeVar("T")
SESSIONS = 40  # three listings of up to 15, with untimed and too-short sessions among them


def confirmed(device: EmulatedDualTetraX) -> dict[str, bool]:
    return {str(key): stored.synced for key, stored in device.sessions.items()}


async def run_sync(world: EmulatorWorld, device: EmulatedDualTetraX, cloud: DtxCloud, outbox: Outbox,
                   **options: Any) -> SyncReport:
    await device.wait_advertising()
    async with DualTetraXClient(device.address, backends=world.backends, timeout=5.0) as ble:
        return await sync_device(ble, cloud, outbox, **options)


async def finish_and_check(world: EmulatorWorld, device: EmulatedDualTetraX, cloud: DtxCloud, outbox: Outbox,
                           db: psycopg.Connection[dict[str, Any]], records: list[Any]) -> SyncReport:
    report = await run_sync(world, device, cloud, outbox)
    assert report.device_id is not None
    assert_complete(confirmed(device), records, db, report.device_id)
    assert outbox.counts() == {"pulled": 0, "uploaded": 0, "skipped": 0, "rejected": 0,
                               "confirmed": len(records)}
    return report


@pytest.fixture
async def setup(world: EmulatorWorld, tmp_path: Path) -> tuple[EmulatedDualTetraX, Outbox, list[Any]]:
    records = sample_sessions(SESSIONS, mixed=True, seed=random.randrange(1 << 30))
    device = await world.add_device(serial_number=f"SN-{uuid.uuid4().hex[:8]}", sessions=records)
    return device, Outbox(tmp_path / "outbox.sqlite"), records


@pytest.mark.parametrize(("request_type", "nth", "handled"), [
    (MessageType.GET_SESSION_DETAIL, 1, False),
    (MessageType.GET_SESSION_DETAIL, 18, False),  # second listing
    (MessageType.GET_SESSIONS, 2, False),
    (MessageType.CONFIRM_SYNC, 1, True),  # the device confirmed, the answer is lost with the link
    (MessageType.CONFIRM_SYNC, 9, False),
    (MessageType.CONFIRM_SYNC, 16, True),
    (MessageType.TIME_SYNC, 1, False),
])
async def test_link_lost(world: EmulatorWorld, cloud: DtxCloud, db: psycopg.Connection[dict[str, Any]],
                         setup: tuple[EmulatedDualTetraX, Outbox, list[Any]], request_type: MessageType, nth: int,
                         handled: bool) -> None:
    device, outbox, records = setup
    device.drop_link_at(request_type, nth, handled=handled)
    with pytest.raises(DeviceDisconnectedError):
        await run_sync(world, device, cloud, outbox)
    assert any("dropping the link" in event for event in device.events)
    device_id = outbox.device(next(iter(outbox.entries())).device_serial).device_id if outbox.entries() else None
    assert_never_confirmed_early(confirmed(device), records, db, device_id)
    report = await finish_and_check(world, device, cloud, outbox, db, records)
    assert report.duplicates == 0  # nothing reached the server twice: the outbox knew what it had uploaded


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
@pytest.mark.parametrize("fail_at", [1, 2, 3])
async def test_network_error(world: EmulatorWorld, cloud: DtxCloud, account: tuple[str, str],
                             cloud_factory: Callable[[], LocalCloudBackend], db: psycopg.Connection[dict[str, Any]],
                             setup: tuple[EmulatedDualTetraX, Outbox, list[Any]], fail_at: int,
                             after_commit: bool) -> None:
    device, outbox, records = setup
    flaky = FlakyBackend(cloud_factory(), fail_at=fail_at, after_commit=after_commit)
    async with DtxCloud(flaky) as flaky_cloud:
        await flaky_cloud.sign_in(*account)
        with pytest.raises(NetworkError):
            await run_sync(world, device, flaky_cloud, outbox)
    device_id = outbox.entries()[0].device_serial and outbox.device(outbox.entries()[0].device_serial).device_id
    assert_never_confirmed_early(confirmed(device), records, db, device_id)
    failed = [entry for entry in outbox.entries() if entry.last_error]
    assert failed and all("NetworkError" in (entry.last_error or "") for entry in failed)
    report = await finish_and_check(world, device, cloud, outbox, db, records)
    # after a lost answer the server already had that batch: the rerun sees duplicates, stores nothing twice
    assert (report.duplicates > 0) == after_commit


async def counting(coroutine: Coroutine[Any, Any, T], steps: list[int]) -> T:
    """Run ``coroutine``, counting the times it suspends (its await points that really wait)."""
    return await _counted(coroutine, steps)


@types.coroutine
def _counted(coroutine: Coroutine[Any, Any, T], steps: list[int]) -> Generator[Any, Any, T]:
    awaitable = coroutine.__await__()
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            yielded = awaitable.throw(error) if error is not None else awaitable.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        steps[0] += 1
        try:
            value, error = (yield yielded), None
        except BaseException as thrown:  # cancellation arrives here and goes into the sync
            value, error = None, thrown


async def test_cancelled_at_random_points(world: EmulatorWorld, cloud: DtxCloud,
                                          db: psycopg.Connection[dict[str, Any]],
                                          setup: tuple[EmulatedDualTetraX, Outbox, list[Any]]) -> None:
    device, outbox, records = setup
    rng = random.Random(20261122)
    for extra in sample_sessions(80, seed=rng.randrange(1 << 30)):  # 120 sessions: eight listings
        device.add_session(extra, announce=False)
        records.append(extra)
    cancelled = 0
    progress: set[tuple[int, int, int]] = set()
    for _ in range(30):
        await device.wait_advertising()
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            steps = [0]
            task = asyncio.create_task(counting(sync_device(ble, cloud, outbox), steps))
            stop_at = rng.randrange(1, 60)  # a random await point: its stop_at-th suspension (~35 a listing)
            while steps[0] < stop_at and not task.done():  # noqa: ASYNC110 - polls another task's step count
                await asyncio.sleep(0)
            if not task.done():
                task.cancel()
                cancelled += 1
            # cancelled, or the pipeline dropped a link that was out of step
            with contextlib.suppress(asyncio.CancelledError, DualTetraXBleError):
                await task
        device_id = outbox.device(outbox.entries()[0].device_serial).device_id if outbox.entries() else None
        assert_never_confirmed_early(confirmed(device), records, db, device_id)
        progress.add((sum(confirmed(device).values()), outbox.counts()["pulled"], outbox.counts()["uploaded"]))
        if all(confirmed(device).values()):
            break
    assert cancelled >= 5 and len(progress) >= 4, progress  # stopped at several different stages
    await finish_and_check(world, device, cloud, outbox, db, records)


async def test_another_devices_backlog_is_uploaded_and_confirmed_later(
        world: EmulatorWorld, cloud: DtxCloud, account: tuple[str, str],
        cloud_factory: Callable[[], LocalCloudBackend], db: psycopg.Connection[dict[str, Any]],
        setup: tuple[EmulatedDualTetraX, Outbox, list[Any]]) -> None:
    first, outbox, first_records = setup
    flaky = FlakyBackend(cloud_factory(), fail_at=1, after_commit=False)
    async with DtxCloud(flaky) as flaky_cloud:
        await flaky_cloud.sign_in(*account)
        with pytest.raises(NetworkError):
            await run_sync(world, first, flaky_cloud, outbox)
    assert outbox.counts()["pulled"] > 0 and not any(confirmed(first).values())
    second_records = sample_sessions(5, seed=random.randrange(1 << 30))
    second = await world.add_device(serial_number=f"SN-{uuid.uuid4().hex[:8]}", sessions=second_records)
    report = await run_sync(world, second, cloud, outbox)
    assert report.stored == 5  # only its own sessions count in its report …
    first_serial = first.serial_number
    assert first_serial is not None
    first_id = outbox.device(first_serial).device_id
    assert first_id is not None
    backlog = {e.session_id for e in outbox.entries(first_serial) if e.outcome != "skipped"}
    assert backlog and backlog <= set(server_rows(db, first_id))  # … but the first device's backlog is uploaded
    assert outbox.counts(first_serial)["pulled"] == 0
    assert not any(confirmed(first).values())  # and waits for its own device to be confirmed
    final = await run_sync(world, first, cloud, outbox)
    assert_complete(confirmed(first), first_records, db, first_id)
    assert final.duplicates == 0
