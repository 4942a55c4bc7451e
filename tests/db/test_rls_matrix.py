"""The RLS matrix: every table x {anon, owner, other user, admin, service_role} x {select, insert, update,
delete}, each cell's expected outcome written down. Every probe runs in its own rolled-back transaction.

Outcomes: an integer is the number of rows the statement sees or changes (0 = silently filtered by RLS);
"denied" means the statement fails with a permission/RLS error (SQLSTATE 42501); "ok" an insert that succeeds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.db.factories import session_item
from tests.support.pgrest import ANON, SERVICE, Caller, PostgrestSession, user

ROLES = ("anon", "owner", "other", "admin", "service")
D = "denied"


@dataclass
class World:
    owner: uuid.UUID
    other: uuid.UUID
    admin: uuid.UUID
    device: uuid.UUID
    session: uuid.UUID
    transfer: uuid.UUID
    goal: uuid.UUID
    notification: uuid.UUID
    draft: uuid.UUID
    published: uuid.UUID
    audit_id: int
    fw_published: uuid.UUID
    fw_draft: uuid.UUID
    rollout: uuid.UUID
    report_request: uuid.UUID | None = None

    def caller(self, role: str) -> Caller:
        return {"anon": ANON, "service": SERVICE, "owner": user(self.owner), "other": user(self.other),
                "admin": user(self.admin)}[role]


@pytest.fixture(scope="module")
def world(api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> World:
    owner, other, admin = make_user(), make_user(), make_user(admin=True)
    recipient = make_user()
    dev = api.rpc(user(owner), "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:10]}")
    item = session_item()
    api.rpc(user(owner), "upload_sessions", device_id=dev["id"], sessions=[item])
    rec_email = db.execute("select email from profiles where id = %s", (recipient,)).fetchone()
    assert rec_email is not None
    t = api.rpc(user(owner), "offer_device_transfer", device_id=dev["id"], to_email=rec_email["email"])
    goal = db.execute("insert into goals (user_id, goal_type, target_minutes, start_date) values (%s, 'weekly', 60,"
                      " '2026-03-02') returning id", (owner,)).fetchone()
    db.execute("insert into skin_profiles (user_id, skin_type) values (%s, 'dry')", (owner,))
    notif = db.execute("insert into notifications (user_id, kind, title) values (%s, 'system', 'hello') returning id",
                       (owner,)).fetchone()
    db.execute("insert into daily_statistics (user_id, device_id, stat_date) values (%s, %s, '2026-03-14')",
               (owner, dev["id"]))
    draft = db.execute("insert into announcements (title, body) values ('draft', 'x') returning id").fetchone()
    published = db.execute("insert into announcements (title, body, is_published) values ('pub', 'x', true)"
                           " returning id").fetchone()
    db.execute("update profiles set is_active = false where id = %s", (recipient,))
    db.execute("update profiles set is_active = true where id = %s", (recipient,))
    audit = db.execute("select max(id) as id from audit_log").fetchone()
    assert goal and notif and draft and published and audit
    w = World(owner, other, admin, uuid.UUID(dev["id"]), uuid.UUID(item["id"]), uuid.UUID(t["id"]),
              goal["id"], notif["id"], draft["id"], published["id"], audit["id"],
              *ota_world(db, uuid.UUID(dev["id"]), owner))
    w.report_request = uuid.UUID(api.rpc(user(owner), "request_report", kind="monthly", period_start="2026-02-01")["id"])
    db.execute("delete from jobs where dedupe_key = %s", (f"reports.render:{w.report_request}",))  # no worker here
    return w


def ota_world(db: psycopg.Connection, device: uuid.UUID, owner: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A published and a draft firmware of a private model, a live rollout, and the device's status/history."""
    model = f"RLS{uuid.uuid4().hex[:8]}"
    db.execute("update devices set model = %s where id = %s", (model, device))
    ids = []
    for v, code in (("1.1.0", 10100), ("1.2.0", 10200)):
        row = db.execute("insert into firmware_versions (version, version_code, model, storage_path, size_bytes, sha256)"
                         " values (%s, %s, %s, %s, 4096, repeat('a', 64)) returning id",
                         (v, code, model, f"{model}/{v}.bin")).fetchone()
        assert row is not None
        ids.append(row["id"])
    db.execute("update firmware_versions set status = 'published' where id = %s", (ids[0],))
    r = db.execute("select (public.admin_create_rollout(%s, 'rls', 'all_at_once')).id", (ids[0],)).fetchone()
    assert r is not None
    db.execute("select public.admin_start_rollout(%s)", (r["id"],))
    with db.transaction():
        db.execute("select set_config('role', 'authenticated', true),"
                   " set_config('request.jwt.claims', %s, true)", (f'{{"sub": "{owner}", "role": "authenticated"}}',))
        db.execute("select public.ota_check_update(%s, '1.0.0')", (device,))
    return ids[0], ids[1], r["id"]


@dataclass(frozen=True)
class Probe:
    select: str
    insert: str
    update: str
    delete: str
    before_insert: str = ""  # run as postgres inside the insert probe's transaction, before the role switch


P = {
    "profiles": Probe(
        select="select 1 from profiles where id = {owner}",
        insert="insert into profiles (id) values ({other})",
        update="update profiles set display_name = 'x' where id = {owner} returning 1",
        delete="delete from profiles where id = {owner} returning 1"),
    "audit_log": Probe(
        select="select 1 from audit_log where id = {audit_id}",
        insert="insert into audit_log (actor_kind, action, target_type) values ('system', 'x.y', 'system')",
        update="update audit_log set details = '{{}}' where id = {audit_id} returning 1",
        delete="delete from audit_log where id = {audit_id} returning 1"),
    "devices": Probe(
        select="select 1 from devices where id = {device}",
        insert="insert into devices (owner_id, serial_number) values ({owner}, 'DTX-NEW-' || gen_random_uuid())",
        update="update devices set nickname = 'mine' where id = {device} returning 1",
        delete="delete from devices where id = {device} returning 1"),
    "device_transfers": Probe(
        select="select 1 from device_transfers where id = {transfer}",
        insert="insert into device_transfers (device_id, from_user_id, to_email) values ({device}, {owner}, 'x@y.z')",
        update="update device_transfers set status = 'accepted', responded_at = now(), to_user_id = {other}"
               " where id = {transfer} returning 1",
        delete="delete from device_transfers where id = {transfer} returning 1",
        before_insert="update device_transfers set status = 'cancelled', responded_at = now() where id = {transfer}"),
    "usage_sessions": Probe(
        select="select 1 from usage_sessions where id = {session}",
        insert="insert into usage_sessions (id, device_id, user_id, shot_type, device_mode, level, start_time)"
               " values (gen_random_uuid(), {device}, {owner}, 0, 1, 1, now())",
        update="update usage_sessions set level = 3 where id = {session} returning 1",
        delete="delete from usage_sessions where id = {session} returning 1"),
    "battery_samples": Probe(
        select="select 1 from battery_samples where session_id = {session}",
        insert="insert into battery_samples (session_id, elapsed_seconds, voltage_mv) values ({session}, '{{0}}', '{{4000}}')",
        update="update battery_samples set voltage_mv[1] = 1 where session_id = {session} returning 1",
        delete="delete from battery_samples where session_id = {session} returning 1",
        before_insert="delete from battery_samples where session_id = {session}"),
    "stats_dirty_days": Probe(
        select="select marked_at from stats_dirty_days where user_id = {owner}",  # service_role: key columns only
        insert="insert into stats_dirty_days (user_id, device_id, local_date) values ({owner}, {device}, '2030-01-01')",
        update="update stats_dirty_days set marked_at = now() where user_id = {owner} returning 1",
        delete="delete from stats_dirty_days where user_id = {owner} returning 1"),
    "daily_statistics": Probe(
        select="select 1 from daily_statistics where user_id = {owner}",
        insert="insert into daily_statistics (user_id, device_id, stat_date) values ({owner}, {device}, '2030-01-01')",
        update="update daily_statistics set sessions = 0 where user_id = {owner} returning 1",
        delete="delete from daily_statistics where user_id = {owner} returning 1"),
    "goals": Probe(
        select="select 1 from goals where id = {goal}",
        insert="insert into goals (user_id, goal_type, target_minutes, start_date) values ({owner}, 'monthly', 30, '2026-03-01')",
        update="update goals set target_minutes = 90 where id = {goal} returning 1",
        delete="delete from goals where id = {goal} returning 1"),
    "skin_profiles": Probe(
        select="select 1 from skin_profiles where user_id = {owner}",
        insert="insert into skin_profiles (user_id, skin_type) values ({owner}, 'oily')",
        update="update skin_profiles set memo = 'x' where user_id = {owner} returning 1",
        delete="delete from skin_profiles where user_id = {owner} returning 1",
        before_insert="delete from skin_profiles where user_id = {owner}"),
    "notification_settings": Probe(
        select="select 1 from notification_settings where user_id = {owner}",
        insert="insert into notification_settings (user_id) values ({owner})",
        update="update notification_settings set weekly_report = true where user_id = {owner} returning 1",
        delete="delete from notification_settings where user_id = {owner} returning 1"),
    "notifications": Probe(
        select="select 1 from notifications where id = {notification}",
        insert="insert into notifications (user_id, kind, title) values ({owner}, 'system', 'spoof')",
        update="update notifications set read_at = now() where id = {notification} returning 1",
        delete="delete from notifications where id = {notification} returning 1"),
    "firmware_versions": Probe(
        select="select 1 from firmware_versions where id = {fw_published}",
        insert="insert into firmware_versions (version, version_code, storage_path, size_bytes, sha256)"
               " values ('9.9.9', 999999, 'x/9.9.9.bin', 4096, repeat('b', 64))",
        update="update firmware_versions set changelog = 'pwned' where id = {fw_published} returning 1",
        delete="delete from firmware_versions where id = {fw_draft} returning 1"),
    "firmware_versions (draft)": Probe(
        select="select 1 from firmware_versions where id = {fw_draft}",
        insert="insert into firmware_versions (version, version_code, storage_path, size_bytes, sha256)"
               " values ('9.9.8', 999998, 'x/9.9.8.bin', 4096, repeat('b', 64))",
        update="update firmware_versions set changelog = 'x' where id = {fw_draft} returning 1",
        delete="delete from firmware_versions where id = {fw_draft} returning 1"),
    "firmware_rollouts": Probe(
        select="select 1 from firmware_rollouts where id = {rollout}",
        insert="insert into firmware_rollouts (firmware_version_id, name, strategy, model, channel)"
               " values ({fw_published}, 'x', 'all_at_once', 'X', 'stable')",
        update="update firmware_rollouts set name = 'x' where id = {rollout} returning 1",
        delete="delete from firmware_rollouts where id = {rollout} returning 1"),
    "device_firmware_status": Probe(
        select="select 1 from device_firmware_status where device_id = {device}",
        insert="insert into device_firmware_status (device_id) values ({device})",
        update="update device_firmware_status set phase = 'succeeded' where device_id = {device} returning 1",
        delete="delete from device_firmware_status where device_id = {device} returning 1",
        before_insert="delete from device_firmware_status where device_id = {device}"),
    "firmware_update_history": Probe(
        select="select 1 from firmware_update_history where device_id = {device}",
        insert="insert into firmware_update_history (device_id, to_version, phase) values ({device}, '1.1.0', 'succeeded')",
        update="update firmware_update_history set phase = 'succeeded' where device_id = {device} returning 1",
        delete="delete from firmware_update_history where device_id = {device} returning 1"),
    "jobs": Probe(
        select="select payload from jobs",  # service_role may read `id` only (realtime wake-ups)
        insert="insert into jobs (kind) values ('probe')",
        update="update jobs set attempts = 0 returning 1",
        delete="delete from jobs returning 1"),
    "report_requests": Probe(
        select="select 1 from report_requests where id = {report_request}",
        insert="insert into report_requests (user_id, kind, period_start, period_end, locale, object_path)"
               " values ({owner}, 'monthly', '2026-01-01', '2026-01-31', 'en', {owner} || '/2026-01-en.pdf')",
        update="update report_requests set status = 'failed', error = 'x', started_at = now(), completed_at = now()"
               " where id = {report_request} returning 1",
        delete="delete from report_requests where id = {report_request} returning 1"),
    "announcements": Probe(
        select="select 1 from announcements where id = {draft}",
        insert="insert into announcements (title, body) values ('t', 'b')",
        update="update announcements set title = 'changed' where id = {draft} returning 1",
        delete="delete from announcements where id = {draft} returning 1"),
    "announcements (published)": Probe(
        select="select 1 from announcements where id = {published}",
        insert="insert into announcements (title, body, is_published) values ('t', 'b', true)",
        update="update announcements set title = 'changed' where id = {published} returning 1",
        delete="delete from announcements where id = {published} returning 1"),
}

#               anon owner other admin service
EXPECTED: dict[str, dict[str, tuple[Any, Any, Any, Any, Any]]] = {
    "profiles": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, D),
        "update": (D, 1, 0, 0, 1),
        "delete": (D, D, D, D, D)},
    "audit_log": {
        "select": (D, 0, 0, 1, 1),
        "insert": (D, D, D, D, D),
        "update": (D, D, D, D, D),
        "delete": (D, D, D, D, D)},
    "devices": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, "ok"),
        "update": (D, 1, 0, 0, 1),
        "delete": (D, D, D, D, 1)},
    "device_transfers": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, "ok"),
        "update": (D, D, D, D, 1),
        "delete": (D, D, D, D, 1)},
    "usage_sessions": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, "ok"),
        "update": (D, D, D, D, 1),
        "delete": (D, 1, 0, 0, 1)},
    "battery_samples": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, "ok"),
        "update": (D, D, D, D, 1),
        "delete": (D, D, D, D, 1)},
    "stats_dirty_days": {
        "select": (D, D, D, D, D),
        "insert": (D, D, D, D, D),
        "update": (D, D, D, D, D),
        "delete": (D, D, D, D, D)},
    "daily_statistics": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, D),
        "update": (D, D, D, D, D),
        "delete": (D, D, D, D, D)},
    "goals": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, "ok", D, D, "ok"),
        "update": (D, 1, 0, 0, 1),
        "delete": (D, 1, 0, 0, 1)},
    "skin_profiles": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, "ok", D, D, "ok"),
        "update": (D, 1, 0, 0, 1),
        "delete": (D, 1, 0, 0, 1)},
    "notification_settings": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, D),
        "update": (D, 1, 0, 0, 1),
        "delete": (D, D, D, D, D)},
    "notifications": {
        "select": (D, 1, 0, 0, 1),
        "insert": (D, D, D, D, "ok"),
        "update": (D, 1, 0, 0, 1),
        "delete": (D, 1, 0, 0, 1)},
    "firmware_versions": {
        "select": (D, 1, 1, 1, 1),
        "insert": (D, D, D, D, "ok"),
        "update": (D, D, D, D, 1),
        "delete": (D, D, D, D, 1)},
    "firmware_versions (draft)": {
        "select": (D, 0, 0, 1, 1),
        "insert": (D, D, D, D, "ok"),
        "update": (D, D, D, D, 1),
        "delete": (D, D, D, D, 1)},
    "firmware_rollouts": {
        "select": (D, 0, 0, 1, 1),
        "insert": (D, D, D, D, D),
        "update": (D, D, D, D, D),
        "delete": (D, D, D, D, D)},
    "device_firmware_status": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, D),
        "update": (D, D, D, D, D),
        "delete": (D, D, D, D, D)},
    "firmware_update_history": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, D),
        "update": (D, D, D, D, D),
        "delete": (D, D, D, D, D)},
    "jobs": {
        "select": (D, D, D, D, D),
        "insert": (D, D, D, D, D),
        "update": (D, D, D, D, D),
        "delete": (D, D, D, D, D)},
    "report_requests": {
        "select": (D, 1, 0, 1, 1),
        "insert": (D, D, D, D, "ok"),
        "update": (D, D, D, D, 1),
        "delete": (D, D, D, D, 1)},
    "announcements": {
        "select": (D, 0, 0, 1, 1),
        "insert": (D, D, D, "ok", "ok"),
        "update": (D, 0, 0, 1, 1),
        "delete": (D, 0, 0, 1, 1)},
    "announcements (published)": {
        "select": (D, 1, 1, 1, 1),
        "insert": (D, D, D, "ok", "ok"),
        "update": (D, 0, 0, 1, 1),
        "delete": (D, 0, 0, 1, 1)},
}

CELLS = [(t, op, role, EXPECTED[t][op][i]) for t in EXPECTED for op in ("select", "insert", "update", "delete")
         for i, role in enumerate(ROLES)]


def test_matrix_covers_every_table_in_public(db: psycopg.Connection) -> None:
    tables = {r["relname"] for r in db.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('r', 'p')").fetchall()}
    assert tables == {t.split(" ")[0] for t in EXPECTED}


def test_rls_enabled_on_every_public_table(db: psycopg.Connection) -> None:
    off = db.execute("select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                     " where n.nspname = 'public' and c.relkind in ('r','p') and not c.relrowsecurity").fetchall()
    assert off == []


@pytest.fixture(scope="module")
def su_api(stack: Any) -> Any:
    """Same role switch as PostgREST, but on a superuser connection so a probe can prepare state in its
    own transaction first (the platform tests prove the authenticator path is identical)."""
    s = PostgrestSession(stack.dsn())
    yield s
    s.close()


def probe(session: PostgrestSession, w: World, table: str, op: str, role: str) -> Any:
    p = P[table]
    fmt = {k: (f"'{v}'" if isinstance(v, uuid.UUID) else v) for k, v in vars(w).items()}
    sql = getattr(p, op).format(**fmt)
    try:
        with session.request(w.caller(role), rollback=True, prepare=(p.before_insert.format(**fmt) if op == "insert" else None) or None) as cur:
            cur.execute(sql)
            if op == "insert":
                return "ok"
            return len(cur.fetchall())
    except psycopg.errors.InsufficientPrivilege:
        return D


@pytest.mark.parametrize(("table", "op", "role", "expected"), CELLS,
                         ids=[f"{t}-{op}-{role}" for t, op, role, _ in CELLS])
def test_rls_cell(su_api: PostgrestSession, world: World, table: str, op: str, role: str, expected: Any) -> None:
    assert probe(su_api, world, table, op, role) == expected
