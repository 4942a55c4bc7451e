"""Helpers shared by the benchmarks: a fresh durable cluster, users, and the one-JSON-line report."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from tests.support.stack import LocalStack, bench_stack  # noqa: E402


def fresh_stack(port: int) -> LocalStack:
    stack = bench_stack(port)
    print(f"building a fresh cluster on port {port} …", file=sys.stderr)
    stack.run("reset")
    return stack


def make_users_with_devices(dsn: str, n: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """n users, each owning one device; returns (user_id, device_id) pairs."""
    out = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(n):
            uid, did = uuid.uuid4(), uuid.uuid4()
            conn.execute("insert into auth.users (id, email) values (%s, %s)", (uid, f"bench{i}-{uid.hex[:6]}@example.test"))
            conn.execute("insert into devices (id, owner_id, serial_number) values (%s, %s, %s)",
                         (did, uid, f"BENCH-{did.hex[:12]}"))
            out.append((uid, did))
    return out


def report(**fields: Any) -> None:
    """The benchmark's result: one JSON object, the last line printed."""
    print(json.dumps(fields, sort_keys=False))
