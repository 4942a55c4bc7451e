"""From a device's session record to the JSON object ``upload_sessions`` takes (docs/schema.md, *Session upload*).

The mapping follows the app (device-protocol.md §3.5, §6.3): the shot type stays 0-based, the mode becomes its
code (U-Shot ``0x01+mode``, E-Shot ``0x11+mode``, LED ``0x21``), the level becomes ``level+1``, times are ISO 8601
UTC, battery values stay in millivolts as the device reports them. A V3 record carries no warning flags, so
``had_temperature_warning``/``had_battery_warning`` are left out (the server stores false).

Sessions recorded without a time sync (``time_synced`` false) carry uptime-based times; :func:`retime` replaces
them the way the app does (§3.6 step 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dualtetrax.ble.protocol.sessions import SessionRecord

#: The app keeps only sessions with at least this much working time (device-protocol.md §6.3).
MIN_WORKING_S = 3
#: The server's limit on battery samples per session.
MAX_BATTERY_SAMPLES = 500


def iso_utc(ms: int) -> str:
    """Unix milliseconds as ISO 8601 in UTC with millisecond precision (``2026-03-09T08:15:00.250Z``)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_too_short(record: SessionRecord) -> bool:
    """Confirmed to the device but not kept, as the app does."""
    return record.working_duration_s < MIN_WORKING_S


@dataclass(frozen=True)
class Timing:
    """The times a session is uploaded with."""

    start_ms: int
    end_ms: int | None
    estimated: bool
    """True when :func:`retime` assigned them (the record was not time-synced)."""


@dataclass(frozen=True)
class Retimer:
    """State of the app's re-timing within one device sync: ``start = base + offset``, and the offset grows by
    ``working + pause + 1 s`` per re-timed session. ``base`` is the last device-sync time (or now if none)."""

    base_ms: int
    offset_ms: int = 0


def retime(record: SessionRecord, retimer: Retimer) -> tuple[Timing, Retimer]:
    """The estimated times of a record without a time sync, and the re-timer for the next one.

    device-protocol.md §3.6 step 4: start = last device-sync time + cumulative offset;
    end = start + working + pause; the offset grows by (working + pause + 1 s).
    """
    span_ms = (record.working_duration_s + record.pause_duration_s) * 1000
    start = retimer.base_ms + retimer.offset_ms
    timing = Timing(start, start + span_ms, estimated=True)
    return timing, Retimer(retimer.base_ms, retimer.offset_ms + span_ms + 1000)


def device_timing(record: SessionRecord) -> Timing:
    """The record's own times (a time-synced record); ``end_time_ms`` 0 means none."""
    return Timing(record.start_time_ms, record.end_time_ms or None, estimated=False)


def upload_payload(record: SessionRecord, timing: Timing) -> dict[str, Any]:
    """The ``upload_sessions`` item for ``record`` with ``timing``.

    Codes the SDK does not know (an unknown shot type, mode or level) are sent as they are and the server
    rejects the item, naming the field, rather than the SDK guessing. Battery samples with a repeated
    ``elapsed_s`` keep the first one and at most 500 are sent (the server refuses the whole item otherwise).
    """
    samples: list[dict[str, int]] = []
    seen: set[int] = set()
    for point in record.battery_samples:
        if point.elapsed_s in seen:
            continue
        seen.add(point.elapsed_s)
        samples.append({"elapsed_seconds": point.elapsed_s, "voltage_mv": point.voltage_mv})
        if len(samples) == MAX_BATTERY_SAMPLES:
            break
    return {
        "id": str(record.session_id),
        "shot_type": int(record.shot),
        "device_mode": int(record.mode),
        "level": int(record.level),
        "led_pattern": record.led_pattern,
        "start_time": iso_utc(timing.start_ms),
        "end_time": iso_utc(timing.end_ms) if timing.end_ms is not None else None,
        "working_duration": record.working_duration_s,
        "pause_duration": record.pause_duration_s,
        "pause_count": record.pause_count,
        "termination_reason": int(record.termination_reason),
        "completion_percent": record.completion_percent,
        "battery_start_mv": record.start_battery_mv or None,
        "battery_end_mv": record.end_battery_mv or None,
        "time_synced": record.time_synced,
        "battery_samples": samples,
    }
