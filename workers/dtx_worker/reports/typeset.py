"""Measuring, fitting, wrapping and drawing text through a locale's font chain.

Thai runs are shaped with harfbuzz (stacked vowels and tone marks need mark positioning); a shaped run is
wrapped in a marked-content span carrying the original text (`/ActualText`), so text extraction and search
give back the characters that were written, not the glyph variants that were drawn.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from reportlab.lib.colors import Color
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import ShapedStr, shapeStr
from reportlab.pdfgen.canvas import Canvas

from .fonts import FontChain, LoadedFont

Align = Literal["left", "right", "center"]
FAUX_BOLD_STROKE = 0.035  # of the font size, for faces without a bold file


@dataclass(frozen=True, slots=True)
class Style:
    size: float
    color: Color
    bold: bool = False


@dataclass(frozen=True, slots=True)
class Piece:
    font: LoadedFont
    text: str  # what goes into the PDF (a ShapedStr for shaped runs)
    width: float
    actual: str | None  # the original characters when `text` holds shaped glyphs


@dataclass(frozen=True, slots=True)
class Laid:
    pieces: tuple[Piece, ...]
    width: float
    dropped: frozenset[str]


@lru_cache(maxsize=16384)
def _lay(chain: FontChain, text: str, size: float, bold: bool) -> Laid:
    dropped: set[str] = set()
    pieces = []
    for font, run in chain.runs(text, bold, dropped):
        if font.shaped:
            shaped = shapeStr(run, font.name, size)
            if isinstance(shaped, ShapedStr):
                width = sum(sd.x_advance for sd in shaped.__shapeData__) * size / 1000
            else:
                width = pdfmetrics.stringWidth(shaped, font.name, size)
            changed = isinstance(shaped, ShapedStr) or str(shaped) != run
            pieces.append(Piece(font, shaped, width, run if changed else None))
        else:
            pieces.append(Piece(font, run, pdfmetrics.stringWidth(run, font.name, size), None))
    return Laid(tuple(pieces), sum(p.width for p in pieces), frozenset(dropped))


def _actual_text(s: str) -> str:
    return "/Span <</ActualText <FEFF" + s.encode("utf-16-be").hex().upper() + ">>> BDC"


_NO_BREAK_BEFORE = set("、。，．,.：:；;！!？?）)」』】〕〉》ー…%％")
_NO_BREAK_AFTER = set("（(「『【〔〈《")


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x2E80 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF or 0x3000 <= o <= 0x30FF


def _units(text: str) -> list[str]:
    """Pieces a line may break between: words with their trailing space, or single CJK characters."""
    units: list[str] = []
    buf = ""
    for ch in text:
        if _is_cjk(ch) or ch in _NO_BREAK_BEFORE:
            if ch in _NO_BREAK_BEFORE or (buf and buf[-1] in _NO_BREAK_AFTER):
                buf += ch
                continue
            if buf:
                units.append(buf)
            buf = ch
        elif ch == " ":
            buf += ch
            units.append(buf)
            buf = ""
        else:
            if buf and (_is_cjk(buf[-1]) and buf[-1] not in _NO_BREAK_AFTER):
                units.append(buf)
                buf = ""
            buf += ch
    if buf:
        units.append(buf)
    return units


class Typesetter:
    """Draws text on a canvas with the right font for every character; remembers characters it had to drop."""

    def __init__(self, chain: FontChain) -> None:
        self.chain = chain
        self.dropped: set[str] = set()

    def lay(self, text: str, style: Style) -> Laid:
        laid = _lay(self.chain, text, style.size, style.bold)
        if laid.dropped:
            self.dropped |= laid.dropped
        return laid

    def width(self, text: str, style: Style) -> float:
        return self.lay(text, style).width

    def draw(self, c: Canvas, x: float, y: float, text: str, style: Style, align: Align = "left") -> float:
        laid = self.lay(text, style)
        if align == "right":
            x -= laid.width
        elif align == "center":
            x -= laid.width / 2
        c.setFillColor(style.color)
        for p in laid.pieces:
            if p.actual is not None:
                c.addLiteral(_actual_text(p.actual))
            t = c.beginText(x, y)
            t.setFont(p.font.name, style.size)
            if p.font.faux_bold:
                c.setStrokeColor(style.color)
                c.setLineWidth(style.size * FAUX_BOLD_STROKE)
                t.setTextRenderMode(2)
            t.textOut(p.text)
            if p.font.faux_bold:
                t.setTextRenderMode(0)
            c.drawText(t)
            if p.actual is not None:
                c.addLiteral("EMC")
            x += p.width
        return laid.width

    def fit(self, text: str, style: Style, max_width: float) -> str:
        """The text, shortened with an ellipsis if it is wider than max_width."""
        if self.width(text, style) <= max_width:
            return text
        chars = list(unicodedata.normalize("NFC", text))
        lo, hi = 0, len(chars)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.width("".join(chars[:mid]).rstrip() + "…", style) <= max_width:
                lo = mid
            else:
                hi = mid - 1
        return "".join(chars[:lo]).rstrip() + "…"

    def wrap(self, text: str, style: Style, max_width: float) -> list[str]:
        """Greedy line breaking at spaces, and between CJK characters (never before closing punctuation)."""
        lines: list[str] = []
        line = ""
        for unit in _units(text):
            candidate = line + unit
            if line and self.width(candidate.rstrip(), style) > max_width:
                lines.append(line.rstrip())
                line = unit
            else:
                line = candidate
        if line.strip():
            lines.append(line.rstrip())
        return [self.fit(ln, style, max_width) for ln in lines]
