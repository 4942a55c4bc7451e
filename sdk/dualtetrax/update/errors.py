"""Error codes the update flow reports to ``ota_report_status`` and the typed errors it raises.

Codes 0–10 are the device's own OTA errors (device-protocol.md §4.4), reported unchanged when the device gave
one. The SDK's codes for what happens off the device (download, hash, image checks, the BLE link) are 100–199,
so the two ranges never collide and both fit the server's 0–255 ``error_code``. docs/update.md has the table.
"""

from __future__ import annotations

import enum

from dualtetrax.ble.protocol.enums import OtaErrorCode


class UpdateErrorCode(enum.IntEnum):
    """SDK-side failure codes (100–199). The device's codes are :class:`~dualtetrax.ble.protocol.enums.OtaErrorCode`."""

    DOWNLOAD_FAILED = 100
    """The binary could not be downloaded (network errors after every retry, or the server failing)."""
    DOWNLOAD_REFUSED = 101
    """Storage refused the download (object gone, signed URL refused or not granted)."""
    HASH_MISMATCH = 102
    """The downloaded bytes do not have the offered SHA-256."""
    SIZE_MISMATCH = 103
    """The object does not have the offered size."""
    CACHE_ERROR = 104
    """The download cache could not be written (disk full, permissions)."""
    IMAGE_INVALID = 110
    """The binary is not a valid application image (firmware image checks)."""
    IMAGE_VERSION_MISMATCH = 111
    """The image's app description names another version than the offer."""
    DEVICE_NOT_FOUND = 120
    """The device was not found for the transfer."""
    CONNECTION_FAILED = 121
    """The BLE connection could not be established."""
    DISCONNECTED = 122
    """The link dropped during the transfer and the device gave no error code."""
    DEVICE_TIMEOUT = 123
    """The device did not reach the next update phase in time."""
    DEVICE_REJECTED = 124
    """The device refused the update without an OTA error code (ATT error on START, busy, missing feature)."""
    VERSION_MISMATCH = 125
    """After its reboot the device runs another version than the one sent (it rolled back)."""
    NOT_CONFIRMED = 126
    """The device reported success but its new version could not be confirmed over BLE."""
    TRANSFER_FAILED = 127
    """The transfer failed without a device error code (a write failed, or the device discarded the update)."""
    INTERRUPTED = 130
    """A previous run stopped while transferring or installing and the device does not run the new version."""
    INTERNAL = 199
    """Anything else (a bug); the message says what."""

    @property
    def description(self) -> str:
        return (self.__doc__ or self.name).strip()


def code_name(code: int) -> str:
    """``DISCONNECTED``, ``device:LOW_BATTERY``…: a readable name for any reported code."""
    if code in UpdateErrorCode._value2member_map_:
        return UpdateErrorCode(code).name
    if code in OtaErrorCode._value2member_map_:
        return f"device:{OtaErrorCode(code).name}"
    return str(code)


class UpdateError(Exception):
    """Base class of the update package's own errors. ``detail`` says what happened, ``hint`` what to do."""

    hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.detail = message
        if hint is not None:
            self.hint = hint
        super().__init__(f"{message} {self.hint}".strip())


class DownloadError(UpdateError):
    """The downloaded file cannot be used."""

    code = UpdateErrorCode.DOWNLOAD_FAILED


class HashMismatchError(DownloadError):
    """The downloaded bytes do not have the expected SHA-256. The partial file was deleted."""

    code = UpdateErrorCode.HASH_MISMATCH
    hint = "The download was deleted; run the update again. If it keeps failing, the published binary is corrupt."


class SizeMismatchError(DownloadError):
    """The server's object does not have the expected size. The partial file was deleted."""

    code = UpdateErrorCode.SIZE_MISMATCH
    hint = "The published binary does not match its registry entry; tell the firmware team."


class CacheError(DownloadError):
    """The download cache folder cannot be written."""

    code = UpdateErrorCode.CACHE_ERROR
    hint = "Free disk space or choose another cache folder (--cache-dir)."


class ImageVersionMismatchError(UpdateError):
    """The downloaded image's app description names another version than the one offered."""

    code = UpdateErrorCode.IMAGE_VERSION_MISMATCH
    hint = "The published binary does not match its registry entry; tell the firmware team."


class DeviceNotRegisteredError(UpdateError):
    """The device's serial number is not registered to the signed-in user."""

    hint = "Register it first (or pass register=True / --register)."


class UpdateFailedError(UpdateError):
    """The update flow failed. ``cause`` is the underlying typed error, ``code`` the error code reported to the
    server (``None`` when the failure happened before an update was offered, or was not a failure of the update
    itself), ``phase`` where it failed, and ``reported`` whether the server recorded the failure."""

    def __init__(self, message: str, *, cause: BaseException, phase: str, code: int | None, reported: bool,
                 hint: str | None = None) -> None:
        self.cause = cause
        self.phase = phase
        self.code = code
        self.reported = reported
        super().__init__(message, hint=hint if hint is not None else (getattr(cause, "hint", "") or None))

    @property
    def code_name(self) -> str | None:
        return None if self.code is None else code_name(self.code)
