"""Building blocks for OTA tests: firmware, fleets, and device behaviour under a controllable clock."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tests.support.pgrest import PostgrestSession, user


def publish(db: psycopg.Connection, version: str, code: int, *, model: str = "DualTetraX", channel: str = "stable",
            min_version_code: int | None = None, required: bool = False, hardware: list[str] | None = None,
            status: str = "published") -> uuid.UUID:
    row = db.execute(
        "insert into firmware_versions (version, version_code, model, channel, storage_path, size_bytes, sha256,"
        " min_version_code, is_required, hardware_revisions) values (%s, %s, %s, %s, %s, 4096, %s, %s, %s, %s) returning id",
        (version, code, model, channel, f"{model}/{version}/dualtetrax-{version}.bin",
         hashlib.sha256(version.encode()).hexdigest(), min_version_code, required, hardware or []),
    ).fetchone()
    assert row is not None
    if status != "draft":
        db.execute("update firmware_versions set status = %s where id = %s", (status, row["id"]))
    return uuid.UUID(str(row["id"]))


def rollout(db: psycopg.Connection, firmware_id: uuid.UUID, strategy: str = "all_at_once", *, start: bool = True,
            at: datetime | None = None, **kw: Any) -> uuid.UUID:
    cols = {"firmware_id": firmware_id, "name": f"rollout {uuid.uuid4().hex[:6]}", "strategy": strategy, **kw}
    names = ", ".join(f"{k} => %({k})s" for k in cols)
    params = {k: (psycopg.types.json.Jsonb(v) if k == "stages" else v) for k, v in cols.items()}
    with db.transaction():
        if at is not None:
            db.execute("select set_config('dtx.clock', %s, true)", (at.isoformat(),))
        r = db.execute(f"select (public.admin_create_rollout({names})).id", params).fetchone()
        assert r is not None
        if start:
            db.execute("select public.admin_start_rollout(%s)", (r["id"],))
    return uuid.UUID(str(r["id"]))


@dataclass(frozen=True)
class Device:
    id: uuid.UUID
    owner: uuid.UUID


def fleet(db: psycopg.Connection, n: int, *, owners: int = 10, version: str = "1.0.0", model: str = "DualTetraX",
          hardware: str | None = "rev-c", beta_every: int = 0) -> list[Device]:
    """n devices spread over `owners` fresh users, inserted directly (fast)."""
    users = [uuid.uuid4() for _ in range(owners)]
    with db.transaction():
        for u in users:
            db.execute("insert into auth.users (id, email) values (%s, %s)", (u, f"fleet-{u.hex[:10]}@example.test"))
        devices = [Device(uuid.uuid4(), users[i % owners]) for i in range(n)]
        with db.cursor().copy("copy devices (id, owner_id, serial_number, model, hardware_revision, firmware_version,"
                              " is_beta) from stdin") as cp:
            for i, d in enumerate(devices):
                cp.write_row((d.id, d.owner, f"SIM-{d.id.hex[:16]}", model, hardware, version,
                              bool(beta_every and i % beta_every == 0)))
    return devices


def check(session: PostgrestSession, d: Device, version: str, at: datetime | None = None) -> dict[str, Any]:
    prepare = f"select set_config('dtx.clock', '{at.isoformat()}', true)" if at else None
    with session.request(user(d.owner), prepare=prepare) as cur:
        cur.execute("select public.ota_check_update(%s, %s) as r", (d.id, version))
        row = cur.fetchone()
        assert row is not None
        return dict(row["r"])


def report(session: PostgrestSession, d: Device, rollout_id: str, phase: str, at: datetime | None = None,
           error_code: int | None = None) -> dict[str, Any]:
    prepare = f"select set_config('dtx.clock', '{at.isoformat()}', true)" if at else None
    with session.request(user(d.owner), prepare=prepare) as cur:
        cur.execute("select to_jsonb(public.ota_report_status(%s, %s, %s, %s)) as r", (d.id, rollout_id, phase, error_code))
        row = cur.fetchone()
        assert row is not None
        return dict(row["r"])


def evaluate(db: psycopg.Connection, at: datetime) -> dict[str, Any]:
    with db.transaction():
        db.execute("select set_config('dtx.clock', %s, true)", (at.isoformat(),))
        row = db.execute("select private.evaluate_rollouts() as r").fetchone()
    assert row is not None
    return dict(row["r"])


def stable_fraction(key: str) -> float:
    """A deterministic pseudo-random number in [0, 1) for simulated device behaviour."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


def dumps(x: Any) -> str:
    return json.dumps(x, default=str)
