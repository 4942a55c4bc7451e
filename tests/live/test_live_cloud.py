"""Live smoke suite: the cloud client against a real Supabase project with this repository's migrations applied.

Skipped (by the ``live_env`` fixture, with the reason) unless SUPABASE_URL, SUPABASE_ANON_KEY and
SUPABASE_SERVICE_ROLE_KEY are set. It signs up a random user (confirming the email with the service role when
the project requires confirmation), registers a device, uploads sessions (twice: the second time they are
duplicates), reads statistics, checks for an update, requests a report and waits briefly for it, then deletes
the user again. Run it alone with::

    SUPABASE_URL=… SUPABASE_ANON_KEY=… SUPABASE_SERVICE_ROLE_KEY=… .venv/bin/python -m pytest tests/live -q
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from dualtetrax.cloud.backend import eq
from dualtetrax.cloud.client import DtxCloud
from dualtetrax.cloud.errors import AuthError, NotFoundError, ValidationError
from dualtetrax.cloud.supabase_backend import SupabaseCloudBackend
from tests.live.conftest import LiveEnv

pytestmark = pytest.mark.live

EMAIL_DOMAIN = "dualtetrax-live.test"


async def _service_client(env: LiveEnv) -> Any:
    from supabase import AsyncClientOptions, acreate_client

    return await acreate_client(env.url, env.service_role_key,
                                options=AsyncClientOptions(auto_refresh_token=False, persist_session=False))


async def _user_id_by_email(service: Any, email: str) -> str | None:
    page = 1
    while True:
        users = await service.auth.admin.list_users(page=page, per_page=200)
        for user in users:
            if (user.email or "").lower() == email.lower():
                return str(user.id)
        if len(users) < 200:
            return None
        page += 1


async def _sign_up(backend: SupabaseCloudBackend, service: Any, email: str, password: str) -> None:
    """Sign up through /auth/v1/signup; where the project wants the email confirmed, confirm it as an admin
    (the service role) and sign in."""
    try:
        await backend.sign_up(email, password, metadata={"display_name": "Live Test", "timezone": "Asia/Seoul"})
        return
    except AuthError as error:
        if error.code != "email_not_confirmed":
            raise
    user_id = await _user_id_by_email(service, email)
    assert user_id is not None, f"sign-up created no user {email}"
    await service.auth.admin.update_user_by_id(user_id, {"email_confirm": True})
    await backend.sign_in(email, password)


@pytest.fixture
async def cloud(live_env: LiveEnv) -> AsyncIterator[DtxCloud]:
    service = await _service_client(live_env)
    backend = await SupabaseCloudBackend.connect(live_env.url, live_env.anon_key)
    email = f"live-{uuid.uuid4().hex[:12]}@{EMAIL_DOMAIN}"
    password = secrets.token_urlsafe(18)
    try:
        await _sign_up(backend, service, email, password)
        yield DtxCloud(backend)
    finally:
        user_id = backend.session.user_id if backend.session else await _user_id_by_email(service, email)
        with contextlib.suppress(Exception):
            await backend.sign_out()
        await backend.close()
        if user_id is not None:
            await service.auth.admin.delete_user(user_id)


def _sessions(count: int, *, days_back: int = 1) -> list[dict[str, Any]]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_back)
    out = []
    for i in range(count):
        begin = start + timedelta(minutes=30 * i)
        out.append({
            "id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 1 + i % 4, "level": 1 + i % 3,
            "start_time": begin.isoformat(), "end_time": (begin + timedelta(minutes=12)).isoformat(),
            "working_duration": 600, "pause_duration": 120, "pause_count": 1, "termination_reason": 0,
            "completion_percent": 100, "led_pattern": None, "battery_start_mv": 4100, "battery_end_mv": 3950,
            "had_temperature_warning": False, "had_battery_warning": False, "time_synced": True,
            "battery_samples": [{"elapsed_seconds": 0, "voltage_mv": 4100}, {"elapsed_seconds": 600, "voltage_mv": 3950}],
        })
    return out


async def test_sign_up_device_upload_stats_update_report(cloud: DtxCloud) -> None:
    assert isinstance(cloud.backend, SupabaseCloudBackend)
    await exercise(cloud)


async def exercise(cloud: DtxCloud) -> None:
    """The whole flow for a freshly signed-up user (any CloudBackend)."""
    backend = cloud.backend
    session = cloud.session
    assert session is not None and session.email.endswith(EMAIL_DOMAIN)

    # a fresh token is usable, and a refresh hands out a working new one
    refreshed = await backend.refresh()
    assert refreshed.user_id == session.user_id and refreshed.refresh_token != session.refresh_token

    serial = f"LIVE-{uuid.uuid4().hex[:10].upper()}"
    device = await cloud.register_device(serial, firmware_version="1.0.0", nickname="live test")
    assert device.serial_number == serial and device.owner_id == cloud.user_id and device.is_active
    assert [d.id for d in await cloud.devices()] == [device.id]

    sessions = _sessions(3)
    first = await cloud.upload_sessions(device.id, sessions)
    assert (first.stored, first.duplicates, first.rejected) == (3, 0, 0)
    again = await cloud.upload_sessions(device.id, sessions)
    assert (again.stored, again.duplicates, again.rejected) == (0, 3, 0)
    bad = await cloud.upload_sessions(device.id, [{**_sessions(1)[0], "level": 9}])
    assert bad.rejected == 1 and bad.results[0].reason and bad.results[0].reason.startswith("level")
    stored = await cloud.sessions(device_id=device.id)
    assert {s["id"] for s in stored} == {s["id"] for s in sessions}

    today = date.today()
    stats = await cloud.stats_range(today - timedelta(days=7), today + timedelta(days=1))
    assert stats.periods is not None and stats.summary is not None

    offer = await cloud.check_update(device.id, "1.0.0")
    assert isinstance(offer.update_available, bool)

    monday = today - timedelta(days=today.weekday() + 14)  # a week that has ended in every time zone
    report = await cloud.request_report("weekly", period_start=monday)
    assert report.user_id == cloud.user_id and report.kind == "weekly" and report.period_start == monday
    assert (await cloud.request_report("weekly", period_start=monday)).id == report.id  # idempotent
    assert report.status in ("queued", "rendering", "ready", "failed")
    assert (await cloud.report(report.id)).id == report.id
    # Realtime is a hint: a worker may or may not be running on this project
    assert isinstance(await backend.wait_for_change("report_requests", [eq("id", str(report.id))], 3), bool)

    # typed errors from the real services
    with pytest.raises(ValidationError) as caught:
        await cloud.register_device("x")
    assert caught.value.field == "serial_number"
    with pytest.raises(NotFoundError):
        await cloud.upload_sessions(uuid.uuid4(), _sessions(1))
    with pytest.raises(NotFoundError):
        await backend.signed_url("reports", f"{cloud.user_id}/does-not-exist.pdf", 60)


async def test_wrong_password_is_an_auth_error(live_env: LiveEnv) -> None:
    backend = await SupabaseCloudBackend.connect(live_env.url, live_env.anon_key, realtime=False)
    try:
        with pytest.raises(AuthError) as caught:
            await backend.sign_in(f"nobody-{uuid.uuid4().hex[:8]}@{EMAIL_DOMAIN}", "wrong password")
        assert caught.value.code == "invalid_credentials" and caught.value.status == 400
    finally:
        await backend.close()
