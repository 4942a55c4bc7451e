"""A Supabase project as a :class:`~dualtetrax.cloud.backend.CloudBackend`: the ``supabase`` async client with the
project's anon key and, once signed in, the user's access token.

Requests go out exactly as the Supabase libraries build them (``supabase_auth`` for ``/auth/v1``, ``postgrest``
for ``/rest/v1``, ``storage3`` for ``/storage/v1``, ``realtime`` for ``/realtime/v1``); what this class adds:

- every failure becomes one of the typed errors of :mod:`dualtetrax.cloud.errors` (never a library exception),
  with the HTTP status kept. PostgREST requests are sent through the library's own request builder and retry
  policy, but the response is read here, because ``postgrest.APIError`` drops the HTTP status (a gateway's 429 or
  502 would otherwise be indistinguishable from a database refusal);
- the session is managed explicitly (no background refresh timer, nothing persisted): a token that expires within
  a minute is refreshed before the next request, and a request refused with 401 is retried once after a refresh
  (a 401 means PostgREST/Storage rejected the JWT before running anything, so the retry cannot double an effect);
- :meth:`wait_for_change` subscribes to Realtime ``postgres_changes`` only for the duration of one wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime
from datetime import time as time_of_day
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from dualtetrax.cloud.backend import AuthSession, Filter, Order
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
    error_from_postgrest,
    error_from_sqlstate,
    error_from_status,
)

if TYPE_CHECKING:
    from postgrest._async.request_builder import AsyncSelectRequestBuilder
    from postgrest.base_request_builder import RequestConfig
    from postgrest.exceptions import APIError
    from storage3.exceptions import StorageApiError
    from supabase import AsyncClient
    from supabase_auth.errors import AuthError as LibraryAuthError
    from supabase_auth.types import Session as LibrarySession

logger = logging.getLogger(__name__)

T = TypeVar("T")

REFRESH_MARGIN_S = 60
"""A session whose access token expires within this many seconds is refreshed before it is used."""

REALTIME_RETRY_S = 30.0
"""After Realtime could not be reached, waits within this many seconds do not try again (they just time out)."""

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

# A refused access token, whatever the HTTP status (Storage answers an expired JWT with 400 "InvalidJWT"): the
# request was rejected before it ran, so it is retried once after a refresh.
_TOKEN_REFUSED_CODES = frozenset({"PGRST301", "PGRST303", "InvalidJWT", "bad_jwt", "invalid_jwt"})

# GoTrue error codes (supabase_auth.errors.ErrorCode and GoTrue's apierrors) -> typed error.
_AUTH_CODES: dict[str, type[CloudError]] = {
    "invalid_credentials": AuthError, "email_not_confirmed": AuthError, "phone_not_confirmed": AuthError,
    "bad_jwt": AuthError, "invalid_jwt": AuthError, "no_authorization": AuthError, "session_not_found": AuthError,
    "session_expired": AuthError, "refresh_token_not_found": AuthError, "refresh_token_already_used": AuthError,
    "user_not_found": AuthError, "reauthentication_needed": AuthError, "insufficient_aal": AuthError,
    "user_banned": PermissionDeniedError, "signup_disabled": PermissionDeniedError,
    "email_provider_disabled": PermissionDeniedError, "provider_disabled": PermissionDeniedError,
    "email_address_not_authorized": PermissionDeniedError, "not_admin": PermissionDeniedError,
    "user_already_exists": ConflictError, "email_exists": ConflictError, "phone_exists": ConflictError,
    "identity_already_exists": ConflictError, "conflict": ConflictError,
    "weak_password": ValidationError, "validation_failed": ValidationError, "email_address_invalid": ValidationError,
    "same_password": ValidationError, "bad_json": ValidationError,
    "over_request_rate_limit": RateLimitedError, "over_email_send_rate_limit": RateLimitedError,
    "over_sms_send_rate_limit": RateLimitedError,
    "unexpected_failure": ServerError, "request_timeout": ServerError, "hook_timeout": ServerError,
}


class SupabaseCloudBackend:
    """:class:`~dualtetrax.cloud.backend.CloudBackend` over a Supabase project (anon key + the user's session).

    Create it with :meth:`connect`; call :meth:`close` (or use ``async with``) when done.
    """

    def __init__(self, client: AsyncClient, *, anon_key: str, realtime: bool = True,
                 owned_http: httpx.AsyncClient | None = None) -> None:
        self.client = client
        self._anon_key = anon_key
        self._realtime = realtime
        self._owned_http = owned_http
        self._session: AuthSession | None = None
        self._refresh_lock = asyncio.Lock()
        self._realtime_down_until = 0.0

    @classmethod
    async def connect(cls, url: str, anon_key: str, *, httpx_client: httpx.AsyncClient | None = None,
                      realtime: bool = True) -> SupabaseCloudBackend:
        """A backend for the project at ``url`` (``https://<ref>.supabase.co``) with its anon (publishable) key.

        ``httpx_client``: the client every HTTP request goes through (tests pass one with a mock transport); the
        caller keeps ownership. Without it, one is created here and closed by :meth:`close`.
        ``realtime=False``: :meth:`wait_for_change` never opens a websocket and just waits out its timeout.
        """
        from supabase import AsyncClientOptions, AsyncSupabaseException, acreate_client

        owned = None
        if httpx_client is None:
            httpx_client = owned = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, follow_redirects=True)
        options = AsyncClientOptions(
            httpx_client=httpx_client, auto_refresh_token=False, persist_session=False, flow_type="implicit",
            # One short-lived subscription per wait: no reconnect loop, a failed connect falls back to the timeout.
            realtime={"auto_reconnect": False, "max_retries": 1},
        )
        try:
            client = await acreate_client(url, anon_key, options=options)
        except AsyncSupabaseException as error:
            if owned is not None:
                await owned.aclose()
            raise ValidationError(error.message, field="url" if "url" in error.message.lower() else "key") from error
        return cls(client, anon_key=anon_key, realtime=realtime, owned_http=owned)

    async def __aenter__(self) -> SupabaseCloudBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------------ auth

    @property
    def session(self) -> AuthSession | None:
        return self._session

    async def sign_up(self, email: str, password: str, *, metadata: Mapping[str, Any] | None = None) -> AuthSession:
        """``POST /auth/v1/signup``. When the project requires email confirmation, GoTrue answers with the user but
        no session: that is an :class:`AuthError` (``code="email_not_confirmed"``) telling the user what to do."""
        _check_credentials(email, password)
        response = await self._auth(lambda: self.client.auth.sign_up(
            {"email": email, "password": password, "options": {"data": dict(metadata or {})}}))
        if response.session is None:
            raise AuthError(f"{email} must confirm the email address before signing in", code="email_not_confirmed",
                            hint="Open the link in the confirmation email, then sign in.")
        return self._adopt(response.session)

    async def sign_in(self, email: str, password: str) -> AuthSession:
        """``POST /auth/v1/token?grant_type=password``."""
        _check_credentials(email, password)
        response = await self._auth(lambda: self.client.auth.sign_in_with_password(
            {"email": email, "password": password}))
        if response.session is None:
            raise AuthError("sign-in returned no session", code="no_session")
        return self._adopt(response.session)

    async def refresh(self) -> AuthSession:
        """``POST /auth/v1/token?grant_type=refresh_token`` with the current refresh token."""
        current = self._session
        if current is None:
            raise AuthError("not signed in", hint="Sign in first.")
        async with self._refresh_lock:
            if self._session is not current and self._session is not None:
                return self._session  # another task refreshed while this one waited
            return await self._refresh_with(current.refresh_token)

    async def restore(self, session: AuthSession) -> AuthSession:
        """Use a cached session: refreshed right away when it expires within a minute, otherwise checked with
        ``GET /auth/v1/user`` (``set_session``) and, if the server no longer accepts the token, refreshed."""
        if session.expires_within(REFRESH_MARGIN_S):
            return await self._refresh_with(session.refresh_token)
        try:
            response = await self._auth(lambda: self.client.auth.set_session(session.access_token,
                                                                             session.refresh_token))
        except AuthError:
            return await self._refresh_with(session.refresh_token)
        if response.session is None:
            raise AuthError("the cached session could not be restored", hint="Sign in again.")
        return self._adopt(response.session)

    async def sign_out(self) -> None:
        """``POST /auth/v1/logout?scope=local``: revokes this session's refresh token only (other devices stay
        signed in). The session is forgotten locally even when the request fails; the error is raised after."""
        try:
            await self._auth(lambda: self.client.auth.sign_out({"scope": "local"}))
        finally:
            self._session = None

    async def _refresh_with(self, refresh_token: str) -> AuthSession:
        try:
            response = await self._auth(lambda: self.client.auth.refresh_session(refresh_token))
        except AuthError:
            self._session = None  # the refresh token is spent or revoked: signing in again is the only way
            raise
        if response.session is None:
            self._session = None
            raise AuthError("the refresh returned no session", hint="Sign in again.")
        return self._adopt(response.session)

    def _adopt(self, session: LibrarySession) -> AuthSession:
        """Keep the session; the supabase client has already switched PostgREST, Storage and Realtime to its
        access token (its auth listener rebuilds them on every auth event)."""
        expires_at = session.expires_at
        if expires_at is None:
            expires_at = round(time.time()) + int(session.expires_in)
        self._session = AuthSession(access_token=session.access_token, refresh_token=session.refresh_token,
                                    expires_at=int(expires_at), user_id=session.user.id,
                                    email=session.user.email or "")
        return self._session

    async def _auth(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except Exception as error:
            mapped = map_error(error)
            if mapped is None:
                raise
            raise mapped from error

    # ------------------------------------------------------------------------------------------ data

    async def rpc(self, name: str, args: Mapping[str, Any]) -> Any:
        """``POST /rest/v1/rpc/<name>`` with ``args`` as the JSON body."""
        return await self._postgrest(lambda: self.client.rpc(name, dict(args)).request)

    async def select(self, table: str, *, columns: str = "*", filters: Sequence[Filter] = (),
                     order: Sequence[Order] = (), limit: int | None = None, offset: int | None = None
                     ) -> list[dict[str, Any]]:
        def build() -> RequestConfig[httpx.AsyncClient]:
            builder = _filtered(self.client.table(table).select(columns), filters)
            for o in order:
                builder = builder.order(o.column, desc=o.descending)
            if limit is not None:
                builder = builder.limit(limit)
            if offset is not None:
                builder = builder.offset(offset)
            return builder.request

        return _rows(await self._postgrest(build))

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if not rows:
            return []
        payload = [dict(row) for row in rows]
        return _rows(await self._postgrest(lambda: self.client.table(table).insert(payload).request))

    async def update(self, table: str, values: Mapping[str, Any], *, filters: Sequence[Filter]
                     ) -> list[dict[str, Any]]:
        _require_filters(filters)
        payload = dict(values)
        return _rows(await self._postgrest(
            lambda: _filtered(self.client.table(table).update(payload), filters).request))

    async def delete(self, table: str, *, filters: Sequence[Filter]) -> list[dict[str, Any]]:
        _require_filters(filters)
        return _rows(await self._postgrest(lambda: _filtered(self.client.table(table).delete(), filters).request))

    async def _postgrest(self, build: Callable[[], RequestConfig[httpx.AsyncClient]]) -> Any:
        """Send a request built by ``postgrest`` (its headers, query and body; its GET/HEAD retry policy) and
        decode the response. ``build`` runs again for the retry after a refresh, so it picks up the new token."""
        return await self._with_session(lambda: _send_postgrest(build()))

    async def _with_session(self, call: Callable[[], Awaitable[T]]) -> T:
        if self._session is not None and self._session.expires_within(REFRESH_MARGIN_S):
            await self.refresh()
        try:
            return await _mapped(call)
        except AuthError as error:
            if self._session is None or not (error.status == 401 or error.code in _TOKEN_REFUSED_CODES):
                raise
            logger.debug("token refused (%s); refreshing the session and retrying once", error.message)
            await self.refresh()
            return await _mapped(call)

    # ------------------------------------------------------------------------------------------ storage

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        """``POST /storage/v1/object/sign/<bucket>/<path>`` → ``<url>/storage/v1/object/sign/…?token=…``."""

        async def sign() -> str:
            try:
                signed = await self.client.storage.from_(bucket).create_signed_url(path, expires_in)
            except ValueError as error:  # dot segments in the path
                raise ValidationError(str(error), field="path") from error
            url = signed.get("signedURL")
            if not url:
                raise ServerError(f"Storage returned no signed URL for {bucket}/{path}")
            return url

        try:
            return await self._with_session(sign)
        except PermissionDeniedError as error:
            # What the user may not read does not exist for them (CloudBackend.signed_url's contract).
            raise NotFoundError(error.message, code=error.code, status=error.status, hint=error.hint) from error

    async def upload_object(self, bucket: str, path: str, data: bytes, content_type: str, *,
                            upsert: bool = False) -> None:
        """``POST /storage/v1/object/<bucket>/<path>`` (multipart, ``x-upsert``) with the user's token."""

        async def put() -> None:
            try:
                await self.client.storage.from_(bucket).upload(path, data, {"content-type": content_type,
                                                                            "upsert": "true" if upsert else "false"})
            except ValueError as error:  # dot segments in the path
                raise ValidationError(str(error), field="path") from error

        await self._with_session(put)

    async def delete_object(self, bucket: str, path: str) -> None:
        """``DELETE /storage/v1/object/<bucket>`` with ``{"prefixes": [path]}``."""

        async def remove() -> None:
            await self.client.storage.from_(bucket).remove([path])

        await self._with_session(remove)

    # ------------------------------------------------------------------------------------------ realtime

    async def wait_for_change(self, table: str, filters: Sequence[Filter], timeout_s: float) -> bool:
        """Subscribe to ``postgres_changes`` (any event) on ``public.<table>`` with ``filters`` as the Realtime
        filter, as the signed-in user, and wait for one event. False after ``timeout_s`` without one, including
        when Realtime cannot be reached or refuses the subscription (it is only a hint; callers re-read)."""
        if timeout_s <= 0:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if not self._realtime or time.monotonic() < self._realtime_down_until:
            await asyncio.sleep(timeout_s)
            return False
        from realtime import RealtimePostgresChangesListenEvent

        changed = asyncio.Event()
        realtime = self.client.realtime
        channel = realtime.channel(f"dtx-{table}-{uuid.uuid4().hex[:12]}")
        channel.on_postgres_changes(RealtimePostgresChangesListenEvent.All, lambda _payload: changed.set(),
                                    table=table, schema="public", filter=realtime_filter(filters) or None)
        try:
            try:
                token = self._session.access_token if self._session is not None else self._anon_key
                await realtime.set_auth(token)
                await asyncio.wait_for(channel.subscribe(), timeout=max(deadline - loop.time(), 0.001))
            except TimeoutError:
                logger.debug("realtime subscription on %s did not complete within the wait", table)
            except Exception as error:  # Realtime unreachable: wait out the timeout; don't retry for a while
                logger.debug("realtime subscription on %s failed: %r", table, error)
                self._realtime_down_until = time.monotonic() + REALTIME_RETRY_S
            remaining = deadline - loop.time()
            if remaining > 0 and not changed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=remaining)
            return changed.is_set()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(realtime.remove_channel(channel), timeout=2)

    # ------------------------------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.realtime.remove_all_channels()
        if self._owned_http is not None:
            await self._owned_http.aclose()
            self._owned_http = None


# ------------------------------------------------------------------------------------------ helpers


def _check_credentials(email: str, password: str) -> None:
    if not email:
        raise ValidationError("email: required", field="email")
    if not password:
        raise ValidationError("password: required", field="password")


def _require_filters(filters: Sequence[Filter]) -> None:
    if not filters:
        raise ValidationError("filters: an update or delete needs at least one filter", field="filters")


def filter_value(value: Any) -> str:
    """A filter operand as PostgREST and Realtime read it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    return str(value)


def _filtered(builder: AsyncSelectRequestBuilder, filters: Sequence[Filter]) -> AsyncSelectRequestBuilder:
    for f in filters:
        if f.op == "in":
            builder = builder.in_(f.column, [filter_value(v) for v in f.value])
        elif f.op == "is":
            builder = builder.is_(f.column, f.value)
        elif f.op in ("eq", "neq", "lt", "lte", "gt", "gte"):
            builder = builder.filter(f.column, f.op, filter_value(f.value))
        else:
            raise ValidationError(f"filters: unknown operator {f.op!r}", field="filters")
    return builder


def realtime_filter(filters: Sequence[Filter]) -> str:
    """``column=op.value`` conditions joined with commas (AND), Realtime's ``postgres_changes`` filter syntax."""
    parts = []
    for f in filters:
        if f.op == "in":
            parts.append(f"{f.column}=in.({','.join(filter_value(v) for v in f.value)})")
        else:
            parts.append(f"{f.column}={f.op}.{filter_value(f.value)}")
    return ",".join(parts)


def _rows(data: Any) -> list[dict[str, Any]]:
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ServerError(f"PostgREST returned {type(data).__name__} where rows were expected")
    return data


async def _send_postgrest(request: RequestConfig[httpx.AsyncClient]) -> Any:
    from postgrest._async.request_builder import send_with_retry

    try:
        response = await send_with_retry(request)
    except (TypeError, ValueError) as error:  # the body could not be encoded (json.dumps, before any I/O)
        raise ValidationError(f"the request body is not JSON: {error}", field="body") from error
    if response.is_success:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:
            raise ServerError(f"PostgREST returned invalid JSON (HTTP {response.status_code})",
                              status=response.status_code) from error
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text or response.reason_phrase or None
    mapped = error_from_postgrest(response.status_code, body)
    _add_retry_after(mapped, response)
    raise mapped


async def _mapped(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except CloudError:
        raise
    except Exception as error:
        mapped = map_error(error)
        if mapped is None:
            raise
        raise mapped from error


def map_error(error: BaseException) -> CloudError | None:
    """The typed error for an exception of httpx or the Supabase libraries; None for anything else (a bug)."""
    from postgrest.exceptions import APIError
    from pydantic import ValidationError as PydanticValidationError
    from storage3.exceptions import StorageApiError
    from supabase_auth.errors import AuthError as LibraryAuthError

    if isinstance(error, CloudError):
        return error
    if isinstance(error, httpx.TimeoutException):
        return NetworkError(f"the request timed out ({type(error).__name__})", hint="Check the connection and retry.")
    if isinstance(error, httpx.RequestError):
        return NetworkError(f"could not reach the service: {error or type(error).__name__}",
                            hint="Check the connection and the project URL.")
    if isinstance(error, LibraryAuthError):
        return _from_auth_error(error)
    if isinstance(error, StorageApiError):
        return _from_storage_error(error)
    if isinstance(error, APIError):
        return _from_api_error(error)
    if isinstance(error, PydanticValidationError):
        return ServerError(f"unexpected response from the service: {error.error_count()} validation error(s)")
    return None


def _http_cause(error: BaseException) -> httpx.Response | None:
    cause: BaseException | None = error.__cause__ or error.__context__
    seen = 0
    while cause is not None and seen < 5:
        if isinstance(cause, httpx.HTTPStatusError):
            return cause.response
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return None


def _network_cause(error: BaseException) -> httpx.RequestError | None:
    cause: BaseException | None = error.__cause__ or error.__context__
    seen = 0
    while cause is not None and seen < 5:
        if isinstance(cause, httpx.RequestError):
            return cause
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return None


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _add_retry_after(error: CloudError, response: httpx.Response | None) -> None:
    if isinstance(error, RateLimitedError) and error.retry_after is None:
        error.retry_after = _retry_after(response)


def _from_auth_error(error: LibraryAuthError) -> CloudError:
    from supabase_auth.errors import (
        AuthApiError,
        AuthInvalidJwtError,
        AuthRetryableError,
        AuthSessionMissingError,
        AuthUnknownError,
        AuthWeakPasswordError,
    )

    message = error.message or type(error).__name__
    response = _http_cause(error)
    if isinstance(error, AuthSessionMissingError):
        return AuthError("not signed in", code="session_missing", hint="Sign in first.")
    if isinstance(error, AuthInvalidJwtError):
        return AuthError(message, code="invalid_jwt", hint="Sign in again.")
    if isinstance(error, AuthWeakPasswordError):
        reasons = ", ".join(str(r) for r in error.reasons) if error.reasons else None
        return ValidationError(message, code="weak_password", status=error.status, field="password", hint=reasons)
    if isinstance(error, AuthRetryableError):
        if error.status == 0 or (response is None and _network_cause(error) is not None):
            return NetworkError(f"could not reach Supabase Auth: {message}", hint="Check the connection and retry.")
        return ServerError(message, status=error.status)
    if isinstance(error, AuthUnknownError):
        if response is not None:
            return error_from_status(response.status_code, message, retry_after=_retry_after(response))
        if _network_cause(error) is not None:
            return NetworkError(f"could not reach Supabase Auth: {message}")
        return ServerError(f"unexpected response from Supabase Auth: {message}")
    status: int | None = getattr(error, "status", None)
    code = str(error.code) if error.code else None
    cls = _AUTH_CODES.get(code or "")
    if cls is None:
        if status == 429:
            cls = RateLimitedError
        elif status is not None and status >= 500:
            cls = ServerError
        elif status == 409:
            cls = ConflictError
        elif status == 422:
            cls = ValidationError
        elif isinstance(error, AuthApiError) or status is not None:
            cls = AuthError  # 400/401/403/404 from /auth/v1: credentials or tokens not accepted
        else:
            cls = AuthError
    if cls is RateLimitedError:
        return RateLimitedError(message, retry_after=_retry_after(response), code=code, status=status)
    field = None
    if cls is ValidationError:
        lowered = message.lower()
        field = "email" if "email" in lowered else "password" if "password" in lowered else None
    return cls(message, code=code, status=status, field=field)


def _from_storage_error(error: StorageApiError) -> CloudError:
    response = _http_cause(error)
    try:
        status = int(error.status)
    except (TypeError, ValueError):
        status = response.status_code if response is not None else 500
    code = str(error.code) if error.code else None
    message = str(error.message)
    lowered = f"{code or ''} {message}".lower()
    if "jwt" in lowered or ("token" in lowered and "expired" in lowered):
        return AuthError(message, code="InvalidJWT" if "jwt" in lowered else code, status=status,
                         hint="Sign in again.")
    if status == 404 or code in ("not_found", "NoSuchKey", "NoSuchBucket") or "not found" in message.lower():
        return NotFoundError(message, code=code, status=404)
    if code in ("Duplicate", "ResourceAlreadyExists", "KeyAlreadyExists"):
        return ConflictError(message, code=code, status=status)
    if status == 400 and response is not None and response.status_code >= 500:
        status = response.status_code
    return error_from_status(status, message, code=code, retry_after=_retry_after(response))


def _from_api_error(error: APIError) -> CloudError:
    """``postgrest.APIError`` (raised by ``execute()``; this module reads responses itself, so only a fallback)."""
    code = error.code
    message = error.message or "PostgREST request failed"
    if code and code.isdigit() and len(code) == 3:
        return error_from_status(int(code), message)
    details = error.details
    return error_from_sqlstate(code, message, detail=str(details) if details is not None else None, hint=error.hint)
