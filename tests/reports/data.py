"""Report inputs with known numbers, built by hand (not by the sample generator) so tests can check them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from dtx_worker.reports.model import (
    Breakdown,
    DayUsage,
    Device,
    Goal,
    Locale,
    Period,
    PeriodKind,
    PreviousPeriod,
    ReportData,
    ShotType,
    Streaks,
    Totals,
    Usage,
)

DEVICES = [
    Device(name="Bathroom", serial="DTX-24A0-0193", model="DualTetraX", firmware_version="1.4.2"),
    Device(name="Travel", serial="DTX-24B1-1017", model="DualTetraX Mini", firmware_version="1.3.9"),
    Device(name="Spare", serial="DTX-24B1-2202", model="DualTetraX", firmware_version=None),
]

PREVIOUS = Totals(sessions=180, working_seconds=75_000, active_days=18)
# mode → (sessions per active day, seconds per session); levels 1, 2, 3 share each mode's sessions 1:2:1
MODE_PLAN = {1: (3, 480), 2: (1, 300), 3: (2, 420), 17: (2, 360), 19: (1, 480), 33: (1, 600)}


def day_usage(day: date, scale: int = 1) -> tuple[DayUsage, dict[int, Usage], dict[int, Usage]]:
    shots = {s: Usage() for s in ShotType}
    modes: dict[int, Usage] = {}
    levels: dict[int, Usage] = {}
    for mode, (n, secs) in MODE_PLAN.items():
        n *= scale
        u = Usage(sessions=n, seconds=n * secs)
        modes[mode] = u
        shot = ShotType.USHOT if mode < 17 else ShotType.ESHOT if mode < 33 else ShotType.LED
        shots[shot] = shots[shot] + u
        q = n // 4
        for level, share in ((1, q), (2, n - 2 * q), (3, q)):
            levels[level] = levels.get(level, Usage()) + Usage(sessions=share, seconds=share * secs)
    d = DayUsage(
        day=day,
        sessions=sum(u.sessions for u in shots.values()),
        working_seconds=sum(u.seconds for u in shots.values()),
        pause_seconds=60,
        ushot=shots[ShotType.USHOT],
        eshot=shots[ShotType.ESHOT],
        led=shots[ShotType.LED],
    )
    return d, modes, levels


def report(
    locale: Locale = "en",
    *,
    kind: PeriodKind = PeriodKind.MONTHLY,
    start: date = date(2026, 11, 1),
    active: list[date] | None = None,
    scale: int = 1,
    devices: list[Device] | None = None,
    timezone: str = "Asia/Seoul",
    generated_at: datetime | None = None,
    name: str = "Jiwoo Kim",
    previous: Totals | None = PREVIOUS,
    goals: list[Goal] | None = None,
) -> ReportData:
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    if kind is PeriodKind.WEEKLY:
        end = start + timedelta(days=6)
    period = Period(kind=kind, start=start, end=end)
    if active is None:
        active = [d for d in period.dates() if d.day % 7 not in (0, 3)]
    days, modes, levels = [], {}, {}
    for day in active:
        d, m, lv = day_usage(day, scale)
        days.append(d)
        for k, u in m.items():
            modes[k] = modes.get(k, Usage()) + u
        for k, u in lv.items():
            levels[k] = levels.get(k, Usage()) + u
    shots = {s: sum((d.by_shot_type(s) for d in days), Usage()) for s in ShotType}
    totals = Totals(
        sessions=sum(d.sessions for d in days),
        working_seconds=sum(d.working_seconds for d in days),
        active_days=len(days),
    )
    prev_end = start - timedelta(days=1)
    prev_start = prev_end - timedelta(days=6) if kind is PeriodKind.WEEKLY else prev_end.replace(day=1)
    return ReportData(
        user_display_name=name,
        locale=locale,
        timezone=timezone,
        period=period,
        generated_at=generated_at or datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC),
        devices=DEVICES if devices is None else devices,
        days=days,
        totals=totals,
        breakdown=Breakdown(shot_types=shots, modes=modes, levels=levels) if days else Breakdown(),
        previous=PreviousPeriod(start=prev_start, end=prev_end, totals=previous) if previous else None,
        goals=[Goal(goal_type=kind, target_minutes=600, achieved_minutes=totals.minutes)] if goals is None else goals,
        streaks=Streaks(current_days=2, longest_days=11),
    )
