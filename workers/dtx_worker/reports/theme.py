"""Colours, type sizes and page geometry shared by the charts and the page layout."""

from __future__ import annotations

from reportlab.lib.colors import Color, HexColor, white
from reportlab.lib.pagesizes import A4

from .model import ShotType
from .typeset import Style

PAGE_W: float = A4[0]
PAGE_H: float = A4[1]
MARGIN_X = 42.0
MARGIN_TOP = 40.0
MARGIN_BOTTOM = 48.0
CONTENT_W = PAGE_W - 2 * MARGIN_X

INK = HexColor("#1B2333")
MUTED = HexColor("#5B6675")
FAINT = HexColor("#8C96A4")
RULE = HexColor("#E2E6EC")
PANEL = HexColor("#F4F6F9")
BAND = HexColor("#17324D")
BAND_TEXT = HexColor("#C9D6E3")
ACCENT = HexColor("#2E9E94")
UP = HexColor("#1E8A5A")
DOWN = HexColor("#C0473F")
NOTE_BG = HexColor("#FFF6E5")
NOTE_RULE = HexColor("#F0B84F")
WHITE = white

SHOT_COLORS: dict[ShotType, Color] = {
    ShotType.USHOT: HexColor("#4063D8"),
    ShotType.ESHOT: HexColor("#22A39A"),
    ShotType.LED: HexColor("#F0A53A"),
}
LEVEL_COLORS: tuple[Color, ...] = (HexColor("#A9BCEB"), HexColor("#6F8FE0"), HexColor("#2F4FB8"))

TITLE = Style(24, WHITE, bold=True)
SUBTITLE = Style(14, WHITE)
BAND_LABEL = Style(8, BAND_TEXT)
BAND_VALUE = Style(10, WHITE)
SECTION = Style(12.5, INK, bold=True)
BODY = Style(9, INK)
BODY_BOLD = Style(9, INK, bold=True)
SMALL = Style(7.5, MUTED)
SMALL_INK = Style(7.5, INK)
LABEL = Style(8.5, MUTED)
FIGURE = Style(21, INK, bold=True)
FIGURE_UNIT = Style(9.5, MUTED)
AXIS = Style(7, FAINT)
