"""A demo fleet for the local stack: devices that check for updates and install them, so a staged rollout
visibly advances in `make run`.

Every round (a few seconds), each active device of the model acts with some probability, as its owner, the way
the phone app would call PostgREST (one transaction, role `authenticated`, the owner's JWT claims):

- not updating: `ota_check_update` (every `check_seconds` at most); an offer starts an update;
- offered -> downloading -> transferring -> installing -> succeeded, one `ota_report_status` per step; an
  update fails now and then at its last step (`failure_rate`), when success would have been reported, and is
  retried on the device's next turn; the `max_attempts`-th attempt always succeeds, so the rollout finishes;
- after success the device runs the new version and confirms it on its next check.

One line per event on stdout; stage changes of the model's rollouts are printed as they are seen. The worker
(`rollouts.evaluate`) decides the stages; this only plays the devices.

    python -m dtx_worker.demo_fleet [--database-url URL] [--interval 2] [--failure-rate 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from dtx_worker.config import DEFAULT_DATABASE_URL

NEXT_PHASE = {"offered": "downloading", "downloading": "transferring", "transferring": "installing",
              "installing": "succeeded", "failed": "downloading", "timed_out": "downloading",
              "cancelled": "downloading"}

DEVICES_SQL = """
select d.id, d.owner_id, d.serial_number, d.firmware_version, s.phase, s.rollout_id, s.verified_at, s.attempts,
       f.version as target_version
  from public.devices d
  join public.profiles p on p.id = d.owner_id and p.is_active
  left join public.device_firmware_status s on s.device_id = d.id
  left join public.firmware_versions f on f.id = s.target_version_id
 where d.model = %s and d.is_active and d.firmware_version is not null
 order by d.serial_number
"""

ROLLOUTS_SQL = """
select r.id, r.name, r.status, r.current_stage, jsonb_array_length(r.stages) as stages,
       (r.stages -> r.current_stage ->> 'percent')::int as percent, f.version, r.status_reason
  from public.firmware_rollouts r join public.firmware_versions f on f.id = r.firmware_version_id
 where r.model = %s and r.status in ('active', 'paused', 'completed') order by r.created_at
"""


@dataclass(frozen=True)
class Event:
    serial: str
    action: str
    detail: str

    def line(self) -> str:
        return f"{datetime.now().strftime('%H:%M:%S')} demo-fleet {self.serial:<12} {self.action:<12} {self.detail}"


@dataclass
class FleetOptions:
    model: str = "DualTetraX"
    act_probability: float = 0.4
    failure_rate: float = 0.05
    check_seconds: float = 15.0
    seed: int = 7
    max_attempts: int = 3


@dataclass
class DemoFleet:
    """The devices of one model, played against the database at `conn` (autocommit)."""

    conn: psycopg.AsyncConnection[dict[str, Any]]
    options: FleetOptions = field(default_factory=FleetOptions)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.rng = random.Random(self.options.seed)
        self.last_check: dict[uuid.UUID, float] = {}
        self.rollout_state: dict[uuid.UUID, tuple[str, int]] = {}

    async def _as_owner(self, owner: uuid.UUID, sql: str, params: tuple[Any, ...]) -> Any:
        now = int(time.time())
        claims = {"sub": str(owner), "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 3600,
                  "app_metadata": {"provider": "email"}, "user_metadata": {}, "is_anonymous": False}
        async with self.conn.transaction():
            await self.conn.execute(
                "select set_config('search_path', '\"public\", \"extensions\"', true),"
                " set_config('role', 'authenticated', true),"
                " set_config('request.jwt.claims', %s, true),"
                " set_config('request.method', 'POST', true)", (json.dumps(claims),))
            cur = await self.conn.execute(sql, params)
            row = await cur.fetchone()
        return row["r"] if row else None

    async def rollout_changes(self) -> list[Event]:
        """Stage and status changes of the model's rollouts since the last call."""
        cur = await self.conn.execute(ROLLOUTS_SQL, (self.options.model,))
        events = []
        for r in await cur.fetchall():
            state = (r["status"], r["current_stage"])
            if self.rollout_state.get(r["id"]) != state:
                seen_before = r["id"] in self.rollout_state
                self.rollout_state[r["id"]] = state
                if not seen_before and r["status"] == "completed":
                    continue  # old news
                reason = f" ({r['status_reason']})" if r["status"] == "paused" and r["status_reason"] else ""
                events.append(Event("rollout", r["status"],
                                    f"{r['name']} -> {r['version']}: stage {r['current_stage'] + 1}/{r['stages']}"
                                    f" at {r['percent']}%{reason}"))
        return events

    async def round(self) -> list[Event]:
        """One turn of every device (each acts with probability `act_probability`)."""
        events = await self.rollout_changes()
        cur = await self.conn.execute(DEVICES_SQL, (self.options.model,))
        for d in await cur.fetchall():
            if self.rng.random() >= self.options.act_probability:
                continue
            try:
                event = await self._act(d)
            except psycopg.Error as error:
                diag = error.diag
                event = Event(d["serial_number"], "refused", f"{error.sqlstate}: {diag.message_primary or error}")
            if event is not None:
                events.append(event)
        return events

    async def _act(self, d: dict[str, Any]) -> Event | None:
        phase = d["phase"] or "idle"
        serial = d["serial_number"]
        if phase in NEXT_PHASE and d["rollout_id"] is not None:
            to = NEXT_PHASE[phase]
            error_code = None
            if (to == "succeeded" and (d["attempts"] or 0) < self.options.max_attempts
                    and self.rng.random() < self.options.failure_rate):
                to, error_code = "failed", self.rng.choice([3, 4, 7])  # transfer, validation, low battery
            await self._as_owner(
                d["owner_id"], "select to_jsonb(public.ota_report_status(%s, %s, %s, %s)) as r",
                (d["id"], d["rollout_id"], to, error_code))
            detail = f"{d['firmware_version']} -> {d['target_version']}"
            if to == "failed":
                detail += f" (error {error_code}; will retry)"
            elif phase in ("failed", "timed_out", "cancelled"):
                detail += " (retry)"
            return Event(serial, to, detail)
        # idle, succeeded, or nothing offered: check in now and then
        now = self.clock()
        if now - self.last_check.get(d["id"], -1e9) < self.options.check_seconds:
            return None
        self.last_check[d["id"]] = now
        result = await self._as_owner(d["owner_id"], "select public.ota_check_update(%s, %s) as r",
                                      (d["id"], d["firmware_version"]))
        if result.get("update_available"):
            return Event(serial, "offered", f"{d['firmware_version']} -> {result['version']}"
                                            f" ({result['size_bytes']:,} bytes)")
        if phase == "succeeded" and d["target_version"] == d["firmware_version"] and d["verified_at"] is None:
            return Event(serial, "confirmed", f"checked in running {d['firmware_version']}")
        return None


async def ensure_demo_binary(conn: psycopg.AsyncConnection[dict[str, Any]], storage_dir: Path,
                             model: str) -> str | None:
    """Write the seeded demo firmware's binary under the local object folder if it is missing (the seed can
    only hold its row). Returns the path written, if any."""
    cur = await conn.execute(
        "select f.version, f.storage_path, f.sha256, f.size_bytes from public.firmware_versions f"
        " where f.id = md5('demo-firmware-' || %s || '-1.1.0')::uuid", (model,))
    row = await cur.fetchone()
    if row is None:
        return None
    target = storage_dir / "firmware-binaries" / row["storage_path"]
    if target.exists():
        return None
    from dualtetrax.firmware import build_test_image

    data = build_test_image(version=row["version"], size=row["size_bytes"])
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        return None  # not the image the seed describes (another esptool?); leave the folder alone
    await asyncio.to_thread(_write_atomically, target, data)
    return str(target)


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.part")
    temp.write_bytes(data)
    os.replace(temp, target)


async def run(args: argparse.Namespace) -> int:
    options = FleetOptions(model=args.model, act_probability=args.act_probability, failure_rate=args.failure_rate,
                           check_seconds=args.check_seconds, seed=args.seed)
    try:
        conn = await psycopg.AsyncConnection.connect(args.database_url, autocommit=True, row_factory=dict_row,
                                                     connect_timeout=10)
    except psycopg.OperationalError as error:
        print(f"demo-fleet: cannot reach {args.database_url}: {error}", file=sys.stderr)
        return 1
    async with conn:
        with contextlib.suppress(OSError, psycopg.Error, ImportError, ValueError):
            written = await ensure_demo_binary(conn, Path(args.storage_dir), args.model)
            if written:
                print(f"demo-fleet: wrote the demo firmware binary to {written}", flush=True)
        if args.binary_only:
            return 0
        fleet = DemoFleet(conn, options)
        cur = await conn.execute("select count(*) as n from public.devices where model = %s and is_active",
                                 (args.model,))
        count = (await cur.fetchone() or {"n": 0})["n"]
        print(f"demo-fleet: {count} {args.model} devices checking in every {args.interval:g} s"
              f" (Ctrl-C to stop)", flush=True)
        rounds = 0
        while args.rounds == 0 or rounds < args.rounds:
            events = await fleet.round()
            for event in events:
                print(event.line(), flush=True)
            if rounds == 0 and not any(status in ("active", "paused") for status, _ in fleet.rollout_state.values()):
                print("demo-fleet: no active rollout for this model: `make db-reset` loads the demo rollout again,"
                      " or publish a version and start one (docs/admin.md)", flush=True)
            rounds += 1
            await asyncio.sleep(args.interval)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dtx_worker.demo_fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--storage-dir", default=os.environ.get("DTX_WORKER_STORAGE_DIR") or ".local/storage")
    parser.add_argument("--model", default="DualTetraX")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between rounds (default 2)")
    parser.add_argument("--act-probability", type=float, default=0.4, help="chance a device acts in a round")
    parser.add_argument("--failure-rate", type=float, default=0.05, help="chance a transfer fails (retried)")
    parser.add_argument("--check-seconds", type=float, default=15.0, help="minimum seconds between checks")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=0, help="stop after this many rounds (0: run until stopped)")
    parser.add_argument("--binary-only", action="store_true",
                        help="only write the seeded demo firmware's binary to the object folder, then exit")
    args = parser.parse_args(argv)

    loop = asyncio.new_event_loop()
    task = loop.create_task(run(args))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        print("demo-fleet: stopped", flush=True)
        return 0
    except BrokenPipeError:  # stdout closed (e.g. piped into head)
        sys.stderr.close()
        return 0
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
