"""The device client over bleak → bumble: scanning, connecting, both status generations, sessions."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from ble_helpers import add_device

from dualtetrax.ble import DualTetraXClient, find_device, scan
from dualtetrax.ble.errors import (
    CommandRejectedError,
    ConnectionFailedError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    MalformedFrameError,
    MtuTooSmallError,
    UnsupportedDeviceError,
)
from dualtetrax.ble.protocol import (
    DeviceMode,
    ResponseStatus,
    SessionEnded,
    SessionStarted,
    ShotType,
    StatusGeneration,
    WarningFlags,
    WorkingState,
)
from dualtetrax.emulator import EmulatorWorld, sample_sessions

# ------------------------------------------------------------------ scanning


async def test_scan_lists_dualtetrax_devices_only(world: EmulatorWorld) -> None:
    first = await add_device(world)
    second = await add_device(world)
    await add_device(world, name="Thermometer-01")
    found = await scan(timeout_s=0.3, backends=world.backends)
    assert sorted(d.name or "" for d in found) == sorted([first.name, second.name])
    assert {d.address for d in found} == {first.address, second.address}
    everything = await scan(timeout_s=0.3, name_prefix=None, backends=world.backends)
    assert "Thermometer-01" in {d.name for d in everything}
    assert found[0].to_dict().keys() == {"address", "name", "rssi"}


async def test_find_by_address_name_and_prefix(world: EmulatorWorld) -> None:
    await add_device(world, name="Other-1")
    target = await add_device(world)
    assert (await find_device(address=target.address.lower(), timeout_s=2, backends=world.backends)).name == target.name
    assert (await find_device(name=target.name, timeout_s=2, backends=world.backends)).address == target.address
    assert (await find_device(timeout_s=2, backends=world.backends)).address == target.address


async def test_device_not_found_is_typed_and_bounded(world: EmulatorWorld) -> None:
    started = time.monotonic()
    with pytest.raises(DeviceNotFoundError, match="address 11:22:33:44:55:66") as raised:
        await find_device(address="11:22:33:44:55:66", timeout_s=0.3, backends=world.backends)
    assert time.monotonic() - started < 2
    assert "switched on" in str(raised.value)


# ------------------------------------------------------------------ connecting


async def test_connect_by_address_and_read_device_information(world: EmulatorWorld) -> None:
    device = await add_device(world, firmware_version="2.3.4", serial_number="DTX-000042")
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        assert client.is_connected and client.mtu == 517
        assert await client.read_firmware_revision() == "2.3.4"
        info = await client.read_device_info()
        assert (info.model_number, info.serial_number, info.hardware_revision) == (
            "DualTetraX",
            "DTX-000042",
            None,
        )
        assert info.to_dict()["status_generation"] == 2
    assert not client.is_connected
    assert len(world.link.controllers) == 1  # the central left the link


async def test_connect_to_first_device_by_default(world: EmulatorWorld) -> None:
    device = await add_device(world)
    async with DualTetraXClient(backends=world.backends) as client:
        assert client.address == device.address and client.name == device.name


async def test_connect_timeout_is_typed(world: EmulatorWorld) -> None:
    device = await add_device(world)
    discovered = await find_device(address=device.address, timeout_s=2, backends=world.backends)
    await device.stop()  # gone between the scan and the connect
    with pytest.raises(DeviceNotFoundError):
        await DualTetraXClient(discovered, backends=world.backends, timeout=0.5).connect()


async def test_connect_times_out_when_device_stops_advertising(world: EmulatorWorld) -> None:
    device = await add_device(world)
    discovered = await find_device(address=device.address, timeout_s=2, backends=world.backends)
    await device.set_advertising(False)
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match=r"timed out after 0\.4 s"):
        await DualTetraXClient(discovered, backends=world.backends, timeout=0.4).connect()
    assert time.monotonic() - started < 3
    await device.set_advertising(True)
    async with DualTetraXClient(discovered, backends=world.backends) as client:
        assert await client.read_firmware_revision() == "1.0.0"


@pytest.mark.parametrize("generation", [StatusGeneration.PER_CHARACTERISTIC, StatusGeneration.FRAMED])
async def test_status_generation_is_detected(world: EmulatorWorld, generation: StatusGeneration) -> None:
    device = await add_device(world, generation=generation)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        assert client.generation is generation


# ------------------------------------------------------------------ status


@pytest.mark.parametrize("generation", [StatusGeneration.PER_CHARACTERISTIC, StatusGeneration.FRAMED])
async def test_status_read_and_live_stream(world: EmulatorWorld, generation: StatusGeneration) -> None:
    device = await add_device(world, generation=generation, battery_percent=80)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        status = await client.read_status()
        assert status.generation is generation
        assert status.working_state is WorkingState.STANDBY and status.battery_percent == 80
        stream = client.status_updates()
        assert (await anext(stream)).mode is DeviceMode.GLOW
        device.set_status(shot=ShotType.E_SHOT, mode=DeviceMode.FIRM, working_state=WorkingState.WORKING)
        device.set_status(warnings=WarningFlags.TEMPERATURE, elapsed_s=12)
        latest = await anext(stream)
        async with asyncio.timeout(2):
            while latest.elapsed_s != 12:
                latest = await anext(stream)
        assert (latest.shot, latest.mode, latest.working_state) == (
            ShotType.E_SHOT,
            DeviceMode.FIRM,
            WorkingState.WORKING,
        )
        assert latest.warnings is WarningFlags.TEMPERATURE
        if generation is StatusGeneration.FRAMED:
            assert latest.battery_mv == 4000 and latest.session_active is False
        await stream.aclose()


async def test_status_stream_ends_with_a_typed_error_on_disconnect(world: EmulatorWorld) -> None:
    device = await add_device(world)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        stream = client.status_updates()
        await anext(stream)
        for connection in device.connections:
            await connection.disconnect()
        with pytest.raises(DeviceDisconnectedError):
            async with asyncio.timeout(2):
                await anext(stream)
        with pytest.raises(DeviceDisconnectedError):
            await client.read_firmware_revision()


async def test_session_announcements_arrive_as_messages(world: EmulatorWorld) -> None:
    device = await add_device(world)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        messages = client.messages()
        pending = asyncio.ensure_future(anext(messages))
        await asyncio.sleep(0.05)
        record = sample_sessions(1)[0]
        device.add_session(record)
        kinds = []
        async with asyncio.timeout(2):
            message = await pending
            while not isinstance(message, SessionEnded):
                kinds.append(type(message))
                message = await anext(messages)
        assert SessionStarted in kinds
        assert message.session_id == record.session_id and message.working_s == record.working_duration_s
        await messages.aclose()


# ------------------------------------------------------------------ time sync and sessions


async def test_time_sync(world: EmulatorWorld) -> None:
    device = await add_device(world)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        sent = await client.sync_time(at_ms=1_767_225_600_000)
    assert sent == 1_767_225_600_000
    assert abs(device.now_ms() - 1_767_225_600_000) < 5_000
    assert "time sync 1767225600000" in device.events


async def test_read_and_confirm_sessions(world: EmulatorWorld) -> None:
    stored = sample_sessions(3)
    device = await add_device(world, sessions=stored)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        listing = await client.list_sessions()
        assert listing.total_count == 3 and [s.session_id for s in listing.sessions] == [r.session_id for r in stored]
        record = await client.get_session(stored[1].session_id)
        assert record == stored[1]
        assert len(record.battery_samples) > 1
        await client.confirm_session(stored[1].session_id)
        assert device.sessions[stored[1].session_id].synced
        assert (await client.list_sessions()).total_count == 2
        assert (await client.list_sessions(unsynced_only=False)).total_count == 3


async def test_pull_sessions_reads_details_and_confirms_all(world: EmulatorWorld) -> None:
    stored = sample_sessions(12)  # more than one GET_SESSIONS answer carries
    device = await add_device(world, sessions=stored)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        peeked = await client.pull_sessions(confirm=False)
        assert len(peeked) == 10 and not any(s.synced for s in device.sessions.values())
        pulled = await client.pull_sessions()
        assert pulled == stored
        assert all(s.synced for s in device.sessions.values())
        assert await client.pull_sessions() == []


async def test_delete_and_unknown_session(world: EmulatorWorld) -> None:
    stored = sample_sessions(2)
    device = await add_device(world, sessions=stored)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        await client.delete_session(stored[0].session_id)
        assert list(device.sessions) == [stored[1].session_id]
        with pytest.raises(CommandRejectedError, match="no such session") as raised:
            await client.get_session(uuid.uuid4())
        assert raised.value.status is ResponseStatus.NOT_FOUND
        with pytest.raises(CommandRejectedError):
            await client.confirm_session(stored[0].session_id)


async def test_sessions_need_generation_2(world: EmulatorWorld) -> None:
    device = await add_device(world, generation=StatusGeneration.PER_CHARACTERISTIC)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        with pytest.raises(UnsupportedDeviceError, match="framed communication"):
            await client.list_sessions()
        with pytest.raises(UnsupportedDeviceError):
            await client.sync_time()


async def test_small_mtu_is_reported_not_hidden() -> None:
    async with EmulatorWorld(central_mtu=None) as world:  # no MTU exchange: 23
        device = await add_device(world, sessions=sample_sessions(2))
        async with DualTetraXClient(device.address, backends=world.backends) as client:
            assert client.mtu == 23
            await client.sync_time()  # small frames still work
            with pytest.raises(MtuTooSmallError, match="MTU 23"):
                await client.pull_sessions()
            with pytest.raises(MalformedFrameError, match="MTU"):
                await client.get_session(next(iter(device.sessions)))
