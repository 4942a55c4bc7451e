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
from dualtetrax.cloud.errors import (
    AuthError,
    CloudError,
    ConflictError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    ValidationError,
)
from dualtetrax.cloud.local_backend import LocalCloudBackend

__all__ = [
    "UPLOAD_BATCH",
    "AuthError",
    "AuthSession",
    "CloudBackend",
    "CloudError",
    "ConflictError",
    "DtxCloud",
    "Filter",
    "LocalCloudBackend",
    "NetworkError",
    "NotFoundError",
    "Order",
    "PermissionDeniedError",
    "RateLimitedError",
    "ServerError",
    "ValidationError",
    "eq",
]
