"""The error code reported for each kind of failure (the documented table in docs/update.md)."""

from __future__ import annotations

import pytest

from dualtetrax.ble import errors as ble
from dualtetrax.ble.protocol.enums import OtaErrorCode
from dualtetrax.cloud.errors import AuthError, NetworkError, NotFoundError, ServerError
from dualtetrax.firmware.errors import BadMagicError
from dualtetrax.update import (
    CacheError,
    HashMismatchError,
    ImageVersionMismatchError,
    SizeMismatchError,
    UpdateErrorCode,
    code_name,
    failure_code,
)

CASES = [
    (ble.OtaValidationFailedError("x", device_error=OtaErrorCode.CHECKSUM_FAILED), "installing", 4),
    (ble.OtaTransferFailedError("x", device_error=OtaErrorCode.WRITE_FAILED), "transferring", 3),
    (ble.OtaLowBatteryError("x", device_error=OtaErrorCode.BATTERY_DROPPED), "transferring", 10),
    (ble.OtaLowBatteryError("x"), "transferring", 1),  # the SDK read the battery and refused first
    (NetworkError("x"), "downloading", 100),
    (ServerError("x", status=503), "downloading", 100),
    (NotFoundError("x", status=404), "downloading", 101),
    (AuthError("x", status=400), "downloading", 101),
    (HashMismatchError("x"), "downloading", 102),
    (SizeMismatchError("x"), "downloading", 103),
    (CacheError("x"), "downloading", 104),
    (PermissionError("x"), "downloading", 104),
    (BadMagicError("x"), "downloading", 110),
    (ImageVersionMismatchError("x"), "downloading", 111),
    (ble.DeviceNotFoundError("x"), "transferring", 120),
    (ble.ConnectionFailedError("x"), "transferring", 121),
    (ble.OtaDisconnectedError("x"), "transferring", 122),
    (ble.OtaTimeoutError("x"), "installing", 123),
    (ble.OtaRejectedError("x"), "transferring", 124),
    (ble.UnsupportedDeviceError("x"), "transferring", 124),
    (ble.OtaVersionMismatchError("x"), "installing", 125),
    (ble.OtaTransferFailedError("x"), "transferring", 127),
    (RuntimeError("x"), "transferring", 199),
]


@pytest.mark.parametrize(("error", "phase", "code"), CASES, ids=[f"{type(e).__name__}-{c}" for e, _, c in CASES])
def test_failure_code(error: BaseException, phase: str, code: int) -> None:
    assert failure_code(error, phase) == code
    assert 0 <= code <= 255


def test_codes_fit_the_server_and_do_not_collide_with_the_devices() -> None:
    assert all(100 <= code <= 199 for code in UpdateErrorCode)
    assert not {int(c) for c in UpdateErrorCode} & {int(c) for c in OtaErrorCode}
    assert (code_name(122), code_name(4), code_name(77)) == ("DISCONNECTED", "device:CHECKSUM_FAILED", "77")
