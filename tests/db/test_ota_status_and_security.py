"""ota_report_status transitions and idempotency, confirmation by check-in, the registry's immutability, and
who may touch firmware binaries."""

from __future__ import annotations

import hashlib
import uuid

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.db.ota_support import check, fleet, publish, report, rollout
from tests.support.pgrest import ANON, PostgrestSession, user


def model() -> str:
    return f"SIM{uuid.uuid4().hex[:8]}"


def history(db: psycopg.Connection, device: uuid.UUID) -> list[str]:
    return [r["phase"] for r in db.execute("select phase from firmware_update_history where device_id = %s order by id",
                                           (device,)).fetchall()]


def test_full_update_is_recorded_and_updates_the_device(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    rid = str(rollout(db, fw))
    check(su_api, d, "1.0.0")
    for phase in ("downloading", "transferring", "transferring", "installing", "succeeded", "succeeded"):
        st = report(su_api, d, rid, phase)
        assert st["phase"] == phase
    assert history(db, d.id) == ["offered", "downloading", "transferring", "installing", "succeeded"]
    assert db.execute("select firmware_version from devices where id = %s", (d.id,)).fetchone() == {"firmware_version": "1.1.0"}
    st = db.execute("select current_version, current_version_code, attempts from device_firmware_status where device_id = %s",
                    (d.id,)).fetchone()
    assert st == {"current_version": "1.1.0", "current_version_code": 10100, "attempts": 1}
    # the next check-in with the new version confirms it, and offers nothing more
    assert check(su_api, d, "1.1.0")["update_available"] is False
    assert db.execute("select verified_at is not null as v from device_firmware_status where device_id = %s",
                      (d.id,)).fetchone() == {"v": True}


def test_failure_then_retry(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    rid = str(rollout(db, fw))
    check(su_api, d, "1.0.0")
    report(su_api, d, rid, "transferring")
    st = report(su_api, d, rid, "failed", error_code=7)
    assert (st["phase"], st["error_code"]) == ("failed", 7)
    assert check(su_api, d, "1.0.0")["update_available"] is True  # offered again
    st = report(su_api, d, rid, "downloading")
    assert (st["phase"], st["attempts"], st["error_code"]) == ("downloading", 2, None)


@pytest.mark.parametrize(("steps", "bad", "message"), [
    ([], "installing_later", "phase: must be one of"),
    (["downloading", "transferring", "installing", "succeeded"], "downloading", "cannot go from succeeded to downloading"),
    (["downloading"], "installing", "cannot go from downloading to installing"),
])
def test_invalid_transitions_are_refused(db: psycopg.Connection, su_api: PostgrestSession, steps: list[str], bad: str,
                                         message: str) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    rid = str(rollout(db, fw))
    check(su_api, d, "1.0.0")
    for s in steps:
        report(su_api, d, rid, s)
    before = history(db, d.id)
    with pytest.raises((psycopg.errors.RaiseException, psycopg.errors.InvalidParameterValue), match=message):
        report(su_api, d, rid, bad)
    assert history(db, d.id) == before


def test_failed_needs_an_error_code_and_reports_need_an_offer(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    rid = str(rollout(db, fw))
    with pytest.raises(psycopg.errors.RaiseException, match="call ota_check_update first"):
        report(su_api, d, rid, "downloading")
    check(su_api, d, "1.0.0")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="error_code: is required when phase is failed"):
        report(su_api, d, rid, "failed")
    with pytest.raises(psycopg.errors.RaiseException, match="no update of this rollout"):
        report(su_api, d, str(uuid.uuid4()), "downloading")


def test_only_the_owner_checks_and_reports(db: psycopg.Connection, su_api: PostgrestSession, api: PostgrestSession,
                                           make_user: MakeUser) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    rid = str(rollout(db, fw))
    stranger = user(make_user())
    with pytest.raises(psycopg.errors.NoDataFound):
        api.rpc(stranger, "ota_check_update", device_id=d.id, current_version="1.0.0")
    check(su_api, d, "1.0.0")
    with pytest.raises(psycopg.errors.NoDataFound):
        api.rpc(stranger, "ota_report_status", device_id=d.id, rollout_id=rid, phase="failed", error_code=1)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.rpc(ANON, "ota_check_update", device_id=d.id, current_version="1.0.0")
    assert history(db, d.id) == ["offered"]
    assert api.query(stranger, "select * from firmware_update_history where device_id = %s", (d.id,)) == []
    assert api.query(stranger, "select * from device_firmware_status where device_id = %s", (d.id,)) == []


def test_check_input_is_validated(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    d = fleet(db, 1, model=model())[0]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="current_version: must be a semantic version"):
        check(su_api, d, "v1")


def test_published_binary_size_and_hash_never_change(db: psycopg.Connection) -> None:
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    for assignment in ("sha256 = repeat('c', 64)", "size_bytes = 8192", "storage_path = 'x/y.bin'", "version = '1.1.1'"):
        with pytest.raises(psycopg.errors.RaiseException, match="never change"):
            db.execute(f"update firmware_versions set {assignment} where id = %s", (fw,))
    with pytest.raises(psycopg.errors.RaiseException, match="only draft versions can be deleted"):
        db.execute("delete from firmware_versions where id = %s", (fw,))
    with pytest.raises(psycopg.errors.RaiseException, match="cannot return to draft"):
        db.execute("update firmware_versions set status = 'draft', published_at = null where id = %s", (fw,))


def test_register_firmware_rpc(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    admin = user(make_user(admin=True))
    m = model()
    sha = hashlib.sha256(b"x").hexdigest()
    f = api.rpc(admin, "admin_register_firmware", version="2.0.0", version_code=20000, storage_path=f"{m}/2.0.0.bin",
                size_bytes=100_000, sha256=sha, model=m, changelog="Faster", hardware_revisions=["rev-c"])
    assert (f["status"], f["version_code"], f["published_at"]) == ("draft", 20000, None)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="version_code: must be greater"):
        api.rpc(admin, "admin_register_firmware", version="1.9.0", version_code=19000, storage_path=f"{m}/1.9.0.bin",
                size_bytes=100_000, sha256=sha, model=m)
    with pytest.raises(psycopg.errors.UniqueViolation, match="already registered"):
        api.rpc(admin, "admin_register_firmware", version="2.0.0", version_code=20001, storage_path=f"{m}/b.bin",
                size_bytes=100_000, sha256=sha, model=m)
    for field, args in (("sha256", {"sha256": "XYZ"}), ("size_bytes", {"size_bytes": 3_000_000}),
                        ("storage_path", {"storage_path": "../etc/passwd.bin"}), ("version", {"version": "two"})):
        base = {"version": "3.0.0", "version_code": 30000, "storage_path": f"{m}/3.bin", "size_bytes": 100_000,
                "sha256": sha, "model": m, **args}
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"{field}:"):
            api.rpc(admin, "admin_register_firmware", **base)
    published = api.rpc(admin, "admin_set_firmware_status", firmware_id=f["id"], status="published")
    assert published["published_at"] is not None
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.rpc(user(make_user()), "admin_register_firmware", version="4.0.0", version_code=40000,
                storage_path=f"{m}/4.bin", size_bytes=100_000, sha256=sha, model=m)
    actions = [r["action"] for r in db.execute("select action from audit_log where target_id = %s order by id",
                                               (f["id"],)).fetchall()]
    assert actions == ["firmware.registered", "firmware.published"]


def storage_insert(api: PostgrestSession, caller: object, name: str) -> None:
    api.query(caller, "insert into storage.objects (bucket_id, name, owner_id) values ('firmware-binaries', %s, %s)",  # type: ignore[arg-type]
              (name, "x"))


def test_firmware_binaries_bucket_policies(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    m = model()
    admin, someone = user(make_user(admin=True)), user(make_user())
    published = f"{m}/1.1.0/dualtetrax-1.1.0.bin"
    draft = f"{m}/1.2.0/dualtetrax-1.2.0.bin"
    # admins upload binaries while versions are drafts
    storage_insert(api, admin, published)
    storage_insert(api, admin, draft)
    publish(db, "1.1.0", 10100, model=m)
    publish(db, "1.2.0", 10200, model=m, status="draft")
    # users read published binaries only
    rows = api.query(someone, "select name from storage.objects where bucket_id = 'firmware-binaries' and name like %s",
                     (f"{m}/%",))
    assert [r["name"] for r in rows] == [published]
    assert len(api.query(admin, "select name from storage.objects where name like %s", (f"{m}/%",))) == 2
    # users never write; nobody overwrites or deletes a published binary
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        storage_insert(api, someone, f"{m}/evil.bin")
    assert api.query(someone, "update storage.objects set metadata = '{}' where name = %s returning 1", (published,)) == []
    assert api.query(admin, "update storage.objects set metadata = '{}' where name = %s returning 1", (published,)) == []
    assert len(api.query(admin, "update storage.objects set metadata = '{}' where name = %s returning 1", (draft,))) == 1
    # anon has Supabase's table grants on storage.objects, but no policy lets it see anything
    assert api.query(ANON, "select name from storage.objects where bucket_id = 'firmware-binaries' and name = %s",
                     (published,)) == []


def due_evaluations(db: psycopg.Connection) -> int:
    """Rollout evaluations queued and due now."""
    row = db.execute("select count(*) as n from jobs where kind = 'rollouts.evaluate' and status = 'queued'"
                     " and run_after <= now()").fetchone()
    return row["n"] if row else -1

def test_a_change_enqueues_an_evaluation_unless_a_due_one_is_queued(db: psycopg.Connection) -> None:
    """An evaluation waiting out its retry back-off does not stand in for a prompt one; a due one does.
    (In a transaction that is rolled back: the jobs table is shared with the other tests.)"""
    fw = publish(db, "1.1.0", 10100, model=model())
    rid = rollout(db, fw)

    with db.transaction(force_rollback=True):
        db.execute("update jobs set run_after = now() + interval '5 minutes', attempts = 1"
                   " where kind = 'rollouts.evaluate' and status = 'queued'")
        backing_off = db.execute("select count(*) as n from jobs where kind = 'rollouts.evaluate'"
                                 " and status = 'queued'").fetchone()
        assert due_evaluations(db) == 0
        db.execute("update firmware_rollouts set status = 'paused', status_reason = 'test' where id = %s", (rid,))
        assert due_evaluations(db) == 1, "a change while the only queued evaluation backs off must enqueue one that is due"
        db.execute("update firmware_rollouts set status = 'active', status_reason = null where id = %s", (rid,))
        assert due_evaluations(db) == 1, "a due queued evaluation sees the second change; no second job"
        after = db.execute("select count(*) as n from jobs where kind = 'rollouts.evaluate'"
                           " and status = 'queued'").fetchone()
        assert backing_off is not None and after is not None and after["n"] == backing_off["n"] + 1


def test_only_outcomes_enqueue_an_evaluation(db: psycopg.Connection, su_api: PostgrestSession) -> None:
    """Offers and progress reports change no count the evaluation decides on; success and failure do."""
    m = model()
    fw = publish(db, "1.1.0", 10100, model=m)
    d = fleet(db, 1, model=m)[0]
    rid = str(rollout(db, fw))

    def clear() -> None:  # as if the worker had run them
        db.execute("update jobs set status = 'done', finished_at = now()"
                   " where kind = 'rollouts.evaluate' and status = 'queued'")

    clear()
    check(su_api, d, "1.0.0")
    for phase in ("downloading", "transferring", "installing"):
        report(su_api, d, rid, phase)
    assert due_evaluations(db) == 0, "an offer or a progress report enqueued an evaluation"
    report(su_api, d, rid, "failed", error_code=3)
    assert due_evaluations(db) == 1
    clear()
    for phase in ("downloading", "transferring", "installing"):
        report(su_api, d, rid, phase)
    assert due_evaluations(db) == 0
    report(su_api, d, rid, "succeeded")
    assert due_evaluations(db) == 1


def test_device_rpcs_plan_keyed_lookups_whatever_the_table_size(db: psycopg.Connection) -> None:
    """Guard for the 20261122210000 migration: a `create or replace` that forgets the SET clause would bring
    back cached sequential-scan plans on connections that planned while device_firmware_status was small."""
    rows = db.execute("select p.proname, p.proconfig from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
                      " where n.nspname = 'public' and p.proname in ('ota_check_update', 'ota_report_status')"
                      " order by 1").fetchall()
    assert [(r["proname"], "enable_seqscan=off" in (r["proconfig"] or [])) for r in rows] == [
        ("ota_check_update", True), ("ota_report_status", True)]

