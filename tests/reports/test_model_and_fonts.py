"""The report input's rules, the arithmetic from daily_statistics rows, locales, fonts and the glyph checker."""

from __future__ import annotations

import dataclasses
import io
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from reportlab.pdfgen.canvas import Canvas

from dtx_worker.reports import LOCALES, FontNotFoundError, Locale, PeriodKind, ReportData, resolve_locale
from dtx_worker.reports import fonts as fonts_mod
from dtx_worker.reports.aggregate import previous_period, streaks, summarize_days, totals_of
from dtx_worker.reports.fonts import FAMILIES, Face, FontChain, find_font_file
from dtx_worker.reports.i18n import CATALOGS, Formatter
from dtx_worker.reports.model import Breakdown, DayUsage, Period, ShotType, Totals, Usage, whole_minutes
from dtx_worker.reports.sample import main as sample_main
from dtx_worker.reports.sample import sample_report
from tests.reports import pdftools
from tests.reports.data import report

# ------------------------------------------------------------------ model


def test_totals_must_add_up() -> None:
    for key, bad in (("sessions", 1), ("working_seconds", 60), ("active_days", 1)):
        raw = report("en").model_dump()
        raw["totals"][key] += bad
        with pytest.raises(ValidationError, match=f"totals: {key}"):
            ReportData.model_validate(raw)
    raw = report("en").model_dump()
    raw["breakdown"]["modes"][1]["seconds"] += 1
    with pytest.raises(ValidationError, match=r"breakdown\.modes seconds"):
        ReportData.model_validate(raw)


def test_day_outside_period_and_duplicates_are_rejected() -> None:
    raw = report("en").model_dump()
    raw["days"][0]["day"] = date(2026, 12, 1)
    with pytest.raises(ValidationError, match="outside the period"):
        ReportData.model_validate(raw)
    raw = report("en").model_dump()
    raw["days"][1]["day"] = raw["days"][0]["day"]
    with pytest.raises(ValidationError, match="appears twice"):
        ReportData.model_validate(raw)


def test_shot_types_of_a_day_must_add_up() -> None:
    with pytest.raises(ValidationError, match="must equal sessions"):
        DayUsage(day=date(2026, 11, 1), sessions=2, working_seconds=60, ushot=Usage(sessions=1, seconds=60))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "not an IANA"),
        ("generated_at", datetime(2026, 12, 1), "offset"),
        ("locale", "de", "locale"),
    ],
)
def test_bad_fields(field: str, value: object, message: str) -> None:
    raw = report("en").model_dump()
    raw[field] = value
    with pytest.raises(ValidationError, match=message):
        ReportData.model_validate(raw)


def test_unknown_mode_and_level() -> None:
    with pytest.raises(ValidationError, match="unknown device modes"):
        Breakdown(modes={5: Usage()})
    with pytest.raises(ValidationError, match="unknown levels"):
        Breakdown(levels={4: Usage()})


def test_period_rules() -> None:
    with pytest.raises(ValidationError, match="end is before start"):
        Period(kind=PeriodKind.WEEKLY, start=date(2026, 11, 8), end=date(2026, 11, 1))
    assert Period(kind=PeriodKind.MONTHLY, start=date(2026, 2, 1), end=date(2026, 2, 28)).is_calendar_month
    assert not Period(kind=PeriodKind.MONTHLY, start=date(2026, 2, 2), end=date(2026, 3, 1)).is_calendar_month


def test_minutes_round_half_up() -> None:
    assert [whole_minutes(s) for s in (0, 29, 30, 89, 90)] == [0, 0, 1, 1, 2]


# ------------------------------------------------------------------ aggregation


def _row(day: date, mode: int, level: int, sessions: int, seconds: int) -> dict[str, object]:
    shot = "ushot" if mode < 17 else "eshot" if mode < 33 else "led"
    row: dict[str, object] = {
        "stat_date": day,
        "sessions": sessions,
        "working_seconds": seconds,
        "pause_seconds": 5,
        "warning_sessions": 0,
        "mode_breakdown": {str(mode): {"sessions": sessions, "seconds": seconds}},
        "level_breakdown": {str(level): {"sessions": sessions, "seconds": seconds}},
    }
    for s in ("ushot", "eshot", "led"):
        row[f"{s}_sessions"] = sessions if s == shot else 0
        row[f"{s}_seconds"] = seconds if s == shot else 0
    return row


def test_summarize_days_adds_up_devices() -> None:
    period = Period(kind=PeriodKind.WEEKLY, start=date(2026, 10, 28), end=date(2026, 11, 3))
    rows = [
        _row(date(2026, 10, 31), 1, 2, 2, 900),  # device A
        _row(date(2026, 10, 31), 17, 3, 1, 300),  # device B, same day
        _row(date(2026, 11, 1), 33, 1, 1, 600),
        _row(date(2026, 10, 27), 1, 1, 5, 5000),  # before the period: ignored
    ]
    days, totals, breakdown = summarize_days(rows, period)
    assert [d.day for d in days] == [date(2026, 10, 31), date(2026, 11, 1)]
    assert days[0].sessions == 3 and days[0].working_seconds == 1200 and days[0].pause_seconds == 10
    assert totals == Totals(sessions=4, working_seconds=1800, active_days=2)
    assert breakdown.shot_type(ShotType.USHOT) == Usage(sessions=2, seconds=900)
    assert breakdown.modes == {
        1: Usage(sessions=2, seconds=900),
        17: Usage(sessions=1, seconds=300),
        33: Usage(sessions=1, seconds=600),
    }
    assert breakdown.levels[2] == Usage(sessions=2, seconds=900)
    assert totals_of(rows, date(2026, 10, 20), date(2026, 10, 27)) == Totals(
        sessions=5, working_seconds=5000, active_days=1
    )


def test_previous_period_and_streaks() -> None:
    month = Period(kind=PeriodKind.MONTHLY, start=date(2026, 3, 1), end=date(2026, 3, 31))
    assert previous_period(month) == (date(2026, 2, 1), date(2026, 2, 28))
    week = Period(kind=PeriodKind.WEEKLY, start=date(2026, 11, 2), end=date(2026, 11, 8))
    assert previous_period(week) == (date(2026, 10, 26), date(2026, 11, 1))
    days = [date(2026, 11, d) for d in (1, 2, 3, 5, 6, 7, 8, 9, 10, 12, 13)]
    s = streaks(days, as_of=date(2026, 11, 13))
    assert (s.current_days, s.longest_days) == (2, 6)
    assert streaks(days, as_of=date(2026, 11, 14)).current_days == 0
    assert streaks([], as_of=date(2026, 11, 14)).longest_days == 0


# ------------------------------------------------------------------ locales


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        (("ko-KR", "en"), "ko"),
        ((None, "pt_BR"), "pt"),
        (("zh-Hans-CN",), "zh"),
        (("de", "fr"), "en"),
        ((), "en"),
        (("", "TH"), "th"),
    ],
)
def test_resolve_locale(candidates: tuple[str | None, ...], expected: Locale) -> None:
    assert resolve_locale(*candidates) == expected


def test_numbers_and_dates_follow_the_locale() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("UTC")
    fmt = {loc: Formatter(loc, zone) for loc in LOCALES}
    assert [fmt[loc].integer(12345) for loc in ("en", "ko", "es", "pt", "vi")] == [
        "12,345",
        "12,345",
        "12.345",
        "12.345",
        "12.345",
    ]
    assert fmt["es"].decimal(14.25) == "14,2" or fmt["es"].decimal(14.25) == "14,3"
    assert fmt["en"].month(date(2026, 11, 1)) == "November 2026"
    assert fmt["ko"].month(date(2026, 11, 1)) == "2026년 11월"
    assert fmt["ja"].month(date(2026, 11, 1)) == "2026年11月"
    assert fmt["vi"].month(date(2026, 11, 1)) == "tháng 11 năm 2026"
    # Thai years in the Buddhist Era (CE + 543), in every date the report prints
    assert fmt["th"].month(date(2026, 11, 1)) == "พฤศจิกายน 2569"
    assert fmt["th"].date_range(date(2026, 12, 28), date(2027, 1, 3)) == "28 ธ.ค. 2569 – 3 ม.ค. 2570"
    assert fmt["th"].timestamp(datetime(2026, 12, 1, tzinfo=UTC)).startswith("1 ธ.ค. 2569 ")
    assert "2026" in fmt["en"].date_range(date(2026, 12, 28), date(2027, 1, 3))  # everyone else: the Gregorian year
    assert fmt["en"].days(1, CATALOGS["en"]) == "day" and fmt["en"].days(2, CATALOGS["en"]) == "days"
    assert fmt["es"].days(1, CATALOGS["es"]) == "día"
    assert fmt["en"].utc_offset(datetime(2026, 1, 1, tzinfo=UTC)) == "UTC+00:00"


@pytest.mark.parametrize("locale", LOCALES)
def test_every_string_is_covered_by_the_locales_fonts(locale: Locale) -> None:
    """No catalog string, date or number needs a character the locale's installed fonts lack."""
    from zoneinfo import ZoneInfo

    chain = FontChain(locale)
    f = Formatter(locale, ZoneInfo("Asia/Seoul"))
    strings = [v for v in dataclasses.asdict(CATALOGS[locale]).values()]
    strings += [f.month(date(2026, m, 1)) for m in range(1, 13)]
    strings += [f.weekday(date(2026, 11, d)) for d in range(2, 9)]
    strings += [
        f.date_range(date(2026, 10, 28), date(2026, 11, 3)),
        f.timestamp(datetime(2026, 12, 1, tzinfo=UTC)),
        f.signed_percent(-0.5),
        f.signed_percent(0.25),
        f.decimal(1234.5),
        "…—",
    ]
    for s in strings:
        for bold in (False, True):
            missing: set[str] = set()
            runs = chain.runs(s, bold, missing)
            assert not missing, (s, missing)
            # the locale's own family draws the locale's own words (fallbacks only for what it lacks)
            if locale != "th":
                assert {font.family for font, _ in runs} <= {fonts_mod.PRIMARY[locale], "latin"}, s


# ------------------------------------------------------------------ fonts


def test_missing_font_names_its_package() -> None:
    family = dataclasses.replace(FAMILIES["korean"], regular=Face("NoSuchFont-Regular.ttf"))
    with pytest.raises(FontNotFoundError, match="apt-get install fonts-nanum") as err:
        find_font_file(family, family.regular)
    assert "NoSuchFont-Regular.ttf" in str(err.value) and "DTX_FONT_DIRS" in str(err.value)


def test_font_dirs_from_the_environment_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_font_file(FAMILIES["korean"], FAMILIES["korean"].regular)
    shutil.copy(real, tmp_path / real.name)
    monkeypatch.setenv(fonts_mod.FONT_DIRS_ENV, str(tmp_path))
    fonts_mod._font_index.cache_clear()
    try:
        assert find_font_file(FAMILIES["korean"], FAMILIES["korean"].regular) == tmp_path / real.name
    finally:
        monkeypatch.delenv(fonts_mod.FONT_DIRS_ENV)
        fonts_mod._font_index.cache_clear()


def test_glyph_checker_catches_a_notdef(tmp_path: Path) -> None:
    """The checker used by the render tests does flag text drawn in a font that lacks it."""
    latin = fonts_mod.load("latin")
    buf = io.BytesIO()
    c = Canvas(buf, initialFontName=latin.name)
    c.setFont(latin.name, 12)
    c.drawString(72, 720, "Hello 안녕")  # Noto Sans has no Hangul
    c.save()
    pdf = tmp_path / "notdef.pdf"
    pdf.write_bytes(buf.getvalue())
    problems = pdftools.missing_glyphs(pdf)
    assert len(problems) == 2 and all(".notdef" in p for p in problems)  # 안 and 녕; "Hello " is fine


def test_sample_cli_writes_a_valid_pdf(tmp_path: Path) -> None:
    out = tmp_path / "sample.pdf"
    assert sample_main(["--locale", "th", "--weekly", "--start", "2026-10-28", "--devices", "3", str(out)]) == 0
    assert pdftools.qpdf_check(out).returncode == 0
    assert pdftools.missing_glyphs(out) == []
    data = sample_report("vi", devices=4, empty=True)
    assert data.totals.sessions == 0 and len(data.devices) == 4
