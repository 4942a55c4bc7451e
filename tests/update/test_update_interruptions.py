"""The update flow interrupted at many points (its task cancelled, as Ctrl-C or a dying tool would), then run
again by a fresh process (new cloud client and BLE connection; the emulated device lives on, as a real device
outlives the tool). Whatever the point, the rerun ends with the device on the new version, installed exactly
once, and the server agreeing, through legal phase transitions only."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from dualtetrax.ble.protocol import uuids
from dualtetrax.ble.protocol.enums import OtaState
from dualtetrax.ble.protocol.ota import FINISH, StartCommand, chunk_count, chunk_payload_size, encode_chunk
from dualtetrax.cloud import AuthSession, Filter, LocalCloudBackend, Order
from dualtetrax.update import UpdateProgress
from tests.update.conftest import UpdateEnv


class InterruptingBackend:
    """The local backend, with the flow's task cancelled around the n-th request (or at a chosen report)."""

    def __init__(self, inner: LocalCloudBackend, *, inside: int | None = None, after: int | None = None,
                 before_report: str | None = None) -> None:
        self.inner = inner
        self.inside = inside
        self.after = after
        self.before_report = before_report
        self.task: asyncio.Task[Any] | None = None
        self.calls: list[str] = []

    @property
    def session(self) -> AuthSession | None:
        return self.inner.session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _call(self, what: str, call: Any) -> Any:
        self.calls.append(what)
        number = len(self.calls)
        assert self.task is not None
        if number == self.inside or what == f"report:{self.before_report}":
            self.task.cancel()  # lands at the request's first await: mid-request
        result = await call
        if number == self.after:
            self.task.cancel()  # lands at the flow's next await
        return result

    async def rpc(self, name: str, args: Mapping[str, Any]) -> Any:
        what = f"report:{args['phase']}" if name == "ota_report_status" else name
        return await self._call(what, self.inner.rpc(name, args))

    async def select(self, table: str, *, columns: str = "*", filters: Sequence[Filter] = (),
                     order: Sequence[Order] = (), limit: int | None = None, offset: int | None = None
                     ) -> list[dict[str, Any]]:
        return await self._call(f"select:{table}", self.inner.select(table, columns=columns, filters=filters,
                                                                     order=order, limit=limit, offset=offset))

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        return await self._call("signed_url", self.inner.signed_url(bucket, path, expires_in))


#: A good run's requests, in order.
REQUESTS = ["select:device_firmware_status", "ota_check_update", "select:device_firmware_status",
            "report:downloading", "signed_url", "report:transferring", "report:installing", "report:succeeded",
            "ota_check_update"]

#: (update step, OTA phase or None): cancel at the first progress event of each.
PROGRESS_POINTS = [("device", None), ("checking", None), ("downloading", None), ("checking_image", None),
                   ("transferring", "preparing"), ("transferring", "starting"), ("transferring", "transferring"),
                   ("installing", "validating"), ("installing", "verifying"), ("confirming", None)]


async def test_a_good_run_makes_the_expected_requests(update_env: UpdateEnv) -> None:
    """Pins the request list the parametrised cases below cancel around."""
    env = update_env
    backend: InterruptingBackend | None = None

    def wrap(inner: LocalCloudBackend) -> InterruptingBackend:
        nonlocal backend
        backend = InterruptingBackend(inner)
        return backend

    cloud = await env.cloud(wrap)
    assert backend is not None
    backend.task = asyncio.current_task()
    await env.update(cloud)
    assert backend.calls == REQUESTS


async def interrupted_then_rerun(env: UpdateEnv, run: asyncio.Task[Any]) -> tuple[str, Any]:
    with pytest.raises(asyncio.CancelledError):
        await run
    await env.settle()
    env.assert_legal_history()
    installed = env.device.firmware_version == "1.1.0"
    starts = env.ota_starts()
    if not installed:
        assert env.device.applied_image is None and env.device.ota_status.state is OtaState.IDLE
    server_phase = env.status()["phase"] if env.phases() else "idle"

    result = await env.update()  # a fresh process: new cloud client and BLE connection, same cache
    env.assert_updated_once()
    if installed:  # the device had installed it before the interruption: confirm, never flash again
        assert result.outcome in ("confirmed", "up_to_date") and env.ota_starts() == starts
    else:
        assert result.outcome == "updated" and result.download is not None
        assert env.ota_starts() == starts + 1
    return server_phase, result


@pytest.mark.parametrize("number", range(1, len(REQUESTS) + 1), ids=[f"inside-{r}" for r in REQUESTS])
async def test_cancelled_inside_a_request(update_env: UpdateEnv, number: int) -> None:
    env = update_env
    cloud = await env.cloud(lambda inner: InterruptingBackend(inner, inside=number))
    backend = cloud.backend
    assert isinstance(backend, InterruptingBackend)
    run = asyncio.create_task(env.update(cloud))
    backend.task = run
    await interrupted_then_rerun(env, run)
    assert len(backend.calls) >= number


@pytest.mark.parametrize("number", range(1, len(REQUESTS)), ids=[f"after-{r}" for r in REQUESTS[:-1]])
async def test_cancelled_after_a_request(update_env: UpdateEnv, number: int) -> None:
    env = update_env
    cloud = await env.cloud(lambda inner: InterruptingBackend(inner, after=number))
    backend = cloud.backend
    assert isinstance(backend, InterruptingBackend)
    run = asyncio.create_task(env.update(cloud))
    backend.task = run
    await interrupted_then_rerun(env, run)


@pytest.mark.parametrize(("step", "ota_phase"), PROGRESS_POINTS, ids=[f"{s}-{p}" for s, p in PROGRESS_POINTS])
async def test_cancelled_at_a_progress_point(update_env: UpdateEnv, step: str, ota_phase: str | None) -> None:
    env = update_env
    run: asyncio.Task[Any] | None = None
    hit: list[UpdateProgress] = []

    def progress(event: UpdateProgress) -> None:
        if hit or event.step != step or (ota_phase and (event.ota is None or event.ota.phase.value != ota_phase)):
            return
        hit.append(event)
        assert run is not None
        run.cancel()

    run = asyncio.create_task(env.update(progress=progress))
    server_phase, _ = await interrupted_then_rerun(env, run)
    assert hit, f"the flow never reached {step}/{ota_phase}"
    if step in ("downloading", "checking_image") or ota_phase in ("starting", "transferring"):
        assert server_phase == "cancelled"  # told the server; the device was told to discard the image


async def test_killed_after_the_device_installed_is_confirmed_without_flashing_again(update_env: UpdateEnv) -> None:
    env = update_env
    cloud = await env.cloud(lambda inner: InterruptingBackend(inner, before_report="succeeded"))
    backend = cloud.backend
    assert isinstance(backend, InterruptingBackend)
    run = asyncio.create_task(env.update(cloud))
    backend.task = run
    with pytest.raises(asyncio.CancelledError):
        await run
    assert env.device.firmware_version == "1.1.0" and env.device.reboots == 1
    assert env.phases() == ["offered", "downloading", "transferring", "installing"]  # succeeded never arrived

    result = await env.update()
    assert (result.outcome, result.reported, result.previous_version) == ("confirmed", ("succeeded",), "1.1.0")
    assert result.rollout_id == env.rollout_id and result.server_phase == "succeeded"
    assert env.ota_starts() == 1 and result.ota is None and result.download is None
    assert env.phases() == ["offered", "downloading", "transferring", "installing", "succeeded"]
    env.assert_updated_once()


async def test_a_rerun_after_a_stopped_transfer_closes_the_old_attempt_as_interrupted(update_env: UpdateEnv) -> None:
    """The server still says transferring (the tool died without a word); the rerun records that first."""
    env = update_env
    cloud = await env.cloud()
    await cloud.check_update(env.device_id, "1.0.0")
    for phase in ("downloading", "transferring"):
        await cloud.report_update_status(env.device_id, env.rollout_id, phase)  # type: ignore[arg-type]

    result = await env.update()
    assert result.reported == ("failed", "downloading", "transferring", "installing", "succeeded")
    assert env.history()[2:4] == [("transferring", None), ("failed", 130)]
    assert env.status()["attempts"] == 2
    env.assert_updated_once()


async def test_a_rerun_while_the_device_still_validates_waits_for_it_and_confirms(update_env: UpdateEnv) -> None:
    """A tool killed right after FINISH leaves the device validating; the next run must not start a transfer
    the device would refuse (or record a failure that did not happen): it waits for the reboot."""
    env = update_env
    cloud = await env.cloud()
    await cloud.check_update(env.device_id, "1.0.0")
    for phase in ("downloading", "transferring", "installing"):
        await cloud.report_update_status(env.device_id, env.rollout_id, phase)  # type: ignore[arg-type]
    env.device.faults.update(validation_delay_s=0.4)
    async with env.ble() as raw:  # every chunk and FINISH sent, then the link gone without a CANCEL
        payload = chunk_payload_size(raw.characteristic(uuids.OTA_DATA).max_write_without_response_size)
        count = chunk_count(len(env.image), payload)
        await raw.write_characteristic(uuids.OTA_CONTROL, StartCommand(len(env.image), count).encode(), response=True)
        for index in range(count):
            chunk = encode_chunk(index, env.image[index * payload:(index + 1) * payload])
            await raw.bleak_client.write_gatt_char(uuids.OTA_DATA, chunk, response=False)
        await raw.write_characteristic(uuids.OTA_CONTROL, FINISH.encode(), response=True)
    assert env.device.ota_status.state is OtaState.VALIDATING

    events: list[UpdateProgress] = []
    result = await env.update(progress=events.append)
    assert (result.outcome, result.reported, result.previous_version) == ("confirmed", ("succeeded",), "1.1.0")
    assert any("finishing an earlier update (validating)" in event.message for event in events)
    assert env.ota_starts() == 1 and env.phases().count("failed") == 0
    env.assert_updated_once()
