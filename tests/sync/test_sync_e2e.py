"""End to end: the emulated device (bumble GATT) → outbox → local database through the production cloud client."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from dualtetrax.ble.client import DualTetraXClient
from dualtetrax.ble.protocol.enums import MessageType
from dualtetrax.cloud import DtxCloud
from dualtetrax.emulator import EmulatorWorld, sample_sessions
from dualtetrax.sync import Outbox, sync_device
from dualtetrax.sync.payload import MIN_WORKING_S
from tests.sync.conftest import server_duplicates, server_rows


async def test_sync_moves_every_session_once(world: EmulatorWorld, cloud: DtxCloud, tmp_path: Path,
                                             db: psycopg.Connection[dict[str, Any]]) -> None:
    records = sample_sessions(40, mixed=True, seed=random.randrange(1 << 30))
    device = await world.add_device(serial_number=f"SN-{uuid.uuid4().hex[:8]}", sessions=records)
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            report = await sync_device(ble, cloud, outbox)
        assert report.registered and report.device_id
        kept = [r for r in records if r.working_duration_s >= MIN_WORKING_S]
        rows = server_rows(db, report.device_id)
        assert set(rows) == {str(r.session_id) for r in kept}
        assert server_duplicates(db, report.device_id) == 0
        assert report.stored == len(kept) and report.skipped == len(records) - len(kept) and not report.rejected
        assert all(stored.synced for stored in device.sessions.values())
        for record in kept:
            row = rows[str(record.session_id)]
            assert row["working_duration"] == record.working_duration_s
            assert row["level"] == record.level_index + 1
            assert row["device_mode"] == int(record.mode)
            assert row["time_synced"] == record.time_synced
            assert row["samples"] == len(record.battery_samples)
            if record.time_synced:
                assert row["start_time"] == datetime.fromtimestamp(record.start_time_ms / 1000, UTC)
        assert outbox.counts()["confirmed"] == len(records)

        # A second run finds nothing to do.
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            again = await sync_device(ble, cloud, outbox)
        assert (again.pulled, again.stored, again.confirmed, again.registered) == (0, 0, 0, False)


async def test_untimed_sessions_are_retimed_once_from_the_last_device_sync(
        world: EmulatorWorld, cloud: DtxCloud, tmp_path: Path, db: psycopg.Connection[dict[str, Any]]) -> None:
    clock = [1_772_000_000_000]
    records = [dataclasses.replace(r, time_synced=False, start_time_ms=30_000 + i, end_time_ms=40_000 + i)
               for i, r in enumerate(sample_sessions(3, seed=random.randrange(1 << 30)))]
    device = await world.add_device(serial_number=f"SN-{uuid.uuid4().hex[:8]}", sessions=records)
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            report = await sync_device(ble, cloud, outbox, clock_ms=lambda: clock[0])
        assert report.device_id is not None
        rows = server_rows(db, report.device_id)
        offset = 0
        for r in records:  # no earlier device sync: the base is "now"
            row = rows[str(r.session_id)]
            span = (r.working_duration_s + r.pause_duration_s) * 1000
            assert row["start_time"] == _dt(clock[0] + offset) and row["end_time"] == _dt(clock[0] + offset + span)
            assert row["time_synced"] is False
            offset += span + 1000
        # The next sync starts from this sync's time (§3.6 step 5), one hour later.
        first_sync = clock[0]
        clock[0] += 3_600_000
        late = dataclasses.replace(sample_sessions(1, seed=random.randrange(1 << 30))[0], time_synced=False, start_time_ms=1, end_time_ms=2)
        device.add_session(late, announce=False)
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            await sync_device(ble, cloud, outbox, clock_ms=lambda: clock[0])
        assert server_rows(db, report.device_id)[str(late.session_id)]["start_time"] == _dt(first_sync)


async def test_rejected_session_is_reported_kept_and_confirmed(
        world: EmulatorWorld, cloud: DtxCloud, tmp_path: Path, db: psycopg.Connection[dict[str, Any]]) -> None:
    good, bad = sample_sessions(2, seed=random.randrange(1 << 30))
    bad = dataclasses.replace(bad, level_index=7)  # not a level the SDK knows: sent as 0, refused
    serial = f"SN-{uuid.uuid4().hex[:8]}"
    registered = await cloud.register_device(serial)
    device = await world.add_device(serial_number=serial, sessions=[good, bad])
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            report = await sync_device(ble, cloud, outbox)
        assert not report.registered and report.device_id == str(registered.id)
        assert set(server_rows(db, report.device_id)) == {str(good.session_id)}
        assert [key for key, _ in report.rejected] == [str(bad.session_id)] and "level" in report.rejected[0][1]
        assert device.sessions[bad.session_id].synced  # it does not block the device's small memory
        entry = outbox.entries(ids=[str(bad.session_id)])[0]
        assert (entry.state, entry.outcome) == ("confirmed", "rejected") and "level" in (entry.last_error or "")
        assert entry.payload["level"] == 0  # unknown level: sent as it is, kept for a retry after a fix
        outbox.requeue_rejected()
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            again = await sync_device(ble, cloud, outbox)
        assert len(again.rejected) == 1 and outbox.entries(ids=[str(bad.session_id)])[0].state == "confirmed"


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def test_busy_answers_are_retried_one_at_a_time(
        world: EmulatorWorld, cloud: DtxCloud, tmp_path: Path, db: psycopg.Connection[dict[str, Any]]) -> None:
    records = sample_sessions(20, seed=random.randrange(1 << 30))
    device = await world.add_device(serial_number=f"SN-{uuid.uuid4().hex[:8]}", sessions=records)
    device.answer_busy(MessageType.GET_SESSION_DETAIL, 4)
    device.answer_busy(MessageType.CONFIRM_SYNC, 5)
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            report = await sync_device(ble, cloud, outbox)
    assert report.device_id is not None and report.stored == 20 and report.confirmed == 20
    assert set(server_rows(db, report.device_id)) == {str(r.session_id) for r in records}
    assert all(stored.synced for stored in device.sessions.values())


async def test_a_device_id_of_another_device_is_refused_before_anything_moves(
        world: EmulatorWorld, cloud: DtxCloud, tmp_path: Path, db: psycopg.Connection[dict[str, Any]]) -> None:
    from dualtetrax.cloud import ValidationError

    other = await cloud.register_device(f"SN-{uuid.uuid4().hex[:8]}")
    device = await world.add_device(serial_number=f"SN-{uuid.uuid4().hex[:8]}", sessions=sample_sessions(5))
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            try:
                await sync_device(ble, cloud, outbox, device_id=str(other.id))
            except ValidationError as error:
                assert error.field == "device_id" and other.serial_number in error.message
            else:
                raise AssertionError("synced into another device")
        assert server_rows(db, str(other.id)) == {} and outbox.counts()["pulled"] == 0
    assert not any(stored.synced for stored in device.sessions.values())


async def test_answers_for_other_ids_confirm_nothing(world: EmulatorWorld, cloud: DtxCloud, tmp_path: Path) -> None:
    """A server answer whose id does not match the request at that index is not taken as acceptance."""
    from dualtetrax.cloud import CloudError
    from dualtetrax.cloud.models import UploadItemResult, UploadResult

    class Shuffled(DtxCloud):
        async def upload_sessions(self, device_id: Any, sessions: Any) -> UploadResult:
            real = await super().upload_sessions(device_id, sessions)
            ids = [r.id for r in real.results][::-1]
            return UploadResult(stored=real.stored, duplicates=real.duplicates, rejected=real.rejected,
                                results=[UploadItemResult(index=r.index, id=i, status=r.status)
                                         for r, i in zip(real.results, ids, strict=True)])

    device = await world.add_device(serial_number=f"SN-{uuid.uuid4().hex[:8]}",
                                    sessions=[r for r in sample_sessions(6) if r.working_duration_s >= MIN_WORKING_S])
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            try:
                await sync_device(ble, Shuffled(cloud.backend), outbox)
            except CloudError as error:
                assert "nothing is marked" in error.message
            else:
                raise AssertionError("mismatched answers were accepted")
        assert outbox.counts()["uploaded"] == 0 and outbox.counts()["confirmed"] == 0
    assert not any(stored.synced for stored in device.sessions.values())
