"""Shared fixtures: a fresh local stack for the test run, users, and PostgREST-style callers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support.pgrest import PostgrestSession
from tests.support.stack import LocalStack, test_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """A brand-new cluster built by `scripts/localstack.py reset`, the same path as `make db-reset`."""
    s = test_stack()
    s.run("reset")
    try:
        yield s
    finally:
        s.run("stop")


@pytest.fixture(scope="session")
def db(stack: LocalStack) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A superuser connection (what a migration or the worker has), autocommit."""
    conn = psycopg.connect(stack.dsn(), autocommit=True, row_factory=dict_row)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[PostgrestSession]:
    s = PostgrestSession(stack.dsn("authenticator"))
    yield s
    s.close()


@pytest.fixture(scope="session")
def su_api(stack: LocalStack) -> Iterator[PostgrestSession]:
    """PostgREST-style requests on a superuser connection, so a request can first set `dtx.clock` (tests only)."""
    s = PostgrestSession(stack.dsn())
    yield s
    s.close()


MakeUser = Callable[..., uuid.UUID]


@pytest.fixture(scope="session")
def make_user(db: psycopg.Connection[dict[str, Any]]) -> MakeUser:
    """Insert a row into auth.users, as GoTrue does on sign-up; returns the user id."""

    def make(email: str | None = None, *, meta: dict[str, Any] | None = None, admin: bool = False) -> uuid.UUID:
        uid = uuid.uuid4()
        email = email or f"user-{uid.hex[:12]}@example.test"
        db.execute(
            "insert into auth.users (id, aud, role, email, raw_user_meta_data, raw_app_meta_data, email_confirmed_at)"
            " values (%s, 'authenticated', 'authenticated', %s, %s, '{\"provider\":\"email\"}', now())",
            (uid, email, psycopg.types.json.Jsonb(meta or {})),
        )
        if admin:
            db.execute("update public.profiles set role = 'admin' where id = %s", (uid,))
        return uid

    return make
