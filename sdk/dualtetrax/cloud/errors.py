"""Typed errors of the cloud client. Every failure a caller can act on has its own class; each says what went
wrong (``message``), where (``field`` for bad input) and, when known, what to do (``hint``).

The database raises errors with a fixed SQLSTATE convention (docs/schema.md, *Errors*); PostgREST, Auth and
Storage add HTTP statuses on top. :func:`error_from_postgrest` and :func:`error_from_sqlstate` map both to the
same classes, so the Supabase backend and the local backend raise identical errors for the same refusal.
"""

from __future__ import annotations

import re
from typing import Any


class CloudError(Exception):
    """Base class: the cloud refused or could not be reached."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 hint: str | None = None, field: str | None = None) -> None:
        self.message = message
        self.code = code
        self.status = status
        self.hint = hint
        self.field = field
        super().__init__(f"{message} ({hint})" if hint else message)


class AuthError(CloudError):
    """Not signed in, wrong credentials, or an expired/invalid session."""


class PermissionDeniedError(CloudError):
    """Signed in, but this account may not do that (or is deactivated)."""


class ValidationError(CloudError):
    """Bad input; ``field`` names the argument or key at fault when the server said which."""


class NotFoundError(CloudError):
    """The row or object does not exist, or is not yours (indistinguishable on purpose)."""


class ConflictError(CloudError):
    """The request conflicts with the current state: a duplicate, or a transition that is not allowed now."""


class RateLimitedError(CloudError):
    """Too many requests; ``retry_after`` seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ServerError(CloudError):
    """The service failed (HTTP 5xx); retrying later may help."""


class CloudTimeoutError(CloudError, TimeoutError):
    """Waited as long as asked (e.g. for a report to be rendered) and it did not happen."""


class NetworkError(CloudError):
    """The service could not be reached or the connection broke mid-request; nothing is known about the outcome,
    so only idempotent requests may be retried blindly."""


_BY_SQLSTATE: dict[str, type[CloudError]] = {
    "22023": ValidationError, "22P02": ValidationError, "22007": ValidationError, "22008": ValidationError,
    "23502": ValidationError, "23514": ValidationError, "22001": ValidationError, "22003": ValidationError,
    "42501": PermissionDeniedError, "P0002": NotFoundError, "23505": ConflictError, "23503": NotFoundError,
    "P0001": ConflictError, "PGRST116": NotFoundError, "PGRST202": NotFoundError,
    "PGRST301": AuthError, "PGRST302": AuthError, "PGRST303": AuthError, "28P01": AuthError, "28000": AuthError,
}


def _field_of(message: str, detail: str | None) -> str | None:
    """Our RPCs put the field in ``detail`` and start the message with ``<field>: ``."""
    if detail and detail.replace("_", "").isalnum():
        return detail
    head, sep, _ = message.partition(": ")
    if sep and head.replace("_", "").isalnum() and head.islower():
        return head
    return None


def error_from_sqlstate(sqlstate: str | None, message: str, *, detail: str | None = None,
                        hint: str | None = None, status: int | None = None) -> CloudError:
    """The typed error for a database refusal (SQLSTATE or PostgREST ``PGRST…`` code)."""
    cls = _BY_SQLSTATE.get(sqlstate or "")
    if cls is None:
        if status is not None:
            return error_from_status(status, message, code=sqlstate, hint=hint)
        cls = ValidationError if (sqlstate or "").startswith("22") else CloudError
    if cls is PermissionDeniedError and status == 401:
        cls = AuthError
    field = _field_of(message, detail) if cls in (ValidationError, NotFoundError, ConflictError) else None
    checked = _CHECK_VIOLATION.search(message) if sqlstate == "23514" else None
    if checked:  # 'new row for relation "devices" violates check constraint "devices_nickname_check"'
        table, constraint = checked.groups()
        field = constraint.removeprefix(f"{table}_").removesuffix("_check")
        message = f"{field}: the value is not allowed"
    return cls(message, code=sqlstate, status=status, hint=hint, field=field)


_CHECK_VIOLATION = re.compile(r'relation "([a-z0-9_]+)" violates check constraint "([a-z0-9_]+)"')


def error_from_status(status: int, message: str, *, code: str | None = None, hint: str | None = None,
                      retry_after: float | None = None) -> CloudError:
    """The typed error for an HTTP status when the body says nothing more specific."""
    if status == 401:
        return AuthError(message, code=code, status=status, hint=hint)
    if status == 403:
        return PermissionDeniedError(message, code=code, status=status, hint=hint)
    if status == 404:
        return NotFoundError(message, code=code, status=status, hint=hint)
    if status == 409:
        return ConflictError(message, code=code, status=status, hint=hint)
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after, code=code, status=status, hint=hint)
    if status in (400, 413, 416, 422):
        return ValidationError(message, code=code, status=status, hint=hint)
    if status >= 500:
        return ServerError(message, code=code, status=status, hint=hint)
    return CloudError(message, code=code, status=status, hint=hint)


def error_from_postgrest(status: int, body: Any) -> CloudError:
    """PostgREST's error body ``{"code", "message", "details", "hint"}`` with its HTTP status."""
    if isinstance(body, dict):
        message = str(body.get("message") or f"HTTP {status}")
        details = body.get("details")
        return error_from_sqlstate(str(body["code"]) if body.get("code") else None, message,
                                   detail=str(details) if details is not None else None,
                                   hint=str(body["hint"]) if body.get("hint") else None, status=status)
    return error_from_status(status, str(body) if body else f"HTTP {status}")


def error_from_storage(status: int, body: Any, what: str) -> CloudError:
    """Storage's ``{"statusCode", "error", "message"}`` body (or none) for a download of ``what``."""
    message = f"{what} answered HTTP {status}"
    if isinstance(body, dict) and body.get("message"):
        message += f": {body.get('error') or ''} {body['message']}".rstrip()
    if isinstance(body, dict) and "jwt" in f"{body.get('error')} {body.get('message')}".lower():
        return AuthError(message, code="InvalidJWT", status=status, hint="The signed URL expired; ask for a new one.")
    if status == 400 and isinstance(body, dict) and str(body.get("statusCode")) == "404":
        return error_from_status(404, message)  # Storage answers a missing object with 400 + statusCode 404
    return error_from_status(status, message)
