"""Usage reports as PDF: typed input (`ReportData`) in, bytes out. No database, network or files."""

from .fonts import FontNotFoundError, ShapingUnavailableError, check_fonts
from .i18n import resolve_locale
from .model import (
    LOCALES,
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
from .render import render_report

__all__ = [
    "LOCALES",
    "Breakdown",
    "DayUsage",
    "Device",
    "FontNotFoundError",
    "Goal",
    "Locale",
    "Period",
    "PeriodKind",
    "PreviousPeriod",
    "ReportData",
    "ShapingUnavailableError",
    "ShotType",
    "Streaks",
    "Totals",
    "Usage",
    "check_fonts",
    "render_report",
    "resolve_locale",
]
