"""The OTA service's wire format (device-protocol.md §4), identical in both app generations.

* Control (write with response): START ``01 size:u32 chunk_count:u32``, FINISH ``02``,
  CANCEL ``03``, GET_INFO ``04``.
* Data (write without response): ``chunk_index:u32`` then the chunk's bytes.
* Status (notify, read): ``state, error, progress %, battery %``.

The app uses ``MTU − 7`` bytes per chunk, which at MTU 517 makes a 514-byte attribute
value — over the Core specification's 512-byte limit. :func:`chunk_payload_size` never
does: ``min(max_write_without_response_size, 512) − 4``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dualtetrax.ble.errors import MalformedPayloadError
from dualtetrax.ble.protocol.enums import OtaCommand, OtaErrorCode, OtaState

#: Core specification limit of an attribute value (Vol 3, Part F, 3.2.9).
MAX_ATTRIBUTE_VALUE_SIZE = 512
CHUNK_HEADER_SIZE = 4
STATUS_SIZE = 4
START_SIZE = 9
#: The device refuses to start below this battery level and aborts at or below the next.
MIN_START_BATTERY_PERCENT = 70
ABORT_BATTERY_PERCENT = 50


def chunk_payload_size(max_write_without_response_size: int) -> int:
    """Firmware bytes per data write for a link that allows writes of the given size."""
    payload = min(max_write_without_response_size, MAX_ATTRIBUTE_VALUE_SIZE) - CHUNK_HEADER_SIZE
    if payload < 1:
        raise ValueError(
            f"a write-without-response size of {max_write_without_response_size} bytes leaves no room for firmware data"
        )
    return payload


def chunk_count(image_size: int, payload_size: int) -> int:
    return -(-image_size // payload_size)


@dataclass(frozen=True)
class StartCommand:
    firmware_size: int
    chunk_count: int

    def encode(self) -> bytes:
        return struct.pack("<BII", OtaCommand.START.value, self.firmware_size, self.chunk_count)


@dataclass(frozen=True)
class SimpleCommand:
    """FINISH, CANCEL or GET_INFO (one byte)."""

    command: OtaCommand

    def encode(self) -> bytes:
        return bytes([self.command.value])


ControlCommand = StartCommand | SimpleCommand

FINISH = SimpleCommand(OtaCommand.FINISH)
CANCEL = SimpleCommand(OtaCommand.CANCEL)
GET_INFO = SimpleCommand(OtaCommand.GET_INFO)


def decode_control(data: bytes | bytearray) -> ControlCommand:
    """Parse a control write (the device side, used by the emulator)."""
    data = bytes(data)
    if not data:
        raise MalformedPayloadError("Empty OTA control write.")
    if data[0] not in OtaCommand._value2member_map_:
        raise MalformedPayloadError(f"Unknown OTA command 0x{data[0]:02X}.")
    command = OtaCommand(data[0])
    if command is OtaCommand.START:
        if len(data) != START_SIZE:
            raise MalformedPayloadError(f"START is {START_SIZE} bytes, got {len(data)}.")
        _, size, count = struct.unpack("<BII", data)
        return StartCommand(size, count)
    if len(data) != 1:
        raise MalformedPayloadError(f"{command.name} is 1 byte, got {len(data)}.")
    return SimpleCommand(command)


def encode_chunk(index: int, payload: bytes | memoryview) -> bytes:
    return struct.pack("<I", index) + bytes(payload)


def decode_chunk(data: bytes | bytearray) -> tuple[int, bytes]:
    """``(chunk_index, firmware bytes)``; the firmware ignores writes shorter than 5 bytes."""
    if len(data) <= CHUNK_HEADER_SIZE:
        raise MalformedPayloadError(f"An OTA data write needs more than 4 bytes, got {len(data)}.")
    return struct.unpack_from("<I", data)[0], bytes(data[CHUNK_HEADER_SIZE:])


@dataclass(frozen=True)
class OtaStatus:
    """One OTA status notification (or read of the Status characteristic)."""

    state: OtaState
    error: OtaErrorCode = OtaErrorCode.NONE
    progress: int = 0
    battery_percent: int = 100

    def encode(self) -> bytes:
        return bytes([self.state.value, self.error.value, self.progress, self.battery_percent])

    @classmethod
    def decode(cls, data: bytes | bytearray) -> OtaStatus:
        """Strict: exactly the 4 documented bytes (trailing bytes are tolerated for newer firmware)."""
        data = bytes(data)
        if len(data) < STATUS_SIZE:
            raise MalformedPayloadError(f"An OTA status is {STATUS_SIZE} bytes, got {len(data)}: {data.hex()}.")
        state, error, progress, battery = data[:STATUS_SIZE]
        if state not in OtaState._value2member_map_:
            raise MalformedPayloadError(f"Unknown OTA state {state}.")
        if error not in OtaErrorCode._value2member_map_:
            raise MalformedPayloadError(f"Unknown OTA error code {error}.")
        if progress > 100 or battery > 100:
            raise MalformedPayloadError(f"OTA progress {progress} % or battery {battery} % out of range.")
        return cls(OtaState(state), OtaErrorCode(error), progress, battery)

    def __str__(self) -> str:
        text = f"{self.state.label} {self.progress}% (battery {self.battery_percent}%)"
        return f"{text}, error: {self.error.message}" if self.error is not OtaErrorCode.NONE else text
