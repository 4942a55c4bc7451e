"""The report's sections, each laid out into `Pages` as deferred drawing operations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from reportlab.lib.colors import Color
from reportlab.pdfgen.canvas import Canvas

from . import charts, theme
from .model import LEVELS, MODES, PeriodKind, ShotType, Usage
from .pages import Pages
from .typeset import Style

if TYPE_CHECKING:
    from .render import Context

X0 = theme.MARGIN_X
W = theme.CONTENT_W
SECTION_GAP = 20.0
ROW_H = 17.0


def _title(ctx: Context, pages: Pages, text: str, x: float = X0, width: float = W) -> None:
    y = pages.y - 13
    label = ctx.ts.fit(text, theme.SECTION, width)
    pages.draw(lambda c: ctx.ts.draw(c, x, y, label, theme.SECTION))


# ---------------------------------------------------------------- cover


BAND_H = 176.0


def cover(ctx: Context, pages: Pages) -> None:
    d, t, f, ts = ctx.data, ctx.t, ctx.f, ctx.ts
    top = theme.PAGE_H
    col_w = W / 3
    info = [
        (t.prepared_for, d.user_display_name),
        (t.period, f.date_range(d.period.start, d.period.end)),
        (t.time_zone, f"{d.timezone} ({f.utc_offset(d.generated_at)})"),
    ]
    devices_line = _device_summary(ctx, W)

    def op(c: Canvas) -> None:
        c.setFillColor(theme.BAND)
        c.rect(0, top - BAND_H, theme.PAGE_W, BAND_H, stroke=0, fill=1)
        c.setFillColor(theme.ACCENT)
        c.rect(0, top - BAND_H, theme.PAGE_W, 3, stroke=0, fill=1)
        y = top - 36
        ts.draw(c, X0, y, "DualTetraX", Style(10, theme.ACCENT, bold=True))
        when = t.generated.format(when=f.timestamp(d.generated_at))
        ts.draw(c, X0 + W, y, ts.fit(when, theme.BAND_LABEL, W / 2), theme.BAND_LABEL, align="right")
        ts.draw(c, X0, y - 32, ts.fit(t.title(d.period.kind), theme.TITLE, W), theme.TITLE)
        ts.draw(c, X0, y - 58, ts.fit(ctx.period_name, theme.SUBTITLE, W), theme.SUBTITLE)
        for i, (label, value) in enumerate(info):
            x = X0 + i * col_w
            ts.draw(c, x, y - 84, ts.fit(label, theme.BAND_LABEL, col_w - 10), theme.BAND_LABEL)
            ts.draw(c, x, y - 98, ts.fit(value, theme.BAND_VALUE, col_w - 10), theme.BAND_VALUE)
        ts.draw(c, X0, y - 118, t.devices, theme.BAND_LABEL)
        ts.draw(c, X0, y - 132, devices_line, theme.BAND_VALUE)

    pages.draw(op)
    pages.y = top - BAND_H - 22


def _device_summary(ctx: Context, width: float) -> str:
    names = [dev.name for dev in ctx.data.devices]
    if not names:
        return "—"
    style = theme.BAND_VALUE
    for shown in range(len(names), 0, -1):
        text = ", ".join(names[:shown])
        if shown < len(names):
            text += "  " + ctx.t.more_devices.format(n=len(names) - shown)
        if ctx.ts.width(text, style) <= width:
            return text
    return ctx.ts.fit(names[0], style, width * 0.7) + "  " + ctx.t.more_devices.format(n=len(names) - 1)


# ---------------------------------------------------------------- note


def note(ctx: Context, pages: Pages) -> None:
    if ctx.is_empty:
        heading = ctx.t.note_empty_title
        body = ctx.t.note_empty.format(range=ctx.f.date_range(ctx.data.period.start, ctx.data.period.end))
    elif ctx.is_sparse:
        heading, body = ctx.t.note_sparse_title, ctx.t.note_sparse
    else:
        return
    ts = ctx.ts
    lines = ts.wrap(body, theme.BODY, W - 32)
    h = 34 + 13 * len(lines)
    pages.need(h)
    top = pages.y

    def op(c: Canvas) -> None:
        c.setFillColor(theme.NOTE_BG)
        c.roundRect(X0, top - h, W, h, 6, stroke=0, fill=1)
        c.setFillColor(theme.NOTE_RULE)
        c.rect(X0, top - h, 4, h, stroke=0, fill=1)
        ts.draw(c, X0 + 16, top - 18, ts.fit(heading, theme.BODY_BOLD, W - 32), theme.BODY_BOLD)
        for i, line in enumerate(lines):
            ts.draw(c, X0 + 16, top - 33 - 13 * i, line, theme.BODY)

    pages.draw(op)
    pages.skip(h + SECTION_GAP)


# ---------------------------------------------------------------- key figures


@dataclass(frozen=True, slots=True)
class Card:
    label: str
    value: str
    unit: str = ""
    sub: str = ""
    trend: int = 0  # +1 up, -1 down, 0 none
    progress: float | None = None


CARD_H = 72.0
CARD_GAP = 10.0


def _change(ctx: Context, current: float, previous: float | None, as_percent: bool = True) -> tuple[str, int]:
    if previous is None:
        return ctx.t.no_previous, 0
    diff = current - previous
    sign = (diff > 0) - (diff < 0)
    pct = as_percent and previous > 0
    text = ctx.f.signed_percent(diff / previous) if pct else ctx.f.signed_integer(round(diff))
    return ctx.t.vs_previous.format(change=text), sign


def key_figures(ctx: Context, pages: Pages) -> None:
    d, t, f = ctx.data, ctx.t, ctx.f
    tot, prev = d.totals, d.previous.totals if d.previous else None
    s_sub, s_trend = _change(ctx, tot.sessions, prev.sessions if prev else None)
    m_sub, m_trend = _change(ctx, tot.minutes, prev.minutes if prev else None)
    a_sub, a_trend = _change(ctx, tot.active_days, prev.active_days if prev else None, as_percent=False)
    goal = d.main_goal()
    cur, best = d.streaks.current_days, d.streaks.longest_days
    cards = [
        Card(t.sessions, f.integer(tot.sessions), "", s_sub, s_trend),
        Card(t.working_minutes, f.integer(tot.minutes), t.unit_min, m_sub, m_trend),
        Card(t.active_days, f.integer(tot.active_days), t.active_days_of.format(total=d.period.days), a_sub, a_trend),
        Card(t.current_streak, f.integer(cur), f.days(cur, t)),
        Card(t.longest_streak, f.integer(best), f.days(best, t)),
        Card(
            t.goal_achievement,
            f.percent(goal.ratio),
            "",
            t.goal_progress.format(achieved=f.integer(goal.achieved_minutes), target=f.integer(goal.target_minutes)),
            progress=goal.ratio,
        )
        if goal
        else Card(t.goal_achievement, "—", "", t.no_goal),
    ]
    pages.need(24 + 2 * CARD_H + CARD_GAP)
    _title(ctx, pages, t.key_figures)
    pages.skip(24)
    top = pages.y
    card_w = (W - 2 * CARD_GAP) / 3
    for i, card in enumerate(cards):
        x = X0 + (i % 3) * (card_w + CARD_GAP)
        y = top - (i // 3) * (CARD_H + CARD_GAP)
        pages.draw(partial(_card, ctx, card=card, x=x, top=y, w=card_w))
    pages.skip(2 * CARD_H + CARD_GAP + SECTION_GAP)


def _card(ctx: Context, c: Canvas, *, card: Card, x: float, top: float, w: float) -> None:
    ts = ctx.ts
    c.setFillColor(theme.PANEL)
    c.roundRect(x, top - CARD_H, w, CARD_H, 6, stroke=0, fill=1)
    pad = 12.0
    inner = w - 2 * pad
    ts.draw(c, x + pad, top - 18, ts.fit(card.label, theme.LABEL, inner), theme.LABEL)
    vw = ts.draw(c, x + pad, top - 44, card.value, theme.FIGURE)
    if card.unit:
        ts.draw(c, x + pad + vw + 4, top - 44, ts.fit(card.unit, theme.FIGURE_UNIT, inner - vw - 4), theme.FIGURE_UNIT)
    if card.progress is not None:
        charts.bar(c, x + pad, top - 54, inner, 4, card.progress, theme.ACCENT)
    sub_y = top - 64 if card.progress is not None else top - 60
    if card.sub:
        sx = x + pad
        color = theme.MUTED
        if card.trend:
            color = theme.UP if card.trend > 0 else theme.DOWN
            charts.triangle(c, sx, sub_y + 0.5, 5.5, card.trend > 0, color)
            sx += 9
        style = Style(theme.SMALL.size, color)
        ts.draw(c, sx, sub_y, ts.fit(card.sub, style, x + w - pad - sx), style)


# ---------------------------------------------------------------- daily chart


CHART_H = 190.0


def daily_chart(ctx: Context, pages: Pages) -> None:
    d, t, f, ts = ctx.data, ctx.t, ctx.f, ctx.ts
    weekly = d.period.kind is PeriodKind.WEEKLY or d.period.days <= 10
    bars = []
    for i, (day, usage) in enumerate(d.day_map().items()):
        values = tuple(usage.by_shot_type(s).seconds / 60 for s in ShotType)
        if weekly:
            bars.append(charts.DayBar(values, f.weekday(day), f.day_month(day), day.weekday() >= 5))
        else:
            label = f.day_month(day) if day.day == 1 and i > 0 else f.day_of_month(day)
            bars.append(charts.DayBar(values, label, "", day.weekday() >= 5))
    pages.need(26 + CHART_H)
    legend = [(t.shot_name(s), theme.SHOT_COLORS[s]) for s in ShotType]
    legend_w = sum(ts.width(name, theme.SMALL) + 20 for name, _ in legend)
    _title(ctx, pages, t.daily_title, width=W - legend_w - 10)
    top = pages.y

    def op(c: Canvas) -> None:
        x = X0 + W - legend_w
        for name, color in legend:
            charts.swatch(c, x, top - 13, color)
            x += 10 + ts.draw(c, x + 10, top - 12, name, theme.SMALL) + 10
        charts.daily_bars(
            c,
            ts,
            X0,
            top - 26 - CHART_H + 10,
            W,
            CHART_H - 10,
            bars,
            [theme.SHOT_COLORS[s] for s in ShotType],
            tick_label=lambda v: f.integer(round(v)),
            empty_text=t.no_data,
            value_label=(lambda v: f.integer(round(v))) if weekly else None,
        )

    pages.draw(op)
    pages.skip(26 + CHART_H + SECTION_GAP)


# ---------------------------------------------------------------- comparison


def comparison(ctx: Context, pages: Pages) -> None:
    d, t, f, ts = ctx.data, ctx.t, ctx.f, ctx.ts
    prev = d.previous
    if prev is None:
        pages.need(50)
        _title(ctx, pages, t.comparison_title)
        y = pages.y - 38
        pages.draw(lambda c: ts.draw(c, X0, y, t.no_previous, theme.BODY))
        pages.skip(50 + SECTION_GAP)
        return
    cur, old = d.totals, prev.totals

    def per(minutes: int, n: int) -> float | None:
        return minutes / n if n else None

    metrics: list[tuple[str, float | None, float | None, bool]] = [
        (t.sessions, cur.sessions, old.sessions, False),
        (t.working_minutes, cur.minutes, old.minutes, False),
        (t.active_days, cur.active_days, old.active_days, False),
        (t.per_active_day, per(cur.minutes, cur.active_days), per(old.minutes, old.active_days), True),
        (t.per_session, per(cur.minutes, cur.sessions), per(old.minutes, old.sessions), True),
    ]

    def show(v: float | None, decimal: bool) -> str:
        if v is None:
            return "—"
        return f.decimal(v) if decimal else f.integer(round(v))

    rows = []
    for label, a, b, decimal in metrics:
        if a is None or b is None:
            change, sign = "—", 0
        elif b == 0:
            change, sign = (f.signed_decimal(a - b) if decimal else f.signed_integer(round(a - b))), int(a > 0)
        else:
            change, sign = f.signed_percent((a - b) / b), (a > b) - (a < b)
        rows.append((label, show(a, decimal), show(b, decimal), change, sign))

    h = 24 + 16 + ROW_H * len(rows) + 22
    pages.need(h)
    _title(ctx, pages, t.comparison_title)
    top = pages.y - 24
    edges = (X0 + W * 0.60, X0 + W * 0.80, X0 + W - 8)
    heads = (t.col_this, t.col_previous, t.col_change)
    prev_line = t.previous_range.format(range=f.date_range(prev.start, prev.end))

    def op(c: Canvas) -> None:
        for edge, head in zip(edges, heads, strict=True):
            ts.draw(c, edge, top - 10, ts.fit(head, theme.SMALL, W * 0.19), theme.SMALL, align="right")
        for i, (label, a, b, change, sign) in enumerate(rows):
            y = top - 16 - ROW_H * (i + 1)
            if i % 2 == 0:
                c.setFillColor(theme.PANEL)
                c.rect(X0, y - 5, W, ROW_H, stroke=0, fill=1)
            ts.draw(c, X0 + 8, y, ts.fit(label, theme.BODY, W * 0.42), theme.BODY)
            ts.draw(c, edges[0], y, a, theme.BODY_BOLD, align="right")
            ts.draw(c, edges[1], y, b, theme.BODY, align="right")
            color = theme.UP if sign > 0 else theme.DOWN if sign < 0 else theme.MUTED
            ts.draw(c, edges[2], y, change, Style(theme.BODY.size, color), align="right")
        ts.draw(c, X0, top - 16 - ROW_H * len(rows) - 18, prev_line, theme.SMALL)

    pages.draw(op)
    pages.skip(h + SECTION_GAP)


# ---------------------------------------------------------------- breakdowns


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    usage: Usage
    color: Color


def breakdowns(ctx: Context, pages: Pages) -> None:
    d, t, f, ts = ctx.data, ctx.t, ctx.f, ctx.ts
    b = d.breakdown
    total = d.totals
    shots = [Row(t.shot_name(s), b.shot_type(s), theme.SHOT_COLORS[s]) for s in ShotType]

    # treatment types: a donut and a table
    block = 24 + 112
    pages.need(block)
    _title(ctx, pages, t.by_shot_type)
    top = pages.y - 24
    r = 46.0
    cx, cy = X0 + r + 4, top - r - 6
    table_x = X0 + 2 * r + 36
    cols = (table_x + 150, table_x + 240, table_x + 320)

    def shot_op(c: Canvas) -> None:
        charts.donut(c, cx, cy, r, 15, [row.usage.seconds for row in shots], [row.color for row in shots])
        ts.draw(c, cx, cy + 1, f.integer(total.minutes), Style(14, theme.INK, bold=True), align="center")
        ts.draw(c, cx, cy - 11, t.unit_min, theme.SMALL, align="center")
        for edge, head in zip(cols, (t.col_minutes, t.col_sessions, t.col_share), strict=True):
            ts.draw(c, edge, top - 10, ts.fit(head, theme.SMALL, 85), theme.SMALL, align="right")
        for i, row in enumerate(shots):
            y = top - 30 - 20 * i
            charts.swatch(c, table_x, y - 0.5, row.color, 8)
            ts.draw(c, table_x + 14, y, ts.fit(row.label, theme.BODY_BOLD, 130), theme.BODY_BOLD)
            share = row.usage.seconds / total.working_seconds if total.working_seconds else 0.0
            ts.draw(c, cols[0], y, f.integer(row.usage.minutes), theme.BODY, align="right")
            ts.draw(c, cols[1], y, f.integer(row.usage.sessions), theme.BODY, align="right")
            ts.draw(c, cols[2], y, f.percent(share), theme.BODY, align="right")
            charts.bar(c, cols[2] + 16, y - 0.5, X0 + W - cols[2] - 16, 7, share, row.color)

    pages.draw(shot_op)
    pages.skip(block + SECTION_GAP)

    # modes (left) and levels (right)
    modes = [Row(name, b.modes.get(code, Usage()), theme.SHOT_COLORS[shot]) for code, (shot, name) in MODES.items()]
    levels = [
        Row(t.level.format(n=lv), b.levels.get(lv, Usage()), theme.LEVEL_COLORS[i]) for i, lv in enumerate(LEVELS)
    ]
    half = (W - 24) / 2
    h = 24 + 18 + ROW_H * len(modes)
    pages.need(h)
    _title(ctx, pages, t.by_mode, width=half)
    _title(ctx, pages, t.by_level, x=X0 + half + 24, width=half)
    table_top = pages.y - 24
    pages.draw(lambda c: _usage_table(ctx, c, X0, table_top, half, modes))
    pages.draw(lambda c: _usage_table(ctx, c, X0 + half + 24, table_top, half, levels))
    pages.skip(h + SECTION_GAP)


def _usage_table(ctx: Context, c: Canvas, x: float, top: float, w: float, rows: Sequence[Row]) -> None:
    """name | sessions | minutes | bar, the bar scaled to the largest row."""
    ts, t, f = ctx.ts, ctx.t, ctx.f
    name_w = w * 0.30
    edges = (x + name_w + w * 0.16, x + name_w + w * 0.34)
    bar_x = edges[1] + 10
    ts.draw(c, edges[0], top - 10, ts.fit(t.col_sessions, theme.SMALL, w * 0.17), theme.SMALL, align="right")
    ts.draw(c, edges[1], top - 10, ts.fit(t.col_minutes, theme.SMALL, w * 0.17), theme.SMALL, align="right")
    most = max((r.usage.seconds for r in rows), default=0)
    for i, row in enumerate(rows):
        y = top - 16 - ROW_H * (i + 1) + 4
        muted = row.usage.sessions == 0
        charts.swatch(c, x, y - 0.5, row.color, 7)
        style = Style(theme.BODY.size, theme.FAINT if muted else theme.INK)
        ts.draw(c, x + 12, y, ts.fit(row.label, style, name_w - 12), style)
        ts.draw(c, edges[0], y, f.integer(row.usage.sessions), style, align="right")
        ts.draw(c, edges[1], y, f.integer(row.usage.minutes), style, align="right")
        charts.bar(c, bar_x, y - 0.5, x + w - bar_x, 7, row.usage.seconds / most if most else 0.0, row.color)


# ---------------------------------------------------------------- goals


def goals(ctx: Context, pages: Pages) -> None:
    d, t, f, ts = ctx.data, ctx.t, ctx.f, ctx.ts
    n = max(len(d.goals), 1)
    h = 24 + 26 * n
    pages.need(h)
    _title(ctx, pages, t.goals_title)
    top = pages.y - 24
    if not d.goals:
        pages.draw(lambda c: ts.draw(c, X0, top - 12, t.no_goal, theme.BODY))
    for i, goal in enumerate(d.goals):
        y = top - 12 - 26 * i
        progress = t.goal_progress.format(
            achieved=f.integer(goal.achieved_minutes), target=f.integer(goal.target_minutes)
        )

        def op(
            c: Canvas,
            goal: PeriodKind = goal.goal_type,
            ratio: float = goal.ratio,
            y: float = y,
            progress: str = progress,
        ) -> None:
            name_w = W * 0.26
            ts.draw(c, X0, y, ts.fit(t.goal_name(goal), theme.BODY_BOLD, name_w - 8), theme.BODY_BOLD)
            bar_x, bar_w = X0 + name_w, W * 0.40
            charts.bar(c, bar_x, y - 1, bar_w, 8, ratio, theme.UP if ratio >= 1 else theme.ACCENT)
            ts.draw(c, X0 + W - 52, y, ts.fit(progress, theme.BODY, W - name_w - bar_w - 70), theme.BODY, align="right")
            ts.draw(c, X0 + W, y, f.percent(ratio), theme.BODY_BOLD, align="right")

        pages.draw(op)
    pages.skip(h + SECTION_GAP)


# ---------------------------------------------------------------- devices


def devices(ctx: Context, pages: Pages) -> None:
    d, t, ts = ctx.data, ctx.t, ctx.ts
    fractions = (0.36, 0.22, 0.24, 0.18)
    xs = [X0 + W * sum(fractions[:i]) for i in range(len(fractions))]
    heads = (t.col_device, t.col_model, t.col_serial, t.col_firmware)

    def header() -> None:
        _title(ctx, pages, t.devices_title)
        y = pages.y - 34

        def op(c: Canvas) -> None:
            for x, head, fr in zip(xs, heads, fractions, strict=True):
                ts.draw(c, x + 6, y, ts.fit(head, theme.SMALL, W * fr - 10), theme.SMALL)

        pages.draw(op)
        pages.skip(24 + 16)

    pages.need(24 + 16 + ROW_H * min(len(d.devices), 3) + 4)
    header()
    if not d.devices:
        y = pages.y - 12
        pages.draw(lambda c: ts.draw(c, X0 + 6, y, "—", theme.BODY))
        pages.skip(ROW_H)
    for i, dev in enumerate(d.devices):
        if pages.room() < ROW_H + 4:
            pages.new_page()
            header()
        y = pages.y - 12
        cells = (dev.name, dev.model, dev.serial, dev.firmware_version or t.firmware_unknown)

        def op(c: Canvas, cells: tuple[str, ...] = cells, y: float = y, stripe: bool = i % 2 == 0) -> None:
            if stripe:
                c.setFillColor(theme.PANEL)
                c.rect(X0, y - 5, W, ROW_H, stroke=0, fill=1)
            for j, (x, cell, fr) in enumerate(zip(xs, cells, fractions, strict=True)):
                style = theme.BODY_BOLD if j == 0 else theme.BODY
                ts.draw(c, x + 6, y, ts.fit(cell, style, W * fr - 12), style)

        pages.draw(op)
        pages.skip(ROW_H)
    pages.skip(SECTION_GAP)


# ---------------------------------------------------------------- footer


def footer(ctx: Context, c: Canvas, number: int, total: int, title: str) -> None:
    y = theme.MARGIN_BOTTOM - 22
    c.setStrokeColor(theme.RULE)
    c.setLineWidth(0.6)
    c.line(X0, y + 12, X0 + W, y + 12)
    style = Style(theme.SMALL.size, theme.FAINT)
    ctx.ts.draw(c, X0, y, ctx.ts.fit(f"DualTetraX · {title}", style, W - 60), style)
    ctx.ts.draw(c, X0 + W, y, f"{number} / {total}", style, align="right")
