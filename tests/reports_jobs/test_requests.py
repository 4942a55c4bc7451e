"""report_requests through the RPC: validation, dedupe, the job enqueued with the request, who sees what, the
schedule (idempotent, per notification settings and local month/week), and the storage policies."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.reports_jobs.conftest import Conn
from tests.support.pgrest import ANON, SERVICE, PostgrestSession, user


def jobs_for(db: Conn, request_id: Any) -> list[dict[str, Any]]:
    return db.execute("select kind, payload, status from jobs where dedupe_key = %s",
                      (f"reports.render:{request_id}",)).fetchall()


def test_request_is_deduplicated_and_enqueues_one_job(api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    uid = make_user(meta={"locale": "ja", "timezone": "Asia/Tokyo"})
    me = user(uid)
    first = api.rpc(me, "request_report", kind="monthly", period_start="2026-09-01")
    again = api.rpc(me, "request_report", kind="monthly", period_start="2026-09-01", locale="ja-JP")
    assert again["id"] == first["id"]
    assert first["status"] == "queued" and first["locale"] == "ja" and first["period_end"] == "2026-09-30"
    assert first["bucket"] == "reports" and first["object_path"] == f"{uid}/2026-09-ja.pdf"
    assert jobs_for(db, first["id"]) == [{"kind": "reports.render", "payload": {"request_id": first["id"]},
                                          "status": "queued"}]
    other_locale = api.rpc(me, "request_report", kind="monthly", period_start="2026-09-01", locale="ko")
    assert other_locale["id"] != first["id"] and other_locale["object_path"].endswith("/2026-09-ko.pdf")
    weekly = api.rpc(me, "request_report", kind="weekly", period_start="2026-10-26")
    assert (weekly["period_end"], weekly["object_path"]) == ("2026-11-01", f"{uid}/2026-W44-ja.pdf")
    csv = api.rpc(me, "request_report", kind="sessions_csv", period_start="2026-10-01", period_end="2026-10-31")
    assert (csv["bucket"], csv["object_path"]) == ("exports", f"{uid}/sessions-2026-10-01_2026-10-31-ja.csv")
    export = api.rpc(me, "request_report", kind="data_export")
    assert export["bucket"] == "exports" and export["object_path"].endswith(".zip")
    assert api.rpc(me, "request_report", kind="data_export")["id"] == export["id"]
    assert db.execute("select count(*) as n from report_requests where user_id = %s", (uid,)).fetchone() == {"n": 5}


@pytest.mark.parametrize(("args", "field"), [
    ({"kind": "yearly", "period_start": "2026-01-01"}, "kind"),
    ({"kind": "monthly"}, "period_start"),
    ({"kind": "monthly", "period_start": "2026-09-02"}, "period_start"),
    ({"kind": "monthly", "period_start": "2019-12-01"}, "period_start"),
    ({"kind": "monthly", "period_start": "2099-01-01"}, "period_start"),  # not ended
    ({"kind": "monthly", "period_start": "2026-09-01", "period_end": "2026-09-15"}, "period_end"),
    ({"kind": "weekly", "period_start": "2026-10-27"}, "period_start"),  # a Tuesday
    ({"kind": "monthly", "period_start": "2026-09-01", "locale": "fr"}, "locale"),
    ({"kind": "sessions_csv", "period_start": "2026-10-01", "period_end": "2026-09-30"}, "period_end"),
    ({"kind": "sessions_csv", "period_start": "2024-01-01", "period_end": "2025-12-31"}, "period_end"),
    ({"kind": "sessions_csv", "period_start": "2026-10-01", "period_end": "2099-01-01"}, "period_end"),
    ({"kind": "data_export", "period_start": "2026-01-01"}, "period_start"),
])
def test_bad_requests_name_the_field(api: PostgrestSession, make_user: MakeUser, args: dict[str, Any],
                                     field: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as exc:
        api.rpc(user(make_user()), "request_report", **args)
    assert str(exc.value).startswith(f"{field}: ")
    assert exc.value.diag.message_detail == field


def test_only_signed_in_active_users_may_request(api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.rpc(ANON, "request_report", kind="monthly", period_start="2026-09-01")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.rpc(SERVICE, "request_report", kind="monthly", period_start="2026-09-01")
    uid = make_user()
    db.execute("update profiles set is_active = false where id = %s", (uid,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.rpc(user(uid), "request_report", kind="monthly", period_start="2026-09-01")


def test_users_see_only_their_own_requests_and_cannot_write_them(api: PostgrestSession, make_user: MakeUser) -> None:
    a, b = user(make_user()), user(make_user())
    ra = api.rpc(a, "request_report", kind="monthly", period_start="2026-08-01")
    api.rpc(b, "request_report", kind="monthly", period_start="2026-08-01")
    assert [r["id"] for r in api.query(a, "select id::text from report_requests")] == [ra["id"]]
    assert api.query(b, "select 1 from report_requests where id = %s", (ra["id"],)) == []
    for sql in ("update report_requests set status = 'ready' where id = %s",
                "delete from report_requests where id = %s"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            api.query(a, sql, (ra["id"],))


def test_a_failed_request_asked_again_is_queued_again(api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    me = user(make_user())
    r = api.rpc(me, "request_report", kind="monthly", period_start="2026-07-01")
    db.execute("update jobs set status = 'dead', finished_at = now(), last_error = 'x' where dedupe_key = %s",
               (f"reports.render:{r['id']}",))
    db.execute("select * from private.start_report(%s)", (r["id"],))
    db.execute("select private.fail_report(%s, 'boom', true)", (r["id"],))
    failed = db.execute("select status, error from report_requests where id = %s", (r["id"],)).fetchone()
    assert failed == {"status": "failed", "error": "boom"}
    again = api.rpc(me, "request_report", kind="monthly", period_start="2026-07-01")
    assert again["id"] == r["id"] and again["status"] == "queued" and again["error"] is None
    assert sorted(j["status"] for j in jobs_for(db, r["id"])) == ["dead", "queued"]


def test_schedule_creates_due_reports_once(db: Conn, make_user: MakeUser) -> None:
    seoul, ny, weekly_only, off, inactive, newcomer = (make_user(meta={"timezone": tz, "locale": loc}) for tz, loc in (
        ("Asia/Seoul", "ko"), ("America/New_York", "es"), ("UTC", "en"), ("UTC", "en"), ("UTC", "en"), ("UTC", "en")))
    ids = (seoul, ny, weekly_only, off, inactive)
    db.execute("update profiles set created_at = '2026-01-01' where id = any(%s)", (list(ids),))
    db.execute("update profiles set created_at = '2026-12-15' where id = %s", (newcomer,))
    db.execute("update notification_settings set weekly_report = true where user_id = any(%s)", ([ny, weekly_only],))
    db.execute("update notification_settings set monthly_report = false where user_id = any(%s)", ([weekly_only, off],))
    db.execute("update profiles set is_active = false where id = %s", (inactive,))
    # 2026-12-31 20:00 UTC: already January 1st (a Friday) in Seoul, still December 31st in New York
    at = "2026-12-31T20:00:00Z"
    mine = [seoul, ny, weekly_only, off, inactive, newcomer]

    def requests() -> list[tuple[str, str, date, str]]:
        rows = db.execute("select user_id, kind, period_start, locale, source from report_requests"
                          " where user_id = any(%s)", (mine,)).fetchall()
        name = {seoul: "seoul", ny: "ny", weekly_only: "weekly_only"}
        assert all(r["source"] == "schedule" for r in rows)
        return sorted((name[r["user_id"]], r["kind"], r["period_start"], r["locale"]) for r in rows)

    db.execute("select private.enqueue_due_reports(%s)", (at,))
    expected = [("ny", "monthly", date(2026, 11, 1), "es"), ("ny", "weekly", date(2026, 12, 21), "es"),
                ("seoul", "monthly", date(2026, 12, 1), "ko"), ("weekly_only", "weekly", date(2026, 12, 21), "en")]
    assert requests() == expected
    for _ in range(2):  # reruns (and replicas) create nothing more
        assert db.execute("select private.enqueue_due_reports(%s) as n", (at,)).fetchone() == {"n": 0}
    assert requests() == expected
    queued = db.execute("select count(*) as n from jobs j join report_requests r"
                        " on j.dedupe_key = 'reports.render:' || r.id where r.user_id = any(%s)", (mine,)).fetchone()
    assert queued == {"n": 4}


def test_concurrent_schedulers_do_not_duplicate(stack: Any, db: Conn, make_user: MakeUser) -> None:
    uid = make_user()
    db.execute("update profiles set created_at = '2026-01-01' where id = %s", (uid,))
    at = "2026-06-15T00:00:00Z"
    with psycopg.connect(stack.dsn()) as c1, psycopg.connect(stack.dsn()) as c2:
        n1 = c1.execute("select private.enqueue_due_reports(%s)", (at,)).fetchone()
        c2.execute("set statement_timeout = '100ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):  # waits on c1's uncommitted rows
            c2.execute("select private.enqueue_due_reports(%s)", (at,))
        c2.rollback()
        c1.commit()
        n2 = c2.execute("select private.enqueue_due_reports(%s)", (at,)).fetchone()
        c2.commit()
    assert n1 is not None and n1[0] >= 1 and n2 == (0,)
    rows = db.execute("select count(*) as n from report_requests where user_id = %s and period_start = '2026-05-01'",
                      (uid,)).fetchone()
    assert rows == {"n": 1}


def test_storage_policies_user_reads_only_own_folder(api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    a, b = make_user(), make_user()
    for owner in (a, b):
        for bucket, ext in (("reports", "pdf"), ("exports", "zip")):
            db.execute("insert into storage.objects (bucket_id, name, metadata) values (%s, %s, '{}')",
                       (bucket, f"{owner}/2026-09-en.{ext}"))
    seen = api.query(user(a), "select bucket_id, name from storage.objects where bucket_id in ('reports', 'exports')"
                              " order by bucket_id")
    assert seen == [{"bucket_id": "exports", "name": f"{a}/2026-09-en.zip"},
                    {"bucket_id": "reports", "name": f"{a}/2026-09-en.pdf"}]
    assert api.query(user(a), "select 1 from storage.objects where name like %s", (f"{b}/%",)) == []
    stranger = user(uuid.uuid4())
    assert api.query(stranger, "select 1 from storage.objects where bucket_id in ('reports', 'exports')") == []
    for sql, params in (
        ("insert into storage.objects (bucket_id, name) values ('reports', %s)", (f"{a}/forged.pdf",)),
        ("insert into storage.objects (bucket_id, name) values ('exports', %s)", (f"{b}/forged.zip",)),
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            api.query(user(a), sql, params)
    assert api.query(user(a), "update storage.objects set name = name || 'x' where name like %s returning 1",
                     (f"{a}/%",)) == []
    assert api.query(ANON, "select 1 from storage.objects where bucket_id in ('reports', 'exports')") == []
