"""The one interface between the cloud client and a deployment.

:class:`CloudBackend` is what :class:`~dualtetrax.cloud.DtxCloud` (and everything built on it: session sync,
the update flow, the CLI) uses. Two classes implement it:

- :class:`~dualtetrax.cloud.supabase_backend.SupabaseCloudBackend`: a Supabase project through the ``supabase``
  client (PostgREST, Auth, Storage, Realtime) with the project's anon key and the user's session.
- :class:`~dualtetrax.cloud.local_backend.LocalCloudBackend`: the local stack (``make db``), where no PostgREST,
  Auth or Storage server runs. It does what those servers do for a request: runs the same SQL as the same user
  in one transaction with ``role`` and ``request.jwt.claims`` set, signs users in against ``auth.users``, and
  serves objects over HTTP with signed URLs and ``Range`` support.

Everything above this interface is production code on both, so tests against the local stack exercise the
same flow code a Supabase deployment runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Operator = Literal["eq", "neq", "lt", "lte", "gt", "gte", "in", "is"]


@dataclass(frozen=True)
class Filter:
    """A PostgREST horizontal filter: ``column=op.value``."""

    column: str
    op: Operator
    value: Any


def eq(column: str, value: Any) -> Filter:
    return Filter(column, "eq", value)


@dataclass(frozen=True)
class Order:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class AuthSession:
    """A signed-in user's tokens, as Supabase Auth returns them (and as the CLI caches them)."""

    access_token: str
    refresh_token: str
    expires_at: int
    """Unix seconds."""
    user_id: str
    email: str

    def expires_within(self, seconds: float) -> bool:
        return self.expires_at - time.time() < seconds

    def to_json(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "expires_at": self.expires_at, "user_id": self.user_id, "email": self.email}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuthSession:
        return cls(str(data["access_token"]), str(data["refresh_token"]), int(data["expires_at"]),
                   str(data["user_id"]), str(data["email"]))


@runtime_checkable
class CloudBackend(Protocol):
    """What the cloud client needs from a deployment. All methods raise
    :class:`~dualtetrax.cloud.errors.CloudError` subclasses, never library-specific exceptions."""

    @property
    def session(self) -> AuthSession | None:
        """The signed-in user's session, or None."""

    async def sign_up(self, email: str, password: str, *, metadata: Mapping[str, Any] | None = None) -> AuthSession:
        """Create an account and sign in (``metadata`` becomes ``raw_user_meta_data``)."""

    async def sign_in(self, email: str, password: str) -> AuthSession:
        """Sign in with email and password."""

    async def refresh(self) -> AuthSession:
        """Exchange the refresh token for a new session."""

    async def restore(self, session: AuthSession) -> AuthSession:
        """Use a cached session (refreshing it if it expires soon); the session now in use."""

    async def sign_out(self) -> None:
        """End the session (server-side where supported) and forget it locally."""

    async def rpc(self, name: str, args: Mapping[str, Any]) -> Any:
        """``POST /rest/v1/rpc/<name>`` with ``args`` as the JSON body; the decoded result."""

    async def select(self, table: str, *, columns: str = "*", filters: Sequence[Filter] = (),
                     order: Sequence[Order] = (), limit: int | None = None, offset: int | None = None
                     ) -> list[dict[str, Any]]:
        """``GET /rest/v1/<table>`` as the signed-in user (RLS applies)."""

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``POST /rest/v1/<table>`` with ``Prefer: return=representation``."""

    async def update(self, table: str, values: Mapping[str, Any], *, filters: Sequence[Filter]
                     ) -> list[dict[str, Any]]:
        """``PATCH /rest/v1/<table>?<filters>`` with ``Prefer: return=representation``; the updated rows."""

    async def delete(self, table: str, *, filters: Sequence[Filter]) -> list[dict[str, Any]]:
        """``DELETE /rest/v1/<table>?<filters>`` with ``Prefer: return=representation``; the deleted rows."""

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        """A URL that downloads the object with plain HTTP GET (``Range`` supported) until it expires;
        :class:`~dualtetrax.cloud.errors.NotFoundError` if the user may not read it."""

    async def upload_object(self, bucket: str, path: str, data: bytes, content_type: str, *,
                            upsert: bool = False) -> None:
        """Store an object as the signed-in user (storage RLS decides; the bucket's size and MIME limits apply).
        Without ``upsert`` it never overwrites: :class:`~dualtetrax.cloud.errors.ConflictError` if one exists;
        with it, an existing object of that name is replaced in one step."""

    async def delete_object(self, bucket: str, path: str) -> None:
        """Remove an object as the signed-in user (no error if it is already gone)."""

    async def wait_for_change(self, table: str, filters: Sequence[Filter], timeout_s: float) -> bool:
        """Wait until a row of ``table`` matching ``filters`` may have changed (Realtime where available);
        False after ``timeout_s`` without news. A hint only: callers re-read the row either way."""

    async def close(self) -> None:
        """Release connections and servers."""
