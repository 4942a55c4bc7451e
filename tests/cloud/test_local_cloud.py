"""DtxCloud over the local-stack backend, against the real database: auth, isolation between users, uploads in
batches, statistics, transfers, notifications, reports end to end, and the signed-URL object server."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from dualtetrax.cloud import (
    AuthError,
    AuthSession,
    ConflictError,
    DtxCloud,
    LocalCloudBackend,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    eq,
)
from dualtetrax.cloud.local_backend import DEFAULT_JWT_SECRET, sign_jwt
from tests.cloud.local_support import PASSWORD, new_email, session_payload, signed_up
from tests.support.stack import LocalStack

Conn = psycopg.Connection[dict[str, Any]]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def dsn(stack: LocalStack) -> str:
    return stack.dsn()


async def test_sign_up_sign_in_restore_and_refusals(dsn: str, tmp_path: Path) -> None:
    email = new_email()
    cloud = DtxCloud(LocalCloudBackend(dsn, tmp_path, password_hash_cost=4))
    session = await cloud.sign_up(email.upper(), PASSWORD, display_name="Yuna", timezone="Europe/Paris", locale="ja")
    profile = await cloud.profile()
    assert (profile.email, profile.display_name, profile.timezone, profile.locale, profile.role) == (
        email, "Yuna", "Europe/Paris", "ja", "user")
    assert str(profile.id) == session.user_id
    with pytest.raises(ConflictError):
        await cloud.sign_up(email, PASSWORD)
    await cloud.close()

    other = DtxCloud(LocalCloudBackend(dsn, tmp_path))
    with pytest.raises(ValidationError) as short:
        await other.sign_up(new_email(), "12345")
    assert short.value.field == "password"
    with pytest.raises(ValidationError) as bad_email:
        await other.sign_up("not-an-email", PASSWORD)
    assert bad_email.value.field == "email"
    with pytest.raises(AuthError):
        await other.sign_in(email, "wrong password")
    with pytest.raises(AuthError):
        await other.profile()  # nobody signed in
    again = await other.sign_in(email, PASSWORD)
    assert again.user_id == session.user_id

    # a cached session continues in a new process (here: a new backend); one about to expire is refreshed
    fresh = DtxCloud(LocalCloudBackend(dsn, tmp_path))
    assert (await fresh.restore(again)) == again
    assert (await fresh.profile()).email == email
    stale = AuthSession(again.access_token, again.refresh_token, int(time.time()) + 30, again.user_id, email)
    renewed = await fresh.restore(stale)
    assert renewed.access_token != again.access_token and renewed.expires_at > stale.expires_at
    # a forged or expired token is refused by every request, as PostgREST refuses it
    forged = AuthSession(sign_jwt({"sub": again.user_id, "role": "authenticated", "exp": int(time.time()) + 600},
                                  "not the secret"), again.refresh_token, int(time.time()) + 600, again.user_id, email)
    with pytest.raises(AuthError):
        await fresh.restore(forged)
    expired_token = sign_jwt({"sub": again.user_id, "role": "authenticated", "exp": int(time.time()) - 5},
                             DEFAULT_JWT_SECRET)
    with pytest.raises(AuthError):
        await fresh.restore(AuthSession(expired_token, "not-a-token", int(time.time()) + 600, again.user_id, email))
    await fresh.sign_out()
    with pytest.raises(AuthError):
        await fresh.devices()
    await other.close()
    await fresh.close()


async def test_users_never_see_or_change_each_others_devices(dsn: str, tmp_path: Path) -> None:
    alice = await signed_up(dsn, tmp_path)
    bob = await signed_up(dsn, tmp_path)
    serial = f"DTX-{uuid.uuid4().hex[:8].upper()}"
    device = await alice.register_device(serial, firmware_version="1.0.0", nickname="Desk")
    assert device.owner_id == alice.user_id and device.is_active
    assert (await alice.register_device(serial, nickname="Desk 2")).id == device.id  # re-registering updates

    assert [d.id for d in await alice.devices()] == [device.id]
    assert await bob.devices() == []
    with pytest.raises(NotFoundError):
        await bob.device(device.id)
    with pytest.raises(NotFoundError):
        await bob.rename_device(device.id, "mine now")
    with pytest.raises(ConflictError) as taken:
        await bob.register_device(serial)
    assert taken.value.field == "serial_number"
    with pytest.raises(NotFoundError) as upload:
        await bob.upload_sessions(device.id, [session_payload(NOW - dt.timedelta(hours=1))])
    assert upload.value.field == "device_id"
    # bob's raw table access is filtered by RLS, not by the client
    assert await bob.backend.select("devices", filters=[eq("id", device.id)]) == []
    assert await bob.backend.update("devices", {"nickname": "x"}, filters=[eq("id", device.id)]) == []
    # nobody raises their own role: the client refuses, and so does the database underneath it
    with pytest.raises(ValidationError) as role:
        await alice.update_profile(role="admin")
    assert role.value.field == "role"
    with pytest.raises(PermissionDeniedError):
        await alice.backend.update("profiles", {"role": "admin"}, filters=[eq("id", alice.user_id)])
    assert (await alice.profile()).role == "user"
    renamed = await alice.rename_device(device.id, "Bathroom")
    assert renamed.nickname == "Bathroom"
    with pytest.raises(ValidationError) as nickname:
        await alice.rename_device(device.id, "")
    assert nickname.value.field == "nickname"
    assert not (await alice.deactivate_device(device.id)).is_active
    assert await alice.devices() == [] and len(await alice.devices(include_inactive=True)) == 1
    for c in (alice, bob):
        await c.close()


async def test_upload_in_batches_keeps_global_indexes_and_is_idempotent(dsn: str, tmp_path: Path, db: Conn) -> None:
    cloud = await signed_up(dsn, tmp_path)
    device = await cloud.register_device(f"DTX-{uuid.uuid4().hex[:8].upper()}")
    items = [session_payload(NOW - dt.timedelta(days=1, minutes=10 * i)) for i in range(250)]
    items[137]["level"] = 9
    first = await cloud.upload_sessions(device.id, items)
    assert (first.stored, first.duplicates, first.rejected) == (249, 0, 1)
    bad = [r for r in first.results if r.status == "rejected"]
    assert [(r.index, r.id) for r in bad] == [(137, items[137]["id"])] and "level" in (bad[0].reason or "")
    assert sorted(r.index for r in first.results) == list(range(250))
    again = await cloud.upload_sessions(device.id, items)
    assert (again.stored, again.duplicates, again.rejected) == (0, 249, 1)
    assert len(first.accepted_ids) == 249
    rows = db.execute("select count(*) as n from usage_sessions where device_id = %s", (device.id,)).fetchone()
    assert rows == {"n": 249}
    assert len(await cloud.sessions(device_id=device.id, limit=500)) == 249
    await cloud.close()


async def test_statistics_streaks_and_goals_after_the_drain(dsn: str, tmp_path: Path, db: Conn) -> None:
    cloud = await signed_up(dsn, tmp_path, timezone="UTC")
    device = await cloud.register_device(f"DTX-{uuid.uuid4().hex[:8].upper()}")
    today = dt.datetime.now(dt.UTC).date()
    starts = [dt.datetime.combine(today - dt.timedelta(days=d), dt.time(0, 30), dt.UTC) for d in (0, 1, 2, 5)]
    result = await cloud.upload_sessions(device.id, [session_payload(s, minutes=10) for s in starts])
    assert result.stored == 4
    while db.execute("select private.refresh_daily_statistics(500) as n").fetchone() != {"n": 0}:
        pass
    span = await cloud.stats_range(today - dt.timedelta(days=6), today)
    assert [p.sessions for p in span.periods] == [0, 1, 0, 0, 1, 1, 1]
    assert span.summary.sessions == 4 and span.summary.working_seconds == 2400 and span.summary.active_days == 4
    weekly = await cloud.stats_range(today - dt.timedelta(days=13), today, group_by="week")
    assert sum(p.sessions for p in weekly.periods) == 4
    streaks = await cloud.streaks()
    assert (streaks.current, streaks.longest, streaks.active_days) == (3, 3, 4)
    await cloud.backend.insert("goals", [{"user_id": str(cloud.user_id), "goal_type": "weekly",
                                          "target_minutes": 30, "start_date": str(today - dt.timedelta(days=30))}])
    [goal] = await cloud.goal_progress()
    assert goal.goal_type == "weekly" and goal.target_minutes == 30
    with pytest.raises(ValidationError) as wrong:
        await cloud.stats_range(today, today - dt.timedelta(days=1))
    assert wrong.value.field == "end_date"
    await cloud.close()


async def test_device_transfer_between_accounts(dsn: str, tmp_path: Path) -> None:
    alice = await signed_up(dsn, tmp_path)
    bob = await signed_up(dsn, tmp_path)
    device = await alice.register_device(f"DTX-{uuid.uuid4().hex[:8].upper()}")
    bob_email = (await bob.profile()).email
    assert bob_email is not None
    offer = await alice.offer_transfer(device.id, bob_email, "Enjoy")
    with pytest.raises(ConflictError):
        await alice.offer_transfer(device.id, bob_email)  # one pending offer per device
    assert [t.id for t in await bob.transfers()] == [offer.id]
    with pytest.raises(NotFoundError):
        await alice.accept_transfer(offer.id)  # only the recipient accepts
    assert (offer.to_email, offer.to_user_id) == (bob_email.lower(), None)  # an address, not an account
    accepted = await bob.accept_transfer(offer.id)
    assert accepted.status == "accepted" and accepted.to_user_id == bob.user_id
    assert [d.id for d in await bob.devices()] == [device.id]
    assert await alice.devices() == []
    with pytest.raises(ConflictError):
        await bob.reject_transfer(offer.id)  # already accepted
    for c in (alice, bob):
        await c.close()


async def test_notifications_are_private_and_marked_read(dsn: str, tmp_path: Path, db: Conn) -> None:
    alice = await signed_up(dsn, tmp_path)
    bob = await signed_up(dsn, tmp_path)
    row = db.execute("insert into notifications (user_id, kind, title, body) values (%s, 'system', 'Hello', 'Hi')"
                     " returning id", (alice.user_id,)).fetchone()
    assert row is not None
    assert [n.id for n in await alice.notifications(unread_only=True)] == [row["id"]]
    assert await bob.notifications() == []
    with pytest.raises(NotFoundError):
        await bob.mark_notification_read(row["id"])
    marked = await alice.mark_notification_read(row["id"])
    assert marked.read_at is not None
    assert await alice.notifications(unread_only=True) == []
    assert all(a.is_published for a in await alice.announcements())
    for c in (alice, bob):
        await c.close()


async def test_report_request_wait_and_download(dsn: str, tmp_path: Path, db: Conn,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker renders the report (its real job handler), the client waits and downloads it by signed URL."""
    from psycopg_pool import AsyncConnectionPool

    from dtx_worker.handlers import HANDLERS
    from dtx_worker.jobs import ExecutorLimits, JobExecutor

    store = tmp_path / "storage"
    monkeypatch.setenv("DTX_WORKER_STORAGE_DIR", str(store))
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    cloud = DtxCloud(LocalCloudBackend(dsn, store, password_hash_cost=4))
    await cloud.sign_up(new_email(), PASSWORD, timezone="UTC", locale="en")
    device = await cloud.register_device(f"DTX-{uuid.uuid4().hex[:8].upper()}")
    await cloud.upload_sessions(device.id, [session_payload(dt.datetime(2026, 10, d, 9, tzinfo=dt.UTC))
                                            for d in range(1, 20)])
    request = await cloud.request_report("monthly", period_start=dt.date(2026, 10, 1), locale="en")
    assert request.status == "queued" and not request.finished
    with pytest.raises(ValidationError):
        await cloud.report_url(request)
    with pytest.raises(TimeoutError):
        await cloud.wait_for_report(request.id, timeout_s=0.3, poll_s=0.1)
    db.execute("update jobs set run_after = now() + interval '1 hour' where kind = 'reports.render'"
               " and status = 'queued' and dedupe_key <> %s", (f"reports.render:{request.id}",))

    pool = AsyncConnectionPool(dsn, min_size=1, max_size=3, open=False, kwargs={"autocommit": True})
    await pool.open(wait=True)
    executor = JobExecutor(pool, f"t-{uuid.uuid4().hex[:6]}", {"reports.render": HANDLERS["reports.render"]},
                           ExecutorLimits(concurrency=1, batch_size=1, lease_seconds=60, poll_interval=0.05))
    stopping = asyncio.Event()
    worker = asyncio.create_task(executor.run(asyncio.Event(), stopping))
    try:
        done = await cloud.wait_for_report(request.id, timeout_s=60, poll_s=0.2)
    finally:
        stopping.set()
        await worker
        await pool.close()
    assert done.status == "ready", done.error
    saved = await cloud.download_report(done, tmp_path)
    assert saved.read_bytes().startswith(b"%PDF-") and saved.stat().st_size > 1000
    await cloud.close()


async def test_signed_urls_follow_storage_rls_and_serve_ranges(dsn: str, tmp_path: Path, db: Conn) -> None:
    alice = await signed_up(dsn, tmp_path)
    bob = await signed_up(dsn, tmp_path)
    name = f"{alice.user_id}/2026-10-en.pdf"
    data = bytes(range(256)) * 40
    (tmp_path / "reports" / str(alice.user_id)).mkdir(parents=True)
    (tmp_path / "reports" / name).write_bytes(data)
    db.execute("insert into storage.objects (bucket_id, name, owner_id, metadata) values ('reports', %s, %s, '{}')",
               (name, str(alice.user_id)))
    with pytest.raises(NotFoundError):
        await bob.backend.signed_url("reports", name, 60)  # not bob's: no URL at all
    url = await alice.backend.signed_url("reports", name, 60)
    async with httpx.AsyncClient() as http:
        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == data and whole.headers["accept-ranges"] == "bytes"
        part = await http.get(url, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == data[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        tail = await http.get(url, headers={"Range": "bytes=-24"})
        assert tail.status_code == 206 and tail.content == data[-24:]
        rest = await http.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
        assert rest.content == data[-10:]
        for ignored in ("bytes=5-3", "bytes=0-1,5-6", "items=0-4"):  # not understood: the whole object
            plain = await http.get(url, headers={"Range": ignored})
            assert plain.status_code == 200 and plain.content == data, ignored
        beyond = await http.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
        head = await http.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data)) and head.content == b""
        # the token is bound to the object and to its expiry
        other = url.replace("2026-10-en.pdf", "2026-09-en.pdf")
        assert (await http.get(other)).status_code == 400
        tampered = url[:-3] + ("abc" if not url.endswith("abc") else "xyz")
        assert (await http.get(tampered)).status_code == 400
    with pytest.raises(ValidationError):
        await alice.backend.signed_url("reports", name, 0)
    short = await alice.backend.signed_url("reports", name, 1)
    await asyncio.sleep(1.1)
    async with httpx.AsyncClient() as http:
        expired = await http.get(short)
    assert expired.status_code == 400 and expired.json()["message"] == "JWT expired"
    for c in (alice, bob):
        await c.close()


async def test_tokens_naming_other_roles_or_malformed_claims_are_refused(dsn: str, tmp_path: Path) -> None:
    """PostgREST switches only to roles its `authenticator` may take; the local backend does the same."""
    cloud = await signed_up(dsn, tmp_path)
    good = cloud.session
    assert good is not None
    now = int(time.time())
    for claims in ({"sub": good.user_id, "role": "postgres", "exp": now + 600},
                   {"sub": good.user_id, "role": "supabase_admin", "exp": now + 600},
                   {"sub": good.user_id, "exp": now + 600},
                   {"sub": good.user_id, "role": "authenticated", "exp": "never"},
                   {"sub": good.user_id, "role": "authenticated", "exp": float("nan")},
                   {"sub": good.user_id, "role": "authenticated", "typ": "refresh", "exp": now + 600}):
        forged = AuthSession(sign_jwt(claims, DEFAULT_JWT_SECRET), good.refresh_token, now + 600, good.user_id,
                             good.email)
        other = DtxCloud(LocalCloudBackend(dsn, tmp_path))
        with pytest.raises(AuthError):
            await other.restore(forged)
        with pytest.raises(AuthError):
            await other.devices()
        await other.close()
    # the refresh token is not an access token either
    with pytest.raises(AuthError):
        await DtxCloud(LocalCloudBackend(dsn, tmp_path)).restore(
            AuthSession(good.refresh_token, good.refresh_token, now + 600, good.user_id, good.email))
    await cloud.close()


async def test_a_session_about_to_expire_is_refreshed_and_persisted_on_close(dsn: str, tmp_path: Path) -> None:
    saved: list[AuthSession | None] = []
    first = await signed_up(dsn, tmp_path)
    session = first.session
    assert session is not None
    await first.close()
    short = AuthSession(sign_jwt({"sub": session.user_id, "role": "authenticated", "aud": "authenticated",
                                  "email": session.email, "exp": int(time.time()) + 30}, DEFAULT_JWT_SECRET),
                        session.refresh_token, int(time.time()) + 30, session.user_id, session.email)
    backend = LocalCloudBackend(dsn, tmp_path)
    backend._adopt(short)  # a long run: the token now in use expires within the refresh margin
    cloud = DtxCloud(backend, persist_session=saved.append)
    cloud.mark_persisted(short)
    assert (await cloud.profile()).id == cloud.user_id  # refreshed before the request instead of failing it
    assert cloud.session is not None and cloud.session.expires_at > short.expires_at
    await cloud.close()
    assert saved == [cloud.session]


async def test_waiting_too_long_for_a_report_is_a_typed_timeout(dsn: str, tmp_path: Path, db: Conn) -> None:
    from dualtetrax.cli.exit_codes import ExitCode, exit_code_for
    from dualtetrax.cloud.errors import CloudTimeoutError

    cloud = await signed_up(dsn, tmp_path, timezone="UTC", locale="en")
    request = await cloud.request_report("weekly", period_start=dt.date(2026, 9, 7))
    with pytest.raises(CloudTimeoutError) as waited:
        await cloud.wait_for_report(request.id, timeout_s=0.2, poll_s=0.05)
    assert exit_code_for(waited.value) == ExitCode.TIMEOUT and waited.value.hint
    db.execute("delete from jobs where dedupe_key = %s", (f"reports.render:{request.id}",))  # no worker here
    await cloud.close()


async def test_profile_photo_and_device_logs(dsn: str, tmp_path: Path) -> None:
    alice = await signed_up(dsn, tmp_path)
    bob = await signed_up(dsn, tmp_path)
    assert await alice.profile_image_url() is None
    jpeg, png = b"\xff\xd8\xff" + b"j" * 1000, b"\x89PNG" + b"p" * 500
    assert await alice.upload_profile_image(jpeg) == f"{alice.user_id}/avatar.jpg"
    assert await alice.upload_profile_image(jpeg[:10]) == f"{alice.user_id}/avatar.jpg"  # replaced in place
    async with httpx.AsyncClient() as http:
        url = await alice.profile_image_url()
        assert url is not None and (await http.get(url)).content == jpeg[:10]
        assert await alice.upload_profile_image(png, content_type="image/png") == f"{alice.user_id}/avatar.png"
        url = await alice.profile_image_url()
        assert url is not None and "avatar.png" in url and (await http.get(url)).content == png
    with pytest.raises(NotFoundError):  # the JPEG went when the PNG came
        await alice.backend.signed_url("profile-images", f"{alice.user_id}/avatar.jpg", 60)
    with pytest.raises(NotFoundError):  # not bob's to read
        await bob.backend.signed_url("profile-images", f"{alice.user_id}/avatar.png", 60)
    with pytest.raises(PermissionDeniedError):  # nor to write
        await bob.backend.upload_object("profile-images", f"{alice.user_id}/avatar.png", png, "image/png", upsert=True)
    for bad, field in (({"content_type": "image/gif"}, "content_type"), ({"data": b""}, "data"),
                       ({"data": b"x" * (2 * 1024 * 1024 + 1)}, "data")):
        with pytest.raises(ValidationError) as caught:
            await alice.upload_profile_image(**{"data": png, **bad})
        assert caught.value.field == field
    # the bucket's own limits, as the Storage server applies them, whatever the client checks
    with pytest.raises(ValidationError) as too_big:
        await alice.backend.upload_object("profile-images", f"{alice.user_id}/big.png", b"x" * (2 * 1024 * 1024 + 1),
                                          "image/png")
    assert too_big.value.status == 413
    with pytest.raises(ValidationError) as wrong_type:
        await alice.backend.upload_object("profile-images", f"{alice.user_id}/a.png", png, "text/html")
    assert wrong_type.value.status == 415 and wrong_type.value.field == "content_type"
    await alice.delete_profile_image()
    assert await alice.profile_image_url() is None

    device = await alice.register_device(f"DTX-{uuid.uuid4().hex[:10].upper()}")
    other = await bob.register_device(f"DTX-{uuid.uuid4().hex[:10].upper()}")
    log = b"boot ok\nbattery 4100 mV\n"
    path = await alice.upload_device_log(device.id, log, name="boot-1")
    assert path == f"{alice.user_id}/{device.id}/boot-1.log"
    with pytest.raises(ConflictError):  # logs are never overwritten
        await alice.upload_device_log(device.id, b"other", name="boot-1")
    dated = await alice.upload_device_log(device.id, b"\x1f\x8b gz", content_type="application/gzip")
    assert dated.startswith(f"{alice.user_id}/{device.id}/") and dated.endswith("Z.gz")
    async with httpx.AsyncClient() as http:
        assert (await http.get(await alice.device_log_url(path))).content == log
    with pytest.raises(NotFoundError):
        await bob.device_log_url(path)
    with pytest.raises(PermissionDeniedError):  # only for a device of one's own
        await alice.upload_device_log(other.id, log)
    with pytest.raises(ValidationError) as bad_name:
        await alice.upload_device_log(device.id, log, name="../escape")
    assert bad_name.value.field == "name"
    with pytest.raises(ValidationError) as bad_device:
        await alice.upload_device_log("not-a-device", log)
    assert bad_device.value.field == "device_id"
    await alice.deactivate_device(device.id)
    with pytest.raises(PermissionDeniedError):
        await alice.upload_device_log(device.id, log)
    for c in (alice, bob):
        await c.close()
