"""Privilege escalation attempts: each must fail and leave the data as it was."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.db.conftest import Owner
from tests.db.factories import session_item
from tests.support.pgrest import ANON, PostgrestSession, user


@pytest.mark.parametrize(("column", "value"), [("role", "admin"), ("is_active", True), ("email", "x@evil.test"),
                                               ("id", str(uuid.uuid4())), ("created_at", "2000-01-01")])
def test_user_cannot_change_own_privileged_profile_columns(api: PostgrestSession, owner: Owner, db: psycopg.Connection,
                                                           column: str, value: Any) -> None:
    before = db.execute("select * from profiles where id = %s", (owner.id,)).fetchone()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.query(owner.caller, f"update profiles set {column} = %s where id = %s", (value, owner.id))
    assert db.execute("select * from profiles where id = %s", (owner.id,)).fetchone() == before


@pytest.mark.parametrize(("column", "value"), [
    ("owner_id", None), ("total_sessions", 999), ("last_synced_at", "2030-01-01"), ("is_beta", True),
    ("tags", ["beta"]), ("serial_number", "DTX-STOLEN-1"), ("registered_at", "2000-01-01")])
def test_user_cannot_change_server_maintained_device_columns(api: PostgrestSession, owner: Owner, make_user: MakeUser,
                                                             db: psycopg.Connection, column: str, value: Any) -> None:
    if column == "owner_id":
        value = make_user()
    before = db.execute("select * from devices where id = %s", (owner.device_id,)).fetchone()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.query(owner.caller, f"update devices set {column} = %s where id = %s", (value, owner.device_id))
    assert db.execute("select * from devices where id = %s", (owner.device_id,)).fetchone() == before


def test_user_cannot_touch_another_users_device(api: PostgrestSession, owner: Owner, make_user: MakeUser,
                                                db: psycopg.Connection) -> None:
    thief = user(make_user())
    assert api.query(thief, "update devices set nickname = 'mine' where id = %s returning id", (owner.device_id,)) == []
    assert api.query(thief, "select * from devices where id = %s", (owner.device_id,)) == []
    assert db.execute("select nickname from devices where id = %s", (owner.device_id,)).fetchone() == {"nickname": None}


def test_registering_someone_elses_serial_is_refused_without_revealing_the_owner(
        api: PostgrestSession, owner: Owner, make_user: MakeUser, db: psycopg.Connection) -> None:
    serial = db.execute("select serial_number from devices where id = %s", (owner.device_id,)).fetchone()
    assert serial is not None
    thief = user(make_user())
    with pytest.raises(psycopg.errors.UniqueViolation) as exc:
        api.rpc(thief, "register_device", serial_number=serial["serial_number"])
    assert str(owner.id) not in str(exc.value) and "@" not in str(exc.value)
    assert db.execute("select owner_id from devices where id = %s", (owner.device_id,)).fetchone() == {"owner_id": owner.id}


def test_user_cannot_call_admin_rpcs(api: PostgrestSession, owner: Owner, make_user: MakeUser, db: psycopg.Connection) -> None:
    victim = make_user()
    for fn, args in (("admin_set_role", {"user_id": owner.id, "role": "admin"}),
                     ("admin_set_active", {"user_id": victim, "is_active": False}),
                     ("admin_update_device", {"device_id": owner.device_id, "is_beta": True})):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            api.rpc(owner.caller, fn, **args)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.rpc(owner.caller, "admin_bootstrap", email="anyone@example.test")
    row = db.execute("select role, is_active from profiles where id = %s", (owner.id,)).fetchone()
    assert row == {"role": "user", "is_active": True}


def test_admin_bootstrap_is_refused_to_users_even_with_no_admin(api: PostgrestSession, owner: Owner) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.rpc(owner.caller, "admin_bootstrap", email="x@example.test")


def test_forged_role_claim_without_db_role_gains_nothing(api: PostgrestSession, owner: Owner) -> None:
    """A JWT whose `role` claim says service_role but whose DB role is authenticated is still a user."""
    forged = user(owner.id)
    forged = type(forged)("authenticated", owner.id, None, {"app_metadata": {"role": "admin"}})
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.rpc(forged, "admin_set_role", user_id=owner.id, role="admin")


def test_users_cannot_write_sessions_or_statistics_directly(api: PostgrestSession, owner: Owner) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.query(owner.caller, "insert into usage_sessions (id, device_id, user_id, shot_type, device_mode, level,"
                                " start_time) values (gen_random_uuid(), %s, %s, 0, 1, 1, now())", (owner.device_id, owner.id))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.query(owner.caller, "insert into daily_statistics (user_id, device_id, stat_date) values (%s, %s, '2026-01-01')",
                  (owner.id, owner.device_id))


def test_user_cannot_insert_goal_for_someone_else(api: PostgrestSession, owner: Owner, make_user: MakeUser) -> None:
    victim = make_user()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.query(owner.caller, "insert into goals (user_id, goal_type, target_minutes, start_date)"
                                " values (%s, 'weekly', 10, '2026-01-05')", (victim,))


def test_user_cannot_reassign_own_goal(api: PostgrestSession, owner: Owner, make_user: MakeUser) -> None:
    api.query(owner.caller, "insert into goals (goal_type, target_minutes, start_date) values ('weekly', 10, '2026-01-05')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.query(owner.caller, "update goals set user_id = %s", (make_user(),))


def test_user_cannot_forge_notifications_or_audit_rows(api: PostgrestSession, owner: Owner) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.query(owner.caller, "insert into notifications (user_id, kind, title) values (%s, 'system', 'x')", (owner.id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.query(owner.caller, "update notifications set title = 'x' where user_id = %s", (owner.id,))


def test_audit_log_is_append_only_even_for_superuser(db: psycopg.Connection) -> None:
    db.execute("select private.write_audit('test.probe', 'system', null, '{}')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute("update audit_log set action = 'x.y' where action = 'test.probe'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute("delete from audit_log where action = 'test.probe'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute("truncate audit_log")


def test_security_definer_functions_pin_search_path_and_are_not_open_to_anon(db: psycopg.Connection) -> None:
    rows = db.execute(
        "select n.nspname || '.' || p.proname as fn, p.proconfig, has_function_privilege('anon', p.oid, 'execute') as anon,"
        " has_function_privilege('public', p.oid, 'execute') as pub"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where p.prosecdef and n.nspname in ('public', 'private')").fetchall()
    assert len(rows) >= 15
    unpinned = [r["fn"] for r in rows if not any(c.startswith("search_path=") for c in (r["proconfig"] or []))]
    assert unpinned == []
    open_to_anon = [r["fn"] for r in rows if r["anon"] or r["pub"]]
    assert open_to_anon == []


def test_every_public_function_revokes_public_execute(db: psycopg.Connection) -> None:
    rows = db.execute(
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and has_function_privilege('anon', p.oid, 'execute')").fetchall()
    assert rows == []


def test_anon_can_do_nothing(api: PostgrestSession, owner: Owner) -> None:
    for fn, args in (("register_device", {"serial_number": "DTX-ANON-1"}),
                     ("upload_sessions", {"device_id": owner.device_id, "sessions": [session_item()]}),
                     ("offer_device_transfer", {"device_id": owner.device_id, "to_email": "a@b.c"})):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            api.rpc(ANON, fn, **args)
