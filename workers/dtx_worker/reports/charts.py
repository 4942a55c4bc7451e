"""Charts drawn as vector graphics on the page: daily stacked bars, a donut, horizontal bars, progress bars."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reportlab.lib.colors import Color
from reportlab.pdfgen.canvas import Canvas

from . import theme
from .typeset import Style, Typesetter


@dataclass(frozen=True, slots=True)
class DayBar:
    """One day's column: stacked values (in minutes) bottom-up, and its axis labels."""

    values: tuple[float, ...]
    label: str
    sublabel: str = ""
    shaded: bool = False  # weekend


def nice_ticks(top: float, max_ticks: int = 5) -> list[float]:
    """0, step, 2·step, … covering `top`, with a step of 1, 2 or 5 × 10^k."""
    if top <= 0:
        return [0.0, 10.0, 20.0, 30.0]
    raw = top / max_ticks
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if step < 1:
        step = 1.0
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def daily_bars(
    c: Canvas,
    ts: Typesetter,
    x: float,
    y: float,
    w: float,
    h: float,
    bars: Sequence[DayBar],
    colors: Sequence[Color],
    tick_label: Callable[[float], str],
    empty_text: str,
    value_label: Callable[[float], str] | None = None,
) -> None:
    """A stacked bar per day inside the box whose lower-left corner is (x, y)."""
    totals = [sum(b.values) for b in bars]
    ticks = nice_ticks(max(totals, default=0.0))
    top = ticks[-1]
    two_lines = any(b.sublabel for b in bars)
    bottom = 14.0 + (9.0 if two_lines else 0.0)
    gutter = max(ts.width(tick_label(t), theme.AXIS) for t in ticks) + 6
    px, py, pw, ph = x + gutter, y + bottom, w - gutter, h - bottom - (10 if value_label else 2)
    slot = pw / max(len(bars), 1)

    for i, b in enumerate(bars):
        if b.shaded:
            c.setFillColor(theme.PANEL)
            c.rect(px + i * slot, py, slot, ph, stroke=0, fill=1)
    c.setLineWidth(0.5)
    for t in ticks:
        ty = py + ph * t / top
        c.setStrokeColor(theme.RULE if t else theme.FAINT)
        c.line(px, ty, px + pw, ty)
        ts.draw(c, px - 5, ty - 2.4, tick_label(t), theme.AXIS, align="right")

    bar_w = min(slot * 0.64, 34.0)
    for i, (b, total) in enumerate(zip(bars, totals, strict=True)):
        bx = px + i * slot + (slot - bar_w) / 2
        acc = 0.0
        for v, col in zip(b.values, colors, strict=True):
            if v <= 0:
                continue
            c.setFillColor(col)
            c.rect(bx, py + ph * acc / top, bar_w, ph * v / top, stroke=0, fill=1)
            acc += v
        if value_label and total > 0:
            ts.draw(c, bx + bar_w / 2, py + ph * total / top + 3, value_label(total), theme.SMALL_INK, align="center")

    step = _label_step(ts, bars, slot)
    for i, b in enumerate(bars):
        if i % step and not b.sublabel:
            continue
        cx = px + (i + 0.5) * slot
        label = ts.fit(b.label, theme.AXIS, slot * step - 2)
        ts.draw(c, cx, py - 10, label, theme.AXIS, align="center")
        if b.sublabel:
            ts.draw(c, cx, py - 19, ts.fit(b.sublabel, theme.AXIS, slot - 2), theme.AXIS, align="center")

    if not any(totals):
        ts.draw(c, px + pw / 2, py + ph / 2, empty_text, Style(10, theme.FAINT), align="center")


def _label_step(ts: Typesetter, bars: Sequence[DayBar], slot: float) -> int:
    widest = max((ts.width(b.label, theme.AXIS) for b in bars), default=0.0) + 4
    for step in (1, 2, 3, 5, 7, 10):
        if widest <= slot * step:
            return step
    return 10


def donut(
    c: Canvas,
    cx: float,
    cy: float,
    r: float,
    thickness: float,
    values: Sequence[float],
    colors: Sequence[Color],
) -> None:
    """A ring split by value, starting at 12 o'clock and going clockwise; a grey ring when all are zero."""
    total = sum(values)
    c.setLineWidth(1.2)
    c.setStrokeColor(theme.WHITE)
    if total <= 0:
        c.setFillColor(theme.RULE)
        c.circle(cx, cy, r, stroke=0, fill=1)
    else:
        start = 90.0
        for v, col in zip(values, colors, strict=True):
            if v <= 0:
                continue
            extent = -360.0 * v / total
            c.setFillColor(col)
            if abs(extent) >= 359.99:
                c.circle(cx, cy, r, stroke=0, fill=1)
            else:
                c.wedge(cx - r, cy - r, cx + r, cy + r, start, extent, stroke=1, fill=1)
            start += extent
    c.setFillColor(theme.WHITE)
    c.circle(cx, cy, r - thickness, stroke=0, fill=1)


def bar(c: Canvas, x: float, y: float, w: float, h: float, ratio: float, color: Color) -> None:
    """A horizontal track with its first `ratio` (0–1, clipped) filled."""
    c.setFillColor(theme.PANEL)
    c.roundRect(x, y, w, h, h / 2, stroke=0, fill=1)
    filled = w * max(0.0, min(ratio, 1.0))
    if filled > 0:
        c.setFillColor(color)
        c.roundRect(x, y, max(filled, h), h, h / 2, stroke=0, fill=1)


def triangle(c: Canvas, x: float, y: float, size: float, up: bool, color: Color) -> None:
    """A small filled triangle with its base centred on (x, y)…(x+size, y)."""
    p = c.beginPath()
    if up:
        p.moveTo(x, y)
        p.lineTo(x + size, y)
        p.lineTo(x + size / 2, y + size * 0.85)
    else:
        p.moveTo(x, y + size * 0.85)
        p.lineTo(x + size, y + size * 0.85)
        p.lineTo(x + size / 2, y)
    p.close()
    c.setFillColor(color)
    c.drawPath(p, stroke=0, fill=1)


def swatch(c: Canvas, x: float, y: float, color: Color, size: float = 7.0) -> None:
    c.setFillColor(color)
    c.roundRect(x, y, size, size, 1.5, stroke=0, fill=1)
