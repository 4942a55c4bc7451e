"""The profile trigger, safe profile edits, and the audited admin RPCs."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.support.pgrest import SERVICE, PostgrestSession, user


def test_profile_created_with_defaults(make_user: MakeUser, db: psycopg.Connection) -> None:
    uid = make_user("Fresh@Example.test")
    p = db.execute("select email, display_name, timezone, locale, role, is_active from profiles where id = %s", (uid,)).fetchone()
    assert p == {"email": "Fresh@Example.test", "display_name": None, "timezone": "Asia/Seoul", "locale": "ko",
                 "role": "user", "is_active": True}
    assert db.execute("select weekly_report, monthly_report from notification_settings where user_id = %s",
                      (uid,)).fetchone() == {"weekly_report": False, "monthly_report": True}


def test_profile_uses_valid_signup_metadata_and_ignores_bad(make_user: MakeUser, db: psycopg.Connection) -> None:
    good = make_user(meta={"display_name": "Mina", "timezone": "Europe/Madrid", "locale": "es"})
    bad = make_user(meta={"display_name": "  ", "timezone": "Mars/Olympus", "locale": "xx", "role": "admin"})
    q = "select display_name, timezone, locale, role from profiles where id = %s"
    assert db.execute(q, (good,)).fetchone() == {"display_name": "Mina", "timezone": "Europe/Madrid", "locale": "es", "role": "user"}
    assert db.execute(q, (bad,)).fetchone() == {"display_name": None, "timezone": "Asia/Seoul", "locale": "ko", "role": "user"}


def test_profile_email_follows_auth(make_user: MakeUser, db: psycopg.Connection) -> None:
    uid = make_user()
    db.execute("update auth.users set email = 'new@example.test' where id = %s", (uid,))
    assert db.execute("select email from profiles where id = %s", (uid,)).fetchone() == {"email": "new@example.test"}


def test_deleting_the_auth_user_removes_everything(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    from tests.db.factories import session_item
    uid = make_user()
    dev = api.rpc(user(uid), "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:10]}")
    api.rpc(user(uid), "upload_sessions", device_id=dev["id"], sessions=[session_item()])
    db.execute("delete from auth.users where id = %s", (uid,))
    for table, col in (("profiles", "id"), ("devices", "owner_id"), ("usage_sessions", "user_id"),
                       ("stats_dirty_days", "user_id"), ("notification_settings", "user_id")):
        assert db.execute(f"select count(*) as n from {table} where {col} = %s", (uid,)).fetchone() == {"n": 0}, table


def test_user_edits_safe_columns(api: PostgrestSession, make_user: MakeUser) -> None:
    uid = make_user()
    rows = api.query(user(uid), "update profiles set display_name = 'Jun', timezone = 'Asia/Tokyo', locale = 'ja',"
                                " gender = 'other', birth_date = '1990-05-01' where id = %s returning display_name, timezone",
                     (uid,))
    assert rows == [{"display_name": "Jun", "timezone": "Asia/Tokyo"}]


@pytest.mark.parametrize(("assignment", "message"), [
    ("timezone = 'Not/AZone'", "timezone: must be an IANA time zone name such as Asia/Seoul"),
    ("birth_date = current_date + 1", "birth_date: must not be in the future"),
])
def test_profile_validation_names_the_field(api: PostgrestSession, make_user: MakeUser, assignment: str, message: str) -> None:
    uid = make_user()
    with pytest.raises(psycopg.errors.InvalidParameterValue) as exc:
        api.query(user(uid), f"update profiles set {assignment} where id = %s", (uid,))
    assert exc.value.diag.message_primary == message


def test_admin_promotes_and_demotes_with_audit(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    admin = make_user(admin=True)
    target = make_user()
    assert api.rpc(user(admin), "admin_set_role", user_id=target, role="admin")["role"] == "admin"
    assert api.rpc(user(target), "admin_set_role", user_id=target, role="user")["role"] == "user"
    audit = db.execute("select actor_id, actor_kind, action, details from audit_log where target_id = %s order by id",
                       (str(target),)).fetchall()
    assert audit == [
        {"actor_id": admin, "actor_kind": "admin", "action": "user.role_changed", "details": {"from": "user", "to": "admin"}},
        {"actor_id": target, "actor_kind": "user", "action": "user.role_changed", "details": {"from": "admin", "to": "user"}},
    ]


def test_never_demote_or_deactivate_the_last_admin(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    with db.transaction():
        db.execute("update profiles set role = 'user' where role = 'admin'")
    solo = make_user(admin=True)
    with pytest.raises(psycopg.errors.RaiseException, match="last active admin"):
        api.rpc(user(solo), "admin_set_role", user_id=solo, role="user")
    with pytest.raises(psycopg.errors.RaiseException, match="last active admin"):
        api.rpc(user(solo), "admin_set_active", user_id=solo, is_active=False)
    with pytest.raises(psycopg.errors.RaiseException, match="last active admin"):
        api.rpc(SERVICE, "admin_set_role", user_id=solo, role="user")
    assert db.execute("select role, is_active from profiles where id = %s", (solo,)).fetchone() == {"role": "admin", "is_active": True}


def test_deactivate_and_reactivate(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    admin, target = make_user(admin=True), make_user()
    assert api.rpc(user(admin), "admin_set_active", user_id=target, is_active=False)["is_active"] is False
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="deactivated"):
        api.rpc(user(target), "register_device", serial_number="DTX-DEACT-1")
    assert api.rpc(user(admin), "admin_set_active", user_id=target, is_active=True)["is_active"] is True
    actions = [r["action"] for r in db.execute("select action from audit_log where target_id = %s order by id",
                                               (str(target),)).fetchall()]
    assert actions == ["user.deactivated", "user.reactivated"]


def test_admin_rpc_input_errors(api: PostgrestSession, make_user: MakeUser) -> None:
    admin = user(make_user(admin=True))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="role: must be 'user' or 'admin'"):
        api.rpc(admin, "admin_set_role", user_id=uuid.uuid4(), role="root")
    with pytest.raises(psycopg.errors.NoDataFound, match="user not found"):
        api.rpc(admin, "admin_set_role", user_id=uuid.uuid4(), role="admin")


def test_bootstrap_first_admin_from_service_role_once(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    with db.transaction():
        saved = [r["id"] for r in db.execute("select id from profiles where role = 'admin'").fetchall()]
        db.execute("update profiles set role = 'user' where role = 'admin'")
    try:
        uid = make_user("boss@example.test")
        p = api.rpc(SERVICE, "admin_bootstrap", email="BOSS@example.test")
        assert p["id"] == str(uid) and p["role"] == "admin"
        with pytest.raises(psycopg.errors.RaiseException, match="already exists"):
            api.rpc(SERVICE, "admin_bootstrap", email="boss@example.test")
        assert db.execute("select actor_kind from audit_log where action = 'admin.bootstrap' and target_id = %s",
                          (str(uid),)).fetchone() == {"actor_kind": "service"}
    finally:
        db.execute("update profiles set role = 'admin' where id = any(%s)", (saved,))


def test_admin_sets_device_beta_and_tags(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    owner = make_user()
    dev = api.rpc(user(owner), "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:10]}")
    admin = user(make_user(admin=True))
    d = api.rpc(admin, "admin_update_device", device_id=dev["id"], is_beta=True, tags=["qa", "factory-7"])
    assert d["is_beta"] is True and d["tags"] == ["qa", "factory-7"]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="tags:"):
        api.rpc(admin, "admin_update_device", device_id=dev["id"], tags=["Bad Tag"])


def test_announcements_are_audited(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    aid = make_user(admin=True)
    rows = api.query(user(aid), "insert into announcements (title, body, is_published) values ('Maintenance', 'Sunday', true)"
                                " returning id, published_at")
    assert rows[0]["published_at"] is not None
    audit = db.execute("select actor_id, action from audit_log where target_id = %s", (str(rows[0]["id"]),)).fetchall()
    assert audit == [{"actor_id": aid, "action": "announcement.created"}]
