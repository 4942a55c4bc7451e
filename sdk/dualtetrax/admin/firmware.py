"""Publishing firmware: check the image, upload it, register it — all or nothing.

>>> import asyncio
>>> from dualtetrax.admin import LocalStackBackend, publish_firmware
>>> async def main() -> None:                                                  # doctest: +SKIP
...     async with LocalStackBackend() as backend:
...         result = await publish_firmware(backend, open("app.bin", "rb").read(), version="1.2.0")
...         print(result.firmware["id"], result.storage_path)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dualtetrax.admin.backends import AdminBackend
from dualtetrax.admin.errors import (
    AdminError,
    DuplicateVersionError,
    ObjectExistsError,
    RegistrationError,
    RpcError,
    VersionMismatchError,
)
from dualtetrax.firmware.image import MAX_IMAGE_SIZE, FirmwareImage, inspect_image

FIRMWARE_BUCKET = "firmware-binaries"
CONTENT_TYPE = "application/octet-stream"
DEFAULT_MODEL = "DualTetraX"
#: What the registry accepts (firmware_versions.size_bytes).
MIN_SIZE = 1024
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)([-+][0-9A-Za-z.-]{1,32})?$")


def version_code_for(version: str) -> int:
    """The upstream convention, major*10000 + minor*100 + patch (1.0.23 -> 10023)."""
    match = _SEMVER.match(version)
    if not match:
        raise ValueError(f"version {version!r} is not a semantic version such as 1.2.0")
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    if minor > 99 or patch > 99:
        raise ValueError(f"version {version}: minor and patch above 99 have no derived code; pass a version code")
    code = major * 10000 + minor * 100 + patch
    if code < 1:
        raise ValueError("version 0.0.0 has no version code; pass one")
    return code


def storage_path_for(model: str, version: str) -> str:
    """``<model>/<version>/dualtetrax-<version>.bin``."""
    return f"{model}/{version}/dualtetrax-{version}.bin"


@dataclass(frozen=True)
class PublishResult:
    """A registered (and, if asked, published) firmware version."""

    firmware: dict[str, Any]
    bucket: str
    storage_path: str
    image: FirmwareImage = field(repr=False)

    @property
    def firmware_id(self) -> str:
        return str(self.firmware["id"])

    def summary(self) -> dict[str, Any]:
        keys = ("id", "version", "version_code", "model", "channel", "status", "size_bytes", "sha256",
                "min_version_code", "is_required", "published_at")
        return {**{k: self.firmware.get(k) for k in keys}, "bucket": self.bucket, "storage_path": self.storage_path}


def check_release(data: bytes, version: str) -> FirmwareImage:
    """Refuse anything that is not a valid application image reporting ``version``."""
    image = inspect_image(data, max_size=MAX_IMAGE_SIZE)
    if image.version != version:
        raise VersionMismatchError(
            f"The image's app description says version {image.version!r}, not {version!r}.")
    if image.size < MIN_SIZE:
        raise AdminError(f"The image is {image.size} bytes; the registry accepts 1 KiB to 2 MiB.")
    return image


async def publish_firmware(
    backend: AdminBackend,
    data: bytes,
    *,
    version: str,
    model: str = DEFAULT_MODEL,
    channel: str = "stable",
    changelog: str = "",
    version_code: int | None = None,
    min_version_code: int | None = None,
    required: bool = False,
    hardware_revisions: list[str] | None = None,
    publish: bool = False,
) -> PublishResult:
    """Validate ``data`` as an ESP32-S3 application image reporting ``version``, upload it to
    ``firmware-binaries/<model>/<version>/dualtetrax-<version>.bin`` and register it (draft; published too
    with ``publish=True``).

    All or nothing: an invalid image raises a
    :class:`~dualtetrax.firmware.errors.FirmwareImageError` before anything is uploaded; a failed upload
    registers nothing; a refused registration deletes the uploaded object and raises
    :class:`RegistrationError` (or :class:`DuplicateVersionError`).
    """
    if channel not in ("stable", "beta"):
        raise ValueError(f"channel must be stable or beta, not {channel!r}")
    code = version_code if version_code is not None else version_code_for(version)
    image = check_release(data, version)
    path = storage_path_for(model, version)

    try:
        await backend.upload_object(FIRMWARE_BUCKET, path, image.data, CONTENT_TYPE)
    except ObjectExistsError as error:
        raise DuplicateVersionError(
            f"{model} {version} already has a binary at {FIRMWARE_BUCKET}/{path}; nothing was changed.") from error

    args: dict[str, Any] = {
        "version": version, "version_code": code, "storage_path": path, "size_bytes": image.size,
        "sha256": image.sha256, "model": model, "channel": channel, "changelog": changelog,
        "hardware_revisions": [h.lower() for h in hardware_revisions or []],
        "min_version_code": min_version_code, "is_required": required,
    }
    try:
        firmware: dict[str, Any] = await backend.rpc("admin_register_firmware", args)
    except BaseException as error:
        await _remove_quietly(backend, path, error)
        if isinstance(error, RpcError):
            if error.code == "23505":
                raise DuplicateVersionError(f"{model} {version} is already registered; nothing was changed.") from error
            raise RegistrationError(
                f"The registry refused {model} {version}: {error.detail} The uploaded binary was removed.",
                cause=error) from error
        raise

    if publish:
        try:
            firmware = await backend.rpc("admin_set_firmware_status", {"firmware_id": firmware["id"],
                                                                       "status": "published"})
        except RpcError as error:
            raise AdminError(
                f"{model} {version} is registered as draft {firmware['id']} but publishing it failed: {error.detail}",
                hint="Publish it later with `dtx firmware set-status ID published`.") from error
    return PublishResult(firmware=firmware, bucket=FIRMWARE_BUCKET, storage_path=path, image=image)


async def _remove_quietly(backend: AdminBackend, path: str, cause: BaseException) -> None:
    try:
        await backend.delete_object(FIRMWARE_BUCKET, path)
    except Exception as error:  # keep the original failure; say what is left behind
        cause.add_note(f"The uploaded object {FIRMWARE_BUCKET}/{path} could not be removed: {error}")


async def set_firmware_status(backend: AdminBackend, firmware_id: str, status: str) -> dict[str, Any]:
    result: dict[str, Any] = await backend.rpc("admin_set_firmware_status",
                                               {"firmware_id": firmware_id, "status": status})
    return result
