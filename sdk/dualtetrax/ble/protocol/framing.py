"""Frames of the generation-2 Communication service (device-protocol.md §3.2).

``[type u8][payload_len u16 LE][payload][check u8]`` where ``check`` is the XOR of every
preceding byte. One frame per notification or write; no fragmentation. Unlike the app,
which tolerates extra bytes after a frame, :func:`decode_frame` rejects them: a padded
frame means the sender and this SDK disagree on the format.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dualtetrax.ble.errors import FrameChecksumError, FrameLengthError, FrameTooShortError

HEADER_SIZE = 3
CHECK_SIZE = 1
MIN_FRAME_SIZE = HEADER_SIZE + CHECK_SIZE
MAX_PAYLOAD_SIZE = 0xFFFF


def xor_check(data: bytes) -> int:
    """XOR of all bytes (the frame check). Folded as one integer, halves XORed together (byte ``i`` of the low
    half with byte ``i`` of the high half) until one byte is left: a few big-integer operations instead of a
    Python loop over every byte."""
    width = len(data)
    value = int.from_bytes(data, "little")
    while width > 1:
        half = (width + 1) // 2
        shift = 8 * half
        value = (value & ((1 << shift) - 1)) ^ (value >> shift)
        width = half
    return value


@dataclass(frozen=True)
class Frame:
    message_type: int
    payload: bytes


def encode_frame(message_type: int, payload: bytes) -> bytes:
    if not 0 <= message_type <= 0xFF:
        raise ValueError(f"message type must fit one byte, got {message_type}")
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the 16-bit length field")
    body = struct.pack("<BH", message_type, len(payload)) + bytes(payload)
    return body + bytes([xor_check(body)])


def decode_frame(data: bytes | bytearray) -> Frame:
    """Parse one frame; raise a :class:`~dualtetrax.ble.errors.MalformedFrameError` subclass if broken."""
    data = bytes(data)
    if len(data) < MIN_FRAME_SIZE:
        raise FrameTooShortError(f"A frame needs at least {MIN_FRAME_SIZE} bytes, got {len(data)}: {data.hex()}.")
    message_type, length = struct.unpack_from("<BH", data)
    expected = HEADER_SIZE + length + CHECK_SIZE
    if len(data) != expected:
        raise FrameLengthError(
            f"Frame type 0x{message_type:02X} declares a {length}-byte payload ({expected} bytes in all) "
            f"but {len(data)} bytes arrived.",
            hint=(
                "If fewer bytes arrived, the ATT MTU is too small for this message: the device sends "
                "one frame per notification, so use a connection with a larger MTU (≥ 247)."
                if len(data) < expected
                else "The sender padded the frame."
            ),
        )
    check = xor_check(data[:-1])
    if check != data[-1]:
        raise FrameChecksumError(
            f"Frame type 0x{message_type:02X}: check byte is 0x{data[-1]:02X}, computed 0x{check:02X}."
        )
    return Frame(message_type, data[HEADER_SIZE:-1])
