"""Daily statistics recomputed from dirty marks: after draining, daily_statistics equals an oracle computed in
Python (zoneinfo) from the sessions the user really has, whatever mix of uploads, duplicates, late arrivals,
edits, deletes and timezone changes produced them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MakeUser
from tests.support.pgrest import SERVICE, PostgrestSession, user

Conn = psycopg.Connection[dict[str, Any]]

ZONES = ["UTC", "Asia/Seoul", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu",
         "Pacific/Chatham", "America/St_Johns"]
MODES = {0: [1, 2, 3, 4], 1: [17, 18, 19, 20], 2: [33]}
# around the 2026 US DST change (March 8) so that local days of 23 hours occur
BASE = datetime(2026, 3, 6, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Session:
    id: str
    device: int
    shot_type: int
    device_mode: int
    level: int
    start: datetime
    working: int
    pause: int
    temp_warning: bool
    battery_warning: bool
    time_synced: bool

    def item(self) -> dict[str, Any]:
        return {"id": self.id, "shot_type": self.shot_type, "device_mode": self.device_mode, "level": self.level,
                "start_time": self.start.isoformat(), "working_duration": self.working,
                "pause_duration": self.pause, "had_temperature_warning": self.temp_warning,
                "had_battery_warning": self.battery_warning, "time_synced": self.time_synced,
                # seed.sql fills in battery curves from battery_start_mv for every session that has none
                "battery_start_mv": 4100}


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    shot = draw(st.integers(0, 2))
    return Session(
        id=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        device=draw(st.integers(0, 1)),
        shot_type=shot,
        device_mode=draw(st.sampled_from(MODES[shot])),
        level=draw(st.integers(1, 3)),
        start=BASE + timedelta(minutes=draw(st.integers(0, 5 * 24 * 60))),
        working=draw(st.integers(0, 7200)),
        pause=draw(st.integers(0, 600)),
        temp_warning=draw(st.booleans()),
        battery_warning=draw(st.booleans()),
        time_synced=draw(st.booleans()),
    )


# operations: ("upload", [sessions], resend_count) | ("delete", k) | ("edit", k, minutes, level, working)
#             | ("tz", zone) | ("drain", batch)
operations = st.one_of(
    st.tuples(st.just("upload"), st.lists(sessions(), min_size=1, max_size=6), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("edit"), st.integers(0, 50), st.integers(-36 * 60, 36 * 60), st.integers(1, 3),
              st.integers(0, 7200)),
    st.tuples(st.just("tz"), st.sampled_from(ZONES)),
    st.tuples(st.just("drain"), st.integers(1, 5)),
)


def drain(db: Conn, batch: int = 50) -> None:
    while db.execute("select private.refresh_daily_statistics(%s) as n", (batch,)).fetchone() != {"n": 0}:
        pass


def oracle(model: dict[str, Session], devices: list[uuid.UUID], tz: str) -> dict[tuple[uuid.UUID, date], dict[str, Any]]:
    days: dict[tuple[uuid.UUID, date], list[Session]] = defaultdict(list)
    for s in model.values():
        days[(devices[s.device], s.start.astimezone(ZoneInfo(tz)).date())].append(s)
    out = {}
    for key, ss in days.items():
        def breakdown(attr: str, ss: list[Session] = ss) -> dict[str, dict[str, int]]:
            b: dict[str, dict[str, int]] = {}
            for s in ss:
                e = b.setdefault(str(getattr(s, attr)), {"sessions": 0, "seconds": 0})
                e["sessions"] += 1
                e["seconds"] += s.working
            return b

        def shot(t: int, ss: list[Session] = ss) -> tuple[int, int]:
            return sum(1 for s in ss if s.shot_type == t), sum(s.working for s in ss if s.shot_type == t)

        out[key] = {
            "sessions": len(ss), "working_seconds": sum(s.working for s in ss),
            "pause_seconds": sum(s.pause for s in ss),
            "ushot_sessions": shot(0)[0], "ushot_seconds": shot(0)[1],
            "eshot_sessions": shot(1)[0], "eshot_seconds": shot(1)[1],
            "led_sessions": shot(2)[0], "led_seconds": shot(2)[1],
            "mode_breakdown": breakdown("device_mode"), "level_breakdown": breakdown("level"),
            "warning_sessions": sum(1 for s in ss if s.temp_warning or s.battery_warning),
            "temperature_warnings": sum(1 for s in ss if s.temp_warning),
            "battery_warnings": sum(1 for s in ss if s.battery_warning),
            "estimated_sessions": sum(1 for s in ss if not s.time_synced),
            "first_session_at": min(s.start for s in ss), "last_session_at": max(s.start for s in ss),
        }
    return out


def stored(db: Conn, uid: uuid.UUID) -> dict[tuple[uuid.UUID, date], dict[str, Any]]:
    rows = db.execute("select * from daily_statistics where user_id = %s", (uid,)).fetchall()
    return {(r.pop("device_id"), r.pop("stat_date")): {k: v for k, v in r.items() if k not in ("user_id", "computed_at")}
            for r in rows}


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operations, min_size=1, max_size=10), first_zone=st.sampled_from(ZONES))
def test_drained_statistics_equal_the_oracle(api: PostgrestSession, db: Conn, make_user: MakeUser,
                                             ops: list[tuple[Any, ...]], first_zone: str) -> None:
    uid = make_user(meta={"timezone": first_zone})
    me = user(uid)
    devices = [uuid.UUID(api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"])
               for _ in range(2)]
    tz = first_zone
    model: dict[str, Session] = {}
    uploaded: list[Session] = []  # every version the client sent, for duplicate re-sends
    for op in ops:
        if op[0] == "upload":
            batch = [replace(s, id=str(uuid.uuid4())) for s in op[1]]  # fresh ids: never collide across examples
            by_device: dict[int, list[Session]] = defaultdict(list)
            for s in batch:
                by_device[s.device].append(s)
            resent = [replace(old, level=1 + old.level % 3) for old in (uploaded[-op[2]:] if op[2] else [])]
            for s in resent:  # re-sent, changed copies: duplicates, or stored again if deleted meanwhile
                by_device[s.device].append(s)
            for dev, items in by_device.items():
                res = api.rpc(me, "upload_sessions", device_id=devices[dev], sessions=[s.item() for s in items])
                assert res["rejected"] == 0, res
            for s in batch + resent:
                model.setdefault(s.id, s)
            uploaded += batch
        elif op[0] == "delete" and model:
            victim = sorted(model)[op[1] % len(model)]
            assert len(api.query(me, "delete from usage_sessions where id = %s returning 1", (victim,))) == 1
            del model[victim]
        elif op[0] == "edit" and model:
            sid = sorted(model)[op[1] % len(model)]
            s = model[sid]
            edited = replace(s, start=max(s.start + timedelta(minutes=op[2]), BASE), level=op[3], working=op[4])
            api.query(SERVICE, "update usage_sessions set start_time = %s, level = %s, working_duration = %s"
                               " where id = %s", (edited.start, edited.level, edited.working, sid))
            model[sid] = edited
        elif op[0] == "tz":
            api.query(me, "update profiles set timezone = %s where id = %s", (op[1], uid))
            tz = op[1]
        elif op[0] == "drain":
            db.execute("select private.refresh_daily_statistics(%s)", (op[1],))
    drain(db)
    assert stored(db, uid) == oracle(model, devices, tz)
    assert db.execute("select count(*) as n from stats_dirty_days where user_id = %s", (uid,)).fetchone() == {"n": 0}


def test_day_row_shape_and_removal_when_emptied(api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    uid = make_user(meta={"timezone": "Asia/Seoul"})
    me = user(uid)
    dev = api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"]
    # 23:30 UTC on the 9th is 08:30 on the 10th in Seoul
    a = {"id": str(uuid.uuid4()), "shot_type": 1, "device_mode": 18, "level": 3, "start_time": "2026-03-09T23:30:00Z",
         "working_duration": 300, "pause_duration": 10, "had_battery_warning": True,
         "battery_start_mv": 4100}
    b = {**a, "id": str(uuid.uuid4()), "device_mode": 17, "level": 1, "working_duration": 120, "had_battery_warning": False,
         "start_time": "2026-03-10T01:00:00Z", "time_synced": False}
    api.rpc(me, "upload_sessions", device_id=dev, sessions=[a, b])
    drain(db)
    row = db.execute("select * from daily_statistics where user_id = %s", (uid,)).fetchone()
    assert row is not None
    assert (row["stat_date"], row["sessions"], row["eshot_sessions"], row["working_seconds"], row["pause_seconds"]) == \
        (date(2026, 3, 10), 2, 2, 420, 20)
    assert row["mode_breakdown"] == {"17": {"sessions": 1, "seconds": 120}, "18": {"sessions": 1, "seconds": 300}}
    assert row["level_breakdown"] == {"1": {"sessions": 1, "seconds": 120}, "3": {"sessions": 1, "seconds": 300}}
    assert (row["warning_sessions"], row["battery_warnings"], row["estimated_sessions"]) == (1, 1, 1)
    assert row["first_session_at"] == datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
    api.query(me, "delete from usage_sessions where user_id = %s", (uid,))
    drain(db)
    assert db.execute("select count(*) as n from daily_statistics where user_id = %s", (uid,)).fetchone() == {"n": 0}


def test_timezone_change_moves_sessions_between_days(api: PostgrestSession, db: Conn, make_user: MakeUser) -> None:
    uid = make_user(meta={"timezone": "UTC"})
    me = user(uid)
    dev = api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"]
    item = {"id": str(uuid.uuid4()), "shot_type": 2, "device_mode": 33, "level": 2, "start_time": "2026-03-09T20:00:00Z",
            "battery_start_mv": 4100}
    api.rpc(me, "upload_sessions", device_id=dev, sessions=[item])
    drain(db)
    days = "select stat_date from daily_statistics where user_id = %s"
    assert db.execute(days, (uid,)).fetchall() == [{"stat_date": date(2026, 3, 9)}]
    api.query(me, "update profiles set timezone = 'Asia/Seoul' where id = %s", (uid,))
    drain(db)
    assert db.execute(days, (uid,)).fetchall() == [{"stat_date": date(2026, 3, 10)}]


def test_stats_marks_notify_the_worker_channel(stack: Any, api: PostgrestSession, make_user: MakeUser) -> None:
    uid = make_user()
    me = user(uid)
    dev = api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:12]}")["id"]
    with psycopg.connect(stack.dsn(), autocommit=True) as listener:
        listener.execute("listen dtx_jobs")
        api.rpc(me, "upload_sessions", device_id=dev, sessions=[
            {"id": str(uuid.uuid4()), "shot_type": 0, "device_mode": 1, "level": 1, "start_time": "2026-03-09T20:00:00Z",
             "battery_start_mv": 4100}])
        got = next(listener.notifies(timeout=5))
    assert got.payload == "stats"
