"""dualtetrax.cloud.errors: the SQLSTATE table, HTTP statuses and PostgREST bodies → typed errors."""

from __future__ import annotations

import pytest

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

# The convention of docs/schema.md (Errors) plus what Postgres and PostgREST raise on their own; written out
# here so that a change to the table in errors.py is a deliberate one.
SQLSTATES: dict[str, type[CloudError]] = {
    "22023": ValidationError,  # invalid_parameter_value: our RPCs' bad argument
    "22P02": ValidationError,  # invalid_text_representation (a malformed uuid, an enum value)
    "22007": ValidationError,  # invalid_datetime_format
    "22008": ValidationError,  # datetime_field_overflow
    "22001": ValidationError,  # string_data_right_truncation
    "22003": ValidationError,  # numeric_value_out_of_range
    "23502": ValidationError,  # not_null_violation
    "23514": ValidationError,  # check_violation
    "42501": PermissionDeniedError,  # insufficient_privilege: not allowed
    "P0002": NotFoundError,  # no_data_found: not there or not yours
    "23503": NotFoundError,  # foreign_key_violation: the referenced row does not exist
    "23505": ConflictError,  # unique_violation
    "P0001": ConflictError,  # raise_exception: an invalid state transition
    "PGRST116": NotFoundError,  # .single() found no row
    "PGRST202": NotFoundError,  # no such function
    "PGRST301": AuthError,  # JWT invalid / expired
    "PGRST302": AuthError,  # anonymous access disabled
    "PGRST303": AuthError,  # JWT claims validation failed
    "28P01": AuthError,  # invalid_password
    "28000": AuthError,  # invalid_authorization_specification
}


@pytest.mark.parametrize(("sqlstate", "cls"), sorted(SQLSTATES.items()))
def test_sqlstate_table(sqlstate: str, cls: type[CloudError]) -> None:
    error = error_from_sqlstate(sqlstate, "something: went wrong")
    assert type(error) is cls
    assert error.code == sqlstate and error.message == "something: went wrong" and error.status is None


@pytest.mark.parametrize(("sqlstate", "status", "cls"), [
    ("22P05", None, ValidationError),  # any other data exception is bad input
    ("XX000", None, CloudError),  # unknown, no status: the base class
    (None, None, CloudError),
    ("XX000", 500, ServerError),  # unknown code: the HTTP status decides
    ("PGRST000", 503, ServerError),
    ("PGRST100", 400, ValidationError),
    ("53300", 429, RateLimitedError),
])
def test_unknown_codes_fall_back_to_the_status(sqlstate: str | None, status: int | None,
                                               cls: type[CloudError]) -> None:
    error = error_from_sqlstate(sqlstate, "failed", status=status)
    assert type(error) is cls and error.code == sqlstate and error.status == status


def test_42501_is_an_auth_error_when_postgrest_says_401() -> None:
    """PostgREST answers insufficient_privilege with 401 to anonymous requests and 403 to signed-in ones."""
    assert type(error_from_sqlstate("42501", "sign in required", status=401)) is AuthError
    assert type(error_from_sqlstate("42501", "sign in to request reports", status=401)) is AuthError
    assert type(error_from_sqlstate("42501", "admin privileges required", status=403)) is PermissionDeniedError


@pytest.mark.parametrize(("sqlstate", "message", "detail", "field"), [
    ("22023", "level: must be between 1 and 3", "level", "level"),  # detail names the field
    ("22023", "level: must be between 1 and 3", None, "level"),  # else the message's "<field>: " prefix
    ("22023", "must be between 1 and 3", "working_duration", "working_duration"),
    ("P0002", "device_id: device not found", "device_id", "device_id"),
    ("P0001", "transfer: only a pending transfer can be accepted", None, "transfer"),
    ("23505", 'duplicate key value violates unique constraint "devices_serial_number_key"',
     "Key (serial_number)=(DTX-0001) already exists.", None),  # a constraint's detail is not a field
    ("22P02", 'invalid input syntax for type uuid: "nope"', None, None),  # "invalid input …" is not a field name
    ("22023", "Level: capitalised prefixes are prose, not fields", None, None),
    ("42501", "admin: privileges required", "admin", None),  # only bad input, missing rows and conflicts get one
    ("PGRST301", "JWT expired", None, None),
])
def test_field(sqlstate: str, message: str, detail: str | None, field: str | None) -> None:
    assert error_from_sqlstate(sqlstate, message, detail=detail).field == field


def test_check_violation_names_the_constraint_column() -> None:
    error = error_from_sqlstate("23514", 'new row for relation "devices" violates check constraint '
                                         '"devices_nickname_check"', status=400)
    assert type(error) is ValidationError and error.field == "nickname"
    assert error.message == "nickname: the value is not allowed"


@pytest.mark.parametrize(("status", "cls"), [
    (400, ValidationError), (401, AuthError), (403, PermissionDeniedError), (404, NotFoundError),
    (409, ConflictError), (413, ValidationError), (416, ValidationError), (422, ValidationError),
    (429, RateLimitedError), (500, ServerError), (502, ServerError), (503, ServerError), (504, ServerError),
    (418, CloudError), (302, CloudError),
])
def test_error_from_status(status: int, cls: type[CloudError]) -> None:
    error = error_from_status(status, f"HTTP {status}", code="x", hint="try later")
    assert type(error) is cls and error.status == status and error.code == "x" and error.hint == "try later"


def test_rate_limit_keeps_retry_after() -> None:
    error = error_from_status(429, "Too many requests", retry_after=12.5)
    assert isinstance(error, RateLimitedError) and error.retry_after == 12.5
    plain = error_from_status(429, "Too many requests")
    assert isinstance(plain, RateLimitedError) and plain.retry_after is None


def test_postgrest_body() -> None:
    error = error_from_postgrest(400, {"code": "22023", "message": "level: must be between 1 and 3",
                                       "details": "level", "hint": "Use 1, 2 or 3."})
    assert type(error) is ValidationError
    assert (error.code, error.status, error.field, error.hint) == ("22023", 400, "level", "Use 1, 2 or 3.")
    assert error.message == "level: must be between 1 and 3"
    assert str(error) == "level: must be between 1 and 3 (Use 1, 2 or 3.)"


@pytest.mark.parametrize(("status", "body", "cls", "code", "field"), [
    (404, {"code": "P0002", "message": "report request not found", "details": None, "hint": None},
     NotFoundError, "P0002", None),
    (409, {"code": "23505", "message": "serial_number: registered to another account", "details": "serial_number",
           "hint": "Ask the owner to transfer the device."}, ConflictError, "23505", "serial_number"),
    (401, {"code": "PGRST301", "message": "JWT expired", "details": None, "hint": None}, AuthError, "PGRST301", None),
    (403, {"code": "42501", "message": "permission denied for table devices", "details": None, "hint": None},
     PermissionDeniedError, "42501", None),
    (401, {"code": "42501", "message": "sign in required", "details": None, "hint": None}, AuthError, "42501", None),
    (429, {"message": "API rate limit exceeded"}, RateLimitedError, None, None),  # the gateway's body: no code
    (500, {"code": "XX000", "message": "boom", "details": None, "hint": None}, ServerError, "XX000", None),
])
def test_postgrest_bodies(status: int, body: dict[str, object], cls: type[CloudError], code: str | None,
                          field: str | None) -> None:
    error = error_from_postgrest(status, body)
    assert type(error) is cls and error.code == code and error.field == field and error.status == status
    assert error.message == body["message"]


def test_postgrest_body_that_is_not_json() -> None:
    error = error_from_postgrest(502, "<html>502 Bad Gateway</html>")
    assert type(error) is ServerError and error.message == "<html>502 Bad Gateway</html>" and error.status == 502
    empty = error_from_postgrest(503, None)
    assert type(empty) is ServerError and empty.message == "HTTP 503"
    no_message = error_from_postgrest(400, {"code": "22023", "details": None})
    assert type(no_message) is ValidationError and no_message.message == "HTTP 400"


def test_every_error_is_a_cloud_error() -> None:
    for cls in (AuthError, PermissionDeniedError, ValidationError, NotFoundError, ConflictError, RateLimitedError,
                ServerError, NetworkError):
        assert issubclass(cls, CloudError)
    error = NetworkError("could not reach the service")
    assert (error.message, error.code, error.status, error.hint, error.field) == (
        "could not reach the service", None, None, None, None)
    assert str(error) == "could not reach the service"
