"""Client statistics RPCs (stats_range, stats_streaks, goal_progress) against oracles computed in Python from
the sessions the user uploaded, and the nightly reconciliation that finds and repairs drift."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MakeUser
from tests.db.test_daily_statistics import MODES, ZONES, Session, drain, oracle, stored
from tests.support.pgrest import ANON, Caller, PostgrestSession, user

Conn = psycopg.Connection[dict[str, Any]]
RANGE_BASE = datetime(2026, 2, 20, tzinfo=UTC)
COUNTED = ["sessions", "working_seconds", "pause_seconds", "ushot_sessions", "ushot_seconds", "eshot_sessions",
           "eshot_seconds", "led_sessions", "led_seconds", "warning_sessions", "temperature_warnings",
           "battery_warnings", "estimated_sessions"]


@st.composite
def spread_sessions(draw: st.DrawFn) -> Session:
    shot = draw(st.integers(0, 2))
    return Session(id=str(uuid.uuid4()), device=draw(st.integers(0, 1)), shot_type=shot,
                   device_mode=draw(st.sampled_from(MODES[shot])), level=draw(st.integers(1, 3)),
                   start=RANGE_BASE + timedelta(minutes=draw(st.integers(0, 45 * 24 * 60))),
                   working=draw(st.integers(0, 7200)), pause=draw(st.integers(0, 600)),
                   temp_warning=draw(st.booleans()), battery_warning=draw(st.booleans()),
                   time_synced=draw(st.booleans()))


def new_user_with_devices(api: PostgrestSession, make_user: MakeUser, tz: str, n: int = 2
                          ) -> tuple[uuid.UUID, Caller, list[uuid.UUID]]:
    uid = make_user(meta={"timezone": tz})
    me = user(uid)
    devices = [uuid.UUID(api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"])
               for _ in range(n)]
    return uid, me, devices


def upload(api: PostgrestSession, me: Caller, devices: list[uuid.UUID], ss: list[Session]) -> None:
    by_device: dict[int, list[Session]] = defaultdict(list)
    for s in ss:
        by_device[s.device].append(s)
    for dev, items in by_device.items():
        for i in range(0, len(items), 100):
            res = api.rpc(me, "upload_sessions", device_id=devices[dev], sessions=[s.item() for s in items[i:i + 100]])
            assert res["rejected"] == 0, res


def period_key(d: date, group_by: str) -> str:
    if group_by == "day":
        return d.isoformat()
    if group_by == "week":
        return (d - timedelta(days=d.weekday())).isoformat()
    return f"{d.year:04d}-{d.month:02d}"


def merge(into: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> None:
    for k, v in b.items():
        e = into.setdefault(k, {"sessions": 0, "seconds": 0})
        e["sessions"] += v["sessions"]
        e["seconds"] += v["seconds"]


def empty_totals() -> dict[str, Any]:
    return {**dict.fromkeys(COUNTED, 0), "active_days": 0, "mode_breakdown": {}, "level_breakdown": {}}


def add_day(acc: dict[str, Any], row: dict[str, Any]) -> None:
    for k in COUNTED:
        acc[k] += row[k]
    merge(acc["mode_breakdown"], row["mode_breakdown"])
    merge(acc["level_breakdown"], row["level_breakdown"])


def range_oracle(days: dict[tuple[uuid.UUID, date], dict[str, Any]], start: date, end: date, group_by: str,
                 device: uuid.UUID | None) -> dict[str, Any]:
    periods: dict[str, dict[str, Any]] = {}
    summary = empty_totals()
    active: dict[str, set[date]] = defaultdict(set)
    d = start
    while d <= end:
        key = period_key(d, group_by)
        p = periods.setdefault(key, {"period": key, "start_date": d.isoformat(), **empty_totals()})
        p["end_date"] = d.isoformat()
        for (dev, day), row in days.items():
            if day == d and (device is None or dev == device):
                add_day(p, row)
                add_day(summary, row)
                active[key].add(day)
        d += timedelta(days=1)
    for key, p in periods.items():
        p["active_days"] = len(active[key])
    summary["active_days"] = sum(len(v) for v in active.values())
    return {"periods": list(periods.values()), "summary": summary}


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ss=st.lists(spread_sessions(), min_size=0, max_size=40), tz=st.sampled_from(ZONES),
       group_by=st.sampled_from(["day", "week", "month"]), first=st.integers(-3, 40), length=st.integers(1, 50),
       by_device=st.booleans())
def test_stats_range_equals_the_oracle(api: PostgrestSession, db: Conn, make_user: MakeUser, ss: list[Session],
                                       tz: str, group_by: str, first: int, length: int, by_device: bool) -> None:
    _, me, devices = new_user_with_devices(api, make_user, tz)
    ss = [replace(s, id=str(uuid.uuid4())) for s in ss]
    upload(api, me, devices, ss)
    drain(db)
    days = oracle({s.id: s for s in ss}, devices, tz)
    start = RANGE_BASE.date() + timedelta(days=first)
    end = start + timedelta(days=length - 1)
    device = devices[0] if by_device else None
    got = api.rpc(me, "stats_range", start_date=start, end_date=end, group_by=group_by, device_id=device)
    want = range_oracle(days, start, end, group_by, device)
    assert got["range"] == {"start_date": start.isoformat(), "end_date": end.isoformat(), "group_by": group_by,
                            "device_id": str(device) if device else None, "days": length}
    assert got["periods"] == want["periods"]
    summary = dict(got["summary"])
    avg_sessions = summary.pop("avg_sessions_per_active_day")
    avg_seconds = summary.pop("avg_working_seconds_per_active_day")
    assert summary == want["summary"]
    n = want["summary"]["active_days"]
    assert avg_sessions == pytest.approx(want["summary"]["sessions"] / n if n else 0, abs=0.006)
    assert avg_seconds == pytest.approx(want["summary"]["working_seconds"] / n if n else 0, abs=0.5)


def item(start: datetime, **kw: Any) -> dict[str, Any]:
    base = {"id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 1, "level": 1, "working_duration": 60,
            "start_time": start.isoformat(), "battery_start_mv": 4100}
    return {**base, **kw}


def test_breakdowns_are_merged_across_devices_not_taken_from_the_first(
        api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    _, me, (a, b) = new_user_with_devices(api, make_user, "UTC")
    noon = datetime(2026, 3, 10, 12, tzinfo=UTC)
    api.rpc(me, "upload_sessions", device_id=a, sessions=[item(noon, device_mode=1, level=1, working_duration=100)])
    api.rpc(me, "upload_sessions", device_id=b, sessions=[
        item(noon, device_mode=1, level=2, working_duration=200),
        item(noon, shot_type=1, device_mode=17, level=2, working_duration=300)])
    drain(db)
    got = api.rpc(me, "stats_range", start_date="2026-03-10", end_date="2026-03-10")
    (day,) = got["periods"]
    assert day["mode_breakdown"] == {"1": {"sessions": 2, "seconds": 300}, "17": {"sessions": 1, "seconds": 300}}
    assert day["level_breakdown"] == {"1": {"sessions": 1, "seconds": 100}, "2": {"sessions": 2, "seconds": 500}}
    assert (day["sessions"], day["working_seconds"], day["ushot_sessions"], day["eshot_seconds"]) == (3, 600, 2, 300)
    assert got["summary"]["mode_breakdown"] == day["mode_breakdown"]


@pytest.mark.parametrize(("args", "field"), [
    ({"start_date": None, "end_date": "2026-03-01"}, "start_date"),
    ({"start_date": "2026-03-01", "end_date": None}, "end_date"),
    ({"start_date": "2026-03-02", "end_date": "2026-03-01"}, "end_date"),
    ({"start_date": "2025-01-01", "end_date": "2026-01-02"}, "end_date"),
    ({"start_date": "2026-03-01", "end_date": "2026-03-02", "group_by": "year"}, "group_by"),
    ({"start_date": "2026-03-01", "end_date": "2026-03-02", "group_by": None}, "group_by"),
])
def test_stats_range_rejects_bad_arguments_naming_the_field(api: PostgrestSession, make_user: MakeUser,
                                                            args: dict[str, Any], field: str) -> None:
    me = user(make_user())
    with pytest.raises(psycopg.errors.InvalidParameterValue) as exc:
        api.rpc(me, "stats_range", **args)
    assert str(exc.value).startswith(f"{field}: ")
    assert exc.value.diag.message_detail == field


def test_a_year_including_a_leap_day_is_allowed(api: PostgrestSession, make_user: MakeUser) -> None:
    me = user(make_user())
    got = api.rpc(me, "stats_range", start_date="2028-01-01", end_date="2028-12-31", group_by="month")
    assert got["range"]["days"] == 366 and [p["period"] for p in got["periods"]][::11] == ["2028-01", "2028-12"]


def test_users_see_only_their_own_statistics(api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    _, me, (dev, _) = new_user_with_devices(api, make_user, "UTC")
    api.rpc(me, "upload_sessions", device_id=dev, sessions=[item(datetime(2026, 3, 10, 12, tzinfo=UTC))])
    api.query(me, "insert into goals (goal_type, target_minutes, start_date) values ('weekly', 10, '2026-01-05')")
    drain(db)
    assert api.rpc(me, "stats_range", start_date="2026-03-10", end_date="2026-03-10")["summary"]["sessions"] == 1
    other = user(make_user(admin=True))  # not even an admin sees someone else's through these RPCs
    got = api.rpc(other, "stats_range", start_date="2026-03-10", end_date="2026-03-10")
    assert got["summary"]["sessions"] == 0 and got["periods"][0]["sessions"] == 0
    with pytest.raises(psycopg.errors.NoDataFound, match="device not found"):
        api.rpc(other, "stats_range", start_date="2026-03-10", end_date="2026-03-10", device_id=dev)
    assert api.rpc(other, "stats_streaks")["longest"] == 0
    assert api.rpc(other, "goal_progress") == []
    for fn, args in (("stats_range", {"start_date": "2026-03-10", "end_date": "2026-03-10"}),
                     ("stats_streaks", {}), ("goal_progress", {})):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            api.rpc(ANON, fn, **args)


def test_deactivated_user_is_refused(api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    uid = make_user()
    db.execute("update profiles set is_active = false where id = %s", (uid,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="deactivated"):
        api.rpc(user(uid), "stats_streaks")


# ------------------------------------------------------------------------------------------------ streaks


def call_at(su_api: PostgrestSession, caller: Caller, clock: datetime, function: str) -> Any:
    with su_api.request(caller, prepare=f"set local dtx.clock = '{clock.isoformat()}'") as cur:
        cur.execute(f"select public.{function}() as r")
        row = cur.fetchone()
    assert row is not None
    return row["r"]


def streak_oracle(active: set[date], today: date) -> tuple[int, int]:
    days = sorted(d for d in active if d <= today)
    longest = run = 0
    prev: date | None = None
    for d in days:
        run = run + 1 if prev is not None and d - prev == timedelta(days=1) else 1
        longest = max(longest, run)
        prev = d
    end = today if today in active else today - timedelta(days=1)
    current = 0
    while end in active:
        current += 1
        end -= timedelta(days=1)
    return current, longest


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(offsets=st.sets(st.integers(0, 30), max_size=20), tz=st.sampled_from(ZONES), today=st.integers(0, 32),
       hour=st.integers(0, 23))
def test_streaks_equal_the_oracle(api: PostgrestSession, su_api: PostgrestSession, db: Conn, make_user: MakeUser,
                                  offsets: set[int], tz: str, today: int, hour: int) -> None:
    _, me, (dev,) = new_user_with_devices(api, make_user, tz, n=1)
    first = date(2026, 3, 1)
    active = {first + timedelta(days=o) for o in offsets}
    items = [item(datetime.combine(d, time(12), ZoneInfo(tz))) for d in active]
    if items:
        api.rpc(me, "upload_sessions", device_id=dev, sessions=items)
    drain(db)
    local_today = first + timedelta(days=today)
    clock = datetime.combine(local_today, time(hour), ZoneInfo(tz))
    got = call_at(su_api, me, clock, "stats_streaks")
    assert got["today"] == local_today.isoformat()
    assert (got["current"], got["longest"]) == streak_oracle(active, local_today)


def test_todays_missing_session_does_not_break_yesterdays_streak(
        api: PostgrestSession, su_api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    tz = "America/New_York"
    _, me, (dev,) = new_user_with_devices(api, make_user, tz, n=1)
    # local evenings of March 7-9 (DST starts on the 8th); 22:30 local is already the next day in UTC
    api.rpc(me, "upload_sessions", device_id=dev, sessions=[
        item(datetime(2026, 3, d, 22, 30, tzinfo=ZoneInfo(tz))) for d in (7, 8, 9)])
    drain(db)
    on_10th = call_at(su_api, me, datetime(2026, 3, 10, 8, tzinfo=ZoneInfo(tz)), "stats_streaks")
    assert (on_10th["current"], on_10th["current_start"], on_10th["longest"]) == (3, "2026-03-07", 3)
    assert call_at(su_api, me, datetime(2026, 3, 11, 8, tzinfo=ZoneInfo(tz)), "stats_streaks")["current"] == 0


# ------------------------------------------------------------------------------------------------ goals


def test_goal_progress_for_the_current_week_and_month(api: PostgrestSession, su_api: PostgrestSession, db: Conn,
                                                      make_user: MakeUser) -> None:
    tz = ZoneInfo("Asia/Seoul")
    _, me, (a, b) = new_user_with_devices(api, make_user, "Asia/Seoul")
    api.rpc(me, "upload_sessions", device_id=a, sessions=[
        item(datetime(2026, 3, 2, 12, tzinfo=tz), working_duration=600),     # another week
        item(datetime(2026, 3, 15, 12, tzinfo=tz), working_duration=3600),   # Sunday of the previous week
        item(datetime(2026, 3, 16, 0, 30, tzinfo=tz), working_duration=1800)])  # Monday (Sunday in UTC)
    api.rpc(me, "upload_sessions", device_id=b, sessions=[item(datetime(2026, 3, 18, 9, tzinfo=tz), working_duration=1200)])
    drain(db)
    goals = [("weekly", 60, "2026-03-01", None, True), ("monthly", 30, "2026-03-10", None, True),
             ("weekly", 10, "2026-03-17", "2026-04-30", True), ("weekly", 10, "2026-03-01", None, False),
             ("weekly", 10, "2026-03-01", "2026-03-17", True), ("monthly", 10, "2026-03-20", None, True)]
    ids = [api.query(me, "insert into goals (goal_type, target_minutes, start_date, end_date, is_active)"
                         " values (%s, %s, %s, %s, %s) returning id", g)[0]["id"] for g in goals]
    got = call_at(su_api, me, datetime(2026, 3, 18, 10, tzinfo=tz), "goal_progress")
    assert [g["goal_id"] for g in got] == [str(i) for i in ids[:3]]
    weekly, monthly, late_weekly = got
    assert {k: weekly[k] for k in ("period_start", "period_end", "achieved_seconds", "achieved_minutes", "percent",
                                   "achieved")} == {"period_start": "2026-03-16", "period_end": "2026-03-22",
                                                    "achieved_seconds": 3000, "achieved_minutes": 50.0,
                                                    "percent": 83.3, "achieved": False}
    assert (monthly["period_start"], monthly["period_end"], monthly["achieved_seconds"], monthly["percent"],
            monthly["achieved"]) == ("2026-03-10", "2026-03-31", 6600, 366.7, True)
    assert (late_weekly["period_start"], late_weekly["achieved_seconds"], late_weekly["achieved"]) == \
        ("2026-03-17", 1200, True)


# ------------------------------------------------------------------------------------------------ reconciliation


def reconcile(db: Conn, uid: uuid.UUID, clock: datetime, days: int = 3) -> dict[str, Any]:
    with db.transaction():
        db.execute(f"set local dtx.clock = '{clock.isoformat()}'")
        row = db.execute("select private.reconcile_daily_statistics(%s, %s) as r", (days, uid)).fetchone()
    assert row is not None
    return dict(row["r"])


def test_reconciliation_reports_and_repairs_drift_in_recent_days_only(
        api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    tz = "Asia/Kathmandu"
    uid, me, devices = new_user_with_devices(api, make_user, tz)
    zone = ZoneInfo(tz)
    today = date(2026, 3, 20)
    ss = [Session(str(uuid.uuid4()), dev, 0, 2, 1 + dev, datetime.combine(today - timedelta(days=back), time(h), zone),
                  300 + back, 10, False, back == 1, True)
          for back in (0, 1, 2, 10) for dev in (0, 1) for h in (9, 21)]
    upload(api, me, devices, ss)
    drain(db)
    clock = datetime.combine(today, time(18), zone)
    clean = reconcile(db, uid, clock)
    assert (clean["inserted"], clean["updated"], clean["deleted"], clean["drift"], clean["rows_checked"]) == \
        (0, 0, 0, [], 6)

    d1, d2, old = (today - timedelta(days=n) for n in (1, 2, 10))
    db.execute("update daily_statistics set pause_seconds = 1, mode_breakdown = '{}' where user_id = %s"
               " and device_id = %s and stat_date = %s", (uid, devices[0], d1))
    db.execute("delete from daily_statistics where user_id = %s and device_id = %s and stat_date = %s",
               (uid, devices[1], d2))
    db.execute("update daily_statistics set pause_seconds = 1 where user_id = %s and stat_date = %s", (uid, old))
    ghost = uuid.UUID(api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"])
    db.execute("insert into daily_statistics (user_id, device_id, stat_date, sessions, ushot_sessions)"
               " values (%s, %s, %s, 1, 1)", (uid, ghost, today))

    report = reconcile(db, uid, clock)
    assert (report["inserted"], report["updated"], report["deleted"], report["marked"]) == (1, 1, 1, 3)
    changes = {(r["device_id"], r["stat_date"]): (r["change"], r["fields"]) for r in report["drift"]}
    assert changes[(str(devices[0]), d1.isoformat())] == ("update", ["mode_breakdown", "pause_seconds"])
    assert changes[(str(devices[1]), d2.isoformat())][0] == "insert"
    assert changes[(str(ghost), today.isoformat())][0] == "delete"

    drain(db)
    want = oracle({s.id: s for s in ss}, devices, tz)
    got = stored(db, uid)
    for dev in devices:  # outside the window: left alone
        assert got[(dev, old)]["pause_seconds"] == 1
        got[(dev, old)]["pause_seconds"] = want[(dev, old)]["pause_seconds"]
    assert got == want
    again = reconcile(db, uid, clock)
    assert (again["inserted"], again["updated"], again["deleted"]) == (0, 0, 0)
    assert reconcile(db, uid, clock, days=11)["updated"] == 2  # a wider window finds the old day (both devices)
    drain(db)


def test_reconciliation_skips_days_already_waiting_for_the_drain(api: PostgrestSession, db: Conn,
                                                                 make_user: MakeUser) -> None:
    uid, me, (dev, _) = new_user_with_devices(api, make_user, "UTC")
    when = datetime(2026, 3, 20, 9, tzinfo=UTC)
    api.rpc(me, "upload_sessions", device_id=dev, sessions=[item(when)])
    report = reconcile(db, uid, when)  # not drained yet: the day is dirty, not drifted
    assert (report["inserted"], report["marked"]) == (0, 0)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="days: "):
        reconcile(db, uid, when, days=0)
    drain(db)
