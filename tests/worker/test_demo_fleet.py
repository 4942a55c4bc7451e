"""The demo fleet simulator against the test database: devices check in and report as their owners, and a
staged rollout advances to completion under the worker's evaluation (private.evaluate_rollouts, called
directly). And the demo seed: a published firmware and an active staged rollout that selects enough devices."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from dtx_worker.demo_fleet import DemoFleet, FleetOptions, ensure_demo_binary, main
from dualtetrax.firmware import build_test_image
from tests.db.ota_support import fleet, publish, rollout
from tests.support.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
Db = psycopg.Connection[dict[str, Any]]
SEED_PEOPLE = [f"{name}@example.test" for name in ("mina", "jiho", "kenji", "mei", "sofia", "ana", "somchai", "linh", "emma")]


@pytest.fixture
async def aconn(stack: LocalStack) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
    conn = await psycopg.AsyncConnection.connect(stack.dsn(), autocommit=True, row_factory=dict_row)
    yield conn
    await conn.close()


def evaluate(db: Db) -> list[dict[str, Any]]:
    row = db.execute("select private.evaluate_rollouts() as r").fetchone()
    assert row is not None
    return list(row["r"]["actions"])


def state(db: Db, rollout_id: uuid.UUID) -> tuple[str, int]:
    row = db.execute("select status, current_stage from firmware_rollouts where id = %s", (rollout_id,)).fetchone()
    assert row is not None
    return row["status"], row["current_stage"]


async def test_fleet_drives_a_staged_rollout_to_completion(db: Db, aconn: psycopg.AsyncConnection[Any]) -> None:
    m = f"DemoSim-{uuid.uuid4().hex[:6]}"
    # 48 devices: the 25 % stage almost surely selects at least min_sample_size of them (P(fewer) < 1e-5)
    devices = fleet(db, 48, owners=6, version="1.0.0", model=m)
    fw = publish(db, "1.1.0", 10100, model=m)
    rid = rollout(db, fw, "staged", stages=[{"percent": 25, "soak_minutes": 0}, {"percent": 60, "soak_minutes": 0},
                                            {"percent": 100, "soak_minutes": 0}],
                  min_sample_size=2, success_threshold=80, failure_threshold=90)
    clock = [0.0]
    sim = DemoFleet(aconn, FleetOptions(model=m, act_probability=1.0, failure_rate=0.2, check_seconds=0, seed=3),
                    clock=lambda: clock[0])
    events: list[Any] = []
    stages_seen = [state(db, rid)]
    for _ in range(60):  # each stage takes at most 5 + 2 * 4 rounds (two retries)
        events += await sim.round()
        clock[0] += 1
        evaluate(db)
        if stages_seen[-1] != state(db, rid):
            stages_seen.append(state(db, rid))
        if stages_seen[-1][0] == "completed":
            break
    assert stages_seen == [("active", 0), ("active", 1), ("active", 2), ("completed", 2)]
    actions = Counter(e.action for e in events)
    assert actions["refused"] == 0, [e for e in events if e.action == "refused"]
    assert actions["offered"] >= len(devices) and actions["succeeded"] >= 1 and actions["downloading"] >= actions["succeeded"]
    assert all(e.line().count("demo-fleet") == 1 for e in events)
    # the owners' reports are in the history, made as the owners
    history = db.execute(
        "select count(*) filter (where h.reported_by = d.owner_id) as own, count(*) as n"
        " from firmware_update_history h join devices d on d.id = h.device_id where h.rollout_id = %s", (rid,)).fetchone()
    assert history is not None and history["n"] > 0 and history["own"] == history["n"]
    # finish: every device ends on 1.1.0. A device offered as the rollout completes needs at most max_attempts
    # (3) attempts of 4 rounds each; run a few more rounds than that bound, stopping early once all are done.
    def versions() -> list[tuple[str, int]]:
        rows = db.execute("select firmware_version, count(*) as n from devices where model = %s group by 1 order by 1",
                          (m,)).fetchall()
        return [(v["firmware_version"], v["n"]) for v in rows]

    for _ in range(3 * 4 + 3):
        if versions() == [("1.1.0", len(devices))]:
            break
        events += await sim.round()
    assert versions() == [("1.1.0", len(devices))]
    # every device's first attempt fails with probability 0.2 (P(none of 48) < 1e-4); failures are retried
    assert Counter(e.action for e in events)["failed"] >= 1, "the fleet's failures are part of what is tested"


async def test_rollout_changes_are_reported_once(db: Db, aconn: psycopg.AsyncConnection[Any]) -> None:
    m = f"DemoSim-{uuid.uuid4().hex[:6]}"
    fw = publish(db, "2.0.0", 20000, model=m)
    rid = rollout(db, fw, "staged", stages=[{"percent": 50, "soak_minutes": 0}, {"percent": 100, "soak_minutes": 0}])
    sim = DemoFleet(aconn, FleetOptions(model=m))
    [first] = await sim.rollout_changes()
    assert (first.serial, first.action) == ("rollout", "active") and "stage 1/2 at 50%" in first.detail
    assert await sim.rollout_changes() == []
    db.execute("update firmware_rollouts set current_stage = 1, stage_started_at = now() where id = %s", (rid,))
    [moved] = await sim.rollout_changes()
    assert "stage 2/2 at 100%" in moved.detail


def test_seed_has_a_watchable_rollout(stack: LocalStack) -> None:
    """Loads seed.sql in a transaction that is rolled back (the test database is shared)."""
    seed = (ROOT / "supabase" / "seed.sql").read_text()
    with psycopg.connect(stack.dsn(), row_factory=dict_row) as conn:
        try:
            if conn.execute("select 1 from firmware_rollouts where model = 'DualTetraX' and status in"
                            " ('active', 'paused')").fetchone():
                pytest.skip("another test left a live DualTetraX rollout")
            if conn.execute("select 1 from firmware_versions where model = 'DualTetraX' and version_code >= 10100").fetchone():
                pytest.skip("another test registered a newer DualTetraX firmware")
            conn.execute(seed)  # type: ignore[call-overload]
            fw = conn.execute("select * from firmware_versions where id = md5('demo-firmware-DualTetraX-1.1.0')::uuid"
                              ).fetchone()
            assert fw is not None and (fw["status"], fw["version_code"], fw["size_bytes"]) == ("published", 10100, 65536)
            r = conn.execute("select * from firmware_rollouts where id = md5('demo-rollout-1.1.0')::uuid").fetchone()
            assert r is not None and (r["status"], r["current_stage"], r["strategy"]) == ("active", 0, "staged")
            assert [s["percent"] for s in r["stages"]] == [10, 50, 100]
            selected = conn.execute(
                "select count(*) filter (where private.rollout_bucket(%(r)s, d.id) < 1000) as ten,"
                " count(*) filter (where private.rollout_bucket(%(r)s, d.id) < 5000) as fifty, count(*) as n"
                " from devices d where d.id in (select md5('demo-device-lab-' || k)::uuid from generate_series(1, 40) k"
                "   union select md5('demo-device-' || p.email || '-' || k)::uuid from profiles p, generate_series(1, 2) k"
                "   where p.email = any(%(people)s))", {"r": r["id"], "people": SEED_PEOPLE}).fetchone()
            assert selected is not None and (selected["ten"], selected["fifty"], selected["n"]) == (4, 27, 52)
            assert selected["ten"] >= r["min_sample_size"]
            # the demo binary the simulator writes is the one the seed registered
            assert hashlib.sha256(build_test_image(version="1.1.0", size=65536)).hexdigest() == fw["sha256"]
        finally:
            conn.rollback()


async def test_demo_binary_written_once(db: Db, aconn: psycopg.AsyncConnection[Any], tmp_path: Path) -> None:
    assert await ensure_demo_binary(aconn, tmp_path, "NoSuchModel") is None


def test_command_line_runs_rounds(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    m = f"DemoSim-{uuid.uuid4().hex[:6]}"
    assert main(["--database-url", stack.dsn(), "--model", m, "--rounds", "2", "--interval", "0.01"]) == 0
    out = capsys.readouterr().out
    assert f"0 {m} devices" in out and "no active rollout for this model" in out


def test_binary_only_writes_the_seeded_demo_image_and_exits(stack: LocalStack, db: Db, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """What `make db` runs so that the seeded 1.1.0 can be downloaded without `make run` (here for a model of its
    own, registered as the seed registers the demo firmware)."""
    m = f"DemoBin-{uuid.uuid4().hex[:6]}"
    sha = hashlib.sha256(build_test_image(version="1.1.0", size=65536)).hexdigest()
    db.execute("insert into firmware_versions (id, version, version_code, model, storage_path, size_bytes, sha256)"
               " values (md5('demo-firmware-' || %s || '-1.1.0')::uuid, '1.1.0', 10100, %s, %s, 65536, %s)",
               (m, m, f"{m}/1.1.0/dualtetrax-1.1.0.bin", sha))
    args = ["--database-url", stack.dsn(), "--storage-dir", str(tmp_path), "--model", m, "--binary-only"]
    assert main(args) == 0
    image = (tmp_path / "firmware-binaries" / m / "1.1.0" / "dualtetrax-1.1.0.bin").read_bytes()
    assert hashlib.sha256(image).hexdigest() == sha
    assert "wrote the demo firmware binary" in capsys.readouterr().out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "wrote" not in out and "devices checking in" not in out  # written once; it exits instead of simulating
