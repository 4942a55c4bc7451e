"""Typed errors of the BLE device client and the OTA engine.

Every error says what went wrong and what to do next (:attr:`DualTetraXBleError.hint`).
Catch :class:`DualTetraXBleError` for everything, or a specific class:

* protocol: :class:`ProtocolError` (malformed data from the device) and its subclasses;
* connection: :class:`DeviceNotFoundError`, :class:`ConnectionFailedError`,
  :class:`DeviceDisconnectedError`, :class:`DeviceTimeoutError`,
  :class:`UnsupportedDeviceError`, :class:`CommandRejectedError`;
* OTA: :class:`OtaError` and its subclasses (low battery, rejected, disconnected, timed
  out, validation failed, transfer failed, cancelled, version mismatch).

This module is pure (no bleak import) so protocol code can use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dualtetrax.ble.protocol.enums import MessageType, OtaErrorCode, OtaState, ResponseStatus


class DualTetraXBleError(Exception):
    """Base class of every error raised by ``dualtetrax.ble``."""

    hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.detail = message
        if hint is not None:
            self.hint = hint
        super().__init__(f"{message} {self.hint}".strip())


# --------------------------------------------------------------------------- protocol


class ProtocolError(DualTetraXBleError):
    """The device sent bytes that do not follow the protocol."""

    hint = "Check that the firmware speaks the protocol this SDK version supports."


class MalformedFrameError(ProtocolError):
    """A Communication-service frame is broken (length or XOR check)."""


class FrameTooShortError(MalformedFrameError):
    """Fewer than the 4 bytes every frame needs (type, length, check)."""


class FrameLengthError(MalformedFrameError):
    """The frame's length field does not match the bytes received."""


class FrameChecksumError(MalformedFrameError):
    """The XOR check byte does not match the frame."""


class MalformedPayloadError(ProtocolError):
    """A message or characteristic value has the wrong size or an impossible field value."""


class UnknownMessageError(ProtocolError):
    """A frame carries a message type this SDK does not know."""

    def __init__(self, message_type: int) -> None:
        self.message_type = message_type
        super().__init__(f"Unknown Communication-service message type 0x{message_type:02X}.")


class UnexpectedResponseError(ProtocolError):
    """The device answered a request with a response of another type."""

    def __init__(self, expected: MessageType, got: MessageType) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"Expected a {expected.name} frame but the device answered with {got.name}.")


# --------------------------------------------------------------------------- connection


class BluetoothUnavailableError(DualTetraXBleError):
    """This computer has no usable Bluetooth (no adapter, adapter off, no BlueZ/D-Bus, permission denied)."""

    hint = (
        "Enable Bluetooth (on Linux: a running bluetoothd and D-Bus), or try the command with --emulate "
        "to use the emulated device."
    )


class DeviceNotFoundError(DualTetraXBleError):
    """No DualTetraX answered the scan."""

    hint = (
        "Make sure the device is switched on and near, that no phone holds a connection to it, "
        "and that Bluetooth is enabled on this computer."
    )


class ConnectionFailedError(DualTetraXBleError):
    """The connection could not be established (or timed out)."""

    hint = "Move closer, switch the device off and on, and try again."


class DeviceDisconnectedError(DualTetraXBleError):
    """The link dropped while an operation was in progress."""

    hint = "Reconnect and try again; keep the device close and switched on."


class DeviceTimeoutError(DualTetraXBleError):
    """The device did not answer in time."""

    hint = "The device may be busy or out of range; try again."


class GattError(DualTetraXBleError):
    """A GATT operation failed (the device answered with an ATT error, or the stack refused)."""

    hint = "Reconnect and try again."

    def __init__(self, message: str, *, att_error: int | None = None, hint: str | None = None) -> None:
        self.att_error = att_error
        super().__init__(message, hint=hint)


class MtuTooSmallError(DualTetraXBleError):
    """The negotiated ATT MTU cannot carry a message the device sends in one notification."""

    hint = (
        "The device sends one frame per notification; connect with a larger MTU (≥ 247). On Linux, "
        "BlueZ negotiates it; check that the adapter supports LE data length extension."
    )


class UnsupportedDeviceError(DualTetraXBleError):
    """The device lacks a service or characteristic the operation needs."""

    hint = "This firmware does not offer the feature; update the device or use a matching SDK."


class CommandRejectedError(DualTetraXBleError):
    """The device answered a Communication-service request with a non-success status."""

    def __init__(self, request: MessageType, status: ResponseStatus) -> None:
        self.request = request
        self.status = status
        super().__init__(f"The device rejected {request.name}: {status.description} (status 0x{status.value:02X}).")


# --------------------------------------------------------------------------- OTA


class OtaError(DualTetraXBleError):
    """A firmware update did not complete. The device keeps its current firmware unless stated."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        phase: str | None = None,
        bytes_sent: int = 0,
        device_state: OtaState | None = None,
        device_error: OtaErrorCode | None = None,
    ) -> None:
        self.phase = phase
        self.bytes_sent = bytes_sent
        self.device_state = device_state
        self.device_error = device_error
        super().__init__(message, hint=hint)


class OtaLowBatteryError(OtaError):
    """The device refused or aborted the update because its battery is too low (< 70 % to start,
    ≤ 50 % during the update)."""

    hint = "Charge the device to at least 70 % and try again."


class OtaRejectedError(OtaError):
    """The device refused to start the update (ATT error on START, size refused, or it stayed idle)."""

    hint = "Put the device in standby (no treatment running) and try again."


class OtaDisconnectedError(OtaError, DeviceDisconnectedError):
    """The link dropped during the update. The device discards a partial image."""

    hint = "Keep the device close and switched on, then run the update again (it restarts from zero)."


class OtaTimeoutError(OtaError, DeviceTimeoutError):
    """The device did not reach the next update phase in time."""

    hint = "Switch the device off and on, reconnect and run the update again."


class OtaValidationFailedError(OtaError):
    """The device received the image but its verification failed (invalid image or checksum)."""

    hint = "The image did not arrive intact or the device does not accept it; run the update again."


class OtaTransferFailedError(OtaError):
    """The device reported an error while receiving or writing the image (missing chunk, flash error)."""

    hint = "Run the update again; if it keeps failing, restart the device first."


class OtaCancelledError(OtaError):
    """The update was cancelled on request; the device was told to discard the partial image."""

    hint = "Nothing was changed on the device; run the update again when ready."


class OtaVersionMismatchError(OtaError):
    """After the reboot the device reports another firmware version than the image's (it rolled back)."""

    hint = "The device rejected the new image at boot and kept its previous firmware; check the image."
