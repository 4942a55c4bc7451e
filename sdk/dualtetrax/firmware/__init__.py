"""ESP32-S3 application image checks and synthetic test images.

>>> from dualtetrax.firmware import build_test_image, inspect_image
>>> image = inspect_image(build_test_image(version="1.2.3", size=32 * 1024))
>>> image.version, image.chip, image.size
('1.2.3', 'ESP32-S3', 32768)
"""

from dualtetrax.firmware.app_description import APP_DESC_MAGIC, AppDescription
from dualtetrax.firmware.errors import (
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
)
from dualtetrax.firmware.image import (
    ESP32S3_CHIP_ID,
    MAX_IMAGE_SIZE,
    FirmwareImage,
    ImageSegmentInfo,
    inspect_image,
    load_image,
    xor_checksum,
)
from dualtetrax.firmware.test_image import MIN_TEST_IMAGE_SIZE, build_test_image

__all__ = [
    "APP_DESC_MAGIC",
    "ESP32S3_CHIP_ID",
    "MAX_IMAGE_SIZE",
    "MIN_TEST_IMAGE_SIZE",
    "AppDescription",
    "BadMagicError",
    "ChecksumMismatchError",
    "DigestMismatchError",
    "ExpectedDigestMismatchError",
    "FirmwareImage",
    "FirmwareImageError",
    "ImageSegmentInfo",
    "ImageTooLargeError",
    "MalformedImageError",
    "MissingAppDescriptionError",
    "TruncatedImageError",
    "TruncatedSegmentError",
    "WrongChipError",
    "build_test_image",
    "inspect_image",
    "load_image",
    "xor_checksum",
]
