"""Checks shared by the sync tests (what "nothing lost, nothing doubled" means, as SQL against the server)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from dualtetrax.ble.protocol.sessions import SessionRecord
from dualtetrax.cloud.backend import AuthSession, CloudBackend
from dualtetrax.cloud.errors import NetworkError
from dualtetrax.sync.payload import MIN_WORKING_S
from tests.sync.conftest import server_duplicates, server_rows


def assert_never_confirmed_early(confirmed: Mapping[str, bool], records: Sequence[SessionRecord],
                                 db: psycopg.Connection[dict[str, Any]], device_id: str | None,
                                 rejected: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """The invariant at every instant: a session the device counts as confirmed is on the server (or was too short
    to keep, or was rejected by the server)."""
    on_server = set(server_rows(db, device_id)) if device_id else set()
    short = {str(r.session_id) for r in records if r.working_duration_s < MIN_WORKING_S}
    early = [key for key, synced in confirmed.items() if synced and key not in on_server | short | rejected]
    assert not early, f"confirmed to the device before the server had them: {early[:3]}"


def assert_complete(confirmed: Mapping[str, bool], records: Sequence[SessionRecord],
                    db: psycopg.Connection[dict[str, Any]], device_id: str) -> None:
    """The end state: the server holds exactly the device's sessions (minus the too short), once, with their
    fields; the device has nothing unconfirmed."""
    kept = {str(r.session_id): r for r in records if r.working_duration_s >= MIN_WORKING_S}
    rows = server_rows(db, device_id)
    assert set(rows) == set(kept), (len(rows), len(kept))
    assert server_duplicates(db, device_id) == 0
    assert all(confirmed.values()) and len(confirmed) == len(records)
    for key, record in kept.items():
        row = rows[key]
        assert (row["working_duration"], row["pause_duration"], row["level"], row["device_mode"], row["shot_type"],
                row["time_synced"], row["samples"]) == (
            record.working_duration_s, record.pause_duration_s, record.level_index + 1, int(record.mode),
            int(record.shot), record.time_synced, len(record.battery_samples)), key
        if record.time_synced:
            assert row["start_time"] == datetime.fromtimestamp(record.start_time_ms / 1000, UTC)


class FlakyBackend:
    """The local backend with one injected network failure at the boundary: the ``fail_at``-th
    ``upload_sessions`` call raises :class:`NetworkError`, before reaching the server or after the server
    committed (the answer lost on the way back)."""

    def __init__(self, inner: CloudBackend, *, fail_at: int, after_commit: bool) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.after_commit = after_commit
        self.uploads = 0

    @property
    def session(self) -> AuthSession | None:
        return self.inner.session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def rpc(self, name: str, args: Mapping[str, Any]) -> Any:
        if name == "upload_sessions":
            self.uploads += 1
            if self.uploads == self.fail_at:
                if self.after_commit:
                    await self.inner.rpc(name, args)
                raise NetworkError("injected: the connection broke" + (" after the commit" if self.after_commit
                                                                       else ""))
        return await self.inner.rpc(name, args)
