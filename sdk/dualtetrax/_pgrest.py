"""What both local-stack backends (admin and cloud) do the way PostgREST and Storage do it: bind RPC arguments
from a JSON body by name, and write object files atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

ARGUMENTS_SQL = ("select a.name, format_type(a.type, null) from pg_proc p"
                 " join pg_namespace n on n.oid = p.pronamespace,"
                 " unnest(p.proargnames[1:p.pronargs], p.proargtypes::oid[]) as a(name, type)"
                 " where n.nspname = 'public' and p.proname = %s")


async def function_arguments(conn: psycopg.AsyncConnection[Any], name: str) -> dict[str, str]:
    """``public.<name>``'s argument names and types (empty if it has none or does not exist)."""
    cur = await conn.execute(ARGUMENTS_SQL, (name,))
    return {str(r[0]): str(r[1]) for r in await cur.fetchall()}


def rpc_statement(name: str, types: Mapping[str, str], args: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """``POST /rpc/<name>`` as PostgREST runs it: ``json_to_record(body) as _x(arg type, …)``, then
    ``name(arg := _x.arg, …)``; the result as ``jsonb``. ``name`` and the keys must already be checked."""
    if not args:
        return f"select to_jsonb(public.{name}())", ()
    cols = ", ".join(f'"{k}" {types[k]}' for k in args)
    named = ", ".join(f'"{k}" := _x."{k}"' for k in args)
    return (f"select to_jsonb(public.{name}({named})) from json_to_record(%s::json) as _x({cols})",
            (json.dumps(dict(args), default=str),))


def write_temp(target: Path, data: bytes) -> Path:
    """``data`` in a synced temporary file beside ``target`` (to be renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)
