"""Persistent state of an emulated DualTetraX, so that a device outlives the process that emulates it.

The real device keeps its stored sessions in RAM while it is powered; tools that are killed and started
again (``dtx sync --emulate-state PATH``) need the *same* device the second time: the same sessions, the
same confirmed flags, the same firmware. This file is that device's memory.

It is a SQLite database in WAL mode and every change is its own transaction, committed before the
device answers the request that caused it (a CONFIRM_SYNC is durable before its 0x93 leaves). WAL with
``synchronous=NORMAL`` survives the emulating process being killed at any instant (the WAL is in the
OS's page cache); only a power loss could lose the last changes, which does not matter for an emulator.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable
from pathlib import Path

from dualtetrax.ble.protocol.sessions import SessionRecord

_SCHEMA = """
create table if not exists meta (key text primary key, value text not null);
create table if not exists sessions (
    seq integer primary key autoincrement,   -- the device's storage order (GET_SESSIONS lists in it)
    id blob not null unique,
    record blob not null,                    -- the V3 record with its battery samples, as sent on the air
    synced integer not null default 0
);
"""


class DeviceStateFile:
    """One emulated device's sessions and firmware version in a SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def initialise(self, firmware_version: str, sessions: Iterable[SessionRecord]) -> str:
        """On a new file, store ``firmware_version`` and ``sessions``; return the device's firmware version."""
        row = self._db.execute("select value from meta where key = 'firmware_version'").fetchone()
        if row is not None:
            return str(row[0])
        with self._db:
            self._db.execute("begin immediate")
            self._db.executemany(
                "insert or ignore into sessions (id, record) values (?, ?)",
                ((record.session_id.bytes, record.encode()) for record in sessions),
            )
            self._db.execute("insert into meta values ('firmware_version', ?)", (firmware_version,))
        return firmware_version

    def load_sessions(self) -> list[tuple[SessionRecord, bool]]:
        rows = self._db.execute("select record, synced from sessions order by seq").fetchall()
        return [(SessionRecord.decode(bytes(record)), bool(synced)) for record, synced in rows]

    def put_session(self, record: SessionRecord) -> None:
        self._db.execute(
            "insert into sessions (id, record) values (?, ?)"
            " on conflict (id) do update set record = excluded.record, synced = 0",
            (record.session_id.bytes, record.encode()),
        )

    def mark_synced(self, session_id: uuid.UUID) -> None:
        self._db.execute("update sessions set synced = 1 where id = ?", (session_id.bytes,))

    def delete_session(self, session_id: uuid.UUID) -> None:
        self._db.execute("delete from sessions where id = ?", (session_id.bytes,))

    def clear_sessions(self) -> None:
        self._db.execute("delete from sessions")

    def set_firmware_version(self, version: str) -> None:
        self._db.execute("insert or replace into meta values ('firmware_version', ?)", (version,))
