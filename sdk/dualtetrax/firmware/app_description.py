"""The ESP-IDF application description (``esp_app_desc_t``) embedded in every app image.

ESP-IDF places this 256-byte structure at the very start of the first DROM segment
(section ``.flash.appdesc``). Its ``version`` field is the firmware version the device
reports in the Device Information service (0x2A26), so it — not the file name — is the
version of an image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dualtetrax.firmware.errors import MissingAppDescriptionError

APP_DESC_MAGIC = 0xABCD5432
APP_DESC_SIZE = 256
# magic, secure_version, reserv1[2], version[32], project_name[32], time[16], date[16],
# idf_ver[32], app_elf_sha256[32], min_efuse_blk_rev_full, max_efuse_blk_rev_full,
# mmu_page_size (log2), reserv3[3], reserv2[18]
_APP_DESC = struct.Struct("<II8s32s32s16s16s32s32sHHB3s72s")
assert _APP_DESC.size == APP_DESC_SIZE


def _c_string(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def _c_field(text: str, size: int, name: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) >= size:
        raise ValueError(f"{name} {text!r} is longer than {size - 1} bytes")
    return raw.ljust(size, b"\x00")


@dataclass(frozen=True)
class AppDescription:
    """The fields of ``esp_app_desc_t`` that tools care about."""

    version: str
    project_name: str
    compile_time: str = ""
    compile_date: str = ""
    idf_version: str = ""
    secure_version: int = 0
    elf_sha256: bytes = bytes(32)
    min_efuse_blk_rev_full: int = 0
    max_efuse_blk_rev_full: int = 0
    mmu_page_size_log2: int = 0

    def encode(self) -> bytes:
        """The 256-byte binary form, as the ESP-IDF build writes it."""
        if len(self.elf_sha256) != 32:
            raise ValueError("elf_sha256 must be 32 bytes")
        return _APP_DESC.pack(
            APP_DESC_MAGIC,
            self.secure_version,
            bytes(8),
            _c_field(self.version, 32, "version"),
            _c_field(self.project_name, 32, "project_name"),
            _c_field(self.compile_time, 16, "compile_time"),
            _c_field(self.compile_date, 16, "compile_date"),
            _c_field(self.idf_version, 32, "idf_version"),
            self.elf_sha256,
            self.min_efuse_blk_rev_full,
            self.max_efuse_blk_rev_full,
            self.mmu_page_size_log2,
            bytes(3),
            bytes(72),
        )

    @classmethod
    def decode(cls, data: bytes) -> AppDescription:
        """Parse the structure from the start of ``data`` (the first DROM segment's bytes)."""
        if len(data) < APP_DESC_SIZE:
            raise MissingAppDescriptionError(
                f"The first DROM segment is {len(data)} bytes, too short for the 256-byte app description."
            )
        fields = _APP_DESC.unpack_from(data)
        if fields[0] != APP_DESC_MAGIC:
            raise MissingAppDescriptionError(
                f"The first DROM segment starts with 0x{fields[0]:08X}, not the app description magic "
                f"0x{APP_DESC_MAGIC:08X}."
            )
        return cls(
            secure_version=fields[1],
            version=_c_string(fields[3]),
            project_name=_c_string(fields[4]),
            compile_time=_c_string(fields[5]),
            compile_date=_c_string(fields[6]),
            idf_version=_c_string(fields[7]),
            elf_sha256=fields[8],
            min_efuse_blk_rev_full=fields[9],
            max_efuse_blk_rev_full=fields[10],
            mmu_page_size_log2=fields[11],
        )
