"""Firmware image checks: every typed error on a concrete corruption, and the test-image builder."""

from __future__ import annotations

import functools
import hashlib
import operator
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualtetrax.firmware import (
    MAX_IMAGE_SIZE,
    MIN_TEST_IMAGE_SIZE,
    AppDescription,
    BadMagicError,
    ChecksumMismatchError,
    DigestMismatchError,
    ExpectedDigestMismatchError,
    FirmwareImageError,
    ImageTooLargeError,
    MalformedImageError,
    MissingAppDescriptionError,
    TruncatedImageError,
    TruncatedSegmentError,
    WrongChipError,
    build_test_image,
    inspect_image,
    load_image,
    xor_checksum,
)

SIZE = 24 * 1024


@pytest.fixture(scope="module")
def image() -> bytes:
    return build_test_image(version="1.2.3", size=SIZE)


def reseal(data: bytes) -> bytes:
    """Recompute the checksum byte and appended SHA-256 after a deliberate edit."""
    count = data[1]
    offset, state = 24, 0xEF
    for _ in range(count):
        _, length = struct.unpack_from("<II", data, offset)
        state = xor_checksum(data[offset + 8 : offset + 8 + length], state)
        offset += 8 + length
    end = offset + (16 - offset % 16)
    body = bytearray(data[:end])
    body[end - 1] = state
    return bytes(body) + hashlib.sha256(body).digest() + data[end + 32 :]


def test_valid_image_is_described(image: bytes) -> None:
    info = inspect_image(image)
    assert info.version == "1.2.3"
    assert info.project_name == "dualtetrax"
    assert info.chip == "ESP32-S3" and info.chip_id == 9
    assert info.size == SIZE == info.image_length
    assert info.sha256 == hashlib.sha256(image).hexdigest()
    assert info.digest_appended
    assert [s.memory_types[-1] for s in info.segments] == ["DROM", "DRAM", "IRAM"]
    assert info.trailing_bytes == 0
    assert info.app.idf_version == "v5.3.4"


def test_expected_sha256_accepts_match_in_any_case(image: bytes) -> None:
    digest = hashlib.sha256(image).hexdigest().upper()
    assert inspect_image(image, expected_sha256=digest).sha256 == digest.lower()


def test_expected_sha256_mismatch(image: bytes) -> None:
    with pytest.raises(ExpectedDigestMismatchError, match="expected 0000"):
        inspect_image(image, expected_sha256="0" * 64)


def test_expected_sha256_must_be_hex(image: bytes) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        inspect_image(image, expected_sha256="abc")


@pytest.mark.parametrize("data", [b"", b"\xe9\x03"], ids=["empty", "two-bytes"])
def test_truncated_header(data: bytes) -> None:
    with pytest.raises(TruncatedImageError, match="shorter than the 24-byte image header"):
        inspect_image(data)


def test_bad_magic(image: bytes) -> None:
    with pytest.raises(BadMagicError, match="0x7F"):
        inspect_image(b"\x7f" + image[1:])


def test_wrong_chip(image: bytes) -> None:
    esp32_c3 = image[:12] + struct.pack("<H", 5) + image[14:]
    with pytest.raises(WrongChipError, match="ESP32-C3") as raised:
        inspect_image(esp32_c3)
    assert "esp32s3" in str(raised.value)  # says what to do next


def test_truncated_segment(image: bytes) -> None:
    with pytest.raises(TruncatedSegmentError, match="Segment 0 of 3") as raised:
        inspect_image(image[: SIZE // 2])
    assert isinstance(raised.value, TruncatedImageError)


def test_missing_checksum_byte(image: bytes) -> None:
    info = inspect_image(image)
    last = info.segments[-1]
    with pytest.raises(TruncatedImageError, match="checksum byte is missing"):
        inspect_image(image[: last.file_offset + 8 + last.length])


def test_missing_digest(image: bytes) -> None:
    with pytest.raises(TruncatedImageError, match="SHA-256 is appended"):
        inspect_image(image[:-20])


def test_checksum_mismatch(image: bytes) -> None:
    corrupted = bytearray(image)
    corrupted[1000] ^= 0x55  # inside the DROM segment
    # Keep the appended digest consistent, so that only the checksum byte betrays the edit.
    body = bytes(corrupted[:-32])
    with pytest.raises(ChecksumMismatchError, match="checksum byte"):
        inspect_image(body + hashlib.sha256(body).digest())


def test_digest_mismatch(image: bytes) -> None:
    corrupted = bytearray(image)
    corrupted[3] ^= 0x01  # flash size/frequency: not covered by the checksum byte
    with pytest.raises(DigestMismatchError, match="appended SHA-256"):
        inspect_image(bytes(corrupted))


def test_corrupted_digest_bytes(image: bytes) -> None:
    with pytest.raises(DigestMismatchError):
        inspect_image(image[:-1] + bytes([image[-1] ^ 0xFF]))


def test_too_large() -> None:
    big = build_test_image(size=MAX_IMAGE_SIZE)
    assert inspect_image(big).size == MAX_IMAGE_SIZE
    with pytest.raises(ImageTooLargeError, match="2097152 bytes"):
        inspect_image(big + b"\xff" * 16)


def test_invalid_hash_flag(image: bytes) -> None:
    with pytest.raises(MalformedImageError, match="hash-appended flag is 0x02"):
        inspect_image(image[:23] + b"\x02" + image[24:])


def test_missing_app_description(image: bytes) -> None:
    # Overwrite the app description magic (first 4 bytes of the DROM data at offset 0x20).
    edited = reseal(image[:0x20] + b"\x00\x00\x00\x00" + image[0x24:])
    with pytest.raises(MissingAppDescriptionError, match="0xABCD5432"):
        inspect_image(edited)


def test_image_without_appended_digest_is_accepted(image: bytes) -> None:
    unhashed = bytearray(image[:-32])
    unhashed[23] = 0
    info = inspect_image(reseal(bytes(unhashed) + bytes(32))[:-32])
    assert not info.digest_appended
    assert info.version == "1.2.3"


def test_trailing_padding_is_accepted(image: bytes) -> None:
    info = inspect_image(image + b"\xff" * 64)
    assert info.trailing_bytes == 64


def test_errors_are_value_errors_with_hints(image: bytes) -> None:
    with pytest.raises(FirmwareImageError) as raised:
        inspect_image(b"\x00" * 64)
    assert isinstance(raised.value, ValueError)
    assert raised.value.hint in str(raised.value)


def test_version_comes_from_the_image_not_the_file_name(tmp_path: Path, image: bytes) -> None:
    misleading = tmp_path / "dualtetrax_v9.9.9.bin"
    misleading.write_bytes(image)
    assert load_image(misleading).version == "1.2.3"


def test_load_image_refuses_huge_file_before_reading(tmp_path: Path) -> None:
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as file:
        file.truncate(MAX_IMAGE_SIZE + 1)
    with pytest.raises(ImageTooLargeError):
        load_image(huge)


def test_builder_is_deterministic_and_sized() -> None:
    first = build_test_image(version="2.0.0", size=10_000)
    assert first == build_test_image(version="2.0.0", size=10_000)
    assert first != build_test_image(version="2.0.1", size=10_000)
    assert len(first) == 10_000 - 10_000 % 16
    assert len(build_test_image(size=MIN_TEST_IMAGE_SIZE)) == MIN_TEST_IMAGE_SIZE


@pytest.mark.parametrize("size", [MIN_TEST_IMAGE_SIZE - 1, MAX_IMAGE_SIZE + 16])
def test_builder_refuses_impossible_sizes(size: int) -> None:
    with pytest.raises(ValueError, match="size must be"):
        build_test_image(size=size)


_field = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=15)


@settings(max_examples=50, deadline=None)
@given(
    version=_field.filter(bool),
    project=_field,
    secure=st.integers(0, 2**32 - 1),
    sha=st.binary(min_size=32, max_size=32),
)
def test_app_description_round_trip(version: str, project: str, secure: int, sha: bytes) -> None:
    description = AppDescription(version=version, project_name=project, secure_version=secure, elf_sha256=sha)
    encoded = description.encode()
    assert len(encoded) == 256
    assert AppDescription.decode(encoded + b"rest of rodata") == description


def test_app_description_field_too_long() -> None:
    with pytest.raises(ValueError, match="longer than 31 bytes"):
        AppDescription(version="v" * 32, project_name="x").encode()


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=3000), state=st.integers(0, 255))
def test_xor_checksum_matches_the_rom_definition(data: bytes, state: int) -> None:
    assert xor_checksum(data, state) == functools.reduce(operator.xor, data, state)
