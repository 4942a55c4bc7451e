"""Page flow: sections are laid out top-down into deferred drawing operations, so that each page's footer can
say "n / total" once the number of pages is known."""

from __future__ import annotations

from collections.abc import Callable

from reportlab.pdfgen.canvas import Canvas

from . import theme

Op = Callable[[Canvas], object]


class Pages:
    def __init__(self) -> None:
        self._pages: list[list[Op]] = [[]]
        self.y = theme.PAGE_H - theme.MARGIN_TOP

    @property
    def count(self) -> int:
        return len(self._pages)

    def draw(self, op: Op) -> None:
        self._pages[-1].append(op)

    def new_page(self) -> None:
        self._pages.append([])
        self.y = theme.PAGE_H - theme.MARGIN_TOP

    def room(self) -> float:
        return self.y - theme.MARGIN_BOTTOM

    def need(self, height: float) -> None:
        """Start a new page unless `height` points still fit on this one."""
        if height > self.room() and self._pages[-1]:
            self.new_page()

    def skip(self, height: float) -> None:
        self.y -= height

    def paint(self, c: Canvas, footer: Callable[[Canvas, int, int], None]) -> None:
        total = len(self._pages)
        for number, ops in enumerate(self._pages, start=1):
            for op in ops:
                op(c)
            footer(c, number, total)
            c.showPage()
