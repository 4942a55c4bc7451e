"""Exit codes of ``dtx``: scripts can tell failure kinds apart without parsing text."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    """Anything not listed below (a protocol error, a bug)."""
    USAGE = 2
    """Bad command line (click's own code)."""
    NOT_FOUND = 3
    """No DualTetraX (or not the requested one) was found."""
    CONNECTION = 4
    """The connection failed or dropped."""
    TIMEOUT = 5
    """The device did not answer, or an update phase took too long."""
    INVALID_IMAGE = 6
    """The firmware file was refused before anything was sent."""
    REFUSED = 7
    """The device refused: low battery, busy/rejected, or it lacks the feature."""
    UPDATE_FAILED = 8
    """The device received the update but it failed (validation, transfer, or it rolled back)."""
    BLUETOOTH_UNAVAILABLE = 9
    """This computer has no usable Bluetooth."""
    NOT_SIGNED_IN = 10
    """The cloud needs a signed-in user (``dtx login``), or the session is no longer valid."""
    CLOUD_REFUSED = 11
    """The cloud refused the request: bad input, not allowed, not found, or a conflict."""
    CLOUD_UNREACHABLE = 12
    """The cloud could not be reached, or failed (network error, HTTP 5xx, rate limit)."""
    CANCELLED = 130
    """Interrupted (Ctrl-C); an update in progress was cancelled on the device."""


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for an exception raised by the SDK."""
    from dualtetrax.ble import errors
    from dualtetrax.cloud import errors as cloud
    from dualtetrax.firmware.errors import FirmwareImageError

    table: list[tuple[type[BaseException] | tuple[type[BaseException], ...], ExitCode]] = [
        (cloud.AuthError, ExitCode.NOT_SIGNED_IN),
        (cloud.CloudTimeoutError, ExitCode.TIMEOUT),
        ((cloud.NetworkError, cloud.ServerError, cloud.RateLimitedError), ExitCode.CLOUD_UNREACHABLE),
        (cloud.CloudError, ExitCode.CLOUD_REFUSED),
        (FirmwareImageError, ExitCode.INVALID_IMAGE),
        (errors.OtaCancelledError, ExitCode.CANCELLED),
        (errors.DeviceNotFoundError, ExitCode.NOT_FOUND),
        (errors.BluetoothUnavailableError, ExitCode.BLUETOOTH_UNAVAILABLE),
        (
            (
                errors.OtaLowBatteryError,
                errors.OtaRejectedError,
                errors.UnsupportedDeviceError,
                errors.CommandRejectedError,
                errors.MtuTooSmallError,
            ),
            ExitCode.REFUSED,
        ),
        (
            (errors.OtaValidationFailedError, errors.OtaTransferFailedError, errors.OtaVersionMismatchError),
            ExitCode.UPDATE_FAILED,
        ),
        (errors.DeviceTimeoutError, ExitCode.TIMEOUT),
        ((errors.ConnectionFailedError, errors.DeviceDisconnectedError), ExitCode.CONNECTION),
    ]
    for kinds, code in table:
        if isinstance(error, kinds):
            return code
    return ExitCode.ERROR
