"""The local outbox: sessions read from a device wait here until the server has them and the device knows.

One SQLite file. Each session moves ``pulled → uploaded → confirmed`` (or ``pulled → skipped → confirmed`` for
sessions too short to keep, ``pulled → rejected → confirmed`` for sessions the server refused); ``outcome`` keeps
what the server said (stored, duplicate, rejected) or ``skipped``. The payload, with its times (re-timed once, on
entry), never changes after the row is written, so every upload of a session sends the same bytes.

Durability: WAL journal with ``synchronous=NORMAL``, every state change in a transaction. A transaction committed
in WAL mode survives the process being killed at any instant (the WAL is in the OS page cache before commit
returns), which is what the sync guarantees are about. A power loss may roll back the last commits: then the rerun
uploads again (``duplicate``, accepted) and confirms again (harmless), and a session confirmed to the device was
accepted by the server before, so nothing is lost either. ``synchronous=FULL`` (``durable=True``) adds an fsync
per commit for callers that want the local copy itself to survive power loss.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dualtetrax.ble.protocol.sessions import SessionRecord
from dualtetrax.sync.payload import Retimer, device_timing, is_too_short, retime, upload_payload

State = Literal["pulled", "uploaded", "skipped", "rejected", "confirmed"]
Outcome = Literal["stored", "duplicate", "rejected", "skipped"]
#: States whose sessions still need CONFIRM_SYNC.
CONFIRMABLE: tuple[State, ...] = ("uploaded", "skipped", "rejected")

SCHEMA_VERSION = 1
_SCHEMA = """
create table if not exists sessions (
    id text primary key,                 -- the device's session UUID
    device_serial text not null,
    seq integer not null,                -- order of entry (the device's listing order)
    record blob not null,                -- the V3 record as read, for audit and re-processing
    payload text not null,               -- the upload_sessions item (JSON), fixed on entry
    estimated integer not null,          -- 1: times assigned by re-timing
    state text not null check (state in ('pulled', 'uploaded', 'skipped', 'rejected', 'confirmed')),
    outcome text check (outcome in ('stored', 'duplicate', 'rejected', 'skipped')),
    attempts integer not null default 0, -- upload attempts
    last_error text,
    pulled_at real not null,
    uploaded_at real,
    confirmed_at real
);
create index if not exists sessions_device_state on sessions (device_serial, state, seq);
create index if not exists sessions_seq on sessions (seq);
create table if not exists devices (
    serial text primary key,
    device_id text,                      -- the cloud's device id, once known
    last_device_sync_ms integer,         -- the app's last_device_sync_timestamp (re-timing base)
    retime_base_ms integer,              -- base in use by an unfinished sync (null: none)
    retime_offset_ms integer not null default 0
);
"""


@dataclass(frozen=True)
class OutboxEntry:
    session_id: str
    device_serial: str
    state: State
    outcome: Outcome | None
    payload: dict[str, Any]
    estimated: bool
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class DeviceMeta:
    serial: str
    device_id: str | None
    last_device_sync_ms: int | None
    retime_base_ms: int | None
    retime_offset_ms: int


class Outbox:
    """The outbox file. Not thread-safe; one sync at a time per file (SQLite locks across processes)."""

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute(f"pragma synchronous={'full' if durable else 'normal'}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"pragma user_version={SCHEMA_VERSION}")
        self.commits = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("begin immediate")
        try:
            yield self._db
        except BaseException:
            self._db.execute("rollback")
            raise
        self._db.execute("commit")
        self.commits += 1

    # -- devices

    def device(self, serial: str) -> DeviceMeta:
        row = self._db.execute(
            "select serial, device_id, last_device_sync_ms, retime_base_ms, retime_offset_ms from devices"
            " where serial = ?", (serial,)).fetchone()
        return DeviceMeta(*row) if row else DeviceMeta(serial, None, None, None, 0)

    def set_device_id(self, serial: str, device_id: str) -> None:
        with self._transaction() as db:
            db.execute("insert into devices (serial, device_id) values (?, ?)"
                       " on conflict (serial) do update set device_id = excluded.device_id", (serial, device_id))

    def finish_device_sync(self, serial: str, now_ms: int) -> None:
        """A sync of the device completed: the next re-timing starts from ``now_ms`` (§3.6 step 5)."""
        with self._transaction() as db:
            db.execute("insert into devices (serial, last_device_sync_ms) values (?, ?)"
                       " on conflict (serial) do update set last_device_sync_ms = excluded.last_device_sync_ms,"
                       " retime_base_ms = null, retime_offset_ms = 0", (serial, now_ms))

    # -- sessions

    def add_pulled(self, serial: str, records: Sequence[SessionRecord], *, now_ms: int) -> int:
        """Store freshly read records in one transaction; records already in the outbox are left exactly as they
        are (their times were fixed when they entered). Returns how many were new.

        Records without a time sync are re-timed here, once: the device's re-timing state (base and cumulative
        offset) is stored in the same transaction, so a resumed sync continues where the killed one stopped.
        """
        if not records:
            return 0
        with self._transaction() as db:
            meta = self.device(serial)
            retimer: Retimer | None = None
            if meta.retime_base_ms is not None:
                retimer = Retimer(meta.retime_base_ms, meta.retime_offset_ms)
            keys = [str(record.session_id) for record in records]
            present = {row[0] for row in db.execute(
                f"select id from sessions where id in ({', '.join('?' * len(keys))})", keys)}
            seq = db.execute("select coalesce(max(seq), 0) from sessions").fetchone()[0]
            now = time.time()
            rows = []
            for key, record in zip(keys, records, strict=True):
                if key in present:
                    continue
                present.add(key)
                skipped = is_too_short(record)
                if record.time_synced or skipped:
                    timing = device_timing(record)
                else:
                    if retimer is None:
                        retimer = Retimer(meta.last_device_sync_ms if meta.last_device_sync_ms is not None else now_ms)
                    timing, retimer = retime(record, retimer)
                seq += 1
                rows.append((key, serial, seq, record.encode(), json.dumps(upload_payload(record, timing)),
                             int(timing.estimated), "skipped" if skipped else "pulled",
                             "skipped" if skipped else None, now))
            db.executemany(
                "insert into sessions (id, device_serial, seq, record, payload, estimated, state, outcome,"
                " pulled_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if retimer is not None:
                db.execute("insert into devices (serial, retime_base_ms, retime_offset_ms) values (?, ?, ?)"
                           " on conflict (serial) do update set retime_base_ms = excluded.retime_base_ms,"
                           " retime_offset_ms = excluded.retime_offset_ms",
                           (serial, retimer.base_ms, retimer.offset_ms))
        added = len(rows)
        return added

    def entries(self, serial: str | None = None, *, states: Iterable[State] | None = None,
                ids: Iterable[str] | None = None, limit: int | None = None) -> list[OutboxEntry]:
        sql = ("select id, device_serial, state, outcome, payload, estimated, attempts, last_error"
               " from sessions where 1 = 1")
        params: list[Any] = []
        if serial is not None:
            sql += " and device_serial = ?"
            params.append(serial)
        if states is not None:
            wanted = list(states)
            sql += f" and state in ({', '.join('?' * len(wanted))})"
            params.extend(wanted)
        if ids is not None:
            wanted_ids = list(ids)
            sql += f" and id in ({', '.join('?' * len(wanted_ids))})"
            params.extend(wanted_ids)
        sql += " order by seq"
        if limit is not None:
            sql += f" limit {int(limit)}"
        return [OutboxEntry(r[0], r[1], r[2], r[3], json.loads(r[4]), bool(r[5]), r[6], r[7])
                for r in self._db.execute(sql, params)]

    def keys(self, serial: str, *, states: Iterable[State]) -> list[tuple[str, State]]:
        """(session id, state) in entry order, without decoding payloads."""
        wanted = list(states)
        return [(row[0], row[1]) for row in self._db.execute(
            f"select id, state from sessions where device_serial = ? and state in ({', '.join('?' * len(wanted))})"
            " order by seq", [serial, *wanted])]

    def devices_with_pending_uploads(self) -> list[tuple[str, str]]:
        """(serial, cloud device id) of devices with ``pulled`` sessions whose cloud device is known."""
        rows = self._db.execute("select distinct s.device_serial, d.device_id from sessions s join devices d"
                                " on d.serial = s.device_serial where s.state = 'pulled' and d.device_id is not null")
        return [(row[0], row[1]) for row in rows]

    def states(self, ids: Iterable[str]) -> dict[str, State]:
        wanted = list(ids)
        if not wanted:
            return {}
        rows = self._db.execute(f"select id, state from sessions where id in ({', '.join('?' * len(wanted))})",
                                wanted)
        return {row[0]: row[1] for row in rows}

    def mark_uploaded(self, outcomes: Sequence[tuple[str, Outcome, str | None]]) -> None:
        """Record the server's answer per session: stored/duplicate → ``uploaded``, rejected → ``rejected``."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "update sessions set state = ?, outcome = ?, last_error = ?, attempts = attempts + 1,"
                " uploaded_at = ? where id = ? and state = 'pulled'",
                [("rejected" if outcome == "rejected" else "uploaded", outcome, reason, now, key)
                 for key, outcome, reason in outcomes])

    def record_failure(self, ids: Sequence[str], error: str) -> None:
        """An upload attempt failed as a whole (network, server): the sessions stay ``pulled``."""
        with self._transaction() as db:
            db.executemany("update sessions set attempts = attempts + 1, last_error = ? where id = ?",
                           [(error, key) for key in ids])

    def mark_confirmed(self, ids: Sequence[str]) -> None:
        now = time.time()
        with self._transaction() as db:
            db.executemany("update sessions set state = 'confirmed', confirmed_at = ? where id = ?"
                           " and state in ('uploaded', 'skipped', 'rejected')", [(now, key) for key in ids])

    def make_durable(self) -> None:
        """Force every committed change to disk (a full WAL checkpoint syncs the WAL and the database), for
        sessions about to be confirmed to the device although the server does not hold them (rejected,
        too short): from then on the outbox has the only copy, and it must survive a power loss too."""
        self._db.execute("pragma wal_checkpoint(FULL)").fetchall()

    def requeue_rejected(self, serial: str | None = None) -> int:
        """Send rejected sessions again on the next sync (e.g. after a server fix); returns how many."""
        with self._transaction() as db:
            cursor = db.execute("update sessions set state = 'pulled', outcome = null where outcome = 'rejected'"
                                + (" and device_serial = ?" if serial else ""), (serial,) if serial else ())
            return cursor.rowcount

    def counts(self, serial: str | None = None) -> dict[str, int]:
        sql = "select state, count(*) from sessions" + (" where device_serial = ?" if serial else "")
        found = dict(self._db.execute(sql + " group by state", (serial,) if serial else ()).fetchall())
        return {state: int(found.get(state, 0)) for state in ("pulled", "uploaded", "skipped", "rejected",
                                                               "confirmed")}


def session_key(session_id: uuid.UUID) -> str:
    return str(session_id)
