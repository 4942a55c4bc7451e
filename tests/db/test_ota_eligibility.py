"""Who is offered what: every strategy and constraint, stickiness, and the exactness of percentages."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.db.ota_support import Device, check, fleet, publish, rollout
from tests.support.pgrest import PostgrestSession


def model() -> str:
    return f"SIM{uuid.uuid4().hex[:8]}"


def offered(su_api: PostgrestSession, d: Device, version: str = "1.0.0") -> bool:
    return bool(check(su_api, d, version)["update_available"])


def test_all_at_once_offers_every_targeted_device(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    devices = fleet(db, 30, model=m)
    rid = rollout(db, fw)
    answers = [check(su_api, d, "1.0.0") for d in devices]
    assert all(a["update_available"] for a in answers)
    a = answers[0]
    assert (a["version"], a["version_code"], a["rollout_id"], a["required"], a["size_bytes"]) == ("1.1.0", 10100, str(rid), False, 4096)
    assert a["sha256"] and a["storage_path"] == f"{m}/1.1.0/dualtetrax-1.1.0.bin" and a["bucket"] == "firmware-binaries"
    status = db.execute("select phase, rollout_id, stage from device_firmware_status where device_id = %s",
                        (devices[0].id,)).fetchone()
    assert status == {"phase": "offered", "rollout_id": rid, "stage": 0}


def test_up_to_date_and_newer_devices_get_nothing(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    rollout(db, fw)
    assert check(su_api, d, "1.1.0") == {"update_available": False, "current_version_code": 10100}
    assert check(su_api, d, "1.2.0")["update_available"] is False


@pytest.mark.parametrize("status", ["draft", "paused", "aborted"])
def test_rollouts_that_are_not_live_offer_nothing(db: psycopg.Connection, su_api: PostgrestSession, status: str) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    rid = rollout(db, fw, start=status != "draft")
    if status == "paused":
        db.execute("select public.admin_pause_rollout(%s)", (rid,))
    if status == "aborted":
        db.execute("select public.admin_abort_rollout(%s)", (rid,))
    assert not offered(su_api, d)


def test_completed_rollout_keeps_offering_until_superseded(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw1 = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    r1 = rollout(db, fw1)
    db.execute("select public.admin_advance_rollout(%s)", (r1,))  # last stage -> completed
    assert check(su_api, d, "1.0.0")["version"] == "1.1.0"
    fw2 = publish(db, "1.2.0", 10200, model=m)
    r2 = rollout(db, fw2, strategy="manual", device_ids=[str(uuid.uuid4())])  # started later, selects nobody we know
    assert not offered(su_api, d)  # the completed rollout is superseded by a newer live one
    db.execute("select public.admin_abort_rollout(%s)", (r2,))
    assert check(su_api, d, "1.0.0")["version"] == "1.1.0"  # an aborted rollout supersedes nothing


def test_deprecated_version_is_not_offered(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    rollout(db, fw)
    db.execute("select public.admin_set_firmware_status(%s, 'deprecated')", (fw,))
    assert not offered(su_api, d)


def test_targeting_by_model_hardware_and_minimum_version(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "2.0.0", 20000, model=m)
    rev_c = fleet(db, 2, model=m, hardware="rev-c")
    rev_b = fleet(db, 1, model=m, hardware="rev-b")
    other_model = fleet(db, 1, model=model())
    rollout(db, fw, target_hardware_revisions=["rev-c"], min_current_version_code=10500)
    assert offered(su_api, rev_c[0], "1.5.0")
    assert not offered(su_api, rev_c[1], "1.4.9")  # below the rollout's minimum current version
    assert not offered(su_api, rev_b[0], "1.5.0")
    assert not offered(su_api, other_model[0], "1.5.0")


def test_firmware_minimum_and_required_flag(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "3.0.0", 30000, model=m, min_version_code=20000, required=True)
    old, recent = fleet(db, 2, model=m)
    rollout(db, fw)
    assert check(su_api, old, "1.9.0") == {"update_available": False, "current_version_code": 10900,
                                          "below_minimum": {"version": "3.0.0", "min_version_code": 20000}}
    ans = check(su_api, recent, "2.1.0")
    assert ans["update_available"] is True and ans["required"] is True


def test_manual_list(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    a, b = fleet(db, 2, model=m)
    rollout(db, fw, strategy="manual", device_ids=[str(a.id)])
    assert offered(su_api, a) and not offered(su_api, b)


def test_beta_group_and_beta_channel(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    devices = fleet(db, 4, model=m)
    db.execute("update devices set is_beta = true where id = %s", (devices[0].id,))
    db.execute("update devices set tags = '{qa}' where id = %s", (devices[1].id,))
    fw = publish(db, "1.1.0-beta.1", 10101, model=m, channel="beta")
    rollout(db, fw, strategy="beta", beta_tags=["qa"])
    assert [offered(su_api, d) for d in devices] == [True, True, False, False]


def test_beta_channel_needs_a_beta_device_even_when_all_at_once(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    devices = fleet(db, 2, model=m, beta_every=2)
    fw = publish(db, "1.1.0-beta.2", 10102, model=m, channel="beta")
    rollout(db, fw)
    assert [offered(su_api, d) for d in devices] == [True, False]


def test_downgrade_rollout_only_reaches_newer_devices(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    good = publish(db, "1.1.0", 10100, model=m)
    bad = publish(db, "1.2.0", 10200, model=m)
    on_bad, on_good = fleet(db, 2, model=m)
    r = rollout(db, bad)
    db.execute("select public.admin_abort_rollout(%s, 'crash on boot')", (r,))
    rollout(db, good, is_downgrade=True)
    ans = check(su_api, on_bad, "1.2.0")
    assert ans["update_available"] and ans["version"] == "1.1.0" and ans["is_downgrade"] is True
    assert not offered(su_api, on_good, "1.1.0")
    assert not offered(su_api, on_good, "1.0.0")  # a downgrade never upgrades anyone


def test_one_live_rollout_per_model_and_channel(db: psycopg.Connection) -> None:
    m = model()
    fw1, fw2 = publish(db, "1.1.0", 10100, model=m), publish(db, "1.2.0", 10200, model=m)
    rollout(db, fw1)
    r2 = rollout(db, fw2, start=False)
    with pytest.raises(psycopg.errors.UniqueViolation, match="active or paused"):
        db.execute("select public.admin_start_rollout(%s)", (r2,))


def test_percentages_are_exact_and_complete(db: psycopg.Connection) -> None:
    """100,000 devices: 10 % selects 10 % +- 0.5 %, 100 % selects all (no off-by-one)."""
    rid = uuid.uuid4()
    row = db.execute(
        "select count(*) filter (where private.rollout_bucket(%s, d) < 1000) as p10,"
        " count(*) filter (where private.rollout_bucket(%s, d) < 10000) as p100,"
        " min(private.rollout_bucket(%s, d)) as lo, max(private.rollout_bucket(%s, d)) as hi"
        " from (select gen_random_uuid() as d from generate_series(1, 100000)) x", (rid, rid, rid, rid)).fetchone()
    assert row is not None
    assert 9500 <= row["p10"] <= 10500
    assert row["p100"] == 100000 and row["lo"] >= 0 and row["hi"] <= 9999


def test_staged_selection_through_the_rpc(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    devices = fleet(db, 400, owners=20, model=m)
    rid = rollout(db, fw, strategy="staged", stages=[{"percent": 25, "soak_minutes": 0}, {"percent": 100, "soak_minutes": 0}])
    first = {d.id for d in devices if offered(su_api, d)}
    expected = {r["d"] for r in db.execute(
        "select d.id as d from devices d where d.model = %s and private.rollout_bucket(%s, d.id) < 2500", (m, rid)).fetchall()}
    assert first == expected and 60 <= len(first) <= 140
    db.execute("select public.admin_advance_rollout(%s)", (rid,))
    assert all(offered(su_api, d) for d in devices)


@settings(max_examples=60, deadline=None)
@given(p=st.integers(1, 100), q=st.integers(1, 100), seed=st.uuids())
def test_stickiness(p: int, q: int, seed: uuid.UUID, db: psycopg.Connection) -> None:
    """Eligible at p % implies eligible at every q >= p %."""
    lo, hi = min(p, q), max(p, q)
    row = db.execute(
        "select bool_and(private.rollout_bucket(%s, d) >= %s * 100 or private.rollout_bucket(%s, d) < %s * 100) as ok"
        " from (select gen_random_uuid() as d from generate_series(1, 500)) x", (seed, lo, seed, hi)).fetchone()
    assert row == {"ok": True}


def test_rollout_input_is_validated(db: psycopg.Connection) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    draft = publish(db, "1.2.0", 10200, model=m, status="draft")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"strategy": "yolo"}, "strategy: must be all_at_once, staged, manual or beta"),
        ({"strategy": "staged", "stages": [{"percent": 50, "soak_minutes": 0}]}, "stages:"),
        ({"strategy": "staged", "stages": [{"percent": 10, "soak_minutes": 0}, {"percent": 5, "soak_minutes": 0},
                                            {"percent": 100, "soak_minutes": 0}]}, "stages:"),
        ({"strategy": "manual"}, "device_ids: a manual rollout needs at least one device"),
        ({"is_downgrade": True, "firmware_id": None}, "is_downgrade:"),
    ]
    for change, message in bad:
        args = {"firmware_id": fw if change.get("firmware_id", 1) is not None else None, "name": "x", "strategy": "all_at_once",
                "stages": [{"percent": 100, "soak_minutes": 0}], **{k: v for k, v in change.items() if k != "firmware_id"}}
        if change.get("is_downgrade"):
            args["firmware_id"] = publish(db, f"9.{uuid.uuid4().int % 90}.0", 900000 + uuid.uuid4().int % 1000, model=m)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=message.split(" ")[0]):
            db.execute("select public.admin_create_rollout(firmware_id => %(firmware_id)s, name => %(name)s,"
                       " strategy => %(strategy)s, stages => %(stages)s, is_downgrade => %(d)s)",
                       {**args, "stages": psycopg.types.json.Jsonb(args["stages"]), "d": bool(change.get("is_downgrade"))})
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="only a published version"):
        rollout(db, draft)


OFFERS_DRIFT = """
select count(*) as n from (
  (select r.id, (r.stages -> r.current_stage ->> 'percent')::int, f.id, f.version from private.offering_rollouts() r
     join firmware_versions f on f.id = r.firmware_version_id and f.status = 'published'
   except
   select rollout_id, stage_percent, firmware_id, version from private.rollout_offers)
  union all
  (select rollout_id, stage_percent, firmware_id, version from private.rollout_offers
   except
   select r.id, (r.stages -> r.current_stage ->> 'percent')::int, f.id, f.version from private.offering_rollouts() r
     join firmware_versions f on f.id = r.firmware_version_id and f.status = 'published')) drift
"""


def test_offers_follow_concurrent_admin_changes(db: psycopg.Connection, stack: Any) -> None:
    """The offers table is rebuilt at commit under a lock: two overlapping transactions that change different
    rollouts leave it equal to a fresh computation, whichever commits first, and neither deadlocks."""
    a_fw = publish(db, "1.1.0", 10100, model=model())
    b_model = model()
    b_fw = publish(db, "1.1.0", 10100, model=b_model)
    a = rollout(db, a_fw)
    b = rollout(db, b_fw, "staged", stages=[{"percent": 10, "soak_minutes": 0}, {"percent": 100, "soak_minutes": 0}])
    assert db.execute(OFFERS_DRIFT).fetchone() == {"n": 0}
    with psycopg.connect(stack.dsn()) as t1, psycopg.connect(stack.dsn()) as t2:
        t1.execute("update firmware_rollouts set status = 'paused' where id = %s", (a,))
        t2.execute("update firmware_rollouts set current_stage = 1 where id = %s", (b,))
        t2.execute("update firmware_versions set changelog = 'late note' where id = %s", (b_fw,))
        t2.commit()
        t1.execute("update firmware_rollouts set status_reason = 'held' where id = %s", (a,))
        t1.commit()
    assert db.execute(OFFERS_DRIFT).fetchone() == {"n": 0}
    rows = db.execute("select rollout_id, stage_percent, changelog from private.rollout_offers"
                      " where rollout_id = any(%s)", ([a, b],)).fetchall()
    assert rows == [{"rollout_id": b, "stage_percent": 100, "changelog": "late note"}]
    # a new version published later supersedes nothing by itself; deprecating the offered one withdraws it
    db.execute("update firmware_versions set status = 'deprecated' where id = %s", (b_fw,))
    assert db.execute("select count(*) as n from private.rollout_offers where rollout_id = %s", (b,)).fetchone() == {"n": 0}
    assert db.execute(OFFERS_DRIFT).fetchone() == {"n": 0}
