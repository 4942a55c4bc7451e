"""Typed errors for firmware image checks.

Every error names what is wrong with the image and what to do next. They all derive from
:class:`FirmwareImageError`, which derives from :class:`ValueError`.
"""

from __future__ import annotations


class FirmwareImageError(ValueError):
    """The file is not a flashable DualTetraX (ESP32-S3) application image."""

    hint = "Use the .bin application image produced by the firmware build (not the ELF or a merged flash dump)."

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.detail = message
        if hint is not None:
            self.hint = hint
        super().__init__(f"{message} {self.hint}")


class TruncatedImageError(FirmwareImageError):
    """The file ends before the image does (header, checksum or appended SHA-256 missing)."""

    hint = "The file is incomplete: download or copy it again."


class BadMagicError(FirmwareImageError):
    """The first byte is not the ESP image magic 0xE9."""


class MalformedImageError(FirmwareImageError):
    """The header or segment table is inconsistent."""


class TruncatedSegmentError(TruncatedImageError):
    """A segment declares more bytes than the file holds."""


class ChecksumMismatchError(FirmwareImageError):
    """The image's one-byte segment checksum does not match its contents."""

    hint = "The file is corrupted: download or copy it again."


class DigestMismatchError(FirmwareImageError):
    """The SHA-256 appended by the build does not match the image contents."""

    hint = "The file is corrupted: download or copy it again."


class ExpectedDigestMismatchError(FirmwareImageError):
    """The file's SHA-256 differs from the one the caller expected (e.g. the release's published hash)."""

    hint = "This is not the release you meant to flash, or it was corrupted in transit: download it again."


class WrongChipError(FirmwareImageError):
    """The image was built for another chip than the DualTetraX's ESP32-S3."""

    hint = "Build the firmware for the esp32s3 target (idf.py set-target esp32s3)."


class ImageTooLargeError(FirmwareImageError):
    """The image does not fit the device's 2 MiB OTA partition."""

    hint = "The OTA partition holds at most 2 MiB; reduce the image size."


class MissingAppDescriptionError(FirmwareImageError):
    """No esp_app_desc_t (magic 0xABCD5432) at the start of the first DROM segment."""

    hint = "This looks like a bootloader or non-IDF image; flash an ESP-IDF application image."
