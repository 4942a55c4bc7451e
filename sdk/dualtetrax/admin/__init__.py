"""Admin operations for the fleet: publish firmware, drive rollouts.

Every operation takes a *backend* (:class:`AdminBackend`): :class:`LocalStackBackend` for the local stack,
:class:`SupabaseBackend` for a Supabase project (service role key). Heavy dependencies (psycopg,
supabase, esptool) are imported when used.
"""

from dualtetrax.admin.backends import (
    DEFAULT_DATABASE_URL,
    DEFAULT_STORAGE_DIR,
    AdminBackend,
    LocalStackBackend,
    SupabaseBackend,
)
from dualtetrax.admin.errors import (
    AdminError,
    DuplicateVersionError,
    ObjectExistsError,
    RegistrationError,
    RpcError,
    StorageError,
    VersionMismatchError,
)
from dualtetrax.admin.firmware import (
    FIRMWARE_BUCKET,
    PublishResult,
    publish_firmware,
    set_firmware_status,
    storage_path_for,
    version_code_for,
)

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_STORAGE_DIR",
    "FIRMWARE_BUCKET",
    "AdminBackend",
    "AdminError",
    "DuplicateVersionError",
    "LocalStackBackend",
    "ObjectExistsError",
    "PublishResult",
    "RegistrationError",
    "RpcError",
    "StorageError",
    "SupabaseBackend",
    "VersionMismatchError",
    "publish_firmware",
    "set_firmware_status",
    "storage_path_for",
    "version_code_for",
]
