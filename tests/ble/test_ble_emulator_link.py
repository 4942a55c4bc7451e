"""The emulated radio and the bleak backend: air-time model, flow control, error mapping."""

from __future__ import annotations

import asyncio
import time

import pytest
from ble_helpers import FAST_TIMEOUTS, add_device
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from dualtetrax.ble import OtaPhase, OtaProgress
from dualtetrax.ble.ota import update_firmware
from dualtetrax.ble.protocol import StartCommand, uuids
from dualtetrax.emulator import AirModel, EmulatorWorld, Faults
from dualtetrax.firmware import build_test_image


def test_air_model_matches_the_spec_arithmetic() -> None:
    one_m = AirModel.le_1m_dle()
    # (1 + 4 + 2 + 251 + 3) · 8 µs + empty PDU 80 µs + 2 · 150 µs (anchors.md, Table 3)
    assert one_m.pdu_airtime_s(251) == pytest.approx(2468e-6)
    assert one_m.ota_capacity_bps() == pytest.approx(240 / 2468e-6)  # ≈ 97.2 kB/s
    assert AirModel.le_2m_dle().pdu_airtime_s(251) == pytest.approx(1392e-6)
    assert AirModel.le_1m_legacy().ota_capacity_bps() == pytest.approx(16 / 676e-6)
    assert "97.2 kB/s" in one_m.describe()


async def _timed_writes(world: EmulatorWorld, count: int) -> tuple[float, float, int]:
    device = await add_device(world)
    async with BleakClient(device.address, backend=world.client_backend, timeout=5) as client:
        data = client.services.get_characteristic(uuids.OTA_DATA)
        assert data is not None and data.max_write_without_response_size == 244
        await client.write_gatt_char(uuids.OTA_CONTROL, StartCommand(count * 240, count).encode(), response=True)
        started = time.monotonic()
        for index in range(count):
            await client.write_gatt_char(data, index.to_bytes(4, "little") + bytes(240), response=False)
        queued = time.monotonic() - started
        await client.write_gatt_char(uuids.OTA_CONTROL, b"\x03", response=True)  # CANCEL: after all data
        delivered = time.monotonic() - started
    return queued, delivered, device.largest_data_write


async def test_paced_link_flow_controls_the_writer() -> None:
    air = AirModel.le_1m_dle()
    count = 120
    async with EmulatorWorld(air=air, central_mtu=247) as world:
        queued, delivered, largest = await _timed_writes(world, count)
    airtime = count * air.pdu_airtime_s(251)
    assert largest == 244
    assert delivered >= airtime * 0.98  # nothing crosses faster than the air allows
    # The write loop itself was held back: it could run ahead by at most the stack's buffers.
    ahead = 2 * air.controller_buffers
    assert queued >= (count - ahead) * air.pdu_airtime_s(251) * 0.95


async def test_unpaced_link_is_cpu_bound() -> None:
    async with EmulatorWorld(central_mtu=247) as world:
        _, delivered, _ = await _timed_writes(world, 120)
    assert delivered < 120 * AirModel.le_1m_dle().pdu_airtime_s(251)


async def test_ota_over_a_paced_link_uses_the_air(image: bytes) -> None:
    """A short version of the benchmark: the engine keeps the modelled link busy."""
    air = AirModel.le_1m_dle()
    firmware = build_test_image(version="1.1.0", size=96 * 1024)
    async with EmulatorWorld(air=air, central_mtu=247) as world:
        device = await add_device(world)
        events: list[OtaProgress] = []
        result = await update_firmware(
            device.address, firmware, backends=world.backends, timeouts=FAST_TIMEOUTS, on_progress=events.append
        )
    utilisation = result.rate_bps / air.ota_capacity_bps()
    assert 0.85 <= utilisation <= 1.0, utilisation
    streaming = [e for e in events if e.phase is OtaPhase.TRANSFERRING and e.rate_bps is not None]
    assert streaming, "progress events carry a measured rate"
    assert all(0.5 * air.ota_capacity_bps() < e.rate_bps < 1.2 * air.ota_capacity_bps() for e in streaming[1:])  # type: ignore[operator]
    etas = [e.eta_s for e in streaming if e.eta_s is not None]
    assert etas and etas[-1] < etas[0]


async def test_disconnected_callback_only_for_unsolicited_drops(world: EmulatorWorld) -> None:
    device = await add_device(world)
    calls: list[str] = []
    dropped = asyncio.Event()

    def on_disconnect(client: BleakClient) -> None:
        calls.append(client.address)
        dropped.set()

    client = BleakClient(device.address, on_disconnect, backend=world.client_backend)
    await client.connect()
    await client.disconnect()
    assert calls == []
    await client.connect()
    for connection in device.connections:
        await connection.disconnect()
    async with asyncio.timeout(2):
        await dropped.wait()
    assert calls == [device.address] and not client.is_connected
    with pytest.raises(BleakError, match="Not connected"):
        await client.read_gatt_char(uuids.FIRMWARE_REVISION)
    await asyncio.sleep(0.05)
    assert len(world.link.controllers) == 1  # the central left the link


async def test_errors_are_mapped_to_bleak_types(world: EmulatorWorld) -> None:
    device = await add_device(world, faults=Faults(reject_start_att_error=0x80))
    with pytest.raises(BleakDeviceNotFoundError):
        await BleakClient("12:34:56:78:9A:BC", backend=world.client_backend).connect()
    async with BleakClient(device.address, backend=world.client_backend) as client:
        with pytest.raises(BleakGATTProtocolError) as raised:
            await client.write_gatt_char(uuids.OTA_CONTROL, StartCommand(100, 1).encode(), response=True)
        assert raised.value.code == 0x80
        with pytest.raises(BleakError, match="exceeds"):
            await client.write_gatt_char(uuids.OTA_DATA, bytes(600), response=False)


async def test_request_interrupted_by_a_drop_raises_bleak_error(world: EmulatorWorld) -> None:
    device = await add_device(world, faults=Faults(validation_delay_s=5))
    async with BleakClient(device.address, backend=world.client_backend) as client:
        connection = device.connections[0]

        async def drop_soon() -> None:
            await asyncio.sleep(0.05)
            await connection.disconnect()

        dropper = asyncio.create_task(drop_soon())
        with pytest.raises(BleakError):
            async with asyncio.timeout(3):
                while True:  # reads until the link drops under them
                    await client.read_gatt_char(uuids.FIRMWARE_REVISION)
        await dropper


async def test_scanner_service_filter(world: EmulatorWorld) -> None:
    await add_device(world)
    assert await BleakScanner.discover(0.2, backend=world.scanner_backend)
    # The device does not advertise service UUIDs (like the app, scan by name).
    assert await BleakScanner.discover(0.2, service_uuids=[uuids.OTA_SERVICE], backend=world.scanner_backend) == []
