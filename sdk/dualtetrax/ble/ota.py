"""The OTA transfer engine: flashing an application image over BLE.

>>> result = await update_firmware("AA:BB:CC:DD:EE:FF", "dualtetrax_v1.2.0.bin",     # doctest: +SKIP
...                                expected_sha256=release.sha256, on_progress=print)
>>> result.new_version, result.verified
('1.2.0', True)

How it differs from the app's transfer (device-protocol.md §4.5–4.7):

* the image is verified first (ESP32 image checks, optional expected SHA-256) — a bad file
  is refused before a byte goes over the air;
* chunks are ``min(max_write_without_response_size, 512) − 4`` bytes, never over the
  512-byte attribute limit;
* writes are pipelined without any sleep: each write-without-response returns as soon as
  the BLE stack has buffer room, so the stack's own flow control (controller credits)
  paces the transfer at whatever the air allows;
* status notifications are followed with a timeout per phase (ready, receiving,
  validating, applying), and the Status characteristic is read whenever a notification
  seems to be missing;
* success means the device came back after its reboot reporting the image's version
  (Device Information 0x2A26), not "the link dropped near the end".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bleak.exc import BleakError

from dualtetrax.ble.backends import PLATFORM, BleBackends
from dualtetrax.ble.client import DualTetraXClient, Target
from dualtetrax.ble.errors import (
    ConnectionFailedError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    DeviceTimeoutError,
    DualTetraXBleError,
    GattError,
    OtaCancelledError,
    OtaDisconnectedError,
    OtaError,
    OtaLowBatteryError,
    OtaRejectedError,
    OtaTimeoutError,
    OtaTransferFailedError,
    OtaValidationFailedError,
    OtaVersionMismatchError,
    ProtocolError,
)
from dualtetrax.ble.progress import OtaPhase, OtaProgress, OtaResult, RateMeter
from dualtetrax.ble.protocol import uuids
from dualtetrax.ble.protocol.enums import OtaErrorCode, OtaState
from dualtetrax.ble.protocol.ota import (
    CANCEL,
    FINISH,
    MIN_START_BATTERY_PERCENT,
    OtaStatus,
    StartCommand,
    chunk_count,
    chunk_payload_size,
)
from dualtetrax.firmware.image import FirmwareImage, inspect_image, load_image

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[OtaProgress], None]

_DISCONNECTED = object()
_CANCELLED = object()
_RANK = {
    OtaState.IDLE: 0,
    OtaState.DOWNLOADING: 1,
    OtaState.VALIDATING: 2,
    OtaState.UPGRADING: 3,
    OtaState.SUCCESS: 4,
}
_PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class OtaTimeouts:
    """Per-phase limits, in seconds. No wait in the engine is unbounded."""

    command: float = 10.0
    """A control write (START, FINISH, CANCEL) and its response."""
    ready: float = 5.0
    """START acknowledged → the device reports it is receiving."""
    write_stall: float = 15.0
    """One data write may wait this long for buffer room before the link is declared stalled."""
    validating: float = 60.0
    """FINISH → the device has validated the image."""
    applying: float = 60.0
    """Validated → the device reports success."""
    status_poll: float = 2.0
    """Without a notification for this long, read the Status characteristic instead."""
    reboot: float = 30.0
    """Success → the device drops the link to reboot."""
    reconnect: float = 45.0
    """Link dropped → reconnected to the rebooted device and read its version."""


def _normalise_version(version: str | None) -> str:
    return (version or "").strip().lower().removeprefix("v")


def _device_error(status: OtaStatus, phase: OtaPhase, bytes_sent: int) -> OtaError:
    """The typed error for an ERROR status the device reported."""
    code = status.error
    message = (
        f"The device reported an error while {phase.value.replace('_', ' ')}: {code.message} "
        f"(error {code.value}, battery {status.battery_percent} %)."
    )
    kind: type[OtaError]
    if code in (OtaErrorCode.LOW_BATTERY, OtaErrorCode.BATTERY_DROPPED):
        kind = OtaLowBatteryError
    elif code in (OtaErrorCode.INVALID_IMAGE, OtaErrorCode.CHECKSUM_FAILED):
        kind = OtaValidationFailedError
    elif code is OtaErrorCode.SIZE_EXCEEDED:
        kind = OtaRejectedError
    else:
        kind = OtaTransferFailedError
    return kind(message, phase=phase.value, bytes_sent=bytes_sent, device_state=status.state, device_error=code)


class OtaTransfer:
    """One update of one connected device. Use :func:`update_firmware` unless you manage the
    connection yourself.

    ``run()`` returns an :class:`~dualtetrax.ble.progress.OtaResult` or raises an
    :class:`~dualtetrax.ble.errors.OtaError` subclass. ``cancel()`` may be called from any
    task (or a signal handler via ``loop.call_soon_threadsafe``).
    """

    def __init__(
        self,
        client: DualTetraXClient,
        image: FirmwareImage,
        *,
        timeouts: OtaTimeouts | None = None,
        on_progress: ProgressCallback | None = None,
        check_battery: bool = True,
        verify_reboot: bool = True,
    ) -> None:
        self.client = client
        self.image = image
        self.timeouts = timeouts or OtaTimeouts()
        self._on_progress = on_progress
        self._check_battery = check_battery
        self._verify_reboot = verify_reboot
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._cancel_requested = False
        self._phase = OtaPhase.PREPARING
        self._started = time.monotonic()
        self._bytes_sent = 0
        self._device_percent: int | None = None
        self._rate = RateMeter()
        self._command_sent = False
        self._status_readable = True

    # ------------------------------------------------------------------ control

    def cancel(self) -> None:
        """Ask the transfer to stop; ``run()`` then tells the device to discard the image and
        raises :class:`~dualtetrax.ble.errors.OtaCancelledError`."""
        self._cancel_requested = True
        self._queue.put_nowait(_CANCELLED)

    @property
    def phase(self) -> OtaPhase:
        return self._phase

    def _emit(self, phase: OtaPhase | None = None, message: str = "") -> None:
        if phase is not None:
            self._phase = phase
        if self._on_progress is None:
            return
        remaining = self.image.size - self._bytes_sent
        self._on_progress(
            OtaProgress(
                phase=self._phase,
                bytes_sent=self._bytes_sent,
                total_bytes=self.image.size,
                elapsed_s=time.monotonic() - self._started,
                rate_bps=self._rate.rate,
                eta_s=self._rate.eta(remaining) if self._phase is OtaPhase.TRANSFERRING else None,
                device_percent=self._device_percent,
                message=message,
            )
        )

    # ------------------------------------------------------------------ status

    def _on_status(self, data: bytes) -> None:
        try:
            status = OtaStatus.decode(data)
        except ProtocolError as error:
            logger.warning("ignoring malformed OTA status %s: %s", data.hex(), error.detail)
            return
        self._queue.put_nowait(status)

    def _on_disconnect(self) -> None:
        self._queue.put_nowait(_DISCONNECTED)

    async def _read_status(self) -> OtaStatus | None:
        """Read the Status characteristic; ``None`` if it cannot be read (then only notifications count)."""
        if not self._status_readable:
            return None
        try:
            raw = await self.client.read_characteristic(uuids.OTA_STATUS, timeout_s=self.timeouts.command)
        except DeviceDisconnectedError:
            return None
        except (GattError, DeviceTimeoutError) as error:
            logger.warning("reading the OTA status failed (%s); relying on notifications", error.detail)
            if isinstance(error, GattError):
                self._status_readable = False
            return None
        try:
            return OtaStatus.decode(raw)
        except ProtocolError as error:
            logger.warning("unreadable OTA status %s: %s", raw.hex(), error.detail)
            return None

    def _disconnected_error(self) -> OtaDisconnectedError:
        sent = f" after {self._bytes_sent} of {self.image.size} bytes" if self._bytes_sent else ""
        return OtaDisconnectedError(
            f"The link to {self.client.address} dropped while {self._phase.value}{sent}.",
            phase=self._phase.value,
            bytes_sent=self._bytes_sent,
        )

    def _judge(self, status: OtaStatus, targets: int) -> bool:
        """True when ``status`` reaches the target rank; raises on device errors."""
        if status.state is OtaState.ERROR:
            raise _device_error(status, self._phase, self._bytes_sent)
        if status.state is OtaState.DOWNLOADING:
            self._device_percent = status.progress
        if status.state is OtaState.IDLE and self._phase is not OtaPhase.STARTING:
            raise OtaTransferFailedError(
                f"The device went back to idle while {self._phase.value}: it discarded the update.",
                phase=self._phase.value,
                bytes_sent=self._bytes_sent,
                device_state=status.state,
            )
        return _RANK.get(status.state, 0) >= targets

    async def _wait_for(self, target: OtaState, timeout_s: float) -> OtaStatus:
        """Follow notifications until the device reaches ``target`` (or a later state)."""
        rank = _RANK[target]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last: OtaStatus | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                status = await self._read_status()
                if status is not None and self._judge(status, rank):
                    return status
                if self.client.disconnected.is_set():
                    raise self._disconnected_error()
                seen = status or last
                if self._phase is OtaPhase.STARTING and seen is not None and seen.state is OtaState.IDLE:
                    raise OtaRejectedError(
                        f"The device acknowledged START but stayed idle for {timeout_s:g} s ({seen}).",
                        phase=self._phase.value,
                        device_state=seen.state,
                    )
                what = (
                    "report that it is receiving" if self._phase is OtaPhase.STARTING else f"finish {self._phase.value}"
                )
                raise OtaTimeoutError(
                    f"The device did not {what} within {timeout_s:g} s (last status: {seen or 'none received'}).",
                    phase=self._phase.value,
                    bytes_sent=self._bytes_sent,
                    device_state=seen.state if seen is not None else None,
                )
            try:
                async with asyncio.timeout(min(remaining, self.timeouts.status_poll)):
                    item = await self._queue.get()
            except TimeoutError:
                # No notification for a while: it may have been lost. Ask.
                status = await self._read_status()
                if status is None:
                    continue
                item = status
            if item is _DISCONNECTED:
                raise self._disconnected_error()
            if item is _CANCELLED:
                await self._abort_cancelled()
            assert isinstance(item, OtaStatus)
            last = item
            if self._judge(item, rank):
                return item
            if self._phase is not OtaPhase.TRANSFERRING:
                self._emit()

    # ------------------------------------------------------------------ commands

    async def _command(self, payload: bytes, what: str) -> None:
        try:
            await self.client.write_characteristic(
                uuids.OTA_CONTROL, payload, response=True, timeout_s=self.timeouts.command
            )
        except GattError as error:
            # A device that already reported an error refuses what follows: name the real cause.
            status = await self._read_status()
            if status is not None and status.state is OtaState.ERROR:
                raise _device_error(status, self._phase, self._bytes_sent) from error
            code = f"ATT error 0x{error.att_error:02X}" if error.att_error is not None else str(error.detail)
            raise OtaRejectedError(
                f"The device refused {what} ({code}).", phase=self._phase.value, bytes_sent=self._bytes_sent
            ) from error
        except DeviceDisconnectedError as error:
            raise self._disconnected_error() from error
        except DeviceTimeoutError as error:
            raise OtaTimeoutError(
                f"The device did not acknowledge {what} within {self.timeouts.command:g} s.",
                phase=self._phase.value,
                bytes_sent=self._bytes_sent,
            ) from error

    async def _abort_cancelled(self) -> None:
        await self._send_cancel()
        raise OtaCancelledError(
            f"Update cancelled while {self._phase.value} after {self._bytes_sent} bytes.",
            phase=self._phase.value,
            bytes_sent=self._bytes_sent,
        )

    async def _send_cancel(self) -> None:
        """Best effort: tell the device to drop the partial image."""
        if not self._command_sent or self.client.disconnected.is_set():
            return
        with contextlib.suppress(DualTetraXBleError, OSError, BleakError):
            await self.client.write_characteristic(uuids.OTA_CONTROL, CANCEL.encode(), response=True, timeout_s=3.0)

    # ------------------------------------------------------------------ run

    async def run(self) -> OtaResult:
        self._started = time.monotonic()
        remove_listener = self.client.add_disconnect_listener(self._on_disconnect)
        try:
            return await self._run()
        except asyncio.CancelledError:
            # The caller's task was cancelled (e.g. Ctrl-C): still tell the device, briefly.
            await asyncio.shield(self._send_cancel())
            raise
        finally:
            remove_listener()

    async def _run(self) -> OtaResult:
        client = self.client
        image = self.image
        self._emit(OtaPhase.PREPARING, "reading the device's state")
        for required in (uuids.OTA_CONTROL, uuids.OTA_STATUS, uuids.OTA_DATA):
            client.characteristic(required)  # UnsupportedDeviceError names what is missing
        data_characteristic = client.characteristic(uuids.OTA_DATA)
        self._status_readable = "read" in client.characteristic(uuids.OTA_STATUS).properties
        try:
            previous_version = await client.read_firmware_revision()
        except DualTetraXBleError as error:
            if client.disconnected.is_set():
                raise self._disconnected_error() from error
            previous_version = None
        try:
            await client.start_notify(uuids.OTA_STATUS, self._on_status)
        except DeviceDisconnectedError as error:
            raise self._disconnected_error() from error
        current = await self._read_status()
        if current is None and client.disconnected.is_set():
            raise self._disconnected_error()
        if current is not None and current.state in (
            OtaState.VALIDATING,
            OtaState.UPGRADING,
            OtaState.SUCCESS,
        ):
            raise OtaRejectedError(
                f"The device is still busy with another update ({current}).", phase=self._phase.value
            )
        if current is not None and current.state in (OtaState.DOWNLOADING, OtaState.ERROR):
            # A stale session (or a reported error) from an earlier attempt: reset it.
            self._command_sent = True
            await self._command(CANCEL.encode(), "CANCEL of the stale update")
            self._drain_queue()
        if self._check_battery and current is not None and current.battery_percent < MIN_START_BATTERY_PERCENT:
            raise OtaLowBatteryError(
                f"The device's battery is at {current.battery_percent} %; an update needs at least "
                f"{MIN_START_BATTERY_PERCENT} %.",
                phase=self._phase.value,
            )

        max_write = data_characteristic.max_write_without_response_size
        payload_size = chunk_payload_size(max_write)
        count = chunk_count(image.size, payload_size)
        mtu = client.mtu

        if self._cancel_requested:
            raise OtaCancelledError("Update cancelled before it started.", phase=self._phase.value)
        self._emit(OtaPhase.STARTING, f"{count} chunks of {payload_size} bytes (MTU {mtu})")
        self._command_sent = True
        await self._command(StartCommand(image.size, count).encode(), "START")
        await self._wait_for(OtaState.DOWNLOADING, self.timeouts.ready)

        self._emit(OtaPhase.TRANSFERRING)
        transfer_started = time.monotonic()
        await self._transfer(data_characteristic, payload_size, count)
        await self._command(FINISH.encode(), "FINISH")
        transfer_s = time.monotonic() - transfer_started  # FINISH follows every chunk on the bearer
        self._emit(OtaPhase.VALIDATING, "all bytes delivered; the device is validating the image")

        new_version: str | None = None
        verified = False
        try:
            status = await self._wait_for(OtaState.UPGRADING, self.timeouts.validating)
            if status.state is not OtaState.SUCCESS:
                self._emit(OtaPhase.APPLYING, "image valid; the device is applying it")
                await self._wait_for(OtaState.SUCCESS, self.timeouts.applying)
        except OtaDisconnectedError:
            # A lost SUCCESS notification and a quick reboot look like this: only the version can tell.
            if not self._verify_reboot:
                raise
            logger.info("link dropped after FINISH; checking the version after the reboot")
            new_version = await self._reconnect_and_read_version(wait_for_drop=False)
            verified = _normalise_version(new_version) == _normalise_version(image.version)
            if not verified:
                raise OtaDisconnectedError(
                    f"The link dropped after every byte was delivered, and the device still runs {new_version!r} "
                    f"(not {image.version!r}): it did not apply the update.",
                    phase=OtaPhase.VALIDATING.value,
                    bytes_sent=self._bytes_sent,
                ) from None
        else:
            if self._verify_reboot:
                self._emit(OtaPhase.REBOOTING, "update applied; waiting for the device to restart")
                new_version = await self._reconnect_and_read_version(wait_for_drop=True)
                verified = _normalise_version(new_version) == _normalise_version(image.version)
                if not verified:
                    raise OtaVersionMismatchError(
                        f"The device reported success but runs {new_version!r} after its reboot, "
                        f"not the image's {image.version!r}.",
                        phase=OtaPhase.VERIFYING.value,
                        bytes_sent=self._bytes_sent,
                    )
        self._emit(OtaPhase.DONE, f"running {new_version}" if new_version else "update applied")
        return OtaResult(
            address=client.address,
            previous_version=previous_version,
            new_version=new_version,
            image_version=image.version,
            image_sha256=image.sha256,
            image_size=image.size,
            chunk_size=payload_size,
            chunk_count=count,
            mtu=mtu,
            transfer_s=transfer_s,
            total_s=time.monotonic() - self._started,
            verified=verified,
        )

    def _drain_queue(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _CANCELLED:
                self._queue.put_nowait(item)
                return

    async def _transfer(self, characteristic: object, payload_size: int, count: int) -> None:
        """The hot loop: one write-without-response per chunk, paced only by the stack."""
        image = memoryview(self.image.data)
        write = self.client.bleak_client.write_gatt_char
        queue = self._queue
        loop = asyncio.get_running_loop()
        stall = self.timeouts.write_stall
        pack = struct.Struct("<I").pack
        next_report = 0.0
        sent = 0
        self._rate.add(0)
        for index in range(count):
            if not queue.empty() and self._check_during_transfer():
                self._bytes_sent = sent
                await self._abort_cancelled()
            chunk = pack(index) + image[index * payload_size : (index + 1) * payload_size]
            try:
                async with asyncio.timeout(stall):
                    await write(characteristic, chunk, response=False)  # type: ignore[arg-type]
            except TimeoutError as error:
                if self.client.disconnected.is_set():
                    raise self._disconnected_error() from error
                raise OtaTimeoutError(
                    f"The link stalled: one chunk could not be queued for {stall:g} s.",
                    phase=self._phase.value,
                    bytes_sent=sent,
                ) from error
            except BleakError as error:
                self._bytes_sent = sent
                if self.client.disconnected.is_set() or not self.client.bleak_client.is_connected:
                    raise self._disconnected_error() from error
                raise OtaTransferFailedError(
                    f"Writing chunk {index} failed: {error}.", phase=self._phase.value, bytes_sent=sent
                ) from error
            sent += len(chunk) - 4
            now = loop.time()
            if now >= next_report:
                next_report = now + _PROGRESS_INTERVAL_S
                self._bytes_sent = sent
                self._rate.add(sent)
                self._emit()
        self._bytes_sent = sent
        self._rate.add(sent)
        self._emit()
        if not queue.empty() and self._check_during_transfer():
            await self._abort_cancelled()

    def _check_during_transfer(self) -> bool:
        """Act on notifications that arrived while streaming (errors, progress, a dropped link).
        Returns True when cancel() was called."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _DISCONNECTED:
                raise self._disconnected_error()
            if item is _CANCELLED:
                return True
            assert isinstance(item, OtaStatus)
            self._judge(item, _RANK[OtaState.DOWNLOADING])
        return False

    async def _still_updating(self, client: DualTetraXClient) -> bool:
        """After a link lost mid-validation: is the device still busy with the image?
        Raises the device's error if it reports one."""
        if not client.has_characteristic(uuids.OTA_STATUS):
            return False
        try:
            status = OtaStatus.decode(await client.read_characteristic(uuids.OTA_STATUS))
        except (DualTetraXBleError, ProtocolError):
            return False
        if status.state is OtaState.ERROR:
            raise _device_error(status, OtaPhase.VALIDATING, self._bytes_sent)
        return status.state in (OtaState.VALIDATING, OtaState.UPGRADING, OtaState.SUCCESS)

    async def _reconnect_and_read_version(self, *, wait_for_drop: bool) -> str:
        """Reconnect and read the firmware version. With ``wait_for_drop`` (success was seen) first
        wait for the reboot to drop the link; otherwise (the link dropped after FINISH) keep
        checking while the device reports it is still validating or applying."""
        loop = asyncio.get_running_loop()
        if wait_for_drop and not self.client.disconnected.is_set():
            try:
                async with asyncio.timeout(self.timeouts.reboot):
                    await self.client.disconnected.wait()
            except TimeoutError as error:
                raise OtaTimeoutError(
                    f"The device reported success but did not restart within {self.timeouts.reboot:g} s.",
                    phase=OtaPhase.REBOOTING.value,
                    bytes_sent=self._bytes_sent,
                ) from error
        self._emit(OtaPhase.VERIFYING, "reconnecting to read the new firmware version")
        deadline = loop.time() + self.timeouts.reconnect
        last_error: Exception | None = None
        while (remaining := deadline - loop.time()) > 0:
            fresh = DualTetraXClient(
                self.client.address,
                timeout=min(10.0, remaining),
                scan_timeout=remaining,
                backends=self.client.backends,
            )
            try:
                async with fresh:
                    version = await fresh.read_firmware_revision()
                    if wait_for_drop or not await self._still_updating(fresh):
                        return version
                    last_error = OtaTimeoutError("the device is still validating or applying the image")
            except (
                DeviceNotFoundError,
                ConnectionFailedError,
                DeviceDisconnectedError,
                DeviceTimeoutError,
            ) as error:
                last_error = error
            await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))
        raise OtaTimeoutError(
            f"The device did not come back within {self.timeouts.reconnect:g} s after its reboot ({last_error}).",
            phase=OtaPhase.VERIFYING.value,
            bytes_sent=self._bytes_sent,
        )


def _as_image(image: FirmwareImage | bytes | str | Path, expected_sha256: str | None) -> FirmwareImage:
    if isinstance(image, FirmwareImage):
        if expected_sha256 is not None:
            return inspect_image(image.data, expected_sha256=expected_sha256)
        return image
    if isinstance(image, bytes | bytearray | memoryview):
        return inspect_image(bytes(image), expected_sha256=expected_sha256)
    return load_image(image, expected_sha256=expected_sha256)


async def update_firmware(
    target: Target | DualTetraXClient,
    image: FirmwareImage | bytes | str | Path,
    *,
    expected_sha256: str | None = None,
    backends: BleBackends = PLATFORM,
    timeouts: OtaTimeouts | None = None,
    on_progress: ProgressCallback | None = None,
    attempts: int = 1,
    check_battery: bool = True,
    verify_reboot: bool = True,
    connect_timeout: float = 10.0,
    scan_timeout: float = 10.0,
    on_transfer: Callable[[OtaTransfer], None] | None = None,
) -> OtaResult:
    """Verify ``image``, connect to ``target`` and flash it; return once the device runs it.

    ``target`` is anything :class:`DualTetraXClient` accepts, or an already connected
    client (left connected to its original link, which the reboot drops). With
    ``attempts`` > 1, a transfer interrupted by a dropped link or a transfer error is
    retried from the start (the protocol cannot resume). ``on_transfer`` receives each
    :class:`OtaTransfer` as it starts, e.g. to keep a handle for ``cancel()``.

    Raises :class:`~dualtetrax.firmware.errors.FirmwareImageError` before connecting if the
    image is bad, and :class:`~dualtetrax.ble.errors.OtaError` subclasses otherwise.
    """
    firmware = _as_image(image, expected_sha256)
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    started = time.monotonic()
    retry_target: Target = target.address if isinstance(target, DualTetraXClient) else target
    retry_backends = target.backends if isinstance(target, DualTetraXClient) else backends
    for attempt in range(1, attempts + 1):
        if attempt == 1 and isinstance(target, DualTetraXClient):
            client, own_client = target, False
        else:
            client = DualTetraXClient(
                retry_target, timeout=connect_timeout, scan_timeout=scan_timeout, backends=retry_backends
            )
            own_client = True
        if on_progress is not None:
            on_progress(OtaProgress(OtaPhase.CONNECTING, 0, firmware.size, time.monotonic() - started))
        transfer: OtaTransfer | None = None
        try:
            if own_client:
                await client.connect()
            retry_target = client.address  # retries go to this device, not "the first one found"
            transfer = OtaTransfer(
                client,
                firmware,
                timeouts=timeouts,
                on_progress=on_progress,
                check_battery=check_battery,
                verify_reboot=verify_reboot,
            )
            if on_transfer is not None:
                on_transfer(transfer)
            result = await transfer.run()
            return dataclasses.replace(result, attempts=attempt, total_s=time.monotonic() - started)
        except (OtaDisconnectedError, OtaTransferFailedError, ConnectionFailedError) as error:
            after_finish = transfer is not None and transfer.phase not in (
                OtaPhase.PREPARING,
                OtaPhase.STARTING,
                OtaPhase.TRANSFERRING,
            )
            if attempt >= attempts or after_finish:
                raise
            logger.warning("attempt %d/%d failed: %s Retrying from the start.", attempt, attempts, error.detail)
        finally:
            if own_client:
                await client.disconnect()
    raise AssertionError("unreachable")
