"""Font discovery and registration, and splitting text into runs that each font can actually draw.

reportlab embeds TrueType-outline fonts only (not CFF `.otf` such as the usual Noto CJK files), so every
script gets a TrueType family from a Debian package (see `scripts/ensure-system-deps.sh`):

| family   | file                                | package               | used for                        |
|----------|-------------------------------------|-----------------------|---------------------------------|
| latin    | NotoSans-Regular/Bold.ttf           | fonts-noto-core       | en es pt vi, digits for th      |
| thai     | NotoSansThai-Regular/Bold.ttf       | fonts-noto-core       | th (shaped with harfbuzz)       |
| korean   | NanumGothic.ttf, NanumGothicBold.ttf| fonts-nanum           | ko                              |
| japanese | ipagp.ttf (no bold: drawn stroked)  | fonts-ipafont-gothic  | ja                              |
| chinese  | wqy-zenhei.ttc #0 (no bold: stroked)| fonts-wqy-zenhei      | zh (Simplified)                 |

Each locale has a chain: its own family first, then the others as fallbacks for characters it lacks (a
Korean name in an English report, Latin digits in Thai). Fonts are registered once per process, lazily;
reportlab embeds only the glyphs used (subsets).
"""

from __future__ import annotations

import os
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from reportlab.pdfbase import pdfmetrics, ttfonts

from .model import Locale

FONT_DIRS_ENV = "DTX_FONT_DIRS"
DEFAULT_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
)


class FontNotFoundError(RuntimeError):
    """A font a locale needs is not installed. The message names the package to install."""

    def __init__(self, family: Family, file: str, searched: Sequence[str]) -> None:
        self.family = family
        self.file = file
        super().__init__(
            f"font file {file} ({family.script}) not found in {', '.join(searched) or 'no font directories'}; "
            f"install the Debian package {family.package} (apt-get install {family.package}, or `make setup`), "
            f"or put the file in a directory listed in ${FONT_DIRS_ENV}"
        )


class ShapingUnavailableError(RuntimeError):
    """Thai needs glyph shaping, which reportlab does through uharfbuzz."""

    def __init__(self) -> None:
        super().__init__("Thai text needs the uharfbuzz package for shaping: pip install 'dualtetrax[worker]'")


@dataclass(frozen=True, slots=True)
class Face:
    file: str
    subfont_index: int = 0


@dataclass(frozen=True, slots=True)
class Family:
    key: str
    script: str
    package: str
    regular: Face
    bold: Face | None  # None: bold is drawn as fill + thin stroke
    shaped: bool = False  # needs OpenType shaping (mark positioning) to render correctly


FAMILIES: dict[str, Family] = {
    f.key: f
    for f in (
        Family(
            "latin", "Latin and Vietnamese", "fonts-noto-core", Face("NotoSans-Regular.ttf"), Face("NotoSans-Bold.ttf")
        ),
        Family(
            "thai",
            "Thai",
            "fonts-noto-core",
            Face("NotoSansThai-Regular.ttf"),
            Face("NotoSansThai-Bold.ttf"),
            shaped=True,
        ),
        Family("korean", "Korean", "fonts-nanum", Face("NanumGothic.ttf"), Face("NanumGothicBold.ttf")),
        Family("japanese", "Japanese", "fonts-ipafont-gothic", Face("ipagp.ttf"), None),
        Family("chinese", "Simplified Chinese", "fonts-wqy-zenhei", Face("wqy-zenhei.ttc", 0), None),
    )
}

PRIMARY: dict[Locale, str] = {
    "en": "latin",
    "es": "latin",
    "pt": "latin",
    "vi": "latin",
    "ko": "korean",
    "ja": "japanese",
    "zh": "chinese",
    "th": "thai",
}
FALLBACK_ORDER: dict[str, tuple[str, ...]] = {
    "latin": ("korean", "japanese", "chinese", "thai"),
    "korean": ("latin", "japanese", "chinese", "thai"),
    "japanese": ("latin", "chinese", "korean", "thai"),
    "chinese": ("latin", "japanese", "korean", "thai"),
    "thai": ("latin", "korean", "japanese", "chinese"),
}


def font_dirs() -> list[str]:
    extra = [d for d in os.environ.get(FONT_DIRS_ENV, "").split(os.pathsep) if d]
    return [os.path.expanduser(d) for d in (*extra, *DEFAULT_FONT_DIRS)]


@lru_cache(maxsize=1)
def _font_index(dirs: tuple[str, ...]) -> dict[str, str]:
    """File name → path, the first directory listed winning."""
    index: dict[str, str] = {}
    for d in dirs:
        for root, _subdirs, files in os.walk(d):
            for name in files:
                index.setdefault(name, os.path.join(root, name))
    return index


def find_font_file(family: Family, face: Face) -> Path:
    dirs = tuple(font_dirs())
    path = _font_index(dirs).get(face.file)
    if path is None:
        _font_index.cache_clear()  # installed since the last look?
        path = _font_index(dirs).get(face.file)
    if path is None:
        raise FontNotFoundError(family, face.file, [d for d in dirs if os.path.isdir(d)])
    return Path(path)


@dataclass(frozen=True, slots=True)
class LoadedFont:
    """A registered reportlab font and what it can draw."""

    name: str
    family: str
    cmap: dict[int, int] = field(repr=False, compare=False)
    faux_bold: bool = False
    shaped: bool = False

    def covers(self, ch: str) -> bool:
        return ord(ch) in self.cmap


_register_lock = threading.Lock()
_loaded: dict[tuple[str, bool], LoadedFont] = {}


def load(family_key: str, bold: bool = False) -> LoadedFont:
    """Register (once per process) and return a family's regular or bold face."""
    key = (family_key, bold)
    font = _loaded.get(key)
    if font is not None:
        return font
    with _register_lock:
        font = _loaded.get(key)
        if font is None:
            font = _loaded[key] = _register(FAMILIES[family_key], bold)
    return font


def _register(family: Family, bold: bool) -> LoadedFont:
    if family.shaped and ttfonts.uharfbuzz is None:
        raise ShapingUnavailableError()
    face = family.bold if bold and family.bold else family.regular
    name = f"DTX-{family.key}-{'Bold' if bold and family.bold else 'Regular'}"
    if name not in pdfmetrics.getRegisteredFontNames():
        path = find_font_file(family, face)
        tt = ttfonts.TTFont(name, str(path), subfontIndex=face.subfont_index, shapable=family.shaped)
        pdfmetrics.registerFont(tt)
    tt = pdfmetrics.getFont(name)
    cmap: dict[int, int] = tt.face.charToGlyph
    return LoadedFont(name, family.key, cmap, faux_bold=bold and family.bold is None, shaped=family.shaped)


def required_families(locale: Locale) -> tuple[str, ...]:
    """Families a locale cannot render without: its own, and Latin (digits, brand names)."""
    primary = PRIMARY[locale]
    return (primary,) if primary == "latin" else (primary, "latin")


def check_fonts(locales: Iterable[Locale]) -> None:
    """Raise FontNotFoundError early (at worker start) if a locale's fonts are missing."""
    for loc in locales:
        for fam in required_families(loc):
            load(fam)
            load(fam, bold=True)


_MARKS = ("Mn", "Me", "Mc")


class FontChain:
    """Splits text into (font, text) runs: each character goes to the first font of the chain that has it."""

    def __init__(self, locale: Locale) -> None:
        primary = PRIMARY[locale]
        self.locale = locale
        self.order: tuple[str, ...] = (primary, *FALLBACK_ORDER[primary])
        self.required = required_families(locale)
        self._choice: dict[tuple[str, bool], LoadedFont | None] = {}
        for fam in self.required:
            load(fam)
            load(fam, bold=True)

    def primary(self, bold: bool = False) -> LoadedFont:
        return load(self.order[0], bold)

    def _font_for(self, ch: str, bold: bool) -> LoadedFont | None:
        key = (ch, bold)
        if key in self._choice:
            return self._choice[key]
        choice: LoadedFont | None = None
        for fam in self.order:
            try:
                font = load(fam, bold)
            except FontNotFoundError:
                if fam in self.required:
                    raise
                continue  # an optional fallback that is not installed
            if font.covers(ch):
                choice = font
                break
        self._choice[key] = choice
        return choice

    def runs(self, text: str, bold: bool = False, missing: set[str] | None = None) -> list[tuple[LoadedFont, str]]:
        """Characters no installed font has are left out (rather than drawn as boxes) and added to `missing`."""
        text = unicodedata.normalize("NFC", text)
        out: list[tuple[LoadedFont, str]] = []
        cur: LoadedFont | None = None
        buf: list[str] = []
        for ch in text:
            if ch.isspace():
                font = cur or self.primary(bold)
                if not font.covers(ch):
                    ch = " "
            elif cur is not None and unicodedata.category(ch) in _MARKS and cur.covers(ch):
                font = cur
            else:
                found = self._font_for(ch, bold)
                if found is None:
                    if missing is not None:
                        missing.add(ch)
                    continue
                font = found
            if font is not cur:
                if cur is not None and buf:
                    out.append((cur, "".join(buf)))
                cur, buf = font, []
            buf.append(ch)
        if cur is not None and buf:
            out.append((cur, "".join(buf)))
        return out


@lru_cache(maxsize=len(PRIMARY))
def chain_for(locale: Locale) -> FontChain:
    """The process-wide chain of a locale (fonts registered on first use)."""
    return FontChain(locale)
