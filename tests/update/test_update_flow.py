"""update_device end to end: the local database, the local Storage object server and the emulated device over a
real GATT stack. A good update, failures with their reported codes, and reruns after each."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dualtetrax.ble.client import DualTetraXClient
from dualtetrax.ble.errors import OtaDisconnectedError, OtaValidationFailedError
from dualtetrax.ble.protocol.enums import OtaErrorCode
from dualtetrax.cloud.errors import NetworkError
from dualtetrax.update import (
    DeviceNotRegisteredError,
    HashMismatchError,
    UpdateErrorCode,
    UpdateFailedError,
    UpdateProgress,
    cache_paths,
    update_device,
)
from tests.update.conftest import UpdateEnv


class DroppingTransport(httpx.AsyncBaseTransport):
    """The real HTTP transport to the object server, with the network breaking mid-body on chosen responses."""

    def __init__(self, drops: dict[int, int]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.drops = drops
        self.requests: list[str | None] = []
        self.body_bytes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.headers.get("range"))
        response = await self.inner.handle_async_request(request)
        limit = self.drops.get(len(self.requests))
        transport = self

        class Stream(httpx.AsyncByteStream):
            async def __aiter__(self):  # type: ignore[no-untyped-def]
                sent = 0
                async for chunk in response.stream:  # type: ignore[union-attr]
                    if limit is not None and sent + len(chunk) > limit:
                        transport.body_bytes += limit - sent
                        yield chunk[:limit - sent]
                        raise httpx.ReadError("connection reset by peer")
                    sent += len(chunk)
                    transport.body_bytes += len(chunk)
                    yield chunk

            async def aclose(self) -> None:
                await response.aclose()

        return httpx.Response(response.status_code, headers=response.headers, stream=Stream(),
                              extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_good_update_reports_every_phase(update_env: UpdateEnv) -> None:
    env = update_env
    events: list[UpdateProgress] = []
    result = await env.update(progress=events.append)

    assert (result.outcome, result.previous_version, result.version, result.target_version) == (
        "updated", "1.0.0", "1.1.0", "1.1.0")
    assert result.rollout_id == env.rollout_id and result.server_phase == "succeeded"
    assert result.reported == ("downloading", "transferring", "installing", "succeeded")
    assert result.ota is not None and result.ota.verified and result.ota.image_sha256 == env.sha256
    assert result.download is not None and result.download.bytes_fetched == len(env.image)
    assert env.history() == [("offered", None), ("downloading", None), ("transferring", None), ("installing", None),
                             ("succeeded", None)]
    env.assert_updated_once()
    status = env.status()
    assert (status["rollout_id"], status["target_version_id"], status["attempts"]) == (
        env.rollout_id, env.firmware_id, 1)
    steps = list(dict.fromkeys(e.step for e in events))
    assert steps == ["device", "checking", "downloading", "checking_image", "transferring", "installing",
                     "confirming", "done"]
    final, part = cache_paths(env.cache, env.sha256)
    assert final.read_bytes() == env.image and not part.exists()

    # a second run finds nothing to do and changes nothing
    again = await env.update()
    assert (again.outcome, again.reported) == ("up_to_date", ())
    assert len(env.history()) == 5 and env.ota_starts() == 1


async def test_network_error_during_download_resumes(update_env: UpdateEnv) -> None:
    env = update_env
    transport = DroppingTransport({1: 40_000})
    async with httpx.AsyncClient(transport=transport) as http:
        result = await env.update(http_client=http)
    assert transport.requests == [None, "bytes=40000-"]
    assert result.download is not None
    assert (result.download.network_errors, result.download.bytes_fetched) == (1, len(env.image))
    assert transport.body_bytes == len(env.image)  # resumed, not restarted
    env.assert_updated_once()


async def test_download_failing_for_good_reports_failed_and_a_rerun_resumes(update_env: UpdateEnv) -> None:
    env = update_env
    transport = DroppingTransport({1: 30_000, 2: 20_000})
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(UpdateFailedError) as caught:
            await env.update(http_client=http, download_retries=1)
    error = caught.value
    assert isinstance(error.cause, NetworkError) and error.code == UpdateErrorCode.DOWNLOAD_FAILED == 100
    assert (error.phase, error.reported) == ("downloading", True)
    assert env.history() == [("offered", None), ("downloading", None), ("failed", 100)]
    assert env.status()["error_message"].startswith("downloading: The firmware download failed after 2 attempts")
    assert env.ota_starts() == 0

    rerun = DroppingTransport({})
    async with httpx.AsyncClient(transport=rerun) as http:
        result = await env.update(http_client=http)
    assert rerun.requests == ["bytes=50000-"] and rerun.body_bytes == len(env.image) - 50_000
    assert result.download is not None and result.download.resumed_from == 50_000
    assert env.phases()[-5:] == ["failed", "downloading", "transferring", "installing", "succeeded"]
    env.assert_updated_once()


async def test_disconnect_during_transfer_reports_failed_then_a_rerun_succeeds(update_env: UpdateEnv) -> None:
    env = update_env
    env.device.faults.update(disconnect_after_bytes=30_000)
    with pytest.raises(UpdateFailedError) as caught:
        await env.update()
    error = caught.value
    assert isinstance(error.cause, OtaDisconnectedError)
    assert (error.code, error.code_name, error.phase, error.reported) == (122, "DISCONNECTED", "transferring", True)
    assert env.history() == [("offered", None), ("downloading", None), ("transferring", None), ("failed", 122)]
    assert env.device.firmware_version == "1.0.0" and env.device.applied_image is None
    await env.settle()

    result = await env.update()  # the fault fires once
    assert result.outcome == "updated" and result.download is not None and result.download.cached
    assert env.history()[3:] == [("failed", 122), ("downloading", None), ("transferring", None),
                                 ("installing", None), ("succeeded", None)]
    assert env.status()["attempts"] == 2 and env.ota_starts() == 2
    env.assert_updated_once()


async def test_device_error_code_is_reported(update_env: UpdateEnv) -> None:
    env = update_env
    env.device.faults.update(corrupt_received_byte=5000)  # the flash write corrupts the image: checksum fails
    with pytest.raises(UpdateFailedError) as caught:
        await env.update()
    error = caught.value
    assert isinstance(error.cause, OtaValidationFailedError)
    assert error.code == OtaErrorCode.CHECKSUM_FAILED == 4 and error.code_name == "device:CHECKSUM_FAILED"
    assert error.phase == "installing"
    assert env.phases() == ["offered", "downloading", "transferring", "installing", "failed"]
    assert env.history()[-1] == ("failed", 4)
    assert env.device.firmware_version == "1.0.0"

    env.device.faults.update(corrupt_received_byte=None)
    await env.settle()
    await env.update()
    env.assert_updated_once()


async def test_corrupt_binary_is_refused_before_the_device_is_touched(update_env: UpdateEnv) -> None:
    env = update_env
    stored = env.storage / "firmware-binaries" / env.storage_path
    corrupt = bytearray(env.image)
    corrupt[len(corrupt) // 2] ^= 0x40
    stored.write_bytes(bytes(corrupt))  # same size, other bytes: only the hash can tell
    with pytest.raises(UpdateFailedError) as caught:
        await env.update()
    error = caught.value
    assert isinstance(error.cause, HashMismatchError)
    assert (error.code, error.code_name, error.phase, error.reported) == (102, "HASH_MISMATCH", "downloading", True)
    assert "the download was deleted" in str(error)
    assert env.history() == [("offered", None), ("downloading", None), ("failed", 102)]
    assert not any(e.startswith("ota:") for e in env.device.events)  # nothing was sent to the device
    assert env.device.applied_image is None and env.device.reboots == 0
    assert [p for p in env.cache.iterdir() if p.suffix != '.lock'] == []  # neither a .part nor a .bin is left

    stored.write_bytes(env.image)  # the binary is fixed: the rerun goes through
    await env.update()
    env.assert_updated_once()


async def test_low_battery_is_reported_with_the_devices_code(update_env: UpdateEnv) -> None:
    env = update_env
    env.device.battery_percent = 40
    with pytest.raises(UpdateFailedError) as caught:
        await env.update(check_battery=False)  # let the device itself refuse
    assert caught.value.code == OtaErrorCode.LOW_BATTERY == 1
    assert env.history()[-1] == ("failed", 1) and env.device.applied_image is None


async def test_unregistered_device_is_refused_or_registered(update_env: UpdateEnv) -> None:
    env = update_env
    other = await env.world.add_device(firmware_version="1.0.0", serial_number="DTX-NOT-REGISTERED")

    def ble() -> DualTetraXClient:
        return DualTetraXClient(other.address, backends=env.world.backends)

    cloud = await env.cloud()
    with pytest.raises(UpdateFailedError) as caught:
        await update_device(cloud, ble(), cache_dir=env.cache)
    assert isinstance(caught.value.cause, DeviceNotRegisteredError) and caught.value.code is None
    assert not caught.value.reported

    result = await update_device(cloud, ble(), cache_dir=env.cache, register=True)
    # registered as a DualTetraX (the model it reports), for which this test published nothing
    assert result.outcome == "up_to_date" and result.device_id != env.device_id
    device = await cloud.device_by_serial("DTX-NOT-REGISTERED")
    assert device is not None and device.firmware_version == "1.0.0"


async def test_device_found_by_serial_number(update_env: UpdateEnv) -> None:
    env = update_env
    cloud = await env.cloud()
    result = await update_device(cloud, env.ble(), cache_dir=env.cache, ota_timeouts=None)
    assert result.device_id == env.device_id and result.outcome == "updated"
    env.assert_updated_once()


class FailingReports:
    """The local backend, with the network gone for ``ota_report_status(phase=failed)``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def session(self) -> Any:
        return self.inner.session

    async def rpc(self, name: str, args: Any) -> Any:
        if name == "ota_report_status" and args["phase"] == "failed":
            raise NetworkError("the connection to the database broke during POST /rpc/ota_report_status")
        return await self.inner.rpc(name, args)


async def test_a_failure_that_cannot_be_reported_says_so(update_env: UpdateEnv) -> None:
    env = update_env
    env.device.faults.update(disconnect_after_bytes=10_000)
    with pytest.raises(UpdateFailedError) as caught:
        await env.update(await env.cloud(FailingReports))
    assert (caught.value.code, caught.value.reported) == (122, False)
    assert env.phases() == ["offered", "downloading", "transferring"]  # the server never heard of the failure
    await env.settle()
    await env.update()  # a rerun records the stopped attempt and finishes
    assert env.history()[3] == ("failed", 130)
    env.assert_updated_once()
