"""SupabaseCloudBackend's requests exactly as Supabase Auth, PostgREST and Storage receive them
(httpx.MockTransport injected through AsyncClientOptions.httpx_client), and the typed errors for their refusals."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dualtetrax.cloud.backend import AuthSession, CloudBackend, Filter, Order, eq
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
from dualtetrax.cloud.supabase_backend import SupabaseCloudBackend
from tests.cloud.supabase_fakes import (
    ANON,
    EMAIL,
    URL,
    USER_ID,
    Recorder,
    auth_error,
    jwt,
    pg_error,
    session_body,
    user_body,
)

DEVICE_ID = "8c3e4b7a-2f1d-4c6e-9b0a-1d2e3f4a5b6c"
TOKEN = "/auth/v1/token"
DEVICES = "/rest/v1/devices"


async def backend(rec: Recorder) -> SupabaseCloudBackend:
    return await SupabaseCloudBackend.connect(URL, ANON, httpx_client=rec.http(), realtime=False)


async def signed_in(rec: Recorder, **session: Any) -> tuple[SupabaseCloudBackend, str]:
    """A backend signed in through POST /token (the recorder's first request, dropped from its log)."""
    body = session_body(**session)
    rec.routes[("POST", TOKEN)] = httpx.Response(200, json=body)
    b = await backend(rec)
    await b.sign_in(EMAIL, "correct horse")
    rec.requests.clear()
    del rec.routes[("POST", TOKEN)]
    return b, str(body["access_token"])


def assert_anon(request: httpx.Request) -> None:
    assert request.headers["apikey"] == ANON
    assert request.headers["authorization"] == f"Bearer {ANON}"


def assert_user(request: httpx.Request, token: str) -> None:
    assert request.headers["apikey"] == ANON
    assert request.headers["authorization"] == f"Bearer {token}"


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def query(request: httpx.Request) -> list[tuple[str, str]]:
    return list(request.url.params.multi_items())


def assert_auth_request(request: httpx.Request) -> None:
    assert request.headers["content-type"] == "application/json;charset=UTF-8"
    assert request.headers["x-supabase-api-version"] == "2024-01-01"


def assert_profile(request: httpx.Request) -> None:
    assert request.headers["accept-profile"] == "public"
    assert request.headers["content-profile"] == "public"


async def test_is_a_cloud_backend() -> None:
    assert isinstance(await backend(Recorder()), CloudBackend)


# ------------------------------------------------------------------------------------------ auth


async def test_sign_up_request_and_session() -> None:
    rec = Recorder({("POST", "/auth/v1/signup"): httpx.Response(200, json=session_body(
        metadata={"display_name": "Mina"}))})
    b = await backend(rec)
    session = await b.sign_up(EMAIL, "correct horse", metadata={"display_name": "Mina", "locale": "ko"})
    [request] = rec.requests
    assert (request.method, request.url.path, query(request)) == ("POST", "/auth/v1/signup", [])
    assert_anon(request)
    assert_auth_request(request)
    assert body(request) == {"email": EMAIL, "password": "correct horse",
                             "data": {"display_name": "Mina", "locale": "ko"},
                             "gotrue_meta_security": {"captcha_token": None}}
    assert session.user_id == USER_ID and session.email == EMAIL and session.refresh_token == "q7tx3v2kplmn"
    assert abs(session.expires_at - (time.time() + 3600)) < 5
    assert b.session == session


async def test_sign_up_that_needs_email_confirmation_is_an_auth_error() -> None:
    rec = Recorder({("POST", "/auth/v1/signup"): httpx.Response(200, json=user_body(confirmed=False))})
    b = await backend(rec)
    with pytest.raises(AuthError, match="confirm the email") as caught:
        await b.sign_up(EMAIL, "correct horse")
    assert caught.value.code == "email_not_confirmed" and b.session is None


async def test_sign_in_then_data_requests_carry_the_user_token() -> None:
    body_ = session_body()
    rec = Recorder({("POST", TOKEN): httpx.Response(200, json=body_),
                    ("GET", DEVICES): httpx.Response(200, json=[])})
    b = await backend(rec)
    session = await b.sign_in(EMAIL, "correct horse")
    await b.select("devices")
    sign_in, select = rec.requests
    assert (sign_in.method, sign_in.url.path, query(sign_in)) == ("POST", TOKEN, [("grant_type", "password")])
    assert_anon(sign_in)
    assert_auth_request(sign_in)
    assert body(sign_in) == {"email": EMAIL, "password": "correct horse", "data": {},
                             "gotrue_meta_security": {"captcha_token": None}}
    assert session.access_token == body_["access_token"]
    assert_user(select, session.access_token)
    assert query(select) == [("select", "*")]


async def test_refresh_request_and_new_token_in_use() -> None:
    rec = Recorder()
    b, old = await signed_in(rec)
    new = jwt(session_id="b1e2c3d4-0000-4000-8000-000000000002")
    rec.routes[("POST", TOKEN)] = httpx.Response(200, json=session_body(access_token=new, refresh_token="r2"))
    rec.routes[("POST", "/rest/v1/rpc/stats_streaks")] = httpx.Response(200, json={"current": 3, "longest": 9})
    session = await b.refresh()
    assert await b.rpc("stats_streaks", {}) == {"current": 3, "longest": 9}
    refresh, rpc = rec.requests
    assert (refresh.method, refresh.url.path, query(refresh)) == ("POST", TOKEN, [("grant_type", "refresh_token")])
    assert body(refresh) == {"refresh_token": "q7tx3v2kplmn"}
    assert refresh.headers["apikey"] == ANON
    assert session.access_token == new != old and session.refresh_token == "r2"
    assert_user(rpc, new)


async def test_restore_a_fresh_session_checks_it_with_get_user() -> None:
    token = jwt()
    cached = AuthSession(token, "q7tx3v2kplmn", int(time.time()) + 1800, USER_ID, EMAIL)
    rec = Recorder({("GET", "/auth/v1/user"): httpx.Response(200, json=user_body()),
                    ("GET", DEVICES): httpx.Response(200, json=[])})
    b = await backend(rec)
    session = await b.restore(cached)
    await b.select("devices")
    user, select = rec.requests
    assert user.url.path == "/auth/v1/user"
    assert_user(user, token)
    assert session.access_token == token and session.user_id == USER_ID
    assert_user(select, token)


async def test_restore_a_session_expiring_within_a_minute_refreshes_it() -> None:
    cached = AuthSession(jwt(exp=int(time.time()) + 30), "q7tx3v2kplmn", int(time.time()) + 30, USER_ID, EMAIL)
    new = session_body(refresh_token="r2")
    rec = Recorder({("POST", TOKEN): httpx.Response(200, json=new)})
    b = await backend(rec)
    session = await b.restore(cached)
    [refresh] = rec.requests
    assert query(refresh) == [("grant_type", "refresh_token")] and body(refresh) == {"refresh_token": "q7tx3v2kplmn"}
    assert session.access_token == new["access_token"] and b.session == session


async def test_restore_a_revoked_token_falls_back_to_refresh() -> None:
    cached = AuthSession(jwt(), "q7tx3v2kplmn", int(time.time()) + 1800, USER_ID, EMAIL)
    rec = Recorder({("GET", "/auth/v1/user"): auth_error(403, "session_not_found",
                                                         "Session from session_id claim in JWT does not exist"),
                    ("POST", TOKEN): auth_error(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")})
    b = await backend(rec)
    with pytest.raises(AuthError, match="Invalid Refresh Token") as caught:
        await b.restore(cached)
    assert caught.value.code == "refresh_token_not_found" and caught.value.status == 400
    assert rec.calls() == [("GET", "/auth/v1/user"), ("POST", TOKEN)]
    assert b.session is None


async def test_sign_out_revokes_this_session_and_forgets_it() -> None:
    rec = Recorder()
    b, token = await signed_in(rec)
    rec.routes[("POST", "/auth/v1/logout")] = httpx.Response(204)
    rec.routes[("GET", DEVICES)] = httpx.Response(200, json=[])
    await b.sign_out()
    await b.select("devices")
    logout, select = rec.requests
    assert (logout.method, logout.url.path, query(logout)) == ("POST", "/auth/v1/logout", [("scope", "local")])
    assert_user(logout, token)
    assert b.session is None
    assert_anon(select)


async def test_sign_out_forgets_the_session_even_when_the_server_is_unreachable() -> None:
    rec = Recorder()
    b, _ = await signed_in(rec)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 101] Network is unreachable", request=request)

    rec.routes[("POST", "/auth/v1/logout")] = unreachable
    with pytest.raises(NetworkError):
        await b.sign_out()
    assert b.session is None


async def test_missing_credentials_are_refused_before_any_request() -> None:
    rec = Recorder()
    b = await backend(rec)
    with pytest.raises(ValidationError) as caught:
        await b.sign_in(EMAIL, "")
    assert caught.value.field == "password" and rec.requests == []


# ------------------------------------------------------------------------------------------ PostgREST


async def test_rpc_request_shape() -> None:
    rec = Recorder()
    b, token = await signed_in(rec)
    answer = {"stored": 1, "duplicates": 1, "rejected": 0,
              "results": [{"index": 0, "status": "stored", "id": "a1"}, {"index": 1, "status": "duplicate", "id": "a2"}]}
    rec.routes[("POST", "/rest/v1/rpc/upload_sessions")] = httpx.Response(200, json=answer)
    sessions = [{"id": "a1", "start_time": "2026-11-21T20:00:00Z", "working_duration": 600, "level": 2},
                {"id": "a2", "start_time": "2026-11-21T21:00:00Z", "working_duration": 300, "level": 3}]
    assert await b.rpc("upload_sessions", {"device_id": DEVICE_ID, "sessions": sessions}) == answer
    [request] = rec.requests
    assert (request.method, request.url.path, query(request)) == ("POST", "/rest/v1/rpc/upload_sessions", [])
    assert_user(request, token)
    assert_profile(request)
    assert request.headers["content-type"] == "application/json"
    assert body(request) == {"device_id": DEVICE_ID, "sessions": sessions}


async def test_rpc_without_a_result_is_none() -> None:
    rec = Recorder({("POST", "/rest/v1/rpc/mark_all_read"): httpx.Response(204)})
    b = await backend(rec)
    assert await b.rpc("mark_all_read", {}) is None
    assert body(rec.last()) == {}


async def test_select_with_filters_order_and_limit() -> None:
    rec = Recorder()
    b, token = await signed_in(rec)
    rows = [{"id": DEVICE_ID, "owner_id": USER_ID, "serial_number": "DTX-0001", "is_active": True}]
    rec.routes[("GET", DEVICES)] = httpx.Response(200, json=rows)
    owner = uuid.UUID(USER_ID)
    got = await b.select("devices", filters=[eq("owner_id", owner), eq("is_active", True)],
                         order=[Order("created_at", descending=True)], limit=10)
    assert got == rows
    [request] = rec.requests
    assert request.method == "GET" and request.url.path == DEVICES
    assert query(request) == [("select", "*"), ("owner_id", f"eq.{USER_ID}"), ("is_active", "eq.true"),
                              ("order", "created_at.desc"), ("limit", "10")]
    assert str(request.url).startswith(f"{URL}/rest/v1/devices?select=%2A&owner_id=eq.{USER_ID}&is_active=eq.true"
                                       "&order=created_at.desc&limit=10")
    assert_user(request, token)
    assert request.headers["accept-profile"] == "public"
    assert "prefer" not in request.headers and request.content == b""


async def test_every_operator_maps_to_its_postgrest_filter() -> None:
    rec = Recorder({("GET", "/rest/v1/usage_sessions"): httpx.Response(200, json=[])})
    b = await backend(rec)
    since = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    await b.select("usage_sessions", columns="id,start_time,level", filters=[
        Filter("level", "neq", 1), Filter("working_duration", "lt", 600), Filter("working_duration", "lte", 599),
        Filter("start_time", "gt", since), Filter("level", "gte", 2), Filter("status", "in", ["stored", "synced"]),
        Filter("deleted_at", "is", None), Filter("time_synced", "is", False),
    ], order=[Order("start_time"), Order("id", descending=True)], limit=50, offset=100)
    # httpx keeps repeated keys together (PostgREST ANDs all of them, in any order)
    assert query(rec.last()) == [
        ("select", "id,start_time,level"), ("level", "neq.1"), ("level", "gte.2"), ("working_duration", "lt.600"),
        ("working_duration", "lte.599"), ("start_time", "gt.2026-11-01T00:00:00+00:00"),
        ("status", "in.(stored,synced)"), ("deleted_at", "is.null"), ("time_synced", "is.false"),
        ("order", "start_time.asc,id.desc"), ("limit", "50"), ("offset", "100"),
    ]


async def test_update_with_filters() -> None:
    rec = Recorder()
    b, token = await signed_in(rec)
    row = {"id": DEVICE_ID, "nickname": "Bathroom", "is_active": True}
    rec.routes[("PATCH", DEVICES)] = httpx.Response(200, json=[row])
    assert await b.update("devices", {"nickname": "Bathroom"},
                          filters=[eq("id", DEVICE_ID), eq("owner_id", USER_ID)]) == [row]
    [request] = rec.requests
    assert request.method == "PATCH" and request.url.path == DEVICES
    assert query(request) == [("id", f"eq.{DEVICE_ID}"), ("owner_id", f"eq.{USER_ID}")]
    assert request.headers["prefer"] == "return=representation"
    assert request.headers["content-type"] == "application/json"
    assert_profile(request)
    assert_user(request, token)
    assert body(request) == {"nickname": "Bathroom"}


async def test_insert_rows() -> None:
    rec = Recorder()
    b, token = await signed_in(rec)
    rows = [{"user_id": USER_ID, "kind": "daily_minutes", "target": 20},
            {"user_id": USER_ID, "kind": "weekly_sessions", "target": 5}]
    rec.routes[("POST", "/rest/v1/user_goals")] = httpx.Response(201, json=[{"id": 1, **rows[0]}, {"id": 2, **rows[1]}])
    created = await b.insert("user_goals", rows)
    assert [r["id"] for r in created] == [1, 2]
    [request] = rec.requests
    assert request.method == "POST" and request.url.path == "/rest/v1/user_goals"
    [(name, columns)] = query(request)
    assert name == "columns" and set(columns.split(",")) == {'"user_id"', '"kind"', '"target"'}
    assert request.headers["prefer"] == "return=representation"
    assert_profile(request)
    assert_user(request, token)
    assert body(request) == rows


async def test_insert_nothing_sends_nothing() -> None:
    rec = Recorder()
    assert await (await backend(rec)).insert("user_goals", []) == [] and rec.requests == []


async def test_delete_with_filters() -> None:
    rec = Recorder()
    b, token = await signed_in(rec)
    rec.routes[("DELETE", "/rest/v1/user_goals")] = httpx.Response(200, json=[{"id": 7}])
    assert await b.delete("user_goals", filters=[eq("id", 7)]) == [{"id": 7}]
    [request] = rec.requests
    assert request.method == "DELETE" and query(request) == [("id", "eq.7")]
    assert request.headers["prefer"] == "return=representation"
    assert_user(request, token)
    assert request.content == b"{}"  # postgrest-py sends an empty JSON object with every DELETE; PostgREST ignores it


@pytest.mark.parametrize("method", ["update", "delete"])
async def test_update_and_delete_need_a_filter(method: str) -> None:
    rec = Recorder()
    b = await backend(rec)
    with pytest.raises(ValidationError) as caught:
        if method == "update":
            await b.update("devices", {"nickname": "x"}, filters=[])
        else:
            await b.delete("devices", filters=[])
    assert caught.value.field == "filters" and rec.requests == []


async def test_an_expiring_token_is_refreshed_before_the_request() -> None:
    rec = Recorder()
    b, old = await signed_in(rec, expires_in=30)
    assert b.session is not None and b.session.access_token == old
    new = jwt(session_id="b1e2c3d4-0000-4000-8000-000000000003")
    rec.routes[("POST", TOKEN)] = httpx.Response(200, json=session_body(access_token=new, refresh_token="r2"))
    rec.routes[("GET", DEVICES)] = httpx.Response(200, json=[])
    await b.select("devices")
    assert rec.calls() == [("POST", TOKEN), ("GET", DEVICES)]
    assert body(rec.requests[0]) == {"refresh_token": "q7tx3v2kplmn"}
    assert_user(rec.requests[1], new)


async def test_a_401_is_retried_once_after_a_refresh() -> None:
    rec = Recorder()
    b, old = await signed_in(rec)
    new = jwt(session_id="b1e2c3d4-0000-4000-8000-000000000004")
    rec.routes[("POST", TOKEN)] = httpx.Response(200, json=session_body(access_token=new, refresh_token="r2"))
    rec.routes[("POST", "/rest/v1/rpc/register_device")] = [
        pg_error(401, "PGRST301", "JWT expired"), httpx.Response(200, json={"id": DEVICE_ID})]
    assert await b.rpc("register_device", {"serial_number": "DTX-0001"}) == {"id": DEVICE_ID}
    first, refresh, second = rec.requests
    assert body(refresh) == {"refresh_token": "q7tx3v2kplmn"}
    assert rec.calls() == [("POST", "/rest/v1/rpc/register_device"), ("POST", TOKEN),
                           ("POST", "/rest/v1/rpc/register_device")]
    assert_user(first, old)
    assert_user(second, new)
    assert body(first) == body(second) == {"serial_number": "DTX-0001"}


async def test_a_401_that_survives_the_refresh_is_an_auth_error() -> None:
    rec = Recorder()
    b, _ = await signed_in(rec)
    rec.routes[("POST", TOKEN)] = httpx.Response(200, json=session_body(refresh_token="r2"))
    rec.routes[("GET", DEVICES)] = pg_error(401, "PGRST301", "JWT expired")
    with pytest.raises(AuthError, match="JWT expired") as caught:
        await b.select("devices")
    assert caught.value.code == "PGRST301" and caught.value.status == 401
    assert rec.calls() == [("GET", DEVICES), ("POST", TOKEN), ("GET", DEVICES)]


async def test_an_expired_jwt_at_storage_is_retried_once_after_a_refresh() -> None:
    rec = Recorder()
    b, old = await signed_in(rec)
    new = jwt(session_id="b1e2c3d4-0000-4000-8000-000000000005")
    rec.routes[("POST", TOKEN)] = httpx.Response(200, json=session_body(access_token=new, refresh_token="r2"))
    rec.routes[("POST", "/storage/v1/object/sign/reports/a.pdf")] = [
        httpx.Response(400, json={"statusCode": "400", "error": "InvalidJWT", "message": "jwt expired"}),
        httpx.Response(200, json={"signedURL": "/object/sign/reports/a.pdf?token=t"})]
    assert await b.signed_url("reports", "a.pdf", 60) == f"{URL}/storage/v1/object/sign/reports/a.pdf?token=t"
    first, _refresh, second = rec.requests
    assert_user(first, old)
    assert_user(second, new)


async def test_a_body_that_is_not_json_is_refused_before_sending() -> None:
    from decimal import Decimal

    rec = Recorder()
    with pytest.raises(ValidationError) as caught:
        await (await backend(rec)).rpc("stats_range", {"weight": Decimal("1.5")})
    assert caught.value.field == "body" and rec.requests == []


# ------------------------------------------------------------------------------------------ PostgREST errors


@pytest.mark.parametrize(("response", "cls", "code", "field"), [
    (pg_error(400, "22023", "level: must be between 1 and 3", "level"), ValidationError, "22023", "level"),
    (pg_error(400, "22P02", 'invalid input syntax for type uuid: "nope"'), ValidationError, "22P02", None),
    (pg_error(404, "P0002", "device_id: device not found", "device_id"), NotFoundError, "P0002", "device_id"),
    (pg_error(409, "23505", 'duplicate key value violates unique constraint "devices_serial_number_key"',
              "Key (serial_number)=(DTX-0001) already exists."), ConflictError, "23505", None),
    (pg_error(400, "P0001", "transfer: only a pending transfer can be accepted", "transfer"),
     ConflictError, "P0001", "transfer"),
    (pg_error(401, "PGRST301", "JWT expired"), AuthError, "PGRST301", None),
    (pg_error(403, "42501", 'permission denied for table devices'), PermissionDeniedError, "42501", None),
    (pg_error(404, "PGRST202", "Could not find the function public.nope without parameters in the schema cache",
              hint="Perhaps you meant to call the function public.note"), NotFoundError, "PGRST202", None),
    (pg_error(406, "PGRST116", "JSON object requested, multiple (or no) rows returned",
              "The result contains 0 rows"), NotFoundError, "PGRST116", None),
    (pg_error(500, "XX000", "internal error"), ServerError, "XX000", None),
    (pg_error(503, "PGRST001", "Database client error. Retrying the connection."), ServerError, "PGRST001", None),
])
async def test_postgrest_errors(response: httpx.Response, cls: type[CloudError], code: str, field: str | None) -> None:
    rec = Recorder({("POST", "/rest/v1/rpc/ota_check_update"): response})
    b = await backend(rec)
    with pytest.raises(CloudError) as caught:
        await b.rpc("ota_check_update", {"device_id": DEVICE_ID, "current_version": "1.2.0"})
    error = caught.value
    assert type(error) is cls
    assert error.code == code and error.field == field and error.status == response.status_code
    assert error.message == response.json()["message"]
    assert error.hint == response.json()["hint"]
    assert len(rec.requests) == 1  # POST is never retried


async def test_rate_limited_by_the_gateway() -> None:
    rec = Recorder({("POST", "/rest/v1/rpc/request_report"): httpx.Response(
        429, json={"message": "API rate limit exceeded"}, headers={"Retry-After": "7"})})
    b = await backend(rec)
    with pytest.raises(RateLimitedError) as caught:
        await b.rpc("request_report", {"kind": "weekly"})
    assert caught.value.retry_after == 7.0 and caught.value.status == 429


async def test_a_gateway_error_page_is_a_server_error() -> None:
    rec = Recorder({("POST", "/rest/v1/rpc/stats_range"): httpx.Response(
        502, text="<html><body>502 Bad Gateway</body></html>", headers={"content-type": "text/html"})})
    b = await backend(rec)
    with pytest.raises(ServerError) as caught:
        await b.rpc("stats_range", {})
    assert caught.value.status == 502 and "502 Bad Gateway" in caught.value.message


async def test_unreachable_postgrest_is_a_network_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    rec = Recorder({("POST", "/rest/v1/rpc/upload_sessions"): refuse})
    b = await backend(rec)
    with pytest.raises(NetworkError, match="Connection refused"):
        await b.rpc("upload_sessions", {"device_id": DEVICE_ID, "sessions": []})
    assert len(rec.requests) == 1


async def test_a_timeout_is_a_network_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    rec = Recorder({("POST", "/rest/v1/rpc/upload_sessions"): slow})
    with pytest.raises(NetworkError, match="timed out"):
        await (await backend(rec)).rpc("upload_sessions", {})


async def test_rows_that_are_not_rows_are_a_server_error() -> None:
    rec = Recorder({("GET", DEVICES): httpx.Response(200, json={"not": "a list"})})
    with pytest.raises(ServerError):
        await (await backend(rec)).select("devices")


# ------------------------------------------------------------------------------------------ Auth errors


@pytest.mark.parametrize(("response", "cls", "code", "field"), [
    (auth_error(400, "invalid_credentials", "Invalid login credentials"), AuthError, "invalid_credentials", None),
    (auth_error(400, "invalid_credentials", "Invalid login credentials", api_version=False),
     AuthError, "invalid_credentials", None),
    (auth_error(400, "email_not_confirmed", "Email not confirmed"), AuthError, "email_not_confirmed", None),
    (auth_error(422, "user_already_exists", "User already registered"), ConflictError, "user_already_exists", None),
    (auth_error(422, "email_address_invalid", 'Email address "x@y" is invalid'), ValidationError,
     "email_address_invalid", "email"),
    (auth_error(422, "signup_disabled", "Signups not allowed for this instance"), PermissionDeniedError,
     "signup_disabled", None),
    (auth_error(500, "unexpected_failure", "Database error saving new user"), ServerError, "unexpected_failure", None),
])
async def test_auth_errors(response: httpx.Response, cls: type[CloudError], code: str, field: str | None) -> None:
    rec = Recorder({("POST", TOKEN): response, ("POST", "/auth/v1/signup"): response})
    b = await backend(rec)
    with pytest.raises(CloudError) as caught:
        await b.sign_in(EMAIL, "wrong")
    error = caught.value
    assert type(error) is cls and error.code == code and error.field == field
    assert error.status == response.status_code and error.message == response.json()["msg"]
    assert b.session is None


async def test_weak_password_names_the_field_and_the_reasons() -> None:
    rec = Recorder({("POST", "/auth/v1/signup"): httpx.Response(
        422, json={"code": "weak_password", "msg": "Password should be at least 8 characters.",
                   "weak_password": {"reasons": ["length"]}}, headers={"X-Supabase-Api-Version": "2024-01-01"})})
    with pytest.raises(ValidationError) as caught:
        await (await backend(rec)).sign_up(EMAIL, "short")
    assert caught.value.field == "password" and caught.value.code == "weak_password" and caught.value.hint == "length"


async def test_auth_rate_limit() -> None:
    rec = Recorder({("POST", TOKEN): httpx.Response(
        429, json={"code": "over_request_rate_limit", "msg": "Request rate limit reached"},
        headers={"X-Supabase-Api-Version": "2024-01-01", "Retry-After": "60"})})
    with pytest.raises(RateLimitedError) as caught:
        await (await backend(rec)).sign_in(EMAIL, "pw")
    assert caught.value.retry_after == 60.0 and caught.value.code == "over_request_rate_limit"


async def test_auth_gateway_error_is_a_server_error() -> None:
    rec = Recorder({("POST", TOKEN): httpx.Response(503, text="upstream connect error", headers={"content-type": "text/plain"})})
    with pytest.raises(ServerError) as caught:
        await (await backend(rec)).sign_in(EMAIL, "pw")
    assert caught.value.status == 503


async def test_auth_non_json_client_error_keeps_its_status() -> None:
    rec = Recorder({("POST", TOKEN): httpx.Response(401, text="Unauthorized", headers={"content-type": "text/plain"})})
    with pytest.raises(AuthError) as caught:
        await (await backend(rec)).sign_in(EMAIL, "pw")
    assert caught.value.status == 401


async def test_unreachable_auth_is_a_network_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    rec = Recorder({("POST", TOKEN): refuse})
    with pytest.raises(NetworkError, match="Connection refused"):
        await (await backend(rec)).sign_in(EMAIL, "pw")


async def test_refresh_without_a_session_is_an_auth_error() -> None:
    rec = Recorder()
    with pytest.raises(AuthError, match="not signed in"):
        await (await backend(rec)).refresh()
    assert rec.requests == []


# ------------------------------------------------------------------------------------------ Storage


async def test_signed_url_request_and_absolute_url() -> None:
    rec = Recorder()
    b, token = await signed_in(rec)
    path = f"{USER_ID}/weekly-2026-11-16.pdf"
    signed = f"/object/sign/reports/{path}?token=eyJ4NXQiOiJzaWduZWQifQ.eyJ1cmwiOiJyZXBvcnRzIn0.c2ln"
    rec.routes[("POST", f"/storage/v1/object/sign/reports/{path}")] = httpx.Response(200, json={"signedURL": signed})
    url = await b.signed_url("reports", path, 600)
    assert url == f"{URL}/storage/v1{signed}"
    [request] = rec.requests
    assert request.method == "POST" and request.url.path == f"/storage/v1/object/sign/reports/{path}"
    assert_user(request, token)
    assert body(request) == {"expiresIn": "600"}  # storage3 sends the number as a string; Storage accepts both


@pytest.mark.parametrize(("response", "cls", "status"), [
    (httpx.Response(400, json={"statusCode": "404", "error": "not_found", "message": "Object not found"}),
     NotFoundError, 404),
    (httpx.Response(404, json={"statusCode": "404", "code": "NoSuchKey", "error": "not_found",
                               "message": "Object not found"}), NotFoundError, 404),
    (httpx.Response(400, json={"statusCode": "404", "error": "Bucket not found", "message": "Bucket not found"}),
     NotFoundError, 404),
    (httpx.Response(400, json={"statusCode": "403", "error": "Unauthorized",
                               "message": "new row violates row-level security policy"}), NotFoundError, 403),
    (httpx.Response(400, json={"statusCode": "400", "error": "InvalidJWT", "message": '"exp" claim timestamp check failed'}),
     AuthError, 400),  # not signed in: no refresh to try
    (httpx.Response(429, json={"statusCode": "429", "error": "too_many_requests", "message": "Too many requests"}),
     RateLimitedError, 429),
    (httpx.Response(500, json={"statusCode": "500", "error": "internal", "message": "Internal Server Error"}),
     ServerError, 500),
    (httpx.Response(502, text="<html>Bad Gateway</html>"), ServerError, 502),
])
async def test_storage_errors(response: httpx.Response, cls: type[CloudError], status: int) -> None:
    rec = Recorder({("POST", "/storage/v1/object/sign/firmware-binaries/DualTetraX/1.4.0/fw.bin"): response})
    b = await backend(rec)
    with pytest.raises(CloudError) as caught:
        await b.signed_url("firmware-binaries", "DualTetraX/1.4.0/fw.bin", 900)
    assert type(caught.value) is cls and caught.value.status == status


async def test_unreachable_storage_is_a_network_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    rec = Recorder({("POST", "/storage/v1/object/sign/reports/a.pdf"): refuse})
    with pytest.raises(NetworkError):
        await (await backend(rec)).signed_url("reports", "a.pdf", 60)


async def test_signed_url_path_with_dot_segments_is_refused() -> None:
    rec = Recorder()
    with pytest.raises(ValidationError) as caught:
        await (await backend(rec)).signed_url("reports", "../secrets/a.pdf", 60)
    assert caught.value.field == "path" and rec.requests == []


async def test_object_upload_and_delete_as_the_user() -> None:
    rec = Recorder()
    b, token = await signed_in(rec)
    path = "DTX-X/2.0.0/dualtetrax-2.0.0.bin"
    rec.routes[("POST", f"/storage/v1/object/firmware-binaries/{path}")] = httpx.Response(
        200, json={"Key": f"firmware-binaries/{path}", "Id": "0b1c"})
    rec.routes[("DELETE", "/storage/v1/object/firmware-binaries")] = httpx.Response(200, json=[{"name": path}])
    await b.upload_object("firmware-binaries", path, b"\xe9firmware", "application/octet-stream")
    await b.delete_object("firmware-binaries", path)
    upload, delete = rec.requests
    for request in (upload, delete):
        assert_user(request, token)
    assert upload.url.path == f"/storage/v1/object/firmware-binaries/{path}"
    assert upload.headers["x-upsert"] == "false" and upload.headers["content-type"].startswith("multipart/form-data")
    assert b"\xe9firmware" in upload.content and b"Content-Type: application/octet-stream" in upload.content
    assert delete.method == "DELETE" and json.loads(delete.content) == {"prefixes": [path]}

    rec.requests.clear()
    rec.routes[("POST", f"/storage/v1/object/firmware-binaries/{path}")] = httpx.Response(
        400, json={"statusCode": "409", "error": "Duplicate", "message": "The resource already exists"})
    with pytest.raises(ConflictError):
        await b.upload_object("firmware-binaries", path, b"x", "application/octet-stream")
    rec.routes[("POST", f"/storage/v1/object/firmware-binaries/{path}")] = httpx.Response(
        400, json={"statusCode": "403", "error": "Unauthorized",
                   "message": "new row violates row-level security policy"})
    with pytest.raises(PermissionDeniedError):
        await b.upload_object("firmware-binaries", path, b"x", "application/octet-stream")
