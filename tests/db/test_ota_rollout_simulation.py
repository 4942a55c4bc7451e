"""A multi-week rollout with a controllable clock and synthetic device reports: a good build goes 1 -> 100 %
by itself; a bad build pauses in its first stage and never reaches the second; timeouts count as failures;
resuming after a fix works."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.db.ota_support import Device, check, evaluate, fleet, publish, report, rollout, stable_fraction
from tests.support.pgrest import PostgrestSession

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
STAGES = [{"percent": 2, "soak_minutes": 1440}, {"percent": 10, "soak_minutes": 2880},
          {"percent": 50, "soak_minutes": 2880}, {"percent": 100, "soak_minutes": 0}]
Outcome = Callable[[Device], str]  # "ok", "fail" or "stall"


def state(db: psycopg.Connection, rid: uuid.UUID) -> dict[str, Any]:
    row = db.execute("select status, current_stage, status_reason from firmware_rollouts where id = %s", (rid,)).fetchone()
    assert row is not None
    return dict(row)


def simulate(db: psycopg.Connection, su_api: PostgrestSession, devices: list[Device], rid: uuid.UUID,
             outcome: Outcome, start: datetime, days: int, step: timedelta = timedelta(hours=6)) -> list[tuple[datetime, int, str]]:
    """Every step, devices not yet updated check in; offered devices update per `outcome`; then the worker
    evaluates. Returns the (time, stage, status) trajectory."""
    version = {d.id: "1.0.0" for d in devices}
    stalled: set[uuid.UUID] = set()
    trajectory = []
    at = start
    while at < start + timedelta(days=days):
        for d in devices:
            if version[d.id] != "1.0.0" or d.id in stalled:
                continue
            ans = check(su_api, d, version[d.id], at)
            if not ans["update_available"]:
                continue
            r = ans["rollout_id"]
            report(su_api, d, r, "downloading", at)
            report(su_api, d, r, "transferring", at + timedelta(minutes=1))
            result = outcome(d)
            if result == "stall":
                stalled.add(d.id)  # never reports again
            elif result == "fail":
                report(su_api, d, r, "failed", at + timedelta(minutes=2), error_code=4)
            else:
                report(su_api, d, r, "installing", at + timedelta(minutes=2))
                report(su_api, d, r, "succeeded", at + timedelta(minutes=3))
                version[d.id] = ans["version"]
        at += step
        evaluate(db, at)
        s = state(db, rid)
        trajectory.append((at, s["current_stage"], s["status"]))
        if s["status"] in ("completed", "paused"):
            break
    return trajectory


def test_good_build_rolls_out_to_everyone_by_itself(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = f"SIM{uuid.uuid4().hex[:8]}"
    devices = fleet(db, 400, owners=20, model=m)
    fw = publish(db, "1.1.0", 10100, model=m)
    rid = rollout(db, fw, strategy="staged", stages=STAGES, min_sample_size=2, success_threshold=95,
                  failure_threshold=10, at=T0)
    traj = simulate(db, su_api, devices, rid, lambda d: "ok", T0, days=21, step=timedelta(hours=12))
    stages_seen = [s for _, s, _ in traj]
    assert stages_seen == sorted(stages_seen) and set(stages_seen) >= {0, 1, 2, 3}
    assert traj[-1][2] == "completed"
    assert_counts_exact(db, rid)
    # soak times were respected: stage 1 began no earlier than a day after the start
    first_stage1 = next(t for t, s, _ in traj if s == 1)
    assert first_stage1 >= T0 + timedelta(days=1)
    on_new = db.execute("select count(*) as n from devices where model = %s and firmware_version = '1.1.0'", (m,)).fetchone()
    assert on_new == {"n": 400}
    actions = [r["action"] for r in db.execute("select action from audit_log where target_id = %s order by id",
                                               (str(rid),)).fetchall()]
    assert actions == ["rollout.created", "rollout.start", "rollout.advanced", "rollout.advanced", "rollout.advanced",
                       "rollout.completed"]


def assert_counts_exact(db: psycopg.Connection, rid: uuid.UUID) -> None:
    """The folded per-stage, per-phase counters equal a direct count of the status rows."""
    db.execute("select private.fold_rollout_counts()")
    counted = {(r["stage"], r["phase"]): r["n"] for r in db.execute(
        "select stage, phase, count(*) as n from device_firmware_status where rollout_id = %s group by 1, 2",
        (rid,)).fetchall()}
    folded = {(r["stage"], r["phase"]): r["devices"] for r in db.execute(
        "select stage, phase, devices from private.rollout_phase_counts where rollout_id = %s and devices <> 0",
        (rid,)).fetchall()}
    assert folded == counted


def bad_build(d: Device) -> str:
    return "fail" if stable_fraction(str(d.id)) < 0.3 else "ok"


def test_bad_build_pauses_itself_in_the_first_stage(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = f"SIM{uuid.uuid4().hex[:8]}"
    devices = fleet(db, 500, owners=25, model=m)
    admin = db.execute("select id from profiles where role = 'admin' and is_active limit 1").fetchone()
    fw = publish(db, "1.1.0", 10100, model=m)
    stages = [{"percent": 8, "soak_minutes": 1440}, *STAGES[1:]]
    rid = rollout(db, fw, strategy="staged", stages=stages, min_sample_size=10, failure_threshold=10, at=T0)
    traj = simulate(db, su_api, devices, rid, bad_build, T0, days=14, step=timedelta(hours=12))
    assert traj[-1][1:] == (0, "paused")
    assert all(stage == 0 for _, stage, _ in traj)
    assert_counts_exact(db, rid)
    reason = state(db, rid)["status_reason"]
    assert reason.startswith("paused automatically:")
    offered = db.execute("select count(*) as n, max(stage) as max_stage from device_firmware_status"
                         " where rollout_id = %s", (rid,)).fetchone()
    assert offered is not None and offered["max_stage"] == 0 and offered["n"] <= 70  # about 8 % of 500
    if admin is not None:
        n = db.execute("select count(*) as n from notifications where user_id = %s and kind = 'rollout_paused'"
                       " and data ->> 'rollout_id' = %s", (admin["id"], str(rid))).fetchone()
        assert n == {"n": 1}
    # paused: nothing more is offered
    idle = {r["device_id"] for r in db.execute(
        "select device_id from device_firmware_status s join devices d on d.id = s.device_id"
        " where d.model = %s and s.phase = 'idle'", (m,)).fetchall()}
    fresh = next(d for d in devices if d.id in idle)
    assert check(su_api, fresh, "1.0.0", traj[-1][0])["update_available"] is False


def test_timeouts_count_as_failures(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = f"SIM{uuid.uuid4().hex[:8]}"
    devices = fleet(db, 200, owners=10, model=m)
    fw = publish(db, "1.1.0", 10100, model=m)
    rid = rollout(db, fw, strategy="all_at_once", min_sample_size=10, failure_threshold=20,
                  in_progress_timeout_minutes=60, at=T0)
    traj = simulate(db, su_api, devices, rid, lambda d: "stall" if stable_fraction("s" + str(d.id)) < 0.4 else "ok",
                    T0, days=3, step=timedelta(hours=2))
    assert traj[-1][2] == "paused"
    timed_out = db.execute("select count(*) as n from device_firmware_status where rollout_id = %s and phase = 'timed_out'",
                           (rid,)).fetchone()
    assert timed_out is not None and timed_out["n"] > 40
    hist = db.execute("select count(*) as n from firmware_update_history where rollout_id = %s and phase = 'timed_out'",
                      (rid,)).fetchone()
    assert hist == timed_out
    assert_counts_exact(db, rid)


def test_resume_after_a_fix(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = f"SIM{uuid.uuid4().hex[:8]}"
    devices = fleet(db, 400, owners=20, model=m)
    fw = publish(db, "1.1.0", 10100, model=m)
    stages = [{"percent": 10, "soak_minutes": 720}, {"percent": 100, "soak_minutes": 0}]
    rid = rollout(db, fw, strategy="staged", stages=stages, min_sample_size=10, failure_threshold=10, at=T0)
    traj = simulate(db, su_api, devices, rid, bad_build, T0, days=5)
    assert traj[-1][1:] == (0, "paused")
    at = traj[-1][0] + timedelta(hours=1)
    with db.transaction():
        db.execute("select set_config('dtx.clock', %s, true)", (at.isoformat(),))
        db.execute("select public.admin_resume_rollout(%s, 'phone app bug fixed')", (rid,))
    # the fix: failed devices retry and succeed, everyone else behaves
    failed = [r["device_id"] for r in db.execute(
        "select device_id from device_firmware_status where rollout_id = %s and phase = 'failed'", (rid,)).fetchall()]
    owners = {d.id: d for d in devices}
    for dev_id in failed:
        d = owners[dev_id]
        ans = check(su_api, d, "1.0.0", at)
        assert ans["update_available"] and ans["rollout_id"] == str(rid)
        for i, phase in enumerate(("downloading", "transferring", "installing", "succeeded")):
            report(su_api, d, str(rid), phase, at + timedelta(minutes=i))
    traj2 = simulate(db, su_api, devices, rid, lambda d: "ok", at, days=5)
    assert traj2[-1][2] == "completed"
    assert_counts_exact(db, rid)


def test_each_stage_decides_on_its_own_devices(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    """A stage advances on the reports of the devices offered at that stage, not on the earlier stages' (which
    would let every stage after a good first one advance before any of its devices reported); and a failure
    wave in the current stage pauses the rollout even when the rollout's overall rate is still fine."""
    m = f"SIM{uuid.uuid4().hex[:8]}"
    fw = publish(db, "1.1.0", 10100, model=m)
    devices = fleet(db, 60, model=m)
    stages = [{"percent": 40, "soak_minutes": 0}, {"percent": 70, "soak_minutes": 0},
              {"percent": 100, "soak_minutes": 0}]
    rid = rollout(db, fw, strategy="staged", stages=stages, min_sample_size=3, success_threshold=90,
                  failure_threshold=50, at=T0)
    buckets = {r["d"]: r["b"] for r in db.execute(
        "select d, private.rollout_bucket(%s, d) as b from unnest(%s::uuid[]) d", (rid, [d.id for d in devices]))}
    first = [d for d in devices if buckets[d.id] < 4000]
    second = [d for d in devices if 4000 <= buckets[d.id] < 7000]
    assert len(first) >= 10 and len(second) >= 6, "the fleet's hash spread (fixed by the ids) is too thin"
    at = T0 + timedelta(minutes=1)
    for d in first:
        assert check(su_api, d, "1.0.0", at)["update_available"]
        for phase in ("downloading", "transferring", "installing", "succeeded"):
            report(su_api, d, str(rid), phase, at)
    evaluate(db, at)
    assert state(db, rid)["current_stage"] == 1
    # no device of stage 2 has reported: the earlier stage's 100 % success does not carry it forward
    for _ in range(3):
        evaluate(db, at + timedelta(minutes=5))
    assert (state(db, rid)["status"], state(db, rid)["current_stage"]) == ("active", 1)
    # stage 2's devices: 2 of 3 executed fail (67 % > 50 %), while the rollout overall is at 2 of len(first)+3
    at += timedelta(minutes=10)
    for i, d in enumerate(second[:3]):
        assert check(su_api, d, "1.0.0", at)["update_available"]
        report(su_api, d, str(rid), "transferring", at)
        if i < 2:
            report(su_api, d, str(rid), "failed", at, error_code=3)
        else:
            report(su_api, d, str(rid), "succeeded", at)
    evaluate(db, at)
    paused = state(db, rid)
    assert paused["status"] == "paused" and "66.7% of 3 executed updates failed" in paused["status_reason"]
    assert_counts_exact(db, rid)
