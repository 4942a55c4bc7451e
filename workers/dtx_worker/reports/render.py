"""`render_report(data) -> bytes`: a usage report as an A4 PDF. Pure: no database, no network, no files written."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from reportlab.pdfgen.canvas import Canvas

from . import sections, theme
from .fonts import chain_for
from .i18n import CATALOGS, Catalog, Formatter
from .model import PeriodKind, ReportData
from .pages import Pages
from .typeset import Typesetter

log = logging.getLogger(__name__)

# Fewer active days than this and the report says its comparisons may not mean much yet.
SPARSE_ACTIVE_DAYS = {PeriodKind.WEEKLY: 2, PeriodKind.MONTHLY: 4}


@dataclass(frozen=True, slots=True)
class Context:
    data: ReportData
    t: Catalog
    f: Formatter
    ts: Typesetter

    @property
    def period_name(self) -> str:
        p = self.data.period
        if p.kind is PeriodKind.MONTHLY and p.is_calendar_month:
            return self.f.month(p.start)
        return self.f.date_range(p.start, p.end)

    @property
    def is_empty(self) -> bool:
        return self.data.totals.sessions == 0

    @property
    def is_sparse(self) -> bool:
        return not self.is_empty and self.data.totals.active_days < SPARSE_ACTIVE_DAYS[self.data.period.kind]


def render_report(data: ReportData) -> bytes:
    """Render one report. Fonts are registered on the first call of the process (see `fonts.check_fonts`)."""
    ctx = Context(data, CATALOGS[data.locale], Formatter(data.locale, data.zone), Typesetter(chain_for(data.locale)))
    pages = Pages()
    sections.cover(ctx, pages)
    sections.note(ctx, pages)
    sections.key_figures(ctx, pages)
    sections.daily_chart(ctx, pages)
    sections.comparison(ctx, pages)
    sections.breakdowns(ctx, pages)
    sections.goals(ctx, pages)
    sections.devices(ctx, pages)

    buf = io.BytesIO()
    # the initial font must be an embedded one too (the default, Helvetica, would be referenced unembedded)
    c = Canvas(
        buf,
        pagesize=(theme.PAGE_W, theme.PAGE_H),
        pageCompression=1,
        invariant=1,
        initialFontName=ctx.ts.chain.primary().name,
    )
    title = f"{ctx.t.title(data.period.kind)} · {ctx.period_name}"
    c.setTitle(title)
    c.setAuthor("DualTetraX")
    c.setSubject(data.user_display_name)
    c.setCreator("DualTetraX Services")
    pages.paint(c, lambda canvas, n, total: sections.footer(ctx, canvas, n, total, title))
    c.save()
    if ctx.ts.dropped:
        log.warning("report for %s: no installed font has %r; left out", data.locale, "".join(sorted(ctx.ts.dropped)))
    return buf.getvalue()
