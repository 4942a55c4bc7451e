"""The full firmware update of one device: cloud check → download → image checks → BLE transfer → confirm,
with every phase reported to the server (``ota_report_status``).

>>> async with DualTetraXClient(address) as ble:                         # doctest: +SKIP
...     result = await update_device(cloud, ble, progress=print)
>>> result.outcome, result.version
('updated', '1.2.0')

Safe to interrupt (Ctrl-C, a killed process, a dropped link) and run again:

* the download resumes from its part file (:mod:`dualtetrax.update.download`); a verified file is reused;
* the transfer restarts from zero (the device protocol cannot resume) — but only if the device still runs the
  old version: a device that already installed the update is confirmed, not flashed again (the check-in with
  its new version confirms the update on the server, and the flow reports ``succeeded``);
* a device still validating or applying an image (the earlier run stopped after FINISH) is waited for: its
  reboot decides whether there is anything left to do;
* the server's phase is moved on legally: a previous run that stopped while ``transferring`` or ``installing``
  is closed as ``failed`` (code ``INTERRUPTED``) before the new attempt's ``downloading``; ``failed``,
  ``cancelled`` and ``timed_out`` go straight to ``downloading``; a stopped ``downloading`` is repeated (a no-op).

A cancelled flow (``task.cancel()``) tells the device to discard a partial image (the OTA engine does) and
reports ``cancelled`` while downloading or transferring, then re-raises :class:`asyncio.CancelledError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import httpx

from dualtetrax.ble import errors as ble_errors
from dualtetrax.ble.client import DualTetraXClient
from dualtetrax.ble.ota import OtaTimeouts, update_firmware
from dualtetrax.ble.progress import OtaPhase, OtaProgress, OtaResult
from dualtetrax.ble.protocol import uuids
from dualtetrax.ble.protocol.enums import OtaErrorCode, OtaState
from dualtetrax.ble.protocol.ota import OtaStatus
from dualtetrax.cloud.client import DtxCloud
from dualtetrax.cloud.errors import CloudError, NetworkError, ServerError
from dualtetrax.cloud.models import FirmwareStatus, UpdateOffer
from dualtetrax.firmware.errors import FirmwareImageError
from dualtetrax.firmware.image import FirmwareImage, inspect_image
from dualtetrax.update.download import DownloadProgress, DownloadResult, default_cache_dir, download_firmware
from dualtetrax.update.errors import (
    DeviceNotRegisteredError,
    DownloadError,
    ImageVersionMismatchError,
    UpdateError,
    UpdateErrorCode,
    UpdateFailedError,
)

logger = logging.getLogger(__name__)

ReportPhase = Literal["downloading", "transferring", "installing", "succeeded", "failed", "cancelled"]
Outcome = Literal["updated", "confirmed", "up_to_date"]
_INSTALLING_PHASES = frozenset({OtaPhase.VALIDATING, OtaPhase.APPLYING, OtaPhase.REBOOTING, OtaPhase.VERIFYING,
                                OtaPhase.DONE})
_MESSAGE_LIMIT = 500  # ota_report_status.error_message


@dataclass(frozen=True)
class UpdateProgress:
    """One progress event. ``step``: device, checking, downloading, checking_image, transferring, installing,
    confirming, done; ``download`` / ``ota`` carry the byte-level details of those steps."""

    step: str
    message: str = ""
    download: DownloadProgress | None = None
    ota: OtaProgress | None = None


@dataclass(frozen=True)
class UpdateResult:
    """How an update ended. ``outcome``: ``updated`` (flashed and confirmed by this run), ``confirmed`` (an
    earlier run had installed it; this run only confirmed it), ``up_to_date`` (nothing offered)."""

    outcome: Outcome
    device_id: uuid.UUID
    previous_version: str
    """What the device ran when this run started."""
    version: str
    """What it runs now (read over BLE)."""
    target_version: str | None = None
    rollout_id: uuid.UUID | None = None
    server_phase: str | None = None
    reported: tuple[str, ...] = ()
    """The phases this run reported, in order (repeats are no-ops on the server)."""
    download: DownloadResult | None = None
    ota: OtaResult | None = None
    offer: UpdateOffer | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "device_id": str(self.device_id),
                "previous_version": self.previous_version, "version": self.version,
                "target_version": self.target_version,
                "rollout_id": str(self.rollout_id) if self.rollout_id else None,
                "server_phase": self.server_phase, "reported": list(self.reported),
                "download": self.download.to_dict() if self.download else None,
                "ota": self.ota.to_dict() if self.ota else None}


def failure_code(error: BaseException, phase: str) -> int:
    """The error code reported for ``error``: the device's own OTA error when it gave one, else the SDK's
    (:class:`~dualtetrax.update.errors.UpdateErrorCode`)."""
    if isinstance(error, ble_errors.OtaError) and error.device_error not in (None, OtaErrorCode.NONE):
        return int(error.device_error)
    table: list[tuple[type[BaseException] | tuple[type[BaseException], ...], int]] = [
        ((DownloadError, ImageVersionMismatchError), -1),
        (FirmwareImageError, UpdateErrorCode.IMAGE_INVALID),
        (ble_errors.OtaLowBatteryError, OtaErrorCode.LOW_BATTERY),  # the SDK read the battery and refused first
        (ble_errors.OtaVersionMismatchError, UpdateErrorCode.VERSION_MISMATCH),
        (ble_errors.OtaRejectedError, UpdateErrorCode.DEVICE_REJECTED),
        (ble_errors.UnsupportedDeviceError, UpdateErrorCode.DEVICE_REJECTED),
        ((ble_errors.OtaTransferFailedError, ble_errors.OtaValidationFailedError), UpdateErrorCode.TRANSFER_FAILED),
        (ble_errors.DeviceNotFoundError, UpdateErrorCode.DEVICE_NOT_FOUND),
        (ble_errors.ConnectionFailedError, UpdateErrorCode.CONNECTION_FAILED),
        (ble_errors.DeviceTimeoutError, UpdateErrorCode.DEVICE_TIMEOUT),
        (ble_errors.DeviceDisconnectedError, UpdateErrorCode.DISCONNECTED),
    ]
    for kinds, code in table:
        if isinstance(error, kinds):
            return int(getattr(error, "code", UpdateErrorCode.INTERNAL)) if code == -1 else int(code)
    if isinstance(error, OSError) and phase == "downloading":
        return int(UpdateErrorCode.CACHE_ERROR)  # reading the verified file back failed
    if isinstance(error, CloudError) and phase == "downloading":
        network = isinstance(error, NetworkError | ServerError) or (error.status or 0) >= 500
        return int(UpdateErrorCode.DOWNLOAD_FAILED if network else UpdateErrorCode.DOWNLOAD_REFUSED)
    return int(UpdateErrorCode.INTERNAL)


def _same_version(a: str | None, b: str | None) -> bool:
    def norm(v: str | None) -> str:
        return (v or "").strip().lower().removeprefix("v")

    return bool(a) and norm(a) == norm(b)


async def update_device(
    cloud: DtxCloud,
    ble: DualTetraXClient,
    *,
    device_id: uuid.UUID | str | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[UpdateProgress], None] | None = None,
    http_client: httpx.AsyncClient | None = None,
    register: bool = False,
    download_retries: int = 5,
    download_backoff_s: float = 0.5,
    ota_timeouts: OtaTimeouts | None = None,
    transfer_attempts: int = 1,
    check_battery: bool = True,
    url_expires_in: int = 900,
) -> UpdateResult:
    """Update the device behind ``ble`` to what the cloud offers it, reporting every phase.

    ``ble`` may be connected or not (then it is connected here and disconnected at the end). Without
    ``device_id`` the device is looked up by the serial number it reports (Device Information), and
    registered to the signed-in user if ``register`` is set. ``cache_dir`` holds downloads
    (:func:`~dualtetrax.update.download.default_cache_dir` by default); ``http_client`` is used for the
    download (tests inject one).

    Returns an :class:`UpdateResult`; raises :class:`~dualtetrax.update.errors.UpdateFailedError` (with the
    underlying typed error as ``cause`` and the reported ``code``) on any failure, after reporting ``failed``
    when an update had been offered.
    """
    flow = _Flow(cloud, ble, progress=progress, cache_dir=Path(cache_dir) if cache_dir else default_cache_dir(),
                 http_client=http_client, download_retries=download_retries, download_backoff_s=download_backoff_s,
                 ota_timeouts=ota_timeouts, transfer_attempts=transfer_attempts, check_battery=check_battery,
                 url_expires_in=url_expires_in)
    return await flow.run(uuid.UUID(str(device_id)) if device_id is not None else None, register)


class _Flow:
    def __init__(self, cloud: DtxCloud, ble: DualTetraXClient, *, progress: Callable[[UpdateProgress], None] | None,
                 cache_dir: Path, http_client: httpx.AsyncClient | None, download_retries: int,
                 download_backoff_s: float, ota_timeouts: OtaTimeouts | None, transfer_attempts: int,
                 check_battery: bool, url_expires_in: int) -> None:
        self.cloud = cloud
        self.ble = ble
        self.progress = progress
        self.cache_dir = cache_dir
        self.http_client = http_client
        self.download_retries = download_retries
        self.download_backoff_s = download_backoff_s
        self.ota_timeouts = ota_timeouts
        self.transfer_attempts = transfer_attempts
        self.check_battery = check_battery
        self.url_expires_in = url_expires_in
        self.device_id: uuid.UUID | None = None
        self.rollout_id: uuid.UUID | None = None
        self.target: str | None = None
        self.server_phase: str | None = None
        self.reported: list[str] = []
        self.installing_task: asyncio.Task[FirmwareStatus] | None = None

    def _emit(self, step: str, message: str = "", *, download: DownloadProgress | None = None,
              ota: OtaProgress | None = None) -> None:
        if self.progress is not None:
            self.progress(UpdateProgress(step, message, download, ota))

    # ------------------------------------------------------------------ run

    async def run(self, device_id: uuid.UUID | None, register: bool) -> UpdateResult:
        connected_here = not self.ble.is_connected
        try:
            self._emit("device", "connecting to the device" if connected_here else "reading the device's version")
            version = await self._before_offer("device", self._read_version())
            version = await self._before_offer("device", self._settle_device(version))
            self.device_id = device_id or await self._before_offer("checking", self._resolve_device(version, register))
            self._emit("checking", f"the device runs {version}; asking the cloud for an update")
            prior = await self._before_offer("checking", self.cloud.firmware_status(self.device_id))
            offer = await self._before_offer("checking", self.cloud.check_update(self.device_id, version))
            if not offer.update_available:
                return await self._no_offer(version, prior)
            try:
                return await self._update(offer, version)
            except asyncio.CancelledError:
                await self._on_cancel()
                raise
        finally:
            if connected_here:
                await self.ble.disconnect()

    async def _read_version(self) -> str:
        if not self.ble.is_connected:
            await self.ble.connect()
        return await self.ble.read_firmware_revision()

    async def _settle_device(self, version: str) -> str:
        """A device still validating or applying an image (an earlier run stopped after FINISH): wait for its
        reboot and return the version it comes back with, rather than start a transfer it would refuse."""
        if not self.ble.has_characteristic(uuids.OTA_STATUS):
            return version
        try:
            status = OtaStatus.decode(await self.ble.read_characteristic(uuids.OTA_STATUS))
        except (ble_errors.DualTetraXBleError, OSError):
            return version  # notify-only or unreadable: the OTA engine copes with a busy device itself
        if status.state not in (OtaState.VALIDATING, OtaState.UPGRADING, OtaState.SUCCESS):
            return version
        self._emit("device", f"the device is finishing an earlier update ({status.state.name.lower()}); "
                             "waiting for it to restart")
        timeouts = self.ota_timeouts or OtaTimeouts()
        try:
            async with asyncio.timeout(timeouts.validating + timeouts.applying + timeouts.reboot):
                await self.ble.disconnected.wait()
        except TimeoutError as error:
            raise ble_errors.DeviceTimeoutError(
                f"The device has been busy with an earlier update ({status}) for too long.") from error
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.reconnect
        while True:
            try:
                await self.ble.connect()
                return await self.ble.read_firmware_revision()
            except (ble_errors.DeviceNotFoundError, ble_errors.ConnectionFailedError,
                    ble_errors.DeviceDisconnectedError, ble_errors.DeviceTimeoutError):
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.2)

    async def _before_offer(self, phase: str, step: Coroutine[Any, Any, Any]) -> Any:
        """Run a step that comes before any offer: a failure has nothing to report to."""
        try:
            return await step
        except (CloudError, ble_errors.DualTetraXBleError, UpdateError) as error:
            detail = getattr(error, "detail", None) or getattr(error, "message", None) or str(error)
            raise UpdateFailedError(f"The update could not start ({phase}): {detail}", cause=error, phase=phase,
                                    code=None, reported=False) from error

    async def _resolve_device(self, version: str, register: bool) -> uuid.UUID:
        info = await self.ble.read_device_info()
        serial = info.serial_number
        if not serial:
            raise DeviceNotRegisteredError("The device reports no serial number; pass its device id.",
                                           hint="Use device_id= (dtx ota update --device-id).")
        device = await self.cloud.device_by_serial(serial)
        if device is None:
            if not register:
                raise DeviceNotRegisteredError(f"Device {serial} is not registered to you.")
            device = await self.cloud.register_device(serial, model=info.model_number or "DualTetraX",
                                                      firmware_version=version, ble_address=self.ble.address,
                                                      hardware_revision=info.hardware_revision)
        return device.id

    def _result(self, outcome: Outcome, previous: str, version: str, *, offer: UpdateOffer | None = None,
                download: DownloadResult | None = None, ota: OtaResult | None = None) -> UpdateResult:
        assert self.device_id is not None
        return UpdateResult(outcome, self.device_id, previous, version, self.target, self.rollout_id,
                            self.server_phase, tuple(self.reported), download, ota, offer)

    async def _no_offer(self, version: str, prior: FirmwareStatus | None) -> UpdateResult:
        """Nothing offered. If an update was in flight before this check and the check confirmed it (the device
        runs its target: an earlier run was stopped after the device installed it), report ``succeeded``."""
        assert self.device_id is not None
        status = await self._before_offer("checking", self.cloud.firmware_status(self.device_id))
        self.server_phase = status.phase if status else None
        if (prior is not None and prior.phase != "succeeded" and status is not None and status.phase == "succeeded"
                and status.rollout_id is not None and status.verified_at is not None):
            self.rollout_id, self.target = status.rollout_id, version
            self._emit("confirming", f"the device already runs {version}: confirming the earlier update")
            await self._report_or_fail("succeeded", device_updated=True)
            self._emit("done", f"confirmed {version}")
            return self._result("confirmed", version, version)
        self._emit("done", f"{version} is up to date")
        return self._result("up_to_date", version, version)

    # ------------------------------------------------------------------ the update

    async def _update(self, offer: UpdateOffer, version: str) -> UpdateResult:
        assert self.device_id is not None and offer.rollout_id is not None
        self.rollout_id, self.target = offer.rollout_id, offer.version
        if not offer.sha256 or not offer.size_bytes or not offer.version:
            raise UpdateFailedError("The offer lacks the binary's hash, size or version.", cause=ValueError(offer),
                                    phase="checking", code=None, reported=False)
        status = await self._before_offer("checking", self.cloud.firmware_status(self.device_id))
        self.server_phase = status.phase if status else None
        if status is not None and status.phase in ("transferring", "installing"):
            # an earlier run stopped mid-transfer or mid-install, and the device does not run the target
            await self._report_or_fail("failed", code=UpdateErrorCode.INTERRUPTED, message=(
                f"an earlier attempt stopped while {status.phase}; the device still runs {version}"))
        self._emit("checking", f"{offer.version} is offered ({offer.size_bytes:,} bytes)")

        await self._report_or_fail("downloading")
        download = await self._step("downloading", self._download(offer))
        self._emit("checking_image", "checking the firmware image")
        image = await self._step("downloading", self._check_image(download, offer))

        await self._report_or_fail("transferring")
        ota = await self._step("transferring", self._transfer(image))
        installing_ok = await self._settle_installing()
        if not installing_ok:
            await self._report_or_fail("installing", device_updated=True)
        self._emit("confirming", f"the device runs {ota.new_version} after its restart")
        await self._report_or_fail("succeeded", device_updated=True)
        with contextlib.suppress(CloudError):  # the check-in records verified_at; bookkeeping only
            await self.cloud.check_update(self.device_id, ota.new_version or offer.version)
        self._emit("done", f"updated {version} → {ota.new_version}")
        return self._result("updated", version, ota.new_version or offer.version, offer=offer, download=download,
                            ota=ota)

    async def _download(self, offer: UpdateOffer) -> DownloadResult:
        assert offer.sha256 is not None and offer.size_bytes is not None

        async def fresh_url() -> str:
            return await self.cloud.firmware_url(offer, expires_in=self.url_expires_in)

        def on_progress(event: DownloadProgress) -> None:
            self._emit("downloading", event.message, download=event)

        result = await download_firmware(fresh_url, sha256=offer.sha256, size=offer.size_bytes,
                                         cache_dir=self.cache_dir, client=self.http_client,
                                         retries=self.download_retries, backoff_s=self.download_backoff_s,
                                         on_progress=on_progress)
        self._emit("downloading", "verified (cached)" if result.cached else "verified",
                   download=DownloadProgress(result.size, result.size, result.bytes_fetched, result.requests))
        return result

    async def _check_image(self, download: DownloadResult, offer: UpdateOffer) -> FirmwareImage:
        image = inspect_image(download.path.read_bytes(), expected_sha256=offer.sha256)
        if not _same_version(image.version, offer.version):
            raise ImageVersionMismatchError(
                f"The image's app description says version {image.version!r}, but {offer.version!r} was offered.")
        return image

    async def _transfer(self, image: FirmwareImage) -> OtaResult:
        def on_ota(event: OtaProgress) -> None:
            installing = event.phase in _INSTALLING_PHASES
            if installing and self.installing_task is None:
                # FINISH was acknowledged: the device validates and applies the image now
                self.installing_task = asyncio.get_running_loop().create_task(self._report("installing"))
            self._emit("installing" if installing else "transferring", event.message, ota=event)

        if not self.ble.is_connected:  # the link may have dropped while downloading
            await self.ble.connect()
        result = await update_firmware(self.ble, image, timeouts=self.ota_timeouts, on_progress=on_ota,
                                       attempts=self.transfer_attempts, check_battery=self.check_battery)
        if not result.verified or not _same_version(result.new_version, image.version):
            raise ble_errors.OtaVersionMismatchError(
                f"The device was not seen running {image.version} after the update (it reports "
                f"{result.new_version!r}).", phase=OtaPhase.VERIFYING.value, bytes_sent=result.image_size)
        return result

    async def _settle_installing(self) -> bool:
        """Wait for the ``installing`` report started at FINISH; whether it was recorded."""
        task = self.installing_task
        if task is None:
            return False
        try:
            await task
        except CloudError as error:
            logger.warning("reporting installing failed: %s", error)
            return False
        return True

    # ------------------------------------------------------------------ reporting

    async def _report(self, phase: ReportPhase, *, code: int | None = None,
                      message: str | None = None) -> FirmwareStatus:
        assert self.device_id is not None and self.rollout_id is not None
        status = await self.cloud.report_update_status(
            self.device_id, self.rollout_id, phase, error_code=None if code is None else int(code),
            error_message=message[:_MESSAGE_LIMIT] if message else None)
        self.reported.append(phase)
        self.server_phase = status.phase
        return status

    async def _report_or_fail(self, phase: ReportPhase, *, code: int | None = None, message: str | None = None,
                              device_updated: bool = False) -> FirmwareStatus:
        try:
            return await self._report(phase, code=code, message=message)
        except CloudError as error:
            if device_updated:
                text = (f"The device runs {self.target}, but reporting {phase} failed: {error.message}. Run the "
                        "update again (or let the device check in) to confirm it.")
            else:
                text = f"Reporting {phase} failed: {error.message}. Nothing was sent to the device."
            raise UpdateFailedError(text, cause=error, phase=phase, code=None, reported=False) from error

    async def _step(self, phase: str, step: Coroutine[Any, Any, Any]) -> Any:
        """Run one step of the update; on failure report ``failed`` with its code and raise."""
        try:
            return await step
        except ble_errors.OtaCancelledError as error:
            await self._settle_installing()
            reported = await self._try_report_cancelled()
            raise UpdateFailedError(f"The update was cancelled while {phase}.", cause=error, phase=phase, code=None,
                                    reported=reported) from error
        except (CloudError, ble_errors.DualTetraXBleError, FirmwareImageError, UpdateError, OSError) as error:
            await self._fail(error, phase)
        except Exception as error:  # a bug or a malformed offer: still report it (code INTERNAL), never leave
            await self._fail(error, phase)  # the server waiting in this phase until the rollout's timeout

    async def _fail(self, error: BaseException, phase: str) -> NoReturn:
        if phase == "transferring" and await self._settle_installing():
            phase = "installing"
        code = failure_code(error, phase)
        detail = getattr(error, "detail", None) or getattr(error, "message", None) or str(error)
        reported = False
        try:
            await self._report("failed", code=code, message=f"{phase}: {detail}")
            reported = True
        except CloudError as report_error:
            logger.warning("reporting the failure failed too: %s", report_error)
        raise UpdateFailedError(f"The update to {self.target} failed while {phase}: {detail}", cause=error,
                                phase=phase, code=code, reported=reported) from error

    async def _try_report_cancelled(self) -> bool:
        if self.server_phase not in ("downloading", "transferring"):
            return False  # installing cannot go to cancelled: a rerun finds out what the device did
        try:
            async with asyncio.timeout(5.0):
                await self._report("cancelled")
            return True
        except (CloudError, TimeoutError) as error:
            logger.warning("reporting the cancellation failed: %s", error)
            return False

    async def _on_cancel(self) -> None:
        """The flow's task was cancelled: let an in-flight report finish, then tell the server (best effort)."""
        task = self.installing_task
        if task is not None and not task.done():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), 3.0)
        if task is not None and task.done() and not task.cancelled() and task.exception() is None:
            self.server_phase = "installing"
        with contextlib.suppress(BaseException):
            await asyncio.shield(self._try_report_cancelled())
