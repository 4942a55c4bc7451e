"""Synthetic, valid ESP32-S3 application images for tests, the emulator and demos.

No firmware binaries are committed to this repository; anything that needs an image makes
one here. The images are real ESP-IDF application images as far as any checker can tell:
ESP32-S3 chip id, a DROM segment that starts with a proper ``esp_app_desc_t``, RAM
segments, the ROM checksum byte and the appended SHA-256 — written by ``esptool``'s own
image writer. They just do not contain a program.
"""

from __future__ import annotations

import hashlib
import random

from dualtetrax.firmware.app_description import APP_DESC_SIZE, AppDescription
from dualtetrax.firmware.image import (
    DIGEST_SIZE,
    IMAGE_HEADER_SIZE,
    MAX_IMAGE_SIZE,
    SEGMENT_HEADER_SIZE,
    inspect_image,
)

DROM_ADDRESS = 0x3C000020  # first DROM segment: .flash.appdesc + .flash.rodata
DRAM_ADDRESS = 0x3FC88000
IRAM_ADDRESS = 0x40374000
_RAM_SEGMENT_SIZE = 256
_FIXED = IMAGE_HEADER_SIZE + 3 * SEGMENT_HEADER_SIZE + 2 * _RAM_SEGMENT_SIZE + 1  # +1: checksum byte
#: The smallest image :func:`build_test_image` can make.
MIN_TEST_IMAGE_SIZE = ((_FIXED + APP_DESC_SIZE + 15) // 16) * 16 + DIGEST_SIZE


def build_test_image(
    version: str = "1.0.0",
    size: int = 64 * 1024,
    *,
    project_name: str = "dualtetrax",
    idf_version: str = "v5.3.4",
    seed: int | None = None,
) -> bytes:
    """Make a valid ESP32-S3 application image of ``size`` bytes reporting ``version``.

    ``size`` is rounded down to a multiple of 16 (ESP images end on a 16-byte boundary
    plus the 32-byte SHA-256). The filler bytes are pseudo-random, derived from ``seed``
    (default: from version and size), so the same call always gives the same image.
    """
    if size < MIN_TEST_IMAGE_SIZE:
        raise ValueError(f"size must be at least {MIN_TEST_IMAGE_SIZE} bytes, got {size}")
    if size > MAX_IMAGE_SIZE:
        raise ValueError(f"size must be at most {MAX_IMAGE_SIZE} bytes (the OTA partition), got {size}")
    size -= size % 16

    from esptool.bin_image import ELFSection, ESP32S3FirmwareImage  # type: ignore[import-untyped]

    rng = random.Random(seed if seed is not None else f"{version}/{size}/{project_name}")
    description = AppDescription(
        version=version,
        project_name=project_name,
        compile_time="12:00:00",
        compile_date="Jan 14 2026",
        idf_version=idf_version,
        elf_sha256=hashlib.sha256(f"{project_name} {version}".encode()).digest(),
        mmu_page_size_log2=16,
    )
    # Largest 4-aligned DROM length whose image, rounded up to 16, is exactly size - 32.
    drom_length = ((size - DIGEST_SIZE - _FIXED) // 4) * 4
    drom = description.encode() + rng.randbytes(drom_length - APP_DESC_SIZE)

    image = ESP32S3FirmwareImage()
    image.entrypoint = IRAM_ADDRESS
    image.flash_mode = 2  # DIO
    image.flash_size_freq = 0x2F  # 4 MB, 80 MHz
    image.max_rev_full = 99  # v0.99, as ESP-IDF writes it
    image.segments = [
        ELFSection(b".flash.appdesc", DROM_ADDRESS, drom, 0),
        ELFSection(b".dram0.data", DRAM_ADDRESS, rng.randbytes(_RAM_SEGMENT_SIZE), 0),
        ELFSection(b".iram0.text", IRAM_ADDRESS, rng.randbytes(_RAM_SEGMENT_SIZE), 0),
    ]
    data = bytes(image.save(None))
    if len(data) != size:  # pragma: no cover - guards the size arithmetic above
        raise AssertionError(f"built {len(data)} bytes, wanted {size}")
    inspect_image(data)  # never hand out an image our own checks would refuse
    return data
