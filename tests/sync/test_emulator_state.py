"""The emulated device's state file: stored sessions, confirmed flags and firmware survive the emulating process."""

from __future__ import annotations

from pathlib import Path

from dualtetrax.ble.client import DualTetraXClient
from dualtetrax.emulator import EmulatorWorld, sample_sessions


async def test_state_survives_a_new_emulator(tmp_path: Path) -> None:
    path = tmp_path / "device.sqlite"
    records = sample_sessions(20, mixed=True)
    async with EmulatorWorld() as world:
        device = await world.add_device(state_file=path, sessions=records, firmware_version="1.0.0")
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            await ble.sync_time()
            for record in records[:5]:
                await ble.confirm_session(record.session_id)
        device.firmware_version = "1.2.0"  # as an update would leave it
        extra = sample_sessions(1, seed=99)[0]
        device.add_session(extra, announce=False)
    async with EmulatorWorld() as world:  # "another process": only the file is shared
        device = await world.add_device(state_file=path, sessions=sample_sessions(3, seed=1), firmware_version="9.9.9")
        assert device.firmware_version == "1.2.0"
        assert list(device.sessions) == [r.session_id for r in [*records, extra]]  # storage order kept
        assert [device.sessions[r.session_id].synced for r in records] == [True] * 5 + [False] * 15
        assert device.sessions[records[7].session_id].record == records[7]  # byte for byte
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            listing = await ble.list_sessions(255)
            assert listing.total_count == 16
            assert [s.session_id for s in listing.sessions] == [r.session_id for r in records[5:20]]
            assert await ble.read_firmware_revision() == "1.2.0"
            await ble.delete_session(records[6].session_id)
    async with EmulatorWorld() as world:
        device = await world.add_device(state_file=path)
        assert records[6].session_id not in device.sessions and len(device.sessions) == 20


async def test_without_a_state_file_nothing_changes(tmp_path: Path) -> None:
    async with EmulatorWorld() as world:
        device = await world.add_device(sessions=sample_sessions(12))
        assert device.state is None
        async with DualTetraXClient(device.address, backends=world.backends) as ble:
            assert len((await ble.list_sessions()).sessions) == 10  # the app's request: max 10
            assert len((await ble.list_sessions(255)).sessions) == 12
