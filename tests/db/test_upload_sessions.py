"""upload_sessions: ownership, idempotency, per-item results, validation, dirty-day marks, counters."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MakeUser
from tests.db.conftest import Owner
from tests.db.factories import session_item
from tests.support.pgrest import ANON, SERVICE, PostgrestSession, user


def upload(api: PostgrestSession, o: Owner, items: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = api.rpc(o.caller, "upload_sessions", device_id=o.device_id, sessions=items)
    return result


def test_stores_sessions_with_samples_and_reports_each(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    items = [session_item(), session_item(datetime(2026, 3, 15, 22, 0, tzinfo=UTC))]
    res = upload(api, owner, items)
    assert (res["stored"], res["duplicates"], res["rejected"]) == (2, 0, 0)
    assert [r["status"] for r in res["results"]] == ["stored", "stored"]
    assert [r["id"] for r in res["results"]] == [i["id"] for i in items]
    row = db.execute("select user_id, device_id, shot_type, working_duration, sync_status, battery_start_mv"
                     " from usage_sessions where id = %s", (items[0]["id"],)).fetchone()
    assert row == {"user_id": owner.id, "device_id": owner.device_id, "shot_type": 0, "working_duration": 480,
                   "sync_status": 2, "battery_start_mv": 4100}
    curve = db.execute("select elapsed_seconds, voltage_mv from battery_samples where session_id = %s",
                       (items[0]["id"],)).fetchone()
    assert curve == {"elapsed_seconds": [60 * i for i in range(9)], "voltage_mv": [4100 - 20 * i for i in range(9)]}


def test_resending_a_batch_changes_nothing(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    items = [session_item(), session_item()]
    upload(api, owner, items)
    before = db.execute("select total_sessions, last_synced_at from devices where id = %s", (owner.device_id,)).fetchone()
    samples_q = ("select sum(cardinality(b.elapsed_seconds)) as n from battery_samples b"
                 " join usage_sessions s on s.id = b.session_id where s.device_id = %s")
    samples_before = db.execute(samples_q, (owner.device_id,)).fetchone()
    assert samples_before == {"n": 18}
    again = upload(api, owner, [{**items[0], "level": 3}, items[1]])  # a changed copy is still a duplicate
    assert (again["stored"], again["duplicates"], again["rejected"]) == (0, 2, 0)
    assert {r["status"] for r in again["results"]} == {"duplicate"}
    after = db.execute("select total_sessions, last_synced_at from devices where id = %s", (owner.device_id,)).fetchone()
    assert after is not None and before is not None
    assert after["total_sessions"] == before["total_sessions"] == 2
    assert db.execute("select level from usage_sessions where id = %s", (items[0]["id"],)).fetchone() == {"level": 2}
    samples_after = db.execute(samples_q, (owner.device_id,)).fetchone()
    assert samples_after == samples_before


def test_mixed_batch_stores_only_valid_items(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    good, bad = session_item(), session_item(level=7)
    dup_in_batch = dict(good)
    res = upload(api, owner, [good, bad, dup_in_batch])
    assert [r["status"] for r in res["results"]] == ["stored", "rejected", "duplicate"]
    assert res["results"][1]["reason"] == "level: must be between 1 and 3"
    assert db.execute("select count(*) as n from usage_sessions where id = %s", (bad["id"],)).fetchone() == {"n": 0}
    assert db.execute("select count(*) as n from battery_samples where session_id = %s", (bad["id"],)).fetchone() == {"n": 0}


def test_session_id_of_another_users_session_is_rejected_not_hidden(
        api: PostgrestSession, owner: Owner, make_user: MakeUser, db: psycopg.Connection) -> None:
    item = session_item()
    upload(api, owner, [item])
    other_uid = make_user()
    other = user(other_uid)
    dev = api.rpc(other, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:10]}")
    res = api.rpc(other, "upload_sessions", device_id=dev["id"], sessions=[{**item, "level": 1}])
    assert res["results"][0] == {"index": 0, "id": item["id"], "status": "rejected",
                                 "reason": "id: already used by another session"}
    assert db.execute("select user_id, level from usage_sessions where id = %s", (item["id"],)).fetchone() == \
        {"user_id": owner.id, "level": 2}


BAD_ITEMS: list[tuple[str, dict[str, Any], str]] = [
    ("id", {"id": "not-a-uuid"}, "id: must be a UUID string"),
    ("id", {"id": None}, "id: must be a UUID string"),
    ("shot_type", {"shot_type": 3}, "shot_type: must be between 0 and 2"),
    ("shot_type", {"shot_type": 255}, "shot_type: must be between 0 and 2"),
    ("shot_type", {"shot_type": "0"}, "shot_type: must be an integer"),
    ("shot_type missing", {"shot_type": None}, "shot_type: is required"),
    ("device_mode", {"device_mode": 17}, "device_mode: 17 is not a mode of shot_type 0 (U-Shot 1-4, E-Shot 17-20, LED 33)"),
    ("device_mode", {"device_mode": 0}, "device_mode: must be between 1 and 33"),
    ("level", {"level": 0}, "level: must be between 1 and 3"),
    ("level", {"level": 2.5}, "level: must be an integer"),
    ("led_pattern", {"led_pattern": 256}, "led_pattern: must be between 0 and 255"),
    ("working_duration", {"working_duration": -1}, "working_duration: must be between 0 and 7200"),
    ("working_duration", {"working_duration": 7201}, "working_duration: must be between 0 and 7200"),
    ("pause_duration", {"pause_duration": 99999}, "pause_duration: must be between 0 and 7200"),
    ("pause_count", {"pause_count": 300}, "pause_count: must be between 0 and 255"),
    ("termination_reason", {"termination_reason": 42}, "termination_reason: must be 0-9 or 255"),
    ("completion_percent", {"completion_percent": 101}, "completion_percent: must be between 0 and 100"),
    ("battery_start_mv", {"battery_start_mv": 6000}, "battery_start_mv: must be between 0 and 5000"),
    ("battery_end_mv", {"battery_end_mv": -5}, "battery_end_mv: must be between 0 and 5000"),
    ("had_temperature_warning", {"had_temperature_warning": "yes"}, "had_temperature_warning: must be true or false"),
    ("time_synced", {"time_synced": 1}, "time_synced: must be true or false"),
    ("start_time", {"start_time": "2026-03-14 09:30"},
     "start_time: must be an ISO 8601 timestamp with a time zone offset, e.g. 2026-01-31T08:15:00Z"),
    ("start_time", {"start_time": "2026-02-30T09:30:00Z"},
     "start_time: must be an ISO 8601 timestamp with a time zone offset, e.g. 2026-01-31T08:15:00Z"),
    ("start_time", {"start_time": "2019-12-31T23:59:59Z"}, "start_time: must be between 2020-01-01 and tomorrow"),
    ("end_time", {"end_time": "2026-03-14T09:00:00Z"}, "end_time: must be at or after start_time and within one day of it"),
    ("end_time", {"end_time": "soon"}, "end_time: must be an ISO 8601 timestamp with a time zone offset, or null"),
    ("battery_samples", {"battery_samples": {"a": 1}}, "battery_samples: must be an array"),
    ("battery_samples", {"battery_samples": [{"elapsed_seconds": 0, "voltage_mv": 9000}]},
     "battery_samples.voltage_mv: must be between 0 and 5000"),
    ("battery_samples", {"battery_samples": [{"elapsed_seconds": 0}]}, "battery_samples.voltage_mv: is required"),
    ("battery_samples", {"battery_samples": [{"elapsed_seconds": 5, "voltage_mv": 4000}] * 2},
     "battery_samples.elapsed_seconds: duplicate value 5"),
    ("battery_samples", {"battery_samples": [{"elapsed_seconds": i, "voltage_mv": 4000} for i in range(501)]},
     "battery_samples: at most 500 samples per session"),
    ("unknown", {"user_id": str(uuid.uuid4())}, "user_id: unknown field"),
    ("unknown", {"sync_status": 3}, "sync_status: unknown field"),
]


@pytest.mark.parametrize(("field", "change", "reason"), BAD_ITEMS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_ITEMS)])
def test_each_validation_rule(api: PostgrestSession, owner: Owner, db: psycopg.Connection,
                              field: str, change: dict[str, Any], reason: str) -> None:
    item = session_item(**change)
    res = upload(api, owner, [item, session_item()])
    assert res["results"][0]["status"] == "rejected"
    assert res["results"][0]["reason"] == reason
    assert res["results"][1]["status"] == "stored"
    assert res["stored"] == 1 and res["rejected"] == 1


def test_item_that_is_not_an_object(api: PostgrestSession, owner: Owner) -> None:
    res = upload(api, owner, [42, session_item()])  # type: ignore[list-item]
    assert res["results"][0] == {"index": 0, "status": "rejected", "reason": "item: must be a JSON object"}


def test_optional_fields_may_be_omitted(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    item = {"id": str(uuid.uuid4()), "shot_type": 2, "device_mode": 33, "level": 1, "start_time": "2026-03-14T09:30:00+09:00"}
    assert upload(api, owner, [item])["stored"] == 1
    row = db.execute("select working_duration, time_synced, end_time, start_time from usage_sessions where id = %s",
                     (item["id"],)).fetchone()
    assert row == {"working_duration": 0, "time_synced": True, "end_time": None,
                   "start_time": datetime(2026, 3, 14, 0, 30, tzinfo=UTC)}


@pytest.mark.parametrize(("sessions", "message"), [
    ([], "sessions: must contain 1 to 100 sessions, got 0"),
    ({"id": "x"}, "sessions: must be an array of 1 to 100 sessions"),
    (None, "sessions: must be an array of 1 to 100 sessions"),
])
def test_batch_shape(api: PostgrestSession, owner: Owner, sessions: Any, message: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as exc:
        api.rpc(owner.caller, "upload_sessions", device_id=owner.device_id, sessions=sessions)
    assert exc.value.diag.message_primary == message


def test_batch_of_101_is_refused_and_nothing_stored(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    items = [session_item() for _ in range(101)]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="got 101"):
        upload(api, owner, items)
    assert db.execute("select total_sessions from devices where id = %s", (owner.device_id,)).fetchone() == {"total_sessions": 0}
    assert upload(api, owner, items[:100])["stored"] == 100


def test_only_own_active_devices(api: PostgrestSession, owner: Owner, make_user: MakeUser, db: psycopg.Connection) -> None:
    stranger = user(make_user())
    with pytest.raises(psycopg.errors.NoDataFound, match="device_id: device not found"):
        api.rpc(stranger, "upload_sessions", device_id=owner.device_id, sessions=[session_item()])
    with pytest.raises(psycopg.errors.NoDataFound):
        api.rpc(owner.caller, "upload_sessions", device_id=uuid.uuid4(), sessions=[session_item()])
    api.query(owner.caller, "update devices set is_active = false where id = %s", (owner.device_id,))
    with pytest.raises(psycopg.errors.RaiseException, match="deactivated"):
        upload(api, owner, [session_item()])
    assert db.execute("select count(*) as n from usage_sessions where device_id = %s", (owner.device_id,)).fetchone() == {"n": 0}


def test_anon_and_service_role_cannot_call_it(api: PostgrestSession, owner: Owner) -> None:
    for caller in (ANON, SERVICE):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            api.rpc(caller, "upload_sessions", device_id=owner.device_id, sessions=[session_item()])


def test_deactivated_user_cannot_upload(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    db.execute("update profiles set is_active = false where id = %s", (owner.id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="deactivated"):
        upload(api, owner, [session_item()])


def test_marks_local_days_in_the_users_timezone(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    uid = make_user(meta={"timezone": "America/Los_Angeles"})
    me = user(uid)
    dev = api.rpc(me, "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:10]}")
    # 2026-03-15 03:00 UTC is still March 14 in Los Angeles; 2026-03-15 20:00 UTC is March 15
    items = [session_item(datetime(2026, 3, 15, 3, 0, tzinfo=UTC)), session_item(datetime(2026, 3, 15, 20, 0, tzinfo=UTC)),
             session_item(datetime(2026, 3, 15, 21, 0, tzinfo=UTC))]
    api.rpc(me, "upload_sessions", device_id=dev["id"], sessions=items)
    marks = db.execute("select local_date from stats_dirty_days where user_id = %s order by 1", (uid,)).fetchall()
    assert [m["local_date"] for m in marks] == [date(2026, 3, 14), date(2026, 3, 15)]


def test_marks_are_written_in_the_same_transaction(api: PostgrestSession, owner: Owner, db: psycopg.Connection,
                                                   stack: Any) -> None:
    """Inside the upload's transaction the marks exist; outside nothing is visible until it commits."""
    count = "select (select count(*) from usage_sessions where user_id = %(u)s) as sessions," \
            " (select count(*) from stats_dirty_days where user_id = %(u)s) as marks"
    with api.request(owner.caller) as cur:
        cur.execute("select public.upload_sessions(%s, %s)", (owner.device_id, psycopg.types.json.Jsonb([session_item()])))
        cur.execute("reset role")  # authenticator cannot reset to a superuser; use a second probe instead
        assert db.execute(count, {"u": owner.id}).fetchone() == {"sessions": 0, "marks": 0}
    assert db.execute(count, {"u": owner.id}).fetchone() == {"sessions": 1, "marks": 1}


def test_rolled_back_upload_leaves_nothing(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    with api.request(owner.caller, rollback=True) as cur:
        cur.execute("select public.upload_sessions(%s, %s)", (owner.device_id, psycopg.types.json.Jsonb([session_item()])))
    for table, col in (("usage_sessions", "user_id"), ("stats_dirty_days", "user_id")):
        assert db.execute(f"select count(*) as n from {table} where {col} = %s", (owner.id,)).fetchone() == {"n": 0}
    assert db.execute("select total_sessions from devices where id = %s", (owner.device_id,)).fetchone() == {"total_sessions": 0}


def test_device_counters_follow_uploads_and_deletes(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    t0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    items = [session_item(t0 + timedelta(days=i)) for i in range(3)]
    upload(api, owner, items)
    dev = db.execute("select total_sessions, last_session_at, last_synced_at from devices where id = %s",
                     (owner.device_id,)).fetchone()
    assert dev is not None
    assert dev["total_sessions"] == 3 and dev["last_session_at"] == t0 + timedelta(days=2)
    assert dev["last_synced_at"] is not None
    db.execute("delete from stats_dirty_days where user_id = %s", (owner.id,))
    deleted = api.query(owner.caller, "delete from usage_sessions where id = %s returning id", (items[1]["id"],))
    assert len(deleted) == 1
    assert db.execute("select total_sessions from devices where id = %s", (owner.device_id,)).fetchone() == {"total_sessions": 2}
    marks = db.execute("select local_date from stats_dirty_days where user_id = %s", (owner.id,)).fetchall()
    assert marks == [{"local_date": date(2026, 4, 2)}]  # Asia/Seoul: 08:00 UTC is 17:00 the same day


def test_result_never_leaks_internals(api: PostgrestSession, owner: Owner) -> None:
    res = upload(api, owner, [session_item(level="high")])
    reason = res["results"][0]["reason"]
    assert reason == "level: must be an integer"
    for word in ("constraint", "relation", "usage_sessions", "violates", "plpgsql"):
        assert word not in reason


@pytest.mark.parametrize("text", ["0000-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
                                  "2026-01-01T24:00:00Z", "2026-01-01T10:60:00Z", "2026-01-01T10:00:61Z",
                                  "2026-01-01T10:00:00+16:00", "2026-01-01T10:00:00", "20260101T100000Z", ""])
def test_bad_timestamps_are_rejected_not_errors(api: PostgrestSession, owner: Owner, text: str) -> None:
    res = upload(api, owner, [session_item(start_time=text, end_time=None)])
    assert res["results"][0]["status"] == "rejected"
    assert res["results"][0]["reason"].startswith("start_time: must be an ISO 8601 timestamp")


@pytest.mark.parametrize(("text", "utc"), [
    ("2024-02-29T23:30:00+09:00", datetime(2024, 2, 29, 14, 30, tzinfo=UTC)),
    ("2026-01-01 10:00Z", datetime(2026, 1, 1, 10, 0, tzinfo=UTC)),
    ("2026-01-01T10:00:00.123456-0530", datetime(2026, 1, 1, 15, 30, 0, 123456, tzinfo=UTC)),
])
def test_good_timestamps_with_offsets(api: PostgrestSession, owner: Owner, db: psycopg.Connection,
                                      text: str, utc: datetime) -> None:
    item = session_item(start_time=text, end_time=None)
    assert upload(api, owner, [item])["stored"] == 1
    assert db.execute("select start_time from usage_sessions where id = %s", (item["id"],)).fetchone() == {"start_time": utc}


def test_samples_are_stored_in_elapsed_order(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    item = session_item(battery_samples=[{"elapsed_seconds": 120, "voltage_mv": 3900}, {"elapsed_seconds": 0, "voltage_mv": 4100},
                                         {"elapsed_seconds": 60, "voltage_mv": 4000}])
    upload(api, owner, [item])
    assert db.execute("select elapsed_seconds, voltage_mv from battery_samples where session_id = %s", (item["id"],)).fetchone() \
        == {"elapsed_seconds": [0, 60, 120], "voltage_mv": [4100, 4000, 3900]}


def test_session_without_samples_has_no_curve(api: PostgrestSession, owner: Owner, db: psycopg.Connection) -> None:
    item = session_item(battery_samples=[])
    assert upload(api, owner, [item])["stored"] == 1
    assert db.execute("select count(*) as n from battery_samples where session_id = %s", (item["id"],)).fetchone() == {"n": 0}


def test_battery_curve_constraint(db: psycopg.Connection, owner: Owner, api: PostgrestSession) -> None:
    item = session_item(battery_samples=[])
    upload(api, owner, [item])
    for elapsed, mv in (([0, 0], [1, 2]), ([5, 1], [1, 2]), ([0], [1, 2]), ([0], [6000]), ([], [])):
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute("insert into battery_samples values (%s, %s, %s)", (item["id"], elapsed, mv))


# ------------------------------------------------------------------------------------------- screened fast path
# upload_sessions stores a batch that passes a cheap screen without computing per-field reasons, leaving the rest
# to casts and constraints, and falls back to the full validation (private.store_sessions(..., validate => true))
# on any refusal. These tests hold it to exactly the full validation's results.

def test_a_clean_batch_passes_the_screen(db: psycopg.Connection) -> None:
    batch = [session_item(), session_item(led_pattern=7, end_time=None), session_item(battery_samples=None)]
    assert db.execute("select private.upload_batch_screened(%s::jsonb) as ok", (json.dumps(batch),)).fetchone() == {"ok": True}


def test_integral_numbers_written_with_a_fraction_are_stored(api: PostgrestSession, owner: Owner,
                                                             db: psycopg.Connection) -> None:
    item = session_item(level=2.0, working_duration=480.0,
                        battery_samples=[{"elapsed_seconds": 60.0, "voltage_mv": 4000}, {"elapsed_seconds": 0, "voltage_mv": 4100.0}])
    assert upload(api, owner, [item])["stored"] == 1
    assert db.execute("select s.level, s.working_duration, b.elapsed_seconds, b.voltage_mv from usage_sessions s"
                      " join battery_samples b on b.session_id = s.id where s.id = %s", (item["id"],)).fetchone() == \
        {"level": 2, "working_duration": 480, "elapsed_seconds": [0, 60], "voltage_mv": [4100, 4000]}


INT_FIELDS = ["shot_type", "device_mode", "level", "led_pattern", "working_duration", "pause_duration", "pause_count",
              "termination_reason", "completion_percent", "battery_start_mv", "battery_end_mv"]
BOOL_FIELDS = ["had_temperature_warning", "had_battery_warning", "time_synced"]
ANY_JSON = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 300),
    st.sampled_from([17, 18, 20, 21, 33, 34, 255, 256, 4999, 5000, 5001, 7200, 7201, 32768, 2**31, 86400, 86401,
                     2.0, 2.5, -0.0, 1e10, "2", "true", "", [], [1], {}, {"a": 1}]),
    st.floats(allow_nan=False, allow_infinity=False, width=32))
TIME_TEXTS: list[Any] = [
    "2026-03-14T09:30:00Z", "2026-03-14T09:38:20Z", "2026-03-14 09:40+09:00", "2026-03-14T09:30:00.5-0530",
    "2026-03-15T10:00:00Z", "2024-02-29T12:00:00Z", "2026-02-29T12:00:00Z", "2026-04-31T12:00:00Z",
    "2026-03-14T24:00:00Z", "2026-03-14T09:30:60Z", "2026-03-14T09:30:00+16:00", "2026-03-14T09:30:00",
    "2019-12-31T23:59:59Z", "2999-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "soon", "", None, 5]
TIMES = st.sampled_from(TIME_TEXTS)
IDS = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), st.uuids().map(lambda u: u.hex),
                st.uuids().map(lambda u: "{" + str(u) + "}"),
                st.uuids().map(lambda u: "-".join(u.hex[i:i + 4] for i in range(0, 32, 4))[:36]),
                st.sampled_from(["not-a-uuid", "", None, 7]))
SAMPLE = st.one_of(
    st.fixed_dictionaries({"elapsed_seconds": st.one_of(st.integers(-1, 86401), ANY_JSON),
                           "voltage_mv": st.one_of(st.integers(-1, 5001), ANY_JSON)}),
    st.fixed_dictionaries({"elapsed_seconds": st.integers(0, 600)}), ANY_JSON)
SAMPLES = st.one_of(st.lists(SAMPLE, max_size=6),
                    st.integers(0, 600).map(lambda n: [{"elapsed_seconds": e, "voltage_mv": 4000} for e in range(n)]),
                    ANY_JSON)


def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    item = session_item(start=datetime(2026, 3, 14, 9, 30, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 60))))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["int", "bool", "time", "drop", "unknown", "samples", "id"]))
        if kind == "int":
            item[draw(st.sampled_from(INT_FIELDS))] = draw(ANY_JSON)
        elif kind == "bool":
            item[draw(st.sampled_from(BOOL_FIELDS))] = draw(ANY_JSON)
        elif kind == "time":
            item[draw(st.sampled_from(["start_time", "end_time"]))] = draw(TIMES)
        elif kind == "drop":
            item.pop(draw(st.sampled_from(sorted(item))), None)
        elif kind == "unknown":
            item[draw(st.sampled_from(["user_id", "sync_status", "Level", ""]))] = draw(ANY_JSON)
        elif kind == "samples":
            item["battery_samples"] = draw(SAMPLES)
        else:
            item["id"] = draw(IDS)
    return item


@st.composite
def batches(draw: st.DrawFn) -> list[Any]:
    items: list[Any] = draw(st.lists(st.one_of(st.builds(session_item), st.composite(_mutated)()),
                                     min_size=1, max_size=5))
    if draw(st.booleans()) and isinstance(items[0], dict):
        items.append(dict(items[0]))  # the same id twice in one batch
    if draw(st.integers(0, 9)) == 0:
        items.append(draw(ANY_JSON))  # an item that is not an object
    return items


STORED = ("select s.id::text, s.shot_type, s.device_mode, s.level, s.led_pattern, s.start_time, s.end_time,"
          " s.working_duration, s.pause_duration, s.pause_count, s.termination_reason, s.completion_percent,"
          " s.had_temperature_warning, s.had_battery_warning, s.battery_start_mv, s.battery_end_mv, s.time_synced,"
          " b.elapsed_seconds, b.voltage_mv from usage_sessions s left join battery_samples b on b.session_id = s.id"
          " where s.device_id = %s order by s.id")


def full_validation(db: psycopg.Connection, o: Owner, batch: list[Any]) -> tuple[Any, list[dict[str, Any]]]:
    """The full validation's result for this batch and the rows it would leave, rolled back."""
    with db.transaction(force_rollback=True):
        db.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": str(o.id), "role": "authenticated"}),))
        row = db.execute("select private.store_sessions(%s, %s, %s::jsonb, true) as r", (o.device_id, o.id, json.dumps(batch))).fetchone()
        assert row is not None
        return row["r"], db.execute(STORED, (o.device_id,)).fetchall()


TRICKY = [None, True, False, 0, 1, -1, 2, 3, 17, 20, 33, 255, 256, 5000, 5001, 7201, 86401, 32768, 2**31, 2.0, 2.5, -0.0,
          1e10, "1", "2", "true", "t", "", [], [2], {}, {"a": 1}]
SINGLE_CHANGES: list[tuple[str, Any]] = (
    [(f, v) for f in [*INT_FIELDS, *BOOL_FIELDS, "id", "start_time", "end_time", "battery_samples"] for v in TRICKY]
    + [(f, t) for f in ("start_time", "end_time") for t in TIME_TEXTS]
    + [("id", i) for i in ("{" + str(uuid.uuid4()) + "}", uuid.uuid4().hex, str(uuid.uuid4()).upper(),
                           "-".join(uuid.uuid4().hex[i:i + 4] for i in range(0, 32, 4))[:36], str(uuid.uuid4()) + " ")]
    + [("battery_samples", [{"elapsed_seconds": e, "voltage_mv": m}]) for e in TRICKY for m in (4000, 2.0, "4000")]
    + [("battery_samples", [{"elapsed_seconds": 0, "voltage_mv": m}]) for m in TRICKY]
    + [("battery_samples", [s]) for s in TRICKY]
    + [("battery_samples", [{"elapsed_seconds": 5, "voltage_mv": 1}, {"elapsed_seconds": 5.0, "voltage_mv": 2}]),
       ("battery_samples", [{"elapsed_seconds": e, "voltage_mv": 4000} for e in range(501)]),
       ("battery_samples", [{"elapsed_seconds": 0, "voltage_mv": 4000, "extra": 1}])]
    + [("-" + f, None) for f in session_item()]  # the field left out
    + [(f, 1) for f in ("user_id", "sync_status", "Level", "")])


def test_every_single_field_change_matches_the_full_validation(api: PostgrestSession, owner: Owner,
                                                               db: psycopg.Connection) -> None:
    """Each item alone, so that the screen decides the whole batch: whatever it lets through must still come out
    exactly as the full validation has it (stored, or rejected with the same reason)."""
    mismatches = []
    for field, value in SINGLE_CHANGES:
        item = session_item(**({} if field.startswith("-") else {field: value}))
        if field.startswith("-"):
            del item[field[1:]]
        expected, expected_rows = full_validation(db, owner, [item])
        got = upload(api, owner, [item])
        if got != expected or db.execute(STORED, (owner.device_id,)).fetchall() != expected_rows:
            mismatches.append((field, value, got, expected))
    assert not mismatches, mismatches[:5]
    assert len(SINGLE_CHANGES) > 500


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches())
def test_results_equal_the_full_validation(api: PostgrestSession, owner: Owner, db: psycopg.Connection,
                                           batch: list[Any]) -> None:
    expected, expected_rows = full_validation(db, owner, batch)
    assert upload(api, owner, batch) == expected
    assert db.execute(STORED, (owner.device_id,)).fetchall() == expected_rows
