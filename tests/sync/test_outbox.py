"""The outbox: re-timing fixed on entry, state transitions, and surviving SIGKILL mid-write."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from dualtetrax.emulator import sample_sessions
from dualtetrax.sync import Outbox
from dualtetrax.sync.payload import iso_utc

BASE = 1_772_000_000_000


def untimed(count: int, seed: int = 1) -> list:  # type: ignore[type-arg]
    return [dataclasses.replace(r, time_synced=False, start_time_ms=5_000 + i, end_time_ms=6_000 + i)
            for i, r in enumerate(sample_sessions(count, seed=seed))]


def test_retiming_is_applied_once_and_continues_after_a_restart(tmp_path: Path) -> None:
    records = untimed(5)
    span = [(r.working_duration_s + r.pause_duration_s) * 1000 for r in records]
    with Outbox(tmp_path / "o.sqlite") as outbox:
        assert outbox.add_pulled("SN1", records[:2], now_ms=BASE) == 2
        # the same records again, later: untouched
        assert outbox.add_pulled("SN1", records[:2], now_ms=BASE + 99_000) == 0
    with Outbox(tmp_path / "o.sqlite") as outbox:  # a new process resumes the interrupted sync
        assert outbox.add_pulled("SN1", records[2:], now_ms=BASE + 50_000) == 3
        payloads = [e.payload for e in outbox.entries("SN1")]
        expected, offset = [], 0
        for s in span:  # base = now of the first entry (no earlier device sync), offsets continue across runs
            expected.append((iso_utc(BASE + offset), iso_utc(BASE + offset + s)))
            offset += s + 1000
        assert [(p["start_time"], p["end_time"]) for p in payloads] == expected
        assert all(e.estimated and p["time_synced"] is False for e, p in zip(outbox.entries("SN1"), payloads,
                                                                             strict=True))
        # a completed sync moves the base to its end; the next untimed session starts there
        outbox.finish_device_sync("SN1", BASE + 3_600_000)
        later = untimed(1, seed=9)
        outbox.add_pulled("SN1", later, now_ms=BASE + 7_200_000)
        assert outbox.entries(ids=[str(later[0].session_id)])[0].payload["start_time"] == iso_utc(BASE + 3_600_000)
        assert outbox.device("SN1").last_device_sync_ms == BASE + 3_600_000


def test_states_move_forward_only(tmp_path: Path) -> None:
    records = sample_sessions(4)
    short = dataclasses.replace(records[3], working_duration_s=2)
    with Outbox(tmp_path / "o.sqlite") as outbox:
        outbox.add_pulled("SN1", [*records[:3], short], now_ms=BASE)
        ids = [str(r.session_id) for r in records]
        assert outbox.counts("SN1") == {"pulled": 3, "uploaded": 0, "skipped": 1, "rejected": 0, "confirmed": 0}
        outbox.mark_uploaded([(ids[0], "stored", None), (ids[1], "duplicate", None),
                              (ids[2], "rejected", "level: must be between 1 and 3")])
        outbox.mark_uploaded([(ids[0], "rejected", "late answer")])  # not pulled any more: ignored
        assert outbox.states(ids) == {ids[0]: "uploaded", ids[1]: "uploaded", ids[2]: "rejected", ids[3]: "skipped"}
        outbox.mark_confirmed(ids)
        assert outbox.counts("SN1")["confirmed"] == 4
        rejected = outbox.entries(ids=[ids[2]])[0]
        assert (rejected.outcome, rejected.last_error, rejected.attempts) == (
            "rejected", "level: must be between 1 and 3", 1)
        assert outbox.requeue_rejected("SN1") == 1
        assert outbox.states([ids[2]]) == {ids[2]: "pulled"}


WRITER = r"""
import sys, time
from dualtetrax.emulator import sample_sessions
from dualtetrax.sync import Outbox
records = sample_sessions(2000, seed=3, mixed=True)
with Outbox(sys.argv[1]) as outbox:
    print("ready", flush=True)
    for start in range(0, len(records), 20):
        batch = records[start:start + 20]
        outbox.add_pulled("SN1", batch, now_ms=1_772_000_000_000)
        ids = [str(r.session_id) for r in batch]
        outbox.mark_uploaded([(i, "stored", None) for i in ids])
        outbox.mark_confirmed(ids)
"""


def test_survives_sigkill_at_any_moment(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    for attempt, delay in enumerate((0.02, 0.1, 0.2, 0.3)):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        db = sqlite3.connect(path)
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        db.close()
        with Outbox(path) as outbox:
            counts = outbox.counts("SN1")
            # every transaction is all or nothing: a batch is never half-written, states are consistent
            total = sum(counts.values())
            assert total % 20 == 0 and total > 0, (attempt, counts)
            assert total - counts["confirmed"] <= 20, (attempt, counts)  # only the batch in flight is unfinished
            for entry in outbox.entries("SN1"):
                assert entry.payload["id"] == entry.session_id
                assert entry.state in ("pulled", "uploaded", "skipped", "confirmed")
