"""The local platform layer behaves like a Supabase project as seen from Postgres."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from tests.support.pgrest import ANON, SERVICE, Caller, PostgrestSession, user


def whoami(api: PostgrestSession, caller: Caller) -> dict[str, object]:
    rows = api.query(caller, "select auth.uid() as uid, auth.role() as role, auth.email() as email,"
                             " auth.jwt() ->> 'aud' as aud, current_user as db_role")
    return rows[0]


def test_auth_functions_under_each_role(api: PostgrestSession) -> None:
    uid = uuid.uuid4()
    me = whoami(api, user(uid, "a@example.test"))
    assert me == {"uid": uid, "role": "authenticated", "email": "a@example.test", "aud": "authenticated",
                  "db_role": "authenticated"}
    assert whoami(api, ANON) == {"uid": None, "role": "anon", "email": None, "aud": None, "db_role": "anon"}
    assert whoami(api, SERVICE) == {"uid": None, "role": "service_role", "email": None, "aud": None,
                                    "db_role": "service_role"}


def test_settings_do_not_outlive_the_request(api: PostgrestSession) -> None:
    whoami(api, user(uuid.uuid4()))
    with api.conn.cursor() as cur:
        cur.execute("select current_setting('request.jwt.claims', true) as claims, current_user as r")
        assert cur.fetchone() == {"claims": "", "r": "authenticator"}


def test_legacy_per_claim_setting_wins_as_on_supabase(api: PostgrestSession) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    with api.request(user(a)) as cur:
        cur.execute("select set_config('request.jwt.claim.sub', %s, true)", (str(b),))
        cur.execute("select auth.uid() as uid")
        assert cur.fetchone() == {"uid": b}


def test_api_roles_have_supabase_attributes(db: psycopg.Connection) -> None:
    rows = {r["rolname"]: r for r in db.execute(
        "select rolname, rolcanlogin, rolinherit, rolbypassrls, rolsuper from pg_roles"
        " where rolname in ('anon','authenticated','service_role','authenticator')").fetchall()}
    assert rows["anon"] == {"rolname": "anon", "rolcanlogin": False, "rolinherit": True, "rolbypassrls": False,
                            "rolsuper": False}
    assert rows["authenticated"]["rolbypassrls"] is False and rows["authenticated"]["rolcanlogin"] is False
    assert rows["service_role"]["rolbypassrls"] is True and rows["service_role"]["rolcanlogin"] is False
    assert rows["authenticator"]["rolcanlogin"] is True and rows["authenticator"]["rolinherit"] is False
    members = {r["r"] for r in db.execute(
        "select b.rolname as r from pg_auth_members m join pg_roles a on a.oid = m.member"
        " join pg_roles b on b.oid = m.roleid where a.rolname = 'authenticator'").fetchall()}
    assert members == {"anon", "authenticated", "service_role"}


def test_authenticator_alone_has_no_table_access(api: PostgrestSession) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), api.conn.transaction():
        api.conn.execute("select count(*) from public.profiles")


def test_storage_helpers_and_rls(db: psycopg.Connection) -> None:
    row = db.execute("select storage.foldername('reports/abc/2026-01-ko.pdf') as f,"
                     " storage.filename('reports/abc/2026-01-ko.pdf') as n,"
                     " storage.extension('reports/abc/2026-01-ko.pdf') as e").fetchone()
    assert row == {"f": ["reports", "abc"], "n": "2026-01-ko.pdf", "e": "pdf"}
    rls = db.execute("select relname, relrowsecurity from pg_class where oid in"
                     " ('storage.objects'::regclass, 'storage.buckets'::regclass, 'auth.users'::regclass)").fetchall()
    assert all(r["relrowsecurity"] for r in rls) and len(rls) == 3


def test_storage_refuses_direct_deletes(db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="Storage API"):
        db.execute("delete from storage.objects where false")


def test_realtime_publication_and_extensions(db: psycopg.Connection) -> None:
    assert db.execute("select count(*) as n from pg_publication where pubname = 'supabase_realtime'").fetchone() == {"n": 1}
    exts = {r["extname"]: r["nspname"] for r in db.execute(
        "select extname, nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace").fetchall()}
    assert exts["pgcrypto"] == "extensions" and exts["uuid-ossp"] == "extensions"


def test_no_default_grants_in_public(db: psycopg.Connection) -> None:
    """Like a 2026 Supabase project: a new table is invisible to the API roles until granted."""
    with db.transaction(force_rollback=True):
        db.execute("create table public.t_probe (id int)")
        granted = db.execute(
            "select count(*) as n from information_schema.role_table_grants where table_name = 't_probe'"
            " and grantee in ('anon','authenticated','service_role')").fetchone()
        assert granted == {"n": 0}


def test_jwt_claims_are_json(api: PostgrestSession) -> None:
    rows = api.query(user(uuid.uuid4()), "select current_setting('request.jwt.claims') as c")
    assert json.loads(rows[0]["c"])["role"] == "authenticated"
