"""The OTA engine against the emulated device: happy paths, every fault knob, retry, cancel."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from ble_helpers import FAST_TIMEOUTS, add_device, assert_clean

from dualtetrax.ble import DualTetraXClient, OtaPhase, OtaProgress
from dualtetrax.ble.errors import (
    DeviceNotFoundError,
    OtaCancelledError,
    OtaDisconnectedError,
    OtaLowBatteryError,
    OtaRejectedError,
    OtaTimeoutError,
    OtaTransferFailedError,
    OtaValidationFailedError,
    OtaVersionMismatchError,
)
from dualtetrax.ble.ota import OtaTransfer, update_firmware
from dualtetrax.ble.protocol import StartCommand, uuids
from dualtetrax.ble.protocol.enums import OtaErrorCode, OtaState
from dualtetrax.emulator import EmulatedDualTetraX, EmulatorWorld, Faults
from dualtetrax.firmware import ChecksumMismatchError, ExpectedDigestMismatchError, inspect_image


async def flash(world: EmulatorWorld, device: EmulatedDualTetraX, image: bytes, **options: object):  # type: ignore[no-untyped-def]
    options.setdefault("timeouts", FAST_TIMEOUTS)
    return await update_firmware(device.address, image, backends=world.backends, **options)  # type: ignore[arg-type]


async def flash_cleanly_afterwards(world: EmulatorWorld, device: EmulatedDualTetraX, image: bytes) -> None:
    """The failure left nothing behind: a fresh update succeeds."""
    await assert_clean(world, device)
    device.faults = Faults(reboot_delay_s=0.02)
    result = await flash(world, device, image)
    assert result.verified and device.firmware_version == inspect_image(image).version


# ------------------------------------------------------------------ happy paths


@pytest.mark.parametrize(("mtu", "chunk"), [(23, 16), (247, 240), (517, 508)])
async def test_happy_path_at_each_mtu(mtu: int, chunk: int, image: bytes) -> None:
    async with EmulatorWorld(central_mtu=None if mtu == 23 else mtu) as world:
        device = await add_device(world)
        events: list[OtaProgress] = []
        result = await flash(world, device, image, on_progress=events.append)

    assert (result.previous_version, result.new_version, result.verified) == ("1.0.0", "1.1.0", True)
    assert (result.mtu, result.chunk_size) == (mtu, chunk)
    assert result.chunk_count == -(-len(image) // chunk) and result.attempts == 1
    assert result.image_sha256 == hashlib.sha256(image).hexdigest()
    assert device.applied_image == image and device.firmware_version == "1.1.0" and device.reboots == 1
    assert device.largest_data_write == chunk + 4 <= 512

    phases = list(dict.fromkeys(event.phase for event in events))
    # REBOOTING is skipped when the reboot drops the link before the SUCCESS notification is
    # seen; the engine then verifies by version, as the last assertions check.
    order = [OtaPhase.CONNECTING, OtaPhase.PREPARING, OtaPhase.STARTING, OtaPhase.TRANSFERRING,
             OtaPhase.VALIDATING, OtaPhase.VERIFYING, OtaPhase.DONE]  # fmt: skip
    assert [p for p in phases if p in order] == order
    sent = [event.bytes_sent for event in events]
    assert sent == sorted(sent) and sent[-1] == len(image)
    assert events[-1].to_dict()["percent"] == 100.0


async def test_device_mtu_cap_is_respected(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(max_mtu=247))
    result = await flash(world, device, image)
    assert (result.mtu, result.chunk_size) == (247, 240)


async def test_512_byte_attribute_limit(image: bytes) -> None:
    """The app's MTU−7 rule writes 514-byte values at MTU 517; a GATT server drops them. The SDK never does."""
    async with EmulatorWorld(central_mtu=517) as world:
        device = await add_device(world)
        async with DualTetraXClient(device.address, backends=world.backends) as client:
            data = client.characteristic(uuids.OTA_DATA)
            assert data.max_write_without_response_size == 514
            await client.write_characteristic(uuids.OTA_CONTROL, StartCommand(1020, 2).encode(), response=True)
            await client.bleak_client.write_gatt_char(data, (0).to_bytes(4, "little") + bytes(510), response=False)
            await asyncio.sleep(0.1)
            assert device.largest_data_write == 0  # dropped by the GATT server: over 512 bytes
        result = await flash(world, device, image)
    assert result.chunk_size == 508 and device.largest_data_write == 512


async def test_update_through_an_open_client_resets_a_stale_session(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world)
    async with DualTetraXClient(device.address, backends=world.backends) as client:
        await client.write_characteristic(uuids.OTA_CONTROL, StartCommand(5000, 21).encode(), response=True)
        assert device.ota_status.state is OtaState.DOWNLOADING
        result = await update_firmware(client, image, timeouts=FAST_TIMEOUTS)
    assert result.verified and "ota: cancelled" in device.events


# ------------------------------------------------------------------ the image is checked first


async def test_corrupted_image_is_refused_before_any_byte_is_sent(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world)
    corrupted = bytearray(image)
    corrupted[5000] ^= 0x01
    with pytest.raises(ChecksumMismatchError):
        await flash(world, device, bytes(corrupted))
    assert device.events == []  # not even a connection


async def test_expected_sha256_is_enforced(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world)
    with pytest.raises(ExpectedDigestMismatchError):
        await flash(world, device, image, expected_sha256="ab" * 32)
    assert device.events == []
    result = await flash(world, device, image, expected_sha256=hashlib.sha256(image).hexdigest())
    assert result.verified


async def test_absent_device(world: EmulatorWorld, image: bytes) -> None:
    with pytest.raises(DeviceNotFoundError):
        await update_firmware("12:34:56:78:9A:BC", image, backends=world.backends, scan_timeout=0.3)


# ------------------------------------------------------------------ fault knobs


async def test_disconnect_mid_transfer(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(disconnect_after_bytes=6000))
    with pytest.raises(OtaDisconnectedError) as raised:
        await flash(world, device, image)
    assert raised.value.phase == "transferring" and 0 < raised.value.bytes_sent < len(image)
    assert device.firmware_version == "1.0.0" and device.applied_image is None
    await flash_cleanly_afterwards(world, device, image)


async def test_retry_after_a_mid_transfer_disconnect_succeeds(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(disconnect_after_bytes=6000))
    result = await flash(world, device, image, attempts=2)
    assert result.attempts == 2 and result.verified
    assert device.events.count("ota: START size=16384 chunks=33") == 2


async def test_lost_ready_notification_falls_back_to_reading_status(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(drop_status=frozenset({OtaState.DOWNLOADING})))
    result = await flash(world, device, image)
    assert result.verified and device.status_reads >= 2


async def test_notify_only_status(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(status_not_readable=True))
    assert (await flash(world, device, image)).verified
    assert device.status_reads == 0


async def test_lost_notification_that_cannot_be_read_back_times_out(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(
        world, faults=Faults(status_not_readable=True, drop_status=frozenset({OtaState.DOWNLOADING}))
    )
    with pytest.raises(OtaTimeoutError, match="report that it is receiving") as raised:
        await flash(world, device, image)
    assert raised.value.phase == "starting"
    await assert_clean(world, device)


async def test_lost_validation_notifications(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(
        world,
        faults=Faults(drop_status=frozenset({OtaState.VALIDATING, OtaState.UPGRADING}), apply_delay_s=0.3),
    )
    assert (await flash(world, device, image)).verified


async def test_lost_success_notification_is_verified_by_version(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(drop_status=frozenset({OtaState.SUCCESS})))
    result = await flash(world, device, image)
    assert result.verified and result.new_version == "1.1.0"


async def test_delayed_notifications(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(status_delay_s=0.3))
    assert (await flash(world, device, image)).verified


async def test_low_battery_is_refused_before_start(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, battery_percent=60)
    with pytest.raises(OtaLowBatteryError, match="60 %") as raised:
        await flash(world, device, image)
    assert "Charge the device" in str(raised.value)
    assert not any(event.startswith("ota: START") for event in device.events)
    await assert_clean(world, device)


async def test_low_battery_is_refused_by_the_device(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, battery_percent=60)
    with pytest.raises(OtaLowBatteryError) as raised:
        await flash(world, device, image, check_battery=False)
    assert raised.value.device_error is OtaErrorCode.LOW_BATTERY
    device.battery_percent = 90
    await flash_cleanly_afterwards(world, device, image)


async def test_battery_dropping_during_the_update(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(battery_drop_after_bytes=5000, battery_drop_to=45))
    with pytest.raises(OtaLowBatteryError) as raised:
        await flash(world, device, image)
    assert raised.value.device_error is OtaErrorCode.BATTERY_DROPPED
    device.battery_percent = 95
    await flash_cleanly_afterwards(world, device, image)


async def test_start_rejected(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(reject_start_att_error=0x80))
    with pytest.raises(OtaRejectedError, match="ATT error 0x80"):
        await flash(world, device, image)
    await flash_cleanly_afterwards(world, device, image)


async def test_slow_validation_within_the_timeout(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(validation_delay_s=0.4))
    assert (await flash(world, device, image)).verified


async def test_validation_timeout(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(validation_delay_s=1.5))
    with pytest.raises(OtaTimeoutError, match="validating within 1 s") as raised:
        await flash(world, device, image)
    assert raised.value.phase == "validating" and raised.value.device_state is OtaState.VALIDATING
    device.faults.validation_delay_s = 0.0  # the device finishes on its own and reboots
    await device.wait_advertising(timeout_s=5.0)
    for _ in range(100):
        if device.reboots and device.is_advertising:
            break
        await asyncio.sleep(0.05)
    assert device.reboots == 1
    await flash_cleanly_afterwards(world, device, image)


async def test_device_validation_failure(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(corrupt_received_byte=3000))
    with pytest.raises(OtaValidationFailedError) as raised:
        await flash(world, device, image)
    assert raised.value.device_error is OtaErrorCode.CHECKSUM_FAILED
    assert device.firmware_version == "1.0.0"
    await flash_cleanly_afterwards(world, device, image)


async def test_lost_chunk(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(drop_chunks=frozenset({7})))
    with pytest.raises(OtaTransferFailedError) as raised:
        await flash(world, device, image)
    assert raised.value.device_error is OtaErrorCode.WRITE_FAILED
    await flash_cleanly_afterwards(world, device, image)


async def test_rollback_at_boot_is_a_version_mismatch(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(boot_previous_version=True))
    with pytest.raises(OtaVersionMismatchError, match=r"runs '1\.0\.0'"):
        await flash(world, device, image)
    await flash_cleanly_afterwards(world, device, image)


async def test_device_that_never_reboots(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world)
    device.faults.reboot_delay_s = 0.02

    async def no_reboot(new_version: str) -> None:
        return None

    device._reboot = no_reboot  # type: ignore[method-assign]
    with pytest.raises(OtaTimeoutError, match="did not restart"):
        await flash(world, device, image)


# ------------------------------------------------------------------ cancel


async def test_cancel_mid_transfer(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world)
    transfers: list[OtaTransfer] = []

    def on_progress(event: OtaProgress) -> None:
        if event.phase is OtaPhase.TRANSFERRING and event.bytes_sent > 4000:
            transfers[0].cancel()

    with pytest.raises(OtaCancelledError):
        await flash(world, device, image, on_progress=on_progress, on_transfer=transfers.append)
    assert "ota: cancelled" in device.events and device.applied_image is None
    await flash_cleanly_afterwards(world, device, image)


async def test_task_cancellation_still_tells_the_device(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world)
    started = asyncio.Event()

    def on_progress(event: OtaProgress) -> None:
        if event.phase is OtaPhase.TRANSFERRING and event.bytes_sent > 0:
            started.set()

    task = asyncio.create_task(flash(world, device, image, on_progress=on_progress))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "ota: cancelled" in device.events
    await flash_cleanly_afterwards(world, device, image)


# ------------------------------------------------------------------ more knobs and shapes


async def test_applying_timeout(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(apply_delay_s=1.5))
    with pytest.raises(OtaTimeoutError, match="applying within 1 s") as raised:
        await flash(world, device, image)
    assert raised.value.phase == "applying" and raised.value.device_state is OtaState.UPGRADING


async def test_a_link_that_always_drops_exhausts_the_retries(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(disconnect_after_bytes=6000, disconnect_every_time=True))
    with pytest.raises(OtaDisconnectedError):
        await flash(world, device, image, attempts=3)
    assert sum(event.startswith("ota: START") for event in device.events) == 3
    await flash_cleanly_afterwards(world, device, image)


async def test_update_on_a_generation_1_device(world: EmulatorWorld, image: bytes) -> None:
    from dualtetrax.ble.protocol import StatusGeneration

    device = await add_device(world, generation=StatusGeneration.PER_CHARACTERISTIC)
    assert (await flash(world, device, image)).verified


async def test_link_lost_during_validation_is_resolved_by_the_version(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(validation_delay_s=0.6))
    dropped: list[asyncio.Task[None]] = []

    def on_progress(event: OtaProgress) -> None:
        if event.phase is OtaPhase.VALIDATING and not dropped:
            dropped.append(asyncio.ensure_future(device.connections[0].disconnect()))

    result = await flash(world, device, image, on_progress=on_progress)
    assert dropped and result.verified and result.new_version == "1.1.0"


async def test_link_lost_during_validation_of_a_bad_image(world: EmulatorWorld, image: bytes) -> None:
    device = await add_device(world, faults=Faults(validation_delay_s=0.3, corrupt_received_byte=900))
    dropped: list[asyncio.Task[None]] = []

    def on_progress(event: OtaProgress) -> None:
        if event.phase is OtaPhase.VALIDATING and not dropped:
            dropped.append(asyncio.ensure_future(device.connections[0].disconnect()))

    with pytest.raises(OtaValidationFailedError) as raised:
        await flash(world, device, image, on_progress=on_progress)
    assert raised.value.device_error is OtaErrorCode.CHECKSUM_FAILED
