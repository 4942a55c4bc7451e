"""The cloud side of the SDK: :class:`DtxCloud` over a Supabase project or the local stack.

Pick a backend, sign in, and use the typed API::

    from dualtetrax.cloud import DtxCloud, connect

    cloud = await connect()            # from DTX_SUPABASE_URL/… or the config file; see dualtetrax.cloud.config
    await cloud.sign_in(email, password)
    for device in await cloud.devices():
        ...
"""

from dualtetrax.cloud.backend import AuthSession, CloudBackend, Filter, Order, eq
from dualtetrax.cloud.client import UPLOAD_BATCH, DtxCloud
from dualtetrax.cloud.config import CloudConfig, load_config, open_cloud
from dualtetrax.cloud.errors import (
    AuthError,
    CloudError,
    CloudTimeoutError,
    ConflictError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    ValidationError,
)
from dualtetrax.cloud.local_backend import LocalCloudBackend
from dualtetrax.cloud.models import (
    Announcement,
    Device,
    DeviceTransfer,
    FirmwareStatus,
    FleetOverview,
    GoalProgress,
    Notification,
    Profile,
    ReportRequest,
    Rollout,
    StatsRange,
    Streaks,
    UpdateOffer,
    UploadResult,
)

__all__ = [
    "UPLOAD_BATCH",
    "Announcement",
    "AuthError",
    "AuthSession",
    "CloudBackend",
    "CloudConfig",
    "CloudError",
    "CloudTimeoutError",
    "ConflictError",
    "Device",
    "DeviceTransfer",
    "DtxCloud",
    "Filter",
    "FirmwareStatus",
    "FleetOverview",
    "GoalProgress",
    "LocalCloudBackend",
    "NetworkError",
    "NotFoundError",
    "Notification",
    "Order",
    "PermissionDeniedError",
    "Profile",
    "RateLimitedError",
    "ReportRequest",
    "Rollout",
    "ServerError",
    "StatsRange",
    "Streaks",
    "UpdateOffer",
    "UploadResult",
    "ValidationError",
    "eq",
    "load_config",
    "open_cloud",
]
