"""Reading rendered reports back with real PDF tools: poppler (pdftotext, pdftoppm, pdffonts), qpdf, pypdf and
fontTools for the embedded fonts."""

from __future__ import annotations

import html
import io
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from PIL import Image
from pypdf import PdfReader
from pypdf.generic import ContentStream

TOOLS = ("pdftotext", "pdftoppm", "pdffonts", "qpdf")


def require_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `make setup` (Debian packages poppler-utils, qpdf)")


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


SPACES = dict.fromkeys(map(ord, "\u00a0\u202f\u2009\u2007"), " ")


def text(pdf: Path) -> str:
    """All text, NFC, with the locales' special spaces turned into plain ones."""
    return unicodedata.normalize("NFC", run("pdftotext", "-enc", "UTF-8", str(pdf), "-")).translate(SPACES)


def squeeze(s: str) -> str:
    """Without any whitespace: for looking up labels however the extractor spaced them."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFC", s).translate(SPACES))


@dataclass(frozen=True)
class Word:
    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    text: str


_WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>')


def words(pdf: Path) -> tuple[list[Word], tuple[float, float]]:
    """Every word with its box (points, origin top-left), and the page size."""
    out = run("pdftotext", "-bbox", "-enc", "UTF-8", str(pdf), "-")
    found: list[Word] = []
    size = (0.0, 0.0)
    for page, chunk in enumerate(out.split("<page ")[1:], start=1):
        m = re.match(r'width="([\d.]+)" height="([\d.]+)"', chunk)
        assert m
        size = (float(m.group(1)), float(m.group(2)))
        for w in _WORD.finditer(chunk):
            x0, y0, x1, y1 = (float(w.group(i)) for i in range(1, 5))
            word = unicodedata.normalize("NFC", html.unescape(w.group(5))).translate(SPACES)
            found.append(Word(page, x0, y0, x1, y1, word))
    return found, size


def lines(pdf: Path) -> list[list[str]]:
    """Words grouped into lines (same page, tops within 2 pt: fonts of different scripts differ a little),
    left to right."""
    ws, _ = words(pdf)
    rows: list[list[Word]] = []
    for w in sorted(ws, key=lambda w: (w.page, w.y0)):
        if rows and rows[-1][0].page == w.page and abs(rows[-1][0].y0 - w.y0) < 2:
            rows[-1].append(w)
        else:
            rows.append([w])
    return [[w.text for w in sorted(row, key=lambda w: w.x0)] for row in rows]


def after(all_lines: list[list[str]], label: str, n: int) -> list[list[str]]:
    """For every line holding `label` (one or more words): the n words that follow it there."""
    parts = label.split()
    found = []
    for row in all_lines:
        for i in range(len(row) - len(parts) + 1):
            if row[i : i + len(parts)] == parts:
                found.append(row[i + len(parts) : i + len(parts) + n])
    assert found, f"{label!r} not found on any line"
    return found


def rasterize(pdf: Path, out_dir: Path, dpi: int = 40) -> list[Image.Image]:
    prefix = out_dir / pdf.stem
    run("pdftoppm", "-r", str(dpi), "-png", str(pdf), str(prefix))
    return [Image.open(p).convert("L") for p in sorted(out_dir.glob(f"{pdf.stem}-*.png"))]


def ink_ratio(img: Image.Image) -> float:
    """Share of pixels that are not (near) white."""
    hist = img.histogram()
    return sum(hist[:240]) / (img.width * img.height)


@dataclass(frozen=True)
class FontRow:
    name: str
    type: str
    embedded: bool
    subset: bool
    unicode: bool


def pdffonts(pdf: Path) -> list[FontRow]:
    rows = []
    for line in run("pdffonts", str(pdf)).splitlines()[2:]:
        parts = line.split()
        # name type [type…] encoding emb sub uni object-id generation
        emb, sub, uni = parts[-5:-2]
        rows.append(FontRow(parts[0], parts[1], emb == "yes", sub == "yes", uni == "yes"))
    return rows


def qpdf_check(pdf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, text=True)


def _to_unicode(cmap: bytes) -> dict[int, str]:
    out: dict[int, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.S):
        for code, uni in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[int(code, 16)] = bytes.fromhex(uni.decode()).decode("utf-16-be")
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", cmap, re.S):
        for lo, hi, uni in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            first = int(uni, 16)
            for i, code in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                out[code] = chr(first + i)
    return out


def missing_glyphs(pdf: Path) -> list[str]:
    """Every character shown in the PDF whose glyph in the embedded font is .notdef or has no outline.

    Walks the content streams for the codes actually shown with each font, then looks each code up in the
    embedded TrueType subset (its cmap) and in the font's ToUnicode map.
    """
    reader = PdfReader(str(pdf))
    problems: list[str] = []
    fonts: dict[int, tuple[TTFont, dict[int, str], str]] = {}
    for page_no, page in enumerate(reader.pages, start=1):
        resources = page["/Resources"]["/Font"]
        current = None
        for operands, op in ContentStream(page.get_contents(), reader).operations:
            if op == b"Tf":
                ref = resources[operands[0]]
                f = ref.get_object()
                key = ref.idnum if hasattr(ref, "idnum") else id(f)
                if key not in fonts:
                    data = f["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data()
                    tt = TTFont(io.BytesIO(data))
                    fonts[key] = (tt, _to_unicode(f["/ToUnicode"].get_object().get_data()), str(f["/BaseFont"]))
                current = fonts[key]
            elif op in (b"Tj", b"TJ") and current is not None:
                items = operands[0] if op == b"TJ" else [operands[0]]
                for item in items:
                    if isinstance(item, (int, float)) or not hasattr(item, "original_bytes"):
                        continue
                    tt, uni, name = current
                    cmap = next(t.cmap for t in tt["cmap"].tables)
                    glyf = tt["glyf"]
                    for code in item.original_bytes:
                        ch = uni.get(code, "")
                        glyph = cmap.get(code, ".notdef")
                        if glyph == ".notdef" or ch == "\x00":  # reportlab shows a character the font lacks as code 0
                            problems.append(f"page {page_no}: {ch!r} (code {code}) is .notdef in {name}")
                        elif not ch.isspace() and glyf[glyph].numberOfContours == 0:
                            problems.append(f"page {page_no}: {ch!r} (code {code}) has no outline in {name}")
    return problems
