"""Run SQL exactly as PostgREST does for a request: one transaction on an `authenticator` connection,
`set_config('role', …, true)` and `set_config('request.jwt.claims', …, true)`, then the statement."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from dualtetrax._pgrest import ARGUMENTS_SQL, rpc_statement

ROLE_SETTINGS = {"anon": "3s", "authenticated": "8s", "service_role": "8s"}


@dataclass(frozen=True)
class Caller:
    role: str
    user_id: uuid.UUID | None = None
    email: str | None = None
    extra_claims: dict[str, Any] = field(default_factory=dict)

    def claims(self) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {"role": self.role, "iat": now, "exp": now + 3600, **self.extra_claims}
        if self.user_id is not None:
            claims.update(
                sub=str(self.user_id), aud="authenticated", email=self.email or "",
                app_metadata={"provider": "email"}, user_metadata={}, is_anonymous=False,
            )
        return claims


ANON = Caller("anon")
SERVICE = Caller("service_role")


def user(user_id: uuid.UUID, email: str | None = None) -> Caller:
    return Caller("authenticated", user_id, email)


class PostgrestSession:
    """One `authenticator` connection; every call is a PostgREST-style transaction."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
        self._signatures: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def request(self, caller: Caller, *, rollback: bool = False, method: str = "POST",
                prepare: str | None = None) -> Iterator[psycopg.Cursor[Any]]:
        """A request's transaction; commits like PostgREST unless `rollback` (for matrix probes).

        `prepare` runs first, as the connection's own role (only useful on a superuser session)."""
        with self.conn.transaction(force_rollback=rollback), self.conn.cursor() as cur:
            if prepare:
                cur.execute(prepare)
            cur.execute(
                "select set_config('search_path', '\"public\", \"extensions\"', true),"
                " set_config('statement_timeout', %s, true),"
                " set_config('role', %s, true),"
                " set_config('request.jwt.claims', %s, true),"
                " set_config('request.method', %s, true),"
                " set_config('request.path', '/rpc', true)",
                (ROLE_SETTINGS.get(caller.role, "8s"), caller.role, json.dumps(caller.claims()), method),
            )
            yield cur

    def _arg_types(self, function: str) -> dict[str, str]:
        if function not in self._signatures:
            with self.conn.cursor() as cur:
                cur.execute(ARGUMENTS_SQL, (function,))
                self._signatures[function] = {str(r["name"]): str(r["format_type"]) for r in cur.fetchall()}
        return self._signatures[function]

    def rpc(self, caller: Caller, function: str, **args: Any) -> Any:
        """POST /rest/v1/rpc/<function> with a JSON body, bound to arguments the way PostgREST binds them:
        `json_to_record(body) as x(arg type, …)`, then `function(arg := x.arg, …)`."""
        types = self._arg_types(function)
        unknown = set(args) - set(types)
        if unknown:
            raise psycopg.errors.UndefinedFunction(f"no function {function} with arguments {sorted(unknown)}")
        sql, params = rpc_statement(function, types, args)
        with self.request(caller) as cur:
            cur.execute(sql, params or None)
            row = cur.fetchone()
            assert row is not None
            return next(iter(row.values()))

    def query(self, caller: Caller, sql: str, params: Sequence[Any] | dict[str, Any] | None = None,
              *, rollback: bool = False) -> list[dict[str, Any]]:
        with self.request(caller, rollback=rollback) as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
