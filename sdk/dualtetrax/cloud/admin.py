"""Admin operations as a signed-in admin user: :class:`~dualtetrax.admin.AdminBackend` over a
:class:`~dualtetrax.cloud.backend.CloudBackend`, so ``publish_firmware`` and the rollout RPCs run with the
admin's own session (storage and database policies check the ``admin`` role) instead of a service key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dualtetrax.admin.errors import ObjectExistsError, RpcError, StorageError
from dualtetrax.cloud.backend import CloudBackend
from dualtetrax.cloud.errors import CloudError, ConflictError


class CloudAdminBackend:
    """Adapts a signed-in cloud backend to the admin API's backend protocol (and its error types)."""

    def __init__(self, backend: CloudBackend) -> None:
        self.backend = backend

    async def upload_object(self, bucket: str, path: str, data: bytes, content_type: str) -> None:
        try:
            await self.backend.upload_object(bucket, path, data, content_type)
        except ConflictError as error:
            raise ObjectExistsError(f"{bucket}/{path} already exists.") from error
        except CloudError as error:
            raise StorageError(f"could not upload {bucket}/{path}: {error.message}", status=error.status,
                               hint=error.hint) from error

    async def delete_object(self, bucket: str, path: str) -> None:
        try:
            await self.backend.delete_object(bucket, path)
        except CloudError as error:
            raise StorageError(f"could not delete {bucket}/{path}: {error.message}", status=error.status) from error

    async def rpc(self, name: str, args: Mapping[str, Any]) -> Any:
        try:
            return await self.backend.rpc(name, args)
        except CloudError as error:
            raise RpcError(name, error.message, code=error.code, detail=error.field, hint=error.hint) from error
