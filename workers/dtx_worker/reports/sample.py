"""Realistic sample reports, for designers, docs and benchmarks.

python -m dtx_worker.reports.sample --locale ko report.pdf
python -m dtx_worker.reports.sample --locale th --weekly --start 2026-10-27 report.pdf
"""

from __future__ import annotations

import argparse
import calendar
import random
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from .aggregate import previous_period, streaks, summarize_days, totals_of
from .model import LOCALES, MODES, Device, Goal, Locale, Period, PeriodKind, PreviousPeriod, ReportData, ShotType
from .render import render_report

NAMES: dict[Locale, tuple[str, str, str]] = {  # user, first device's nickname, timezone
    "en": ("Emma Collins", "Bathroom", "America/New_York"),
    "ko": ("김지우", "욕실 DualTetraX", "Asia/Seoul"),
    "ja": ("佐藤 美咲", "洗面所", "Asia/Tokyo"),
    "zh": ("王芳", "卧室", "Asia/Shanghai"),
    "es": ("Lucía Fernández", "Baño", "Europe/Madrid"),
    "pt": ("Beatriz Conceição", "Banheiro", "America/Sao_Paulo"),
    "th": ("สุภาพร ใจดี", "ห้องน้ำ", "Asia/Bangkok"),
    "vi": ("Nguyễn Thị Hương", "Phòng tắm", "Asia/Ho_Chi_Minh"),
}
SHOT_WEIGHTS = (0.5, 0.35, 0.15)
LEVEL_WEIGHTS = (0.3, 0.5, 0.2)


def sample_devices(locale: Locale, count: int = 2) -> list[Device]:
    first = NAMES[locale][1]
    devices = [Device(name=first, serial="DTX-24A0-0193", model="DualTetraX", firmware_version="1.4.2")]
    extra = ["Travel", "Gift for Mom", "Office drawer", "Spare"]
    for i in range(1, count):
        devices.append(
            Device(
                name=extra[(i - 1) % len(extra)],
                serial=f"DTX-24B1-{1000 + 17 * i:04d}",
                model="DualTetraX Mini" if i % 2 else "DualTetraX",
                firmware_version=None if i == 3 else f"1.{3 + i % 2}.{i}",
            )
        )
    return devices


def sample_rows(start: date, end: date, devices: int, seed: int, use_rate: float = 0.8) -> list[dict[str, Any]]:
    """`daily_statistics`-shaped rows for the days between start and end."""
    rng = random.Random(seed)
    modes_of = {s: [code for code, (shot, _) in MODES.items() if shot is s] for s in ShotType}
    rows: dict[tuple[int, date], dict[str, Any]] = {}
    day = start
    while day <= end:
        if rng.random() < use_rate:
            for _ in range(rng.choice((1, 1, 2, 2, 3))):
                dev = 0 if devices == 1 or rng.random() < 0.75 else rng.randrange(1, devices)
                shot = rng.choices(list(ShotType), SHOT_WEIGHTS)[0]
                mode = rng.choice(modes_of[shot])
                level = rng.choices((1, 2, 3), LEVEL_WEIGHTS)[0]
                secs = 480 if rng.random() < 0.6 else rng.randrange(120, 480)
                r = rows.setdefault((dev, day), _empty_row(day))
                r["sessions"] += 1
                r["working_seconds"] += secs
                r["pause_seconds"] += rng.choice((0, 0, 15, 40))
                prefix = ("ushot", "eshot", "led")[shot]
                r[f"{prefix}_sessions"] += 1
                r[f"{prefix}_seconds"] += secs
                for key, code in (("mode_breakdown", mode), ("level_breakdown", level)):
                    slot = r[key].setdefault(str(code), {"sessions": 0, "seconds": 0})
                    slot["sessions"] += 1
                    slot["seconds"] += secs
        day += timedelta(days=1)
    return list(rows.values())


def _empty_row(day: date) -> dict[str, Any]:
    row: dict[str, Any] = {"stat_date": day, "mode_breakdown": {}, "level_breakdown": {}}
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
        row[col] = 0
    return row


def sample_report(
    locale: Locale = "en",
    kind: PeriodKind = PeriodKind.MONTHLY,
    start: date = date(2026, 11, 1),
    *,
    devices: int = 2,
    empty: bool = False,
    use_rate: float = 0.8,
    timezone: str | None = None,
    seed: int = 7,
) -> ReportData:
    if kind is PeriodKind.MONTHLY:
        start = start.replace(day=1)
        end = start.replace(day=calendar.monthrange(start.year, start.month)[1])
    else:
        end = start + timedelta(days=6)
    period = Period(kind=kind, start=start, end=end)
    prev_start, prev_end = previous_period(period)
    history_start = prev_start - timedelta(days=60)
    rows = sample_rows(history_start, prev_end, devices, seed + 1, 0.85)
    if not empty:
        rows += sample_rows(start, end, devices, seed, use_rate)
    days, totals, breakdown = summarize_days(rows, period)
    goal_minutes = {PeriodKind.MONTHLY: 600, PeriodKind.WEEKLY: 150}
    goals = [Goal(goal_type=kind, target_minutes=goal_minutes[kind], achieved_minutes=totals.minutes)]
    if kind is PeriodKind.MONTHLY:
        weekly_done = sum(d.working_seconds for d in days if d.day > end - timedelta(days=7)) // 60
        goals.append(Goal(goal_type=PeriodKind.WEEKLY, target_minutes=150, achieved_minutes=weekly_done))
    name, _, tz = NAMES[locale]
    return ReportData(
        user_display_name=name,
        locale=locale,
        timezone=timezone or tz,
        period=period,
        generated_at=datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=3),
        devices=sample_devices(locale, devices),
        days=days,
        totals=totals,
        breakdown=breakdown,
        previous=PreviousPeriod(start=prev_start, end=prev_end, totals=totals_of(rows, prev_start, prev_end)),
        goals=goals,
        streaks=streaks((r["stat_date"] for r in rows if r["sessions"]), end),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dtx_worker.reports.sample", description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path, help="where to write the PDF")
    ap.add_argument("--locale", choices=LOCALES, default="en")
    ap.add_argument("--weekly", action="store_true", help="a weekly report (default: monthly)")
    ap.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 1), help="first day (YYYY-MM-DD)")
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--empty", action="store_true", help="no sessions in the period")
    ap.add_argument("--sparse", action="store_true", help="only a few sessions in the period")
    ap.add_argument("--timezone", help="IANA name (default: one typical for the locale)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    data = sample_report(
        args.locale,
        PeriodKind.WEEKLY if args.weekly else PeriodKind.MONTHLY,
        args.start,
        devices=args.devices,
        empty=args.empty,
        use_rate=0.08 if args.sparse else 0.8,
        timezone=args.timezone,
        seed=args.seed,
    )
    args.output.write_bytes(render_report(data))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
