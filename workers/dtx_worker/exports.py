"""Personal-data exports as files: the sessions CSV and the complete data archive (.zip). Pure functions of
rows read by the report job (`handlers/reports.py`); no database or storage here."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dtx_worker.reports.model import MODES

SHOT_TYPES = {0: "U-Shot", 1: "E-Shot", 2: "LED Care"}
# `termination_reason` as the firmware defines it (device-protocol.md, termination_reason.dart)
TERMINATION_REASONS = {0: "completed (8-minute program)", 1: "powered off", 2: "battery drained", 3: "overheated",
                       4: "charging started", 5: "paused too long", 6: "mode switched", 7: "power on",
                       8: "overheated (ultrasonic)", 9: "overheated (body)", 255: "other"}

CSV_COLUMNS: tuple[str, ...] = (
    "Session ID", "Device", "Serial number", "Start (UTC)", "Start (local)", "End (UTC)", "End (local)",
    "Time zone", "Treatment", "Mode", "Level", "Working time (s)", "Pause time (s)", "Pauses", "Completion (%)",
    "Ended by", "Battery at start (mV)", "Battery at end (mV)", "Temperature warning", "Battery warning",
    "Time synced",
)


def _utc(ts: datetime | None) -> str:
    return ts.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _local(ts: datetime | None, zone: ZoneInfo) -> str:
    return ts.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _yes_no(v: Any) -> str:
    return "yes" if v else "no"


def session_csv_row(s: Mapping[str, Any], zone: ZoneInfo, tz_name: str) -> list[Any]:
    mode = MODES.get(int(s["device_mode"]))
    reason = s.get("termination_reason")
    return [
        str(s["id"]), s.get("device_name") or "", s.get("serial_number") or "",
        _utc(s["start_time"]), _local(s["start_time"], zone), _utc(s.get("end_time")), _local(s.get("end_time"), zone),
        tz_name, SHOT_TYPES.get(int(s["shot_type"]), str(s["shot_type"])), mode[1] if mode else str(s["device_mode"]),
        s["level"], s["working_duration"], s["pause_duration"], s["pause_count"], s["completion_percent"],
        "" if reason is None else TERMINATION_REASONS.get(int(reason), str(reason)),
        "" if s.get("battery_start_mv") is None else s["battery_start_mv"],
        "" if s.get("battery_end_mv") is None else s["battery_end_mv"],
        _yes_no(s.get("had_temperature_warning")), _yes_no(s.get("had_battery_warning")), _yes_no(s.get("time_synced")),
    ]


def sessions_csv(sessions: Iterable[Mapping[str, Any]], tz_name: str) -> bytes:
    """UTF-8 with a BOM (so spreadsheet apps detect the encoding), CRLF line ends, one row per session in
    start order, times both in UTC and in the user's time zone."""
    zone = ZoneInfo(tz_name)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for s in sessions:
        w.writerow(session_csv_row(s, zone, tz_name))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    raise TypeError(f"cannot export {type(v).__name__}")


def to_json(value: Any) -> bytes:
    return json.dumps(value, default=_json_default, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")


ARCHIVE_README = """DualTetraX personal data export

profile.json              your profile
devices.json              devices registered to you
sessions.json             every usage session, each with its battery samples
sessions.csv              the same sessions as a spreadsheet (times in UTC and in your time zone)
daily_statistics.json     per-day statistics per device (local days)
goals.json                your goals
settings.json             notification settings and skin profile
report_requests.json      reports and exports you asked for
"""


def data_archive(*, profile: Mapping[str, Any], devices: Sequence[Mapping[str, Any]],
                 sessions: Sequence[Mapping[str, Any]], statistics: Sequence[Mapping[str, Any]],
                 goals: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
                 requests: Sequence[Mapping[str, Any]], generated_at: datetime) -> bytes:
    """A .zip of JSON files and the sessions CSV. `sessions` carry `battery_samples` (a list of
    {elapsed_seconds, voltage_mv}) besides their own columns."""
    tz = str(profile.get("timezone") or "UTC")
    files: dict[str, bytes] = {
        "README.txt": ARCHIVE_README.encode(),
        "profile.json": to_json({**profile, "exported_at": generated_at}),
        "devices.json": to_json(list(devices)),
        "sessions.json": to_json(list(sessions)),
        "sessions.csv": sessions_csv(sessions, tz),
        "daily_statistics.json": to_json(list(statistics)),
        "goals.json": to_json(list(goals)),
        "settings.json": to_json(dict(settings)),
        "report_requests.json": to_json(list(requests)),
    }
    buf = io.BytesIO()
    stamp = generated_at.astimezone(ZoneInfo("UTC")).timetuple()[:6]
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()
