"""Report figures from `daily_statistics` rows (one per user, device and local day), as the worker reads them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from .model import LEVELS, MODES, Breakdown, DayUsage, Period, ShotType, Streaks, Totals, Usage

StatRow = Mapping[str, Any]  # the columns of public.daily_statistics


def _usage_map(raw: Mapping[str, Any] | None) -> dict[int, Usage]:
    """`{"<code>": {"sessions": n, "seconds": s}}` → `{code: Usage}`."""
    return {int(k): Usage(sessions=v.get("sessions", 0), seconds=v.get("seconds", 0)) for k, v in (raw or {}).items()}


def _add(into: dict[int, Usage], more: Mapping[int, Usage]) -> None:
    for k, u in more.items():
        into[k] = into.get(k, Usage()) + u


def summarize_days(rows: Iterable[StatRow], period: Period) -> tuple[list[DayUsage], Totals, Breakdown]:
    """Sum the rows of every device per day, and over the period; rows outside the period are ignored."""
    per_day: dict[date, dict[str, int]] = {}
    modes: dict[int, Usage] = {}
    levels: dict[int, Usage] = {}
    for row in rows:
        day = row["stat_date"]
        if not period.start <= day <= period.end:
            continue
        acc = per_day.setdefault(day, {})
        for col in (
            "sessions",
            "working_seconds",
            "pause_seconds",
            "warning_sessions",
            "ushot_sessions",
            "ushot_seconds",
            "eshot_sessions",
            "eshot_seconds",
            "led_sessions",
            "led_seconds",
        ):
            acc[col] = acc.get(col, 0) + int(row.get(col) or 0)
        _add(modes, {k: u for k, u in _usage_map(row.get("mode_breakdown")).items() if k in MODES})
        _add(levels, {k: u for k, u in _usage_map(row.get("level_breakdown")).items() if k in LEVELS})

    days = [
        DayUsage(
            day=day,
            sessions=a["sessions"],
            working_seconds=a["working_seconds"],
            pause_seconds=a["pause_seconds"],
            ushot=Usage(sessions=a["ushot_sessions"], seconds=a["ushot_seconds"]),
            eshot=Usage(sessions=a["eshot_sessions"], seconds=a["eshot_seconds"]),
            led=Usage(sessions=a["led_sessions"], seconds=a["led_seconds"]),
            warning_sessions=a["warning_sessions"],
        )
        for day, a in sorted(per_day.items())
    ]
    totals = Totals(
        sessions=sum(d.sessions for d in days),
        working_seconds=sum(d.working_seconds for d in days),
        active_days=sum(1 for d in days if d.sessions),
    )
    shots: dict[ShotType, Usage] = {}
    for s in ShotType:
        u = Usage()
        for d in days:
            u = u + d.by_shot_type(s)
        shots[s] = u
    return days, totals, Breakdown(shot_types=shots, modes=modes, levels=levels)


def totals_of(rows: Iterable[StatRow], start: date, end: date) -> Totals:
    """Sessions, working seconds and active days of the rows between start and end (inclusive)."""
    sessions = seconds = 0
    active: set[date] = set()
    for row in rows:
        day = row["stat_date"]
        if start <= day <= end:
            sessions += int(row.get("sessions") or 0)
            seconds += int(row.get("working_seconds") or 0)
            if row.get("sessions"):
                active.add(day)
    return Totals(sessions=sessions, working_seconds=seconds, active_days=len(active))


def previous_period(period: Period) -> tuple[date, date]:
    """The week before a weekly report; the calendar month before a monthly one (else as many days before)."""
    if period.is_calendar_month:
        end = period.start - timedelta(days=1)
        return end.replace(day=1), end
    return period.start - timedelta(days=period.days), period.start - timedelta(days=1)


def streaks(active_days: Iterable[date], as_of: date) -> Streaks:
    """The run of consecutive active days ending on `as_of`, and the longest run among the days given."""
    days = sorted(set(d for d in active_days if d <= as_of))
    longest = run = 0
    prev: date | None = None
    for d in days:
        run = run + 1 if prev is not None and d - prev == timedelta(days=1) else 1
        longest = max(longest, run)
        prev = d
    current = run if prev == as_of else 0
    return Streaks(current_days=current, longest_days=longest)
