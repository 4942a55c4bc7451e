"""Rendered reports read back with real PDF tools, in every locale."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from dtx_worker.reports import LOCALES, Device, Locale, PeriodKind, ReportData, Totals, render_report
from dtx_worker.reports.i18n import CATALOGS, Formatter
from dtx_worker.reports.model import MODES, ShotType
from tests.reports import pdftools
from tests.reports.data import DEVICES, report

pdftools.require_tools()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reports")


def write(out_dir: Path, name: str, data: ReportData) -> Path:
    path = out_dir / f"{name}.pdf"
    path.write_bytes(render_report(data))
    return path


@pytest.fixture(scope="module")
def monthly(out_dir: Path) -> dict[Locale, tuple[ReportData, Path]]:
    """A monthly report with known numbers (large enough for digit grouping), in every locale."""
    out = {}
    for loc in LOCALES:
        data = report(loc, scale=5)
        out[loc] = (data, write(out_dir, f"monthly-{loc}", data))
    return out


def fmt(data: ReportData) -> Formatter:
    return Formatter(data.locale, data.zone)


@pytest.mark.parametrize("locale", LOCALES)
def test_key_figures_and_labels_read_back(monthly: dict[Locale, tuple[ReportData, Path]], locale: Locale) -> None:
    data, pdf = monthly[locale]
    t, f = CATALOGS[locale], fmt(data)
    text = pdftools.text(pdf)
    flat = pdftools.squeeze(text)
    tokens = set(text.split())
    for label in (
        t.title_monthly,
        t.key_figures,
        t.sessions,
        t.working_minutes,
        t.active_days,
        t.current_streak,
        t.longest_streak,
        t.goal_achievement,
        t.daily_title,
        t.by_shot_type,
        t.by_mode,
        t.by_level,
        t.comparison_title,
        t.goals_title,
        t.devices_title,
        t.col_firmware,
        data.user_display_name,
        f.month(data.period.start),
        f.date_range(data.period.start, data.period.end),
    ):
        assert pdftools.squeeze(label) in flat, label
    tot = data.totals
    assert tot.sessions >= 1000 and tot.minutes >= 1000  # digit grouping is exercised
    for number in (
        f.integer(tot.sessions),
        f.integer(tot.minutes),
        f.integer(tot.active_days),
        f.integer(data.streaks.current_days),
        f.integer(data.streaks.longest_days),
    ):
        assert number in tokens or pdftools.squeeze(number) in flat, number
    goal = data.goals[0]
    assert pdftools.squeeze(f.percent(goal.ratio)) in flat
    assert (
        pdftools.squeeze(
            t.goal_progress.format(achieved=f.integer(goal.achieved_minutes), target=f.integer(goal.target_minutes))
        )
        in flat
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_tables_equal_the_statistics(monthly: dict[Locale, tuple[ReportData, Path]], locale: Locale) -> None:
    """Each table row, read back word by word, holds exactly the input's numbers."""
    data, pdf = monthly[locale]
    t, f = CATALOGS[locale], fmt(data)
    lines = pdftools.lines(pdf)
    b, tot = data.breakdown, data.totals
    for shot in ShotType:
        u = b.shot_type(shot)
        share = f.percent(u.seconds / tot.working_seconds)
        assert [f.integer(u.minutes), f.integer(u.sessions), share] in pdftools.after(lines, t.shot_name(shot), 3)
    for code, (_shot, name) in MODES.items():
        u = b.modes.get(code)
        expected = [f.integer(u.sessions), f.integer(u.minutes)] if u else [f.integer(0), f.integer(0)]
        assert expected in pdftools.after(lines, name, 2), name
    for level in (1, 2, 3):
        u = b.levels[level]
        assert [f.integer(u.sessions), f.integer(u.minutes)] in pdftools.after(lines, t.level.format(n=level), 2)
    prev = data.previous
    assert prev is not None
    assert [f.integer(tot.sessions), f.integer(prev.totals.sessions)] in pdftools.after(lines, t.sessions, 2)
    assert [f.integer(tot.minutes), f.integer(prev.totals.minutes)] in pdftools.after(lines, t.working_minutes, 2)
    per_day = f.decimal(tot.minutes / tot.active_days)
    assert [per_day] in pdftools.after(lines, t.per_active_day, 1)
    for dev in data.devices:
        pair = f"{dev.serial} {dev.firmware_version or t.firmware_unknown}"
        rows = pdftools.after(lines, dev.name, 6)
        assert any(pair in " ".join(r) for r in rows), rows


@pytest.mark.parametrize("locale", LOCALES)
def test_pages_rasterize_with_ink(
    monthly: dict[Locale, tuple[ReportData, Path]], locale: Locale, tmp_path: Path
) -> None:
    _, pdf = monthly[locale]
    pages = pdftools.rasterize(pdf, tmp_path)
    assert len(pages) == 2
    for img in pages:
        assert img.size == (331, 468)  # A4 at 40 dpi
        assert pdftools.ink_ratio(img) > 0.02


@pytest.mark.parametrize("locale", LOCALES)
def test_structure_fonts_and_glyphs(monthly: dict[Locale, tuple[ReportData, Path]], locale: Locale) -> None:
    _, pdf = monthly[locale]
    check = pdftools.qpdf_check(pdf)
    assert check.returncode == 0, check.stdout + check.stderr
    fonts = pdftools.pdffonts(pdf)
    assert fonts
    for row in fonts:
        assert row.embedded and row.subset and row.unicode, row
    assert pdftools.missing_glyphs(pdf) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_no_text_leaves_the_page_or_overlaps(monthly: dict[Locale, tuple[ReportData, Path]], locale: Locale) -> None:
    _, pdf = monthly[locale]
    words, (width, height) = pdftools.words(pdf)
    assert words
    for w in words:
        assert w.x0 >= 30 and w.x1 <= width - 30 and w.y0 >= 10 and w.y1 <= height - 10, w
    by_page: dict[int, list[pdftools.Word]] = {}
    for w in words:
        by_page.setdefault(w.page, []).append(w)
    for page_words in by_page.values():
        for i, a in enumerate(page_words):
            for b in page_words[i + 1 :]:
                dx = min(a.x1, b.x1) - max(a.x0, b.x0)
                dy = min(a.y1, b.y1) - max(a.y0, b.y0)
                assert dx <= 0.5 or dy <= 1.0, f"{a.text!r} overlaps {b.text!r}"


def test_thai_text_is_extracted_as_written(monthly: dict[Locale, tuple[ReportData, Path]]) -> None:
    """Shaped Thai carries /ActualText, so extraction gives back the characters, tone marks included."""
    _, pdf = monthly["th"]
    flat = pdftools.squeeze(pdftools.text(pdf))
    t = CATALOGS["th"]
    for s in (t.title_monthly, t.current_streak, t.longest_streak, t.comparison_title, t.per_active_day):
        assert pdftools.squeeze(s) in flat, s


@pytest.mark.parametrize("locale", ["en", "ko", "th", "es"])
def test_empty_period_renders_with_note(out_dir: Path, locale: Locale) -> None:
    data = report(locale, active=[], previous=None, goals=[])
    pdf = write(out_dir, f"empty-{locale}", data)
    t, f = CATALOGS[locale], fmt(data)
    flat = pdftools.squeeze(pdftools.text(pdf))
    for s in (
        t.note_empty_title,
        t.note_empty.format(range=f.date_range(data.period.start, data.period.end)),
        t.no_data,
        t.no_previous,
        t.no_goal,
    ):
        assert pdftools.squeeze(s) in flat, s
    assert pdftools.qpdf_check(pdf).returncode == 0
    assert pdftools.missing_glyphs(pdf) == []
    lines = pdftools.lines(pdf)
    assert ["0", "0"] in pdftools.after(lines, "Glow", 2)


def test_sparse_period_says_so(out_dir: Path) -> None:
    data = report("pt", active=[date(2026, 11, 4), date(2026, 11, 20)])
    flat = pdftools.squeeze(pdftools.text(write(out_dir, "sparse-pt", data)))
    assert pdftools.squeeze(CATALOGS["pt"].note_sparse_title) in flat
    assert pdftools.squeeze(CATALOGS["pt"].note_empty_title) not in flat


def test_full_period_has_no_note(monthly: dict[Locale, tuple[ReportData, Path]]) -> None:
    _, pdf = monthly["en"]
    flat = pdftools.squeeze(pdftools.text(pdf))
    t = CATALOGS["en"]
    assert pdftools.squeeze(t.note_sparse_title) not in flat and pdftools.squeeze(t.note_empty_title) not in flat


def test_several_devices_each_with_its_firmware(out_dir: Path, tmp_path: Path) -> None:
    many = [*DEVICES] + [
        Device(name=f"Salon chair {i}", serial=f"DTX-25C0-{i:04d}", model="DualTetraX", firmware_version=f"1.5.{i}")
        for i in range(40)
    ]
    data = report("es", devices=many)
    pdf = write(out_dir, "devices-es", data)
    lines = pdftools.lines(pdf)
    for dev in many:
        pair = f"{dev.serial} {dev.firmware_version or 'Desconocido'}"
        rows = pdftools.after(lines, dev.name, 6)
        assert any(pair in " ".join(r) for r in rows), rows
    flat = pdftools.squeeze(pdftools.text(pdf))
    summary = re.search(r"Bathroom, Travel, Spare, .* y (\d+) más", pdftools.text(pdf))  # the cover's device line
    assert summary and summary.group(0).count(",") + 1 + int(summary.group(1)) == len(many)
    pages = pdftools.rasterize(pdf, tmp_path)
    assert len(pages) == 3 and all(pdftools.ink_ratio(p) > 0.01 for p in pages)
    assert pdftools.squeeze("3 / 3") in flat
    assert pdftools.squeeze(pdftools.text(pdf)).count(pdftools.squeeze("Número de serie")) == 2  # header repeated


def test_weekly_report_across_a_month_boundary(out_dir: Path) -> None:
    days = [date(2026, 10, 29), date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 3)]
    data = report("en", kind=PeriodKind.WEEKLY, start=date(2026, 10, 28), active=days)
    assert data.period.end == date(2026, 11, 3)
    pdf = write(out_dir, "weekly-boundary-en", data)
    text = pdftools.text(pdf)
    flat = pdftools.squeeze(text)
    assert pdftools.squeeze("Oct 28 – Nov 3, 2026") in flat  # the period, as CLDR writes an interval
    assert pdftools.squeeze("Weekly usage report") in flat
    assert pdftools.squeeze("Oct 21 – 27, 2026") in flat  # the previous week
    words, _ = pdftools.words(pdf)
    labels = [w.text for w in words if w.page == 1]
    for wd in ("Wed", "Thu", "Fri", "Sat", "Sun", "Mon", "Tue"):
        assert wd in labels
    # one bar per day, both months: every day's total is printed above its bar
    per_day = {d.day: d for d in data.days}
    f = fmt(data)
    for day in days:
        assert f.integer(per_day[day].working_seconds // 60 + (per_day[day].working_seconds % 60 >= 30)) in labels


def test_monthly_report_of_a_31_day_month_in_japanese(out_dir: Path) -> None:
    data = report("ja", start=date(2026, 12, 1))
    pdf = write(out_dir, "monthly-dec-ja", data)
    flat = pdftools.squeeze(pdftools.text(pdf))
    assert "2026年12月" in flat and "31日" in flat
    assert pdftools.missing_glyphs(pdf) == []


@pytest.mark.parametrize(
    ("zone", "offset", "local_day"),
    [("Pacific/Kiritimati", "UTC+14:00", "Dec 1, 2026"), ("Pacific/Pago_Pago", "UTC-11:00", "Nov 30, 2026")],
)
def test_timezone_far_from_utc(out_dir: Path, zone: str, offset: str, local_day: str) -> None:
    """Days are the user's local days as given; the generation time is shown in the user's zone."""
    generated = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)  # Dec 1 02:30 in Kiritimati, Nov 30 01:30 in Pago Pago
    data = report("en", timezone=zone, generated_at=generated, active=[date(2026, 11, 1), date(2026, 11, 30)])
    pdf = write(out_dir, f"tz-{zone.replace('/', '-')}", data)
    flat = pdftools.squeeze(pdftools.text(pdf))
    assert pdftools.squeeze(f"{zone} ({offset})") in flat
    assert pdftools.squeeze(f"Generated {local_day}") in flat
    assert pdftools.squeeze("November 2026") in flat
    # the chart's axis starts at the 1st and the last labelled day is the 30th or 29th (every other day)
    words, _ = pdftools.words(pdf)
    assert {"1", "29"} <= {w.text for w in words}


def test_names_in_other_scripts_use_fallback_fonts(out_dir: Path) -> None:
    devices = [
        Device(name="洗面所", serial="DTX-1", model="DualTetraX", firmware_version="1.0.0"),
        Device(name="ห้องน้ำ", serial="DTX-2", model="DualTetraX", firmware_version="1.0.1"),
    ]
    data = report("en", name="김지우 (Jiwoo) Nguyễn", devices=devices)
    pdf = write(out_dir, "fallback-en", data)
    flat = pdftools.squeeze(pdftools.text(pdf))
    for s in ("김지우(Jiwoo)Nguyễn", "洗面所", "ห้องน้ำ"):
        assert s in flat
    names = " ".join(r.name for r in pdftools.pdffonts(pdf))
    assert "NanumGothic" in names and "NotoSansThai" in names and "NotoSans-" in names
    assert pdftools.missing_glyphs(pdf) == []


def test_characters_no_font_has_are_left_out_and_logged(out_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = report("en", name="Emma 🌸 Collins")
    with caplog.at_level(logging.WARNING):
        pdf = write(out_dir, "emoji-en", data)
    assert "🌸" in caplog.text
    assert "EmmaCollins" in pdftools.squeeze(pdftools.text(pdf))
    assert pdftools.missing_glyphs(pdf) == []


@pytest.mark.parametrize("locale", ["es", "pt", "vi", "de-fallback"])
def test_long_names_are_shortened_not_clipped(out_dir: Path, locale: str) -> None:
    loc: Locale = "en" if locale == "de-fallback" else locale  # type: ignore[assignment]
    long = "Maria Fernanda de Albuquerque Figueiredo Conceição Vasconcelos Nguyễn Thị Thanh Hương Rodríguez"
    devices = [
        Device(
            name="Dispositivo do banheiro principal da casa de praia " * 2,
            serial="DTX-24A0-0193",
            model="DualTetraX Professional Edition Mini",
            firmware_version="1.4.2-beta.7+build.20261101",
        )
    ]
    pdf = write(out_dir, f"long-{locale}", report(loc, name=long, devices=devices))
    words, (width, _) = pdftools.words(pdf)
    assert all(w.x0 >= 30 and w.x1 <= width - 30 for w in words)
    assert "…" in pdftools.text(pdf)


def test_same_input_same_bytes() -> None:
    data = report("ko")
    assert render_report(data) == render_report(data)


def test_no_previous_period(out_dir: Path) -> None:
    data = report("vi", previous=None)
    flat = pdftools.squeeze(pdftools.text(write(out_dir, "noprev-vi", data)))
    assert pdftools.squeeze(CATALOGS["vi"].no_previous) in flat


def test_previous_period_of_zero_shows_absolute_change(out_dir: Path) -> None:
    data = report("en", previous=Totals(sessions=0, working_seconds=0, active_days=0))
    lines = pdftools.lines(write(out_dir, "prevzero-en", data))
    f = fmt(data)
    expected = [f.integer(data.totals.sessions), "0", "+" + f.integer(data.totals.sessions)]
    assert expected in pdftools.after(lines, "Sessions", 3)
