"""Where admin operations go: the object store and the database's RPCs, behind one tiny protocol.

Two backends implement :class:`AdminBackend`:

- :class:`LocalStackBackend`: the local stack (``make db``). RPCs run on a direct Postgres connection exactly
  as PostgREST runs them for a service-role request (one transaction, ``role`` and ``request.jwt.claims`` set
  locally); objects are files under ``<storage_dir>/<bucket>/<path>``, written atomically, plus their
  ``storage.objects`` row, as the Storage server keeps it.
- :class:`SupabaseBackend`: a Supabase project, through the ``supabase`` client with the service role key.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dualtetrax._pgrest import function_arguments, rpc_statement, write_temp
from dualtetrax.admin.errors import ObjectExistsError, RpcError, StorageError

if TYPE_CHECKING:
    import psycopg
    from supabase import AsyncClient

DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"
DEFAULT_STORAGE_DIR = Path(".local/storage")

_OBJECT_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,511}$")
_FUNCTION_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
LISTABLE_TABLES = frozenset({"firmware_versions", "firmware_rollouts"})
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@runtime_checkable
class AdminBackend(Protocol):
    """What the admin API needs from a deployment."""

    async def upload_object(self, bucket: str, path: str, data: bytes, content_type: str) -> None:
        """Store a new object; raise :class:`ObjectExistsError` if one is already there (never overwrite)."""

    async def delete_object(self, bucket: str, path: str) -> None:
        """Remove an object (no error if it is already gone)."""

    async def rpc(self, name: str, args: dict[str, Any]) -> Any:
        """Call ``public.<name>`` as the service role with named arguments; the JSON result.
        Raises :class:`RpcError` when the database refuses."""


def check_object_path(bucket: str, path: str) -> None:
    if not _BUCKET.match(bucket):
        raise ValueError(f"bucket {bucket!r} is not a bucket name")
    if not _OBJECT_PATH.match(path) or ".." in path or "//" in path or path.endswith("/"):
        raise ValueError(f"object path {path!r} must be a relative path without '..'")


# ------------------------------------------------------------------------------------------ local stack


class LocalStackBackend:
    """The local stack: psycopg 3 (async) to its database, a folder for its objects.

    Use as an async context manager, or call :meth:`close` when done.
    """

    def __init__(self, database_url: str = DEFAULT_DATABASE_URL, storage_dir: str | Path = DEFAULT_STORAGE_DIR) -> None:
        self.database_url = database_url
        self.storage_dir = Path(storage_dir)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._signatures: dict[str, dict[str, str]] = {}

    async def __aenter__(self) -> LocalStackBackend:
        await self._connection()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            import psycopg

            try:
                self._conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True,
                                                                   connect_timeout=10)
            except psycopg.OperationalError as error:
                raise StorageError(f"cannot reach the database at {self.database_url}: {error}".strip(),
                                   hint="Start the local stack with `make db`, or pass --database-url.") from error
        return self._conn

    def object_file(self, bucket: str, path: str) -> Path:
        check_object_path(bucket, path)
        return self.storage_dir / bucket / path

    # -- RPCs, as PostgREST calls them

    async def _arguments(self, name: str) -> dict[str, str]:
        if name not in self._signatures:
            self._signatures[name] = await function_arguments(await self._connection(), name)
        return self._signatures[name]

    async def rpc(self, name: str, args: dict[str, Any]) -> Any:
        """POST /rest/v1/rpc/<name> as the service role: arguments bound from a JSON body by name."""
        import psycopg

        if not _FUNCTION_NAME.match(name):
            raise ValueError(f"{name!r} is not a function name")
        types = await self._arguments(name)
        unknown = sorted(set(args) - set(types))
        if (not types and args) or unknown:
            raise RpcError(name, f"no function public.{name} with arguments {unknown or sorted(args)}",
                           code="PGRST202", hint="Apply the latest migrations (`make db`).")
        sql, params = rpc_statement(name, types, args)
        conn = await self._connection()
        try:
            async with conn.transaction():
                await conn.execute(
                    "select set_config('search_path', '\"public\", \"extensions\"', true),"
                    " set_config('role', 'service_role', true),"
                    " set_config('request.jwt.claims', %s, true),"
                    " set_config('request.method', 'POST', true),"
                    " set_config('request.path', %s, true)",
                    (json.dumps({"role": "service_role"}), f"/rpc/{name}"))
                cur = await conn.execute(sql, params or None)
                row = await cur.fetchone()
        except psycopg.Error as error:
            diag = error.diag
            raise RpcError(name, diag.message_primary or str(error), code=error.sqlstate,
                           detail=diag.message_detail, hint=diag.message_hint) from error
        return row[0] if row else None

    async def list_rows(self, table: str, *, order: str = "created_at", descending: bool = True,
                        limit: int = 100) -> list[dict[str, Any]]:
        """GET /rest/v1/<table>?order=<order>.desc&limit=<limit> as the service role."""
        import psycopg

        if table not in LISTABLE_TABLES or not _FUNCTION_NAME.match(order):
            raise ValueError(f"cannot list {table!r} ordered by {order!r}")
        conn = await self._connection()
        try:
            async with conn.transaction():
                await conn.execute("select set_config('role', 'service_role', true),"
                                   " set_config('request.jwt.claims', %s, true)",
                                   (json.dumps({"role": "service_role"}),))
                cur = await conn.execute(
                    f'select to_jsonb(t) from public.{table} t order by t."{order}" {"desc" if descending else "asc"}'
                    " limit %s", (limit,))
                rows = await cur.fetchall()
        except psycopg.Error as error:
            raise RpcError(table, error.diag.message_primary or str(error), code=error.sqlstate) from error
        return [dict(r[0]) for r in rows]

    # -- objects, as the Storage server keeps them

    async def upload_object(self, bucket: str, path: str, data: bytes, content_type: str) -> None:
        import asyncio
        import hashlib

        import psycopg

        target = self.object_file(bucket, path)
        temp = await asyncio.to_thread(write_temp, target, data)
        replaced = False
        try:
            conn = await self._connection()
            async with conn.transaction():
                cur = await conn.execute(
                    "insert into storage.objects (bucket_id, name, metadata) values (%s, %s, %s::jsonb)"
                    " on conflict (bucket_id, name) do nothing returning id",
                    (bucket, path, json.dumps({"size": len(data), "mimetype": content_type,
                                               "eTag": f'"{hashlib.md5(data).hexdigest()}"',
                                               "cacheControl": "max-age=3600"})))
                if await cur.fetchone() is None:
                    raise ObjectExistsError(f"{bucket}/{path} already exists.")
                # The file appears under its final name only if the row is about to commit.
                await asyncio.to_thread(os.replace, temp, target)
                replaced = True
        except psycopg.Error as error:
            await asyncio.to_thread(_unlink, temp)
            if replaced:  # the commit failed: the row is not there, so neither may the file be
                await asyncio.to_thread(_unlink, target)
            raise StorageError(f"could not store {bucket}/{path}: {error}") from error
        except BaseException:
            await asyncio.to_thread(_unlink, temp)
            raise

    async def delete_object(self, bucket: str, path: str) -> None:
        import asyncio

        import psycopg

        target = self.object_file(bucket, path)
        conn = await self._connection()
        try:
            async with conn.transaction():
                await conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
                await conn.execute("delete from storage.objects where bucket_id = %s and name = %s", (bucket, path))
        except psycopg.Error as error:
            raise StorageError(f"could not delete {bucket}/{path}: {error}") from error
        await asyncio.to_thread(_unlink, target)

    async def read_object(self, bucket: str, path: str) -> bytes:
        import asyncio

        return await asyncio.to_thread(self.object_file(bucket, path).read_bytes)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ Supabase


class SupabaseBackend:
    """A Supabase project through the ``supabase`` client, authenticated with the service role key."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    @classmethod
    async def connect(cls, url: str, service_role_key: str, *, httpx_client: Any = None) -> SupabaseBackend:
        """``httpx_client``: an ``httpx.AsyncClient`` to send requests through (tests pass a mock transport)."""
        from supabase import AsyncClientOptions, acreate_client

        options = AsyncClientOptions(httpx_client=httpx_client, auto_refresh_token=False, persist_session=False)
        return cls(await acreate_client(url, service_role_key, options=options))

    async def upload_object(self, bucket: str, path: str, data: bytes, content_type: str) -> None:
        from storage3.exceptions import StorageApiError

        check_object_path(bucket, path)
        try:
            await self.client.storage.from_(bucket).upload(path, data, {"content-type": content_type,
                                                                        "upsert": "false"})
        except StorageApiError as error:
            status = _status(error.status)
            if status == 409 or str(error.code) == "Duplicate":
                raise ObjectExistsError(f"{bucket}/{path} already exists.") from error
            raise StorageError(f"could not upload {bucket}/{path}: {error.message}", status=status) from error

    async def delete_object(self, bucket: str, path: str) -> None:
        from storage3.exceptions import StorageApiError

        check_object_path(bucket, path)
        try:
            await self.client.storage.from_(bucket).remove([path])
        except StorageApiError as error:
            raise StorageError(f"could not delete {bucket}/{path}: {error.message}",
                               status=_status(error.status)) from error

    async def rpc(self, name: str, args: dict[str, Any]) -> Any:
        from postgrest.exceptions import APIError

        try:
            response = await self.client.rpc(name, args).execute()
        except APIError as error:
            raise RpcError(name, error.message or str(error), code=error.code,
                           detail=str(error.details) if error.details is not None else None,
                           hint=error.hint) from error
        return response.data


    async def list_rows(self, table: str, *, order: str = "created_at", descending: bool = True,
                        limit: int = 100) -> list[dict[str, Any]]:
        from postgrest.exceptions import APIError

        if table not in LISTABLE_TABLES:
            raise ValueError(f"cannot list {table!r}")
        try:
            response = await self.client.table(table).select("*").order(order, desc=descending).limit(limit).execute()
        except APIError as error:
            raise RpcError(table, error.message or str(error), code=error.code) from error
        rows: list[dict[str, Any]] = [dict(row) for row in response.data if isinstance(row, dict)]
        return rows


def _status(value: int | str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
