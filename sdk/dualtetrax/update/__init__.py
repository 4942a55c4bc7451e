"""The full firmware update of a device: cloud check, resumable verified download, image checks, BLE transfer,
confirmation, and every phase reported to the server. See docs/update.md.

>>> from dualtetrax.update import update_device                     # doctest: +SKIP
>>> result = await update_device(cloud, ble_client, progress=print)  # doctest: +SKIP
"""

from dualtetrax.update.download import (
    DownloadProgress,
    DownloadResult,
    cache_paths,
    default_cache_dir,
    download_firmware,
)
from dualtetrax.update.errors import (
    CacheError,
    DeviceNotRegisteredError,
    DownloadError,
    HashMismatchError,
    ImageVersionMismatchError,
    SizeMismatchError,
    UpdateError,
    UpdateErrorCode,
    UpdateFailedError,
    code_name,
)
from dualtetrax.update.flow import UpdateProgress, UpdateResult, failure_code, update_device

__all__ = [
    "CacheError",
    "DeviceNotRegisteredError",
    "DownloadError",
    "DownloadProgress",
    "DownloadResult",
    "HashMismatchError",
    "ImageVersionMismatchError",
    "SizeMismatchError",
    "UpdateError",
    "UpdateErrorCode",
    "UpdateFailedError",
    "UpdateProgress",
    "UpdateResult",
    "cache_paths",
    "code_name",
    "default_cache_dir",
    "download_firmware",
    "failure_code",
    "update_device",
]
