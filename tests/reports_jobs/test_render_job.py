"""The reports.render job end to end on a real database: a PDF rendered from seeded sessions whose numbers,
read back with a PDF text extractor, equal the statistics; stored under the user's folder and recorded in
storage.objects; one notification; exactly once across a crash between render and publish; CSV and archive
contents."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import uuid
import zipfile
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from psycopg_pool import AsyncConnectionPool

from dtx_worker.handlers import HANDLERS
from dtx_worker.handlers.reports import notification_text, process_request
from dtx_worker.jobs import ExecutorLimits, Job, JobContext, JobExecutor
from dtx_worker.reports.i18n import CATALOGS, Formatter
from dtx_worker.reports.model import LOCALES, MODES, Locale, ShotType, whole_minutes
from dtx_worker.storage import LocalObjectStore
from tests.conftest import MakeUser
from tests.reports import pdftools
from tests.reports_jobs.conftest import Conn, seed_user, session
from tests.support.pgrest import PostgrestSession


def stats_oracle(sessions: list[dict[str, Any]], tz: str, start: date, end: date) -> dict[str, Any]:
    """The month's figures straight from the uploaded sessions (local days in the user's zone)."""
    zone = ZoneInfo(tz)
    inside = [s for s in sessions if start <= datetime.fromisoformat(s["start_time"]).astimezone(zone).date() <= end]
    shots: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    modes: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    levels: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for s in inside:
        for table, key in ((shots, s["shot_type"]), (modes, s["device_mode"]), (levels, s["level"])):
            table[key][0] += 1
            table[key][1] += s["working_duration"]
    days = {datetime.fromisoformat(s["start_time"]).astimezone(zone).date() for s in inside}
    return {"sessions": len(inside), "seconds": sum(s["working_duration"] for s in inside), "active_days": len(days),
            "shots": shots, "modes": modes, "levels": levels}


async def test_monthly_report_numbers_equal_the_statistics(api: PostgrestSession, db: Conn, make_user: MakeUser,
                                                          pool: AsyncConnectionPool, store: LocalObjectStore,
                                                          tmp_path: Path) -> None:
    u = seed_user(api, db, make_user, tz="America/New_York", month=(2026, 10), seed=3)
    db.execute("insert into goals (user_id, goal_type, target_minutes, start_date) values (%s, 'monthly', 600,"
               " '2026-01-01')", (u.id,))
    req = api.rpc(u.caller, "request_report", kind="monthly", period_start="2026-10-01", locale="en")
    assert await process_request(pool, store, uuid.UUID(req["id"])) is True

    row = db.execute("select status, error, bucket, object_path, attempts from report_requests where id = %s",
                     (req["id"],)).fetchone()
    assert row == {"status": "ready", "error": None, "bucket": "reports", "object_path": f"{u.id}/2026-10-en.pdf",
                   "attempts": 1}
    pdf = store.path_of("reports", f"{u.id}/2026-10-en.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdftools.qpdf_check(pdf).returncode == 0
    obj = db.execute("select metadata from storage.objects where bucket_id = 'reports' and name = %s",
                     (f"{u.id}/2026-10-en.pdf",)).fetchone()
    assert obj is not None and obj["metadata"]["size"] == pdf.stat().st_size
    assert obj["metadata"]["mimetype"] == "application/pdf"

    # the statistics the worker drained, summed independently in SQL, and the sessions themselves agree
    s = db.execute("select sum(sessions)::int as sessions, sum(working_seconds)::int as seconds,"
                   " count(distinct stat_date) filter (where sessions > 0)::int as active_days,"
                   " sum(ushot_sessions)::int as us, sum(ushot_seconds)::int as uss, sum(eshot_sessions)::int as es,"
                   " sum(eshot_seconds)::int as ess, sum(led_sessions)::int as ls, sum(led_seconds)::int as lss"
                   " from daily_statistics where user_id = %s and stat_date between '2026-10-01' and '2026-10-31'",
                   (u.id,)).fetchone()
    assert s is not None
    truth = stats_oracle(u.sessions, "America/New_York", date(2026, 10, 1), date(2026, 10, 31))
    assert (s["sessions"], s["seconds"], s["active_days"]) == (truth["sessions"], truth["seconds"], truth["active_days"])
    assert s["sessions"] > 20

    t, f = CATALOGS["en"], Formatter("en", ZoneInfo("America/New_York"))
    lines = pdftools.lines(pdf)
    text = pdftools.text(pdf)
    assert "Test Person" in text
    sessions_row = pdftools.after(lines, t.sessions, 2)
    assert [f.integer(s["sessions"])] in [r[:1] for r in sessions_row]
    assert [f.integer(whole_minutes(s["seconds"]))] in [r[:1] for r in pdftools.after(lines, t.working_minutes, 1)]
    for shot, (n, secs) in zip(ShotType, ((s["us"], s["uss"]), (s["es"], s["ess"]), (s["ls"], s["lss"])), strict=True):
        share = f.percent(secs / s["seconds"])
        assert [f.integer(whole_minutes(secs)), f.integer(n), share] in pdftools.after(lines, t.shot_name(shot), 3)
    for code, (_shot, name) in MODES.items():
        n, secs = truth["modes"].get(code, [0, 0])
        assert [f.integer(n), f.integer(whole_minutes(secs))] in pdftools.after(lines, name, 2), name
    for level in (1, 2, 3):
        n, secs = truth["levels"].get(level, [0, 0])
        assert [f.integer(n), f.integer(whole_minutes(secs))] in pdftools.after(lines, t.level.format(n=level), 2)
    prev = stats_oracle(u.sessions, "America/New_York", date(2026, 9, 1), date(2026, 9, 30))
    assert [f.integer(truth["sessions"]), f.integer(prev["sessions"])] in sessions_row
    assert any("Bathroom" in " ".join(line) and "1.4.2" in " ".join(line) for line in lines)

    notes = db.execute("select kind, title, data, dedupe_key from notifications where user_id = %s", (u.id,)).fetchall()
    assert len(notes) == 1 and notes[0]["kind"] == "report_ready"
    assert (notes[0]["title"], notes[0]["dedupe_key"]) == ("Monthly usage report", "report:monthly:2026-10-01:en")
    assert notes[0]["data"]["object_path"] == f"{u.id}/2026-10-en.pdf" and notes[0]["data"]["bucket"] == "reports"

    # a signed URL for the owner's client (locally: an HMAC token) opens exactly this file
    url = await store.signed_url("reports", f"{u.id}/2026-10-en.pdf", 60)
    assert store.verify(url) == pdf.resolve()


class CrashBeforePublish(LocalObjectStore):
    """Dies after writing the temporary file, before the rename that publishes it (as a kill would)."""

    crashes = 1

    def _before_rename(self, tmp: Path, final: Path) -> None:
        if self.crashes:
            self.crashes -= 1
            raise KeyboardInterrupt("killed")  # BaseException: nothing below may swallow it


async def test_a_crash_mid_write_leaves_no_object_and_the_retry_completes_exactly_once(
        api: PostgrestSession, db: Conn, make_user: MakeUser, pool: AsyncConnectionPool, tmp_path: Path) -> None:
    u = seed_user(api, db, make_user, tz="Asia/Seoul", month=(2026, 10), seed=5, devices=1)
    req = api.rpc(u.caller, "request_report", kind="monthly", period_start="2026-10-01", locale="ko")
    rid = uuid.UUID(req["id"])
    store = CrashBeforePublish(tmp_path / "storage", pool, secret=b"k")
    with pytest.raises(KeyboardInterrupt):
        await process_request(pool, store, rid)
    folder = tmp_path / "storage" / "reports" / str(u.id)
    assert [p.name for p in folder.iterdir()] == []  # no object, no temp file
    assert db.execute("select count(*) as n from storage.objects where name like %s", (f"{u.id}/%",)).fetchone() == {"n": 0}
    assert db.execute("select status from report_requests where id = %s", (rid,)).fetchone() == {"status": "rendering"}

    # the retry (the job's lease expired) renders again and completes
    assert await process_request(pool, store, rid) is True
    assert [p.name for p in folder.iterdir()] == ["2026-10-ko.pdf"]
    first = (folder / "2026-10-ko.pdf").stat().st_mtime_ns
    # and a further run — a duplicate delivery, another replica — does nothing
    assert await process_request(pool, store, rid) is False
    assert (folder / "2026-10-ko.pdf").stat().st_mtime_ns == first
    row = db.execute("select status, attempts from report_requests where id = %s", (rid,)).fetchone()
    assert row == {"status": "ready", "attempts": 2}
    assert db.execute("select count(*) as n from notifications where user_id = %s", (u.id,)).fetchone() == {"n": 1}
    assert db.execute("select count(*) as n from storage.objects where name like %s", (f"{u.id}/%",)).fetchone() == {"n": 1}


async def test_the_job_runs_through_the_executor_and_failures_are_recorded(
        api: PostgrestSession, db: Conn, make_user: MakeUser, pool: AsyncConnectionPool, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTX_WORKER_STORAGE_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    u = seed_user(api, db, make_user, month=(2026, 10), seed=9, devices=1)
    good = api.rpc(u.caller, "request_report", kind="weekly", period_start="2026-10-19", locale="en")
    # the export cannot be stored (its bucket folder is a file), on its only attempt
    bad = api.rpc(u.caller, "request_report", kind="sessions_csv", period_start="2026-10-01",
                  period_end="2026-10-31")
    db.execute("update jobs set max_attempts = 1 where dedupe_key = %s", (f"reports.render:{bad['id']}",))
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "exports").write_text("a file where the bucket's folder should be")
    db.execute("update jobs set run_after = now() + interval '1 hour' where kind = 'reports.render'"
               " and dedupe_key not in (%s, %s)", (f"reports.render:{good['id']}", f"reports.render:{bad['id']}"))
    ex = JobExecutor(pool, f"t-{uuid.uuid4().hex[:6]}", {"reports.render": HANDLERS["reports.render"]},
                     ExecutorLimits(concurrency=2, batch_size=2, lease_seconds=60, poll_interval=0.05))
    stopping = asyncio.Event()
    task = asyncio.create_task(ex.run(asyncio.Event(), stopping))
    try:
        for _ in range(200):
            rows = db.execute("select status from report_requests where id in (%s, %s) order by kind",
                              (good["id"], bad["id"])).fetchall()
            if all(r["status"] in ("ready", "failed") for r in rows):
                break
            await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await task
    g = db.execute("select status from report_requests where id = %s", (good["id"],)).fetchone()
    b = db.execute("select status, error from report_requests where id = %s", (bad["id"],)).fetchone()
    assert g == {"status": "ready"}
    assert (tmp_path / "store" / "reports" / str(u.id) / "2026-W43-en.pdf").is_file()
    assert b is not None and b["status"] == "failed" and "exports" in b["error"]
    job = db.execute("select status from jobs where dedupe_key = %s", (f"reports.render:{bad['id']}",)).fetchone()
    assert job == {"status": "dead"}


async def test_sessions_csv_and_data_export(api: PostgrestSession, db: Conn, make_user: MakeUser,
                                           pool: AsyncConnectionPool, store: LocalObjectStore) -> None:
    u = seed_user(api, db, make_user, tz="Asia/Seoul", month=(2026, 10), seed=11)
    db.execute("insert into skin_profiles (user_id, skin_type) values (%s, 'dry')", (u.id,))
    db.execute("insert into goals (user_id, goal_type, target_minutes, start_date) values (%s, 'weekly', 90,"
               " '2026-01-01')", (u.id,))
    csv_req = api.rpc(u.caller, "request_report", kind="sessions_csv", period_start="2026-10-01",
                      period_end="2026-10-31")
    exp_req = api.rpc(u.caller, "request_report", kind="data_export")
    for r in (csv_req, exp_req):
        assert await process_request(pool, store, uuid.UUID(r["id"])) is True

    raw = store.path_of("exports", csv_req["object_path"]).read_bytes()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    zone = ZoneInfo("Asia/Seoul")
    expected = sorted((s for s in u.sessions
                       if date(2026, 10, 1) <= datetime.fromisoformat(s["start_time"]).astimezone(zone).date()
                       <= date(2026, 10, 31)), key=lambda s: (s["start_time"], s["id"]))
    assert [r["Session ID"] for r in rows] == [s["id"] for s in expected]
    first, src = rows[0], expected[0]
    start = datetime.fromisoformat(src["start_time"])
    assert first["Start (UTC)"] == start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert first["Start (local)"] == start.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    assert first["Time zone"] == "Asia/Seoul"
    assert first["Treatment"] == {0: "U-Shot", 1: "E-Shot", 2: "LED Care"}[src["shot_type"]]
    assert first["Mode"] == MODES[src["device_mode"]][1]
    assert int(first["Working time (s)"]) == src["working_duration"] and int(first["Level"]) == src["level"]
    assert sum(int(r["Working time (s)"]) for r in rows) == sum(s["working_duration"] for s in expected)

    with zipfile.ZipFile(store.path_of("exports", exp_req["object_path"])) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        assert names == {"README.txt", "profile.json", "devices.json", "sessions.json", "sessions.csv",
                         "daily_statistics.json", "goals.json", "settings.json", "report_requests.json"}
        profile = json.loads(zf.read("profile.json"))
        sessions = json.loads(zf.read("sessions.json"))
        devices = json.loads(zf.read("devices.json"))
        stats = json.loads(zf.read("daily_statistics.json"))
        settings = json.loads(zf.read("settings.json"))
        goals = json.loads(zf.read("goals.json"))
        all_csv = list(csv.DictReader(io.StringIO(zf.read("sessions.csv").decode("utf-8-sig"))))
    assert profile["id"] == str(u.id) and profile["display_name"] == "Test Person" and "exported_at" in profile
    assert sorted(d["id"] for d in devices) == sorted(str(d) for d in u.devices)
    assert sorted(s["id"] for s in sessions) == sorted(s["id"] for s in u.sessions) and len(all_csv) == len(sessions)
    by_id = {s["id"]: s for s in u.sessions}
    for s in sessions:
        assert s["battery_samples"] == by_id[s["id"]]["battery_samples"]
    db_stats = db.execute("select count(*)::int as n, sum(sessions)::int as s from daily_statistics where user_id = %s",
                          (u.id,)).fetchone()
    assert db_stats == {"n": len(stats), "s": sum(r["sessions"] for r in stats)}
    assert settings["skin_profile"]["skin_type"] == "dry" and settings["notifications"]["monthly_report"] is True
    assert [g["target_minutes"] for g in goals] == [90]
    kinds = db.execute("select kind from notifications where user_id = %s", (u.id,)).fetchall()
    assert [k["kind"] for k in kinds] == ["export_ready", "export_ready"]


async def test_schedule_job_requests_due_reports(db: Conn, make_user: MakeUser, pool: AsyncConnectionPool) -> None:
    uid = make_user(meta={"timezone": "Asia/Seoul", "locale": "ko"})
    db.execute("update profiles set created_at = '2020-01-01' where id = %s", (uid,))
    job = Job(id=0, kind="reports.schedule", payload={}, attempts=1, max_attempts=5)
    for _ in range(2):
        await HANDLERS["reports.schedule"](job, JobContext(pool, "test"))
    today = datetime.now(ZoneInfo("Asia/Seoul")).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    rows = db.execute("select kind, period_start, locale, status from report_requests where user_id = %s",
                      (uid,)).fetchall()
    assert rows == [{"kind": "monthly", "period_start": last_month, "locale": "ko", "status": "queued"}]
    with pytest.raises(ValueError, match="extra"):
        await HANDLERS["reports.schedule"](Job(0, "reports.schedule", {"x": 1}, 1, 5), JobContext(pool, "test"))


async def test_report_waits_for_pending_statistics(api: PostgrestSession, db: Conn, make_user: MakeUser,
                                                   pool: AsyncConnectionPool, store: LocalObjectStore) -> None:
    """Sessions uploaded but not yet drained (as right after the worker starts) still make it into the report."""
    u = seed_user(api, db, make_user, tz="Asia/Seoul", month=(2026, 10), seed=5, devices=1)
    late = [session(datetime(2026, 10, 15, 1, 0, tzinfo=UTC) + timedelta(hours=h), random.Random(h)) for h in range(5)]
    assert api.rpc(u.caller, "upload_sessions", device_id=u.devices[0], sessions=late)["stored"] == 5
    assert db.execute("select count(*) as n from stats_dirty_days where user_id = %s", (u.id,)).fetchone() == {"n": 1}
    req = api.rpc(u.caller, "request_report", kind="monthly", period_start="2026-10-01", locale="en")
    assert await process_request(pool, store, uuid.UUID(req["id"])) is True
    assert db.execute("select count(*) as n from stats_dirty_days where user_id = %s", (u.id,)).fetchone() == {"n": 0}
    truth = stats_oracle(u.sessions + late, "Asia/Seoul", date(2026, 10, 1), date(2026, 10, 31))
    t, f = CATALOGS["en"], Formatter("en", ZoneInfo("Asia/Seoul"))
    lines = pdftools.lines(store.path_of("reports", f"{u.id}/2026-10-en.pdf"))
    assert [f.integer(truth["sessions"])] in [r[:1] for r in pdftools.after(lines, t.sessions, 2)]


@pytest.mark.parametrize("locale", LOCALES)
def test_notifications_speak_the_requests_language(locale: Locale) -> None:
    t, f = CATALOGS[locale], Formatter(locale, ZoneInfo("Asia/Seoul"))
    week, month = (date(2026, 11, 2), date(2026, 11, 8)), (date(2026, 10, 1), date(2026, 10, 31))
    day = date(2026, 11, 22)

    def text(kind: str, start: date, end: date) -> tuple[str, str]:
        return notification_text({"kind": kind, "locale": locale, "period_start": start, "period_end": end},
                                 "Asia/Seoul")

    assert text("monthly", *month) == (t.title_monthly, f.month(month[0]))
    assert text("weekly", *week) == (t.title_weekly, f.date_range(*week))
    assert text("sessions_csv", *month) == (t.export_sessions_ready, f.date_range(*month))
    assert text("data_export", day, day) == (t.export_data_ready, t.exported_on.format(date=f.date_range(day, day)))
    if locale != "en":  # no English left in another language's notifications
        assert not {t.export_sessions_ready, t.export_data_ready} & {CATALOGS["en"].export_sessions_ready,
                                                                     CATALOGS["en"].export_data_ready}
    if locale == "th":
        assert "2569" in text("data_export", day, day)[1]
