"""The local stack behind :class:`~dualtetrax.cloud.backend.CloudBackend`.

No PostgREST, Auth or Storage server runs on the local stack (``make db``), so this backend does their part
itself, the way they do it:

- **Data API**: every call is one transaction on a direct connection that sets ``role`` and
  ``request.jwt.claims`` locally (as PostgREST does), so RLS, grants and the RPCs' own checks decide exactly as
  they do on Supabase. RPC arguments are bound from a JSON body by name (``json_to_record``), rows come back as
  ``to_jsonb`` (PostgREST's JSON).
- **Auth**: accounts are rows in ``auth.users`` with bcrypt passwords (``extensions.crypt``); sessions are
  HS256 JWTs signed with the local JWT secret (the Supabase CLI's default unless ``DTX_LOCAL_JWT_SECRET`` is
  set), carrying the claims GoTrue puts in them. Refresh tokens are signed too (stateless), so a cached session
  survives processes; signing out forgets the session locally only.
- **Storage**: objects are files under ``<storage_dir>/<bucket>/<path>`` with their ``storage.objects`` rows
  (as the admin backend and the worker write them). A signed URL is granted only if the user can see the object
  row through RLS; it is served by a small HTTP server in this process (``GET``/``HEAD``, ``Range``), with a
  token shaped like Storage's (``{"url": "<bucket>/<path>", "iat", "exp"}``). That server lives as long as the
  backend: a URL it signed stops working when the backend is closed (Storage's stay valid until they expire).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from dualtetrax._pgrest import function_arguments, rpc_statement, write_temp
from dualtetrax.cloud.backend import AuthSession, Filter, Order
from dualtetrax.cloud.errors import (
    AuthError,
    CloudError,
    ConflictError,
    NetworkError,
    NotFoundError,
    ValidationError,
    error_from_sqlstate,
)

if TYPE_CHECKING:
    import psycopg

DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"
DEFAULT_STORAGE_DIR = Path(".local/storage")
#: ``supabase start``'s JWT secret; only ever used on the local stack.
DEFAULT_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 30 * 86400
MIN_PASSWORD_LENGTH = 6
#: The roles a request may run as (what ``authenticator`` is granted), as PostgREST allows.
API_ROLES = frozenset({"anon", "authenticated", "service_role"})
#: Refresh this long before the access token expires, as the Supabase backend does.
REFRESH_MARGIN_S = 60

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_OBJECT_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/-]{0,511}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_OPERATORS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


# --------------------------------------------------------------------------------------------- tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(claims: Mapping[str, Any], secret: str) -> str:
    """An HS256 JWT, as GoTrue and Storage issue them."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def verify_jwt(token: str, secret: str, *, now: float | None = None) -> dict[str, Any]:
    """The claims of a valid, unexpired HS256 JWT; :class:`AuthError` otherwise."""
    try:
        head, body, mac = token.split(".")
        expected = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            raise AuthError("invalid JWT: bad signature", code="bad_jwt", status=401)
        claims = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError) as error:
        raise AuthError("invalid JWT: malformed token", code="bad_jwt", status=401) from error
    if not isinstance(claims, dict):
        raise AuthError("invalid JWT: malformed claims", code="bad_jwt", status=401)
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise AuthError("invalid JWT: exp must be a number", code="bad_jwt", status=401)
    if exp <= (time.time() if now is None else now):
        raise AuthError("JWT expired", code="PGRST301", status=401,
                        hint="Sign in again (`dtx login`) or refresh the session.")
    return claims


# --------------------------------------------------------------------------------------------- backend


class LocalCloudBackend:
    """The local stack (``make db``) as a :class:`~dualtetrax.cloud.backend.CloudBackend`.

    Use as an async context manager or call :meth:`close`.
    """

    def __init__(self, database_url: str = DEFAULT_DATABASE_URL, storage_dir: str | Path = DEFAULT_STORAGE_DIR,
                 *, jwt_secret: str | None = None, password_hash_cost: int = 8) -> None:
        self.database_url = database_url
        self.storage_dir = Path(storage_dir)
        self.jwt_secret = jwt_secret or os.environ.get("DTX_LOCAL_JWT_SECRET") or DEFAULT_JWT_SECRET
        self.password_hash_cost = password_hash_cost
        self._session: AuthSession | None = None
        self._claims: dict[str, Any] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._signatures: dict[str, dict[str, str]] = {}
        self._objects: _ObjectServer | None = None

    async def __aenter__(self) -> LocalCloudBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._objects is not None:
            await self._objects.close()
            self._objects = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def session(self) -> AuthSession | None:
        return self._session

    # -- connection and requests

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            import psycopg

            try:
                self._conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True,
                                                                   connect_timeout=10)
            except psycopg.OperationalError as error:
                raise NetworkError(f"cannot reach the database at {_redact(self.database_url)}",
                                   hint="Start the local stack with `make db`.") from error
        return self._conn

    def _caller_claims(self) -> dict[str, Any]:
        if self._claims is None:
            return {"role": "anon"}
        return self._claims

    def _adopt(self, session: AuthSession) -> dict[str, Any]:
        """The claims of an access token this backend will act on: valid, and naming a role PostgREST's
        ``authenticator`` may switch to (never a database owner or superuser)."""
        claims = verify_jwt(session.access_token, self.jwt_secret)
        if claims.get("role") not in API_ROLES or claims.get("typ") == "refresh":
            raise AuthError("invalid JWT: not an access token for an API role", code="bad_jwt", status=401)
        self._session, self._claims = session, claims
        return claims

    async def _request(self, sql: str, params: Sequence[Any] | None, *, method: str, path: str,
                       as_auth_server: bool = False, before_commit: Callable[[], object] | None = None,
                       allow_delete: bool = False) -> list[Any]:
        """One PostgREST-style transaction as the signed-in user (or ``anon``); the first column of every row.
        ``as_auth_server``: as the Auth server's own database role instead (sign-up and sign-in)."""
        import psycopg

        if not as_auth_server and self._session is not None:
            if self._session.expires_within(REFRESH_MARGIN_S):
                await self._refresh_with(self._session.refresh_token)
            self._adopt(self._session)  # a token that is invalid now is refused, as PostgREST refuses it
        claims = self._caller_claims()
        async with self._lock:
            conn = await self._connection()
            try:
                async with conn.transaction():
                    if not as_auth_server:  # the Auth server's part runs as the stack's owner role
                        await conn.execute(_PREAMBLE, (str(claims["role"]), json.dumps(claims), method, path))
                    if allow_delete:  # storage.protect_delete: only the Storage API deletes object rows
                        await conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
                    cur = await conn.execute(sql, params)
                    rows = await cur.fetchall() if cur.description else []
                    if before_commit is not None and rows:
                        await asyncio.to_thread(before_commit)
            except psycopg.OperationalError as error:
                if conn.broken or conn.closed:
                    raise NetworkError(f"the connection to the database broke during {method} {path}") from error
                raise _typed(error) from error
            except psycopg.Error as error:
                raise _typed(error) from error
        return [row[0] for row in rows]

    # -- auth

    def _issue(self, user_id: str, email: str, metadata: Mapping[str, Any]) -> AuthSession:
        now = int(time.time())
        session_id = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "iss": "http://127.0.0.1:54321/auth/v1", "aud": "authenticated", "sub": user_id, "email": email,
            "phone": "", "role": "authenticated", "aal": "aal1", "session_id": session_id, "is_anonymous": False,
            "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": dict(metadata),
            "iat": now, "exp": now + ACCESS_TOKEN_SECONDS,
        }
        refresh = sign_jwt({"typ": "refresh", "sub": user_id, "email": email, "session_id": session_id,
                            "nonce": secrets.token_urlsafe(8), "iat": now, "exp": now + REFRESH_TOKEN_SECONDS},
                           self.jwt_secret)
        session = AuthSession(sign_jwt(claims, self.jwt_secret), refresh, now + ACCESS_TOKEN_SECONDS, user_id, email)
        self._adopt(session)
        return session

    async def sign_up(self, email: str, password: str, *, metadata: Mapping[str, Any] | None = None) -> AuthSession:
        address = (email or "").strip().lower()
        if not _EMAIL.fullmatch(address) or len(address) > 255:
            raise ValidationError(f"email: {email!r} is not an email address", field="email", code="validation_failed",
                                  status=400)
        if len(password or "") < MIN_PASSWORD_LENGTH:
            raise ValidationError(f"password: must be at least {MIN_PASSWORD_LENGTH} characters", field="password",
                                  code="weak_password", status=422)
        meta = dict(metadata or {})
        rows = await self._request(
            "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,"
            " raw_app_meta_data, raw_user_meta_data, created_at, updated_at, last_sign_in_at)"
            " select '00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',"
            "  %s, extensions.crypt(%s, extensions.gen_salt('bf', %s)), now(),"
            "  '{\"provider\": \"email\", \"providers\": [\"email\"]}', %s::jsonb, now(), now(), now()"
            " where not exists (select 1 from auth.users u where lower(u.email) = %s and not u.is_sso_user)"
            " returning id::text",
            (address, password, self.password_hash_cost, json.dumps(meta), address),
            method="POST", path="/auth/v1/signup", as_auth_server=True)
        if not rows:
            raise ConflictError("User already registered", code="user_already_exists", status=422,
                                hint="Sign in instead, or use another email.")
        return self._issue(str(rows[0]), address, meta)

    async def sign_in(self, email: str, password: str) -> AuthSession:
        address = (email or "").strip().lower()
        rows = await self._request(
            "select jsonb_build_object('id', u.id, 'email', u.email, 'meta', coalesce(u.raw_user_meta_data, '{}'),"
            "  'ok', u.encrypted_password = extensions.crypt(%s, u.encrypted_password),"
            "  'banned', coalesce(u.banned_until > now(), false) or u.deleted_at is not null)"
            " from auth.users u where lower(u.email) = %s and u.encrypted_password is not null",
            (password or "", address), method="POST", path="/auth/v1/token", as_auth_server=True)
        found = rows[0] if rows else None
        if not found or not found["ok"]:
            raise AuthError("Invalid login credentials", code="invalid_credentials", status=400)
        if found["banned"]:
            raise AuthError("User is banned", code="user_banned", status=400)
        await self._request("update auth.users set last_sign_in_at = now() where id = %s returning id",
                            (found["id"],), method="POST", path="/auth/v1/token", as_auth_server=True)
        return self._issue(str(found["id"]), str(found["email"]), found["meta"])

    async def _issue_for(self, user_id: str) -> AuthSession:
        rows = await self._request(
            "select jsonb_build_object('email', u.email, 'meta', coalesce(u.raw_user_meta_data, '{}'),"
            "  'banned', coalesce(u.banned_until > now(), false) or u.deleted_at is not null)"
            " from auth.users u where u.id = %s", (user_id,), method="POST", path="/auth/v1/token", as_auth_server=True)
        if not rows or rows[0]["banned"]:
            raise AuthError("Invalid Refresh Token: User Not Found", code="refresh_token_not_found", status=400)
        return self._issue(user_id, str(rows[0]["email"]), rows[0]["meta"])

    async def refresh(self) -> AuthSession:
        if self._session is None:
            raise AuthError("not signed in", code="session_not_found", hint="Sign in first.")
        return await self._refresh_with(self._session.refresh_token)

    async def _refresh_with(self, refresh_token: str) -> AuthSession:
        try:
            claims = verify_jwt(refresh_token, self.jwt_secret)
        except AuthError as error:
            raise AuthError("Invalid Refresh Token", code="refresh_token_not_found", status=400,
                            hint="Sign in again.") from error
        if claims.get("typ") != "refresh":
            raise AuthError("Invalid Refresh Token", code="refresh_token_not_found", status=400)
        return await self._issue_for(str(claims["sub"]))

    async def restore(self, session: AuthSession) -> AuthSession:
        if session.expires_within(REFRESH_MARGIN_S):
            return await self._refresh_with(session.refresh_token)
        self._adopt(session)
        return session

    async def sign_out(self) -> None:
        self._session, self._claims = None, None

    # -- data API

    async def rpc(self, name: str, args: Mapping[str, Any]) -> Any:
        if not _IDENTIFIER.fullmatch(name):
            raise ValidationError(f"{name!r} is not a function name", field="name")
        types = await self._argument_types(name)
        unknown = sorted(set(args) - set(types))
        if (not types and not await self._function_exists(name)) or unknown:
            raise NotFoundError(f"Could not find the function public.{name}({', '.join(sorted(args))}) in the "
                                "schema cache", code="PGRST202", status=404,
                                hint="Apply the latest migrations (`make db`).")
        sql, params = rpc_statement(name, types, args)
        rows = await self._request(sql, params or None, method="POST", path=f"/rpc/{name}")
        return rows[0] if rows else None

    async def _function_exists(self, name: str) -> bool:
        async with self._lock:
            conn = await self._connection()
            cur = await conn.execute("select exists (select 1 from pg_proc p join pg_namespace n"
                                     " on n.oid = p.pronamespace where n.nspname = 'public' and p.proname = %s)",
                                     (name,))
            row = await cur.fetchone()
        return bool(row and row[0])

    async def _argument_types(self, name: str) -> dict[str, str]:
        if name not in self._signatures:
            async with self._lock:
                self._signatures[name] = await function_arguments(await self._connection(), name)
        return self._signatures[name]

    async def select(self, table: str, *, columns: str = "*", filters: Sequence[Filter] = (),
                     order: Sequence[Order] = (), limit: int | None = None, offset: int | None = None
                     ) -> list[dict[str, Any]]:
        where, params = _where(filters)
        cols = "*" if columns.strip() == "*" else ", ".join(_ident(c.strip()) for c in columns.split(","))
        sql = f"select to_jsonb(_t) from (select {cols} from public.{_ident(table)} {where}"
        if order:
            sql += " order by " + ", ".join(f"{_ident(o.column)} {'desc' if o.descending else 'asc'}" for o in order)
        if limit is not None:
            sql += " limit %s"
            params.append(int(limit))
        if offset is not None:
            sql += " offset %s"
            params.append(int(offset))
        sql += ") _t"
        return [dict(r) for r in await self._request(sql, params, method="GET", path=f"/{table}")]

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if not rows:
            return []
        keys = sorted({k for row in rows for k in row})
        cols = ", ".join(_ident(k) for k in keys)
        name = f"public.{_ident(table)}"
        sql = (f"insert into {name} as _t ({cols}) select {cols}"
               f" from json_populate_recordset(null::{name}, %s::json) returning to_jsonb(_t)")
        body = json.dumps([dict(r) for r in rows], default=str)
        return [dict(r) for r in await self._request(sql, (body,), method="POST", path=f"/{table}")]

    async def update(self, table: str, values: Mapping[str, Any], *, filters: Sequence[Filter]
                     ) -> list[dict[str, Any]]:
        if not values:
            raise ValidationError("nothing to update", field="values")
        if not filters:
            raise ValidationError("filters: an update needs at least one filter", field="filters")
        where, params = _where(filters)
        cols = ", ".join(_ident(k) for k in values)
        sql = (f"update public.{_ident(table)} as _t set ({cols}) = (select {cols}"
               f" from json_populate_record(null::public.{_ident(table)}, %s::json)) {where}"
               " returning to_jsonb(_t)")
        body = json.dumps(dict(values), default=str)
        return [dict(r) for r in await self._request(sql, [body, *params], method="PATCH", path=f"/{table}")]

    async def delete(self, table: str, *, filters: Sequence[Filter]) -> list[dict[str, Any]]:
        if not filters:
            raise ValidationError("filters: a delete needs at least one filter", field="filters")
        where, params = _where(filters)
        sql = f"delete from public.{_ident(table)} as _t {where} returning to_jsonb(_t)"
        return [dict(r) for r in await self._request(sql, params, method="DELETE", path=f"/{table}")]

    # -- storage

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        if not 1 <= int(expires_in) <= 7 * 86400:
            raise ValidationError("expires_in: must be between 1 second and 7 days", field="expires_in")
        if self._claims is None:
            raise AuthError("not signed in", code="session_not_found", status=401)
        visible = await self._request("select 1 from storage.objects o where o.bucket_id = %s and o.name = %s",
                                      (bucket, path), method="POST", path=f"/storage/v1/object/sign/{bucket}")
        if not visible:
            raise NotFoundError("Object not found", code="not_found", status=400)
        if self._objects is None:
            self._objects = await _ObjectServer.start(self.storage_dir, self.jwt_secret)
        return self._objects.signed_url(bucket, path, int(expires_in))

    async def upload_object(self, bucket: str, path: str, data: bytes, content_type: str, *,
                            upsert: bool = False) -> None:
        """As Storage does: the bucket's size and MIME limits first, then the ``storage.objects`` row is written as
        the user (RLS decides; an upsert also needs the update policy), and the bytes land under their final name
        only if that row is about to commit."""
        await self._check_bucket_limits(bucket, len(data), content_type)
        target = self._object_file(bucket, path)
        temp = await asyncio.to_thread(write_temp, target, data)
        moved = False
        replaced: Path | None = None  # the bytes an upsert replaces, kept until the commit

        def move() -> None:
            nonlocal moved, replaced
            if upsert and target.exists():
                replaced = target.with_name(f"{target.name}.{secrets.token_hex(4)}.replaced")
                os.replace(target, replaced)
            os.replace(temp, target)
            moved = True

        metadata = json.dumps({"size": len(data), "mimetype": content_type, "cacheControl": "max-age=3600",
                               "eTag": f'"{hashlib.md5(data).hexdigest()}"'})
        if upsert:
            sql = ("insert into storage.objects (bucket_id, name, owner_id, metadata)"
                   " values (%s, %s, auth.uid()::text, %s::jsonb)"
                   " on conflict (bucket_id, name) do update set metadata = excluded.metadata,"
                   " owner_id = excluded.owner_id, updated_at = now() returning storage.objects.id")
            params: tuple[Any, ...] = (bucket, path, metadata)
        else:
            sql = ("insert into storage.objects (bucket_id, name, owner_id, metadata)"
                   " select %s, %s, auth.uid()::text, %s::jsonb"
                   " where not exists (select 1 from storage.objects o where o.bucket_id = %s and o.name = %s)"
                   " returning storage.objects.id")
            params = (bucket, path, metadata, bucket, path)
        try:
            rows = await self._request(sql, params, method="POST", path=f"/storage/v1/object/{bucket}",
                                       before_commit=move)
        except BaseException:
            if moved:  # the commit failed: the file goes back to what the row still describes
                if replaced is not None:
                    await asyncio.to_thread(os.replace, replaced, target)
                else:
                    await asyncio.to_thread(target.unlink, missing_ok=True)
            raise
        finally:
            await asyncio.to_thread(temp.unlink, missing_ok=True)
            if replaced is not None:
                await asyncio.to_thread(replaced.unlink, missing_ok=True)
        if not rows:
            raise ConflictError(f"{bucket}/{path} already exists", code="Duplicate", status=409)

    async def _check_bucket_limits(self, bucket: str, size: int, content_type: str) -> None:
        """The Storage server's checks against the bucket row (read with its own rights, not the user's)."""
        found = await self._request("select jsonb_build_object('limit', b.file_size_limit,"
                                    " 'types', b.allowed_mime_types) from storage.buckets b where b.id = %s",
                                    (bucket,), method="POST",
                                    path=f"/storage/v1/object/{bucket}", as_auth_server=True)
        if not found:
            raise NotFoundError("Bucket not found", code="Bucket not found", status=404)
        limit, types = found[0]["limit"], found[0]["types"]
        if limit is not None and size > int(limit):
            raise ValidationError(f"data: {size} bytes exceed the {bucket} bucket's limit of {limit}",
                                  field="data", code="EntityTooLarge", status=413)
        if types and content_type not in types:
            raise ValidationError(f"content_type: {content_type} is not allowed in {bucket} ({', '.join(types)})",
                                  field="content_type", code="InvalidMimeType", status=415)

    async def delete_object(self, bucket: str, path: str) -> None:
        target = self._object_file(bucket, path)
        rows = await self._request("delete from storage.objects o where o.bucket_id = %s and o.name = %s"
                                   " returning o.name", (bucket, path), method="DELETE",
                                   path=f"/storage/v1/object/{bucket}", allow_delete=True)
        if rows:
            await asyncio.to_thread(target.unlink, missing_ok=True)

    def _object_file(self, bucket: str, path: str) -> Path:
        if not _IDENTIFIER.fullmatch(bucket.replace("-", "_")) or not _OBJECT_PATH.fullmatch(path) or ".." in path:
            raise ValidationError(f"path: {bucket}/{path} is not an object path", field="path")
        return self.storage_dir / bucket / path

    async def wait_for_change(self, table: str, filters: Sequence[Filter], timeout_s: float) -> bool:
        """The local stack runs no Realtime server: wait a short poll interval (at most ``timeout_s``)."""
        await asyncio.sleep(max(0.0, min(timeout_s, 0.2)))
        return False


# --------------------------------------------------------------------------------------------- helpers


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _ident(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValidationError(f"{name!r} is not a column or table name", field="name")
    return f'"{name}"'


def _where(filters: Sequence[Filter]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for f in filters:
        column = _ident(f.column)
        if f.op in _OPERATORS:
            clauses.append(f"{column} {_OPERATORS[f.op]} %s")
            params.append(_param(f.value))
        elif f.op == "in":
            clauses.append(f"{column} = any(%s)")
            params.append([_param(v) for v in f.value])
        elif f.op == "is":
            if f.value is None:
                clauses.append(f"{column} is null")
            elif f.value in (True, False):
                clauses.append(f"{column} is {'true' if f.value else 'false'}")
            else:
                raise ValidationError(f"{f.column}: 'is' takes null, true or false", field=f.column)
        else:
            raise ValidationError(f"{f.column}: unknown operator {f.op!r}", field=f.column)
    return ("where " + " and ".join(clauses)) if clauses else "", params


def _param(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _typed(error: Exception) -> CloudError:
    import psycopg

    if isinstance(error, psycopg.Error):
        diag = error.diag
        message = diag.message_primary or str(error)
        sqlstate = error.sqlstate
        if sqlstate == "42501" and message.startswith("permission denied for"):
            message = "permission denied"  # PostgREST shows the table; we don't leak internals either way
        return error_from_sqlstate(sqlstate, message, detail=diag.message_detail, hint=diag.message_hint,
                                   status=_HTTP_STATUS.get(sqlstate or ""))
    return CloudError(str(error))


_PREAMBLE = ("select set_config('search_path', '\"public\", \"extensions\"', true),"
             " set_config('statement_timeout', '8s', true), set_config('role', %s, true),"
             " set_config('request.jwt.claims', %s, true), set_config('request.method', %s, true),"
             " set_config('request.path', %s, true)")
_HTTP_STATUS = {"57014": 504, "40001": 503, "40P01": 503, "53300": 503,  # timeouts and contention: retry later
                "22023": 400, "P0001": 400, "P0002": 404, "23505": 409, "42501": 403, "23503": 409, "23514": 400,
                "22P02": 400, "42883": 404}


# --------------------------------------------------------------------------------------------- objects over HTTP


class _ObjectServer:
    """Storage's signed-URL download endpoint for the local object folder, on 127.0.0.1 (GET/HEAD, Range)."""

    PREFIX = "/storage/v1/object/sign/"

    def __init__(self, root: Path, secret: str) -> None:
        self.root = root
        self.secret = secret
        self.server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    async def start(cls, root: Path, secret: str) -> _ObjectServer:
        self = cls(root, secret)
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None

    def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        now = int(time.time())
        token = sign_jwt({"url": f"{bucket}/{path}", "iat": now, "exp": now + expires_in}, self.secret)
        return f"http://127.0.0.1:{self.port}{self.PREFIX}{quote(bucket)}/{quote(path)}?token={token}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = request.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            await self._respond(writer, method, target, headers)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    async def _respond(self, writer: asyncio.StreamWriter, method: str, target: str, headers: dict[str, str]) -> None:
        parts = urlsplit(target)
        if method not in ("GET", "HEAD") or not parts.path.startswith(self.PREFIX):
            return await _send_json(writer, 404, {"statusCode": "404", "error": "not_found", "message": "Not found"})
        object_key = unquote(parts.path[len(self.PREFIX):])
        token = dict(p.partition("=")[::2] for p in parts.query.split("&") if p).get("token", "")
        try:
            claims = verify_jwt(unquote(token), self.secret)
        except AuthError as error:
            return await _send_json(writer, 400, {"statusCode": "400", "error": "InvalidJWT", "message": error.message})
        if claims.get("url") != object_key:
            return await _send_json(writer, 400, {"statusCode": "400", "error": "InvalidSignature",
                                                  "message": "The url do not match the signature"})
        file = (self.root / object_key).resolve()
        if self.root.resolve() not in file.parents or not file.is_file():
            return await _send_json(writer, 400, {"statusCode": "404", "error": "not_found",
                                                  "message": "Object not found"})
        size = file.stat().st_size
        etag = f'"{size:x}-{int(file.stat().st_mtime_ns):x}"'
        start, end, status = 0, size - 1, 200
        wanted = headers.get("range")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip()) if wanted else None
        # RFC 9110 §14.2: a Range the server does not understand or support (other units, several ranges, an
        # invalid spec such as 5-3) is ignored and the whole object served; only an unsatisfiable one is a 416.
        valid = match is not None and not (match.group(1) == match.group(2) == "") and not (
            match.group(1) and match.group(2) and int(match.group(1)) > int(match.group(2)))
        if match is not None and valid:
            if match.group(1) == "":
                start, end = max(0, size - int(match.group(2))), size - 1
            else:
                start = int(match.group(1))
                end = min(size - 1, int(match.group(2))) if match.group(2) else size - 1
            if start >= size or (match.group(1) == "" and int(match.group(2)) == 0):
                return await _send_range_error(writer, size)
            status = 206
        head = [f"HTTP/1.1 {status} {'Partial Content' if status == 206 else 'OK'}",
                "Content-Type: application/octet-stream", f"Content-Length: {end - start + 1}",
                "Accept-Ranges: bytes", f"ETag: {etag}", "Cache-Control: max-age=3600", "Connection: close"]
        if status == 206:
            head.append(f"Content-Range: bytes {start}-{end}/{size}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        if method == "HEAD":
            return await writer.drain()
        with file.open("rb") as handle:
            handle.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = handle.read(min(left, 64 * 1024))
                if not chunk:
                    break
                writer.write(chunk)
                left -= len(chunk)
                await writer.drain()


async def _send_json(writer: asyncio.StreamWriter, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    writer.write((f"HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                  "Connection: close\r\n\r\n").encode() + data)
    await writer.drain()


async def _send_range_error(writer: asyncio.StreamWriter, size: int) -> None:
    writer.write((f"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\n"
                  "Connection: close\r\n\r\n").encode())
    await writer.drain()
