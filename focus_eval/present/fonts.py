"""Text in pictures: a chain of fonts, so that questions and answers in any script are text.

PIL's built-in font (Aileron) covers ASCII only: "é", "к" or "円" come out as empty boxes. A
`Typeface` draws each character with the first font of a chain that has a glyph for it:
1. the font files named by the environment variable FOCUS_EVAL_FONT (several separated by
   os.pathsep), e.g. a Noto Sans CJK file for Chinese or Japanese text;
2. DEFAULT_FONTS that exist: DejaVu Sans as matplotlib ships it (`matplotlib.get_data_path()`,
   fonts/ttf/DejaVuSans.ttf; matplotlib is a dependency: one file per matplotlib version):
   Latin, Greek, Cyrillic and symbols; then the SYSTEM_FONTS (Noto Sans CJK or WenQuanYi Micro
   Hei: Chinese, Japanese, Korean; macOS's Arial Unicode);
3. PIL's built-in font.
`visible(text)` writes a character that no font of the chain has as a \\u escape and records
that it did (`escaped`), so that a picture can say why. Pictures of text that DejaVu Sans
covers are thus the same on every machine (unless FOCUS_EVAL_FONT is set); other scripts depend
on the system's fonts.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

FONT_ENV = "FOCUS_EVAL_FONT"
SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian, Ubuntu: fonts-noto-cjk
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # Debian, Ubuntu: fonts-wqy-microhei (CJK)
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",  # macOS
)


def _matplotlib_fonts() -> tuple[str, ...]:
    """DejaVu Sans in `matplotlib.get_data_path()` (mpl-data beside matplotlib's __init__.py),
    found without importing matplotlib (1-2 s here)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.origin:
        return ()
    return (str(Path(spec.origin).with_name("mpl-data") / "fonts" / "ttf" / "DejaVuSans.ttf"),)


DEFAULT_FONTS = (*_matplotlib_fonts(), *SYSTEM_FONTS)
_NO_GLYPH = "\U0010ffff"  # a noncharacter: every font draws its "missing glyph" box for it


class Typeface:
    """Text of one size over the chain of fonts (module docstring)."""

    def __init__(self, size: int):
        self.size = size
        opened = (_truetype(path, size) for path in font_files())
        self.fonts = [font for font in opened if font is not None] + [_builtin(size)]
        self.escaped = False  # visible() has escaped a character
        self._font_of: dict[str, ImageFont.FreeTypeFont | None] = {}

    def visible(self, text: str) -> str:
        """`text` with every character that no font has written as a \\u escape."""
        out = []
        for ch in text:
            if ch.isspace() or self._font(ch) is not None:
                out.append(ch)
            else:
                self.escaped = True
                out.append(ascii(ch)[1:-1])
        return "".join(out)

    def length(self, text: str) -> float:
        return sum(font.getlength(piece) for piece, font in self._runs(text))

    def bbox(self, text: str) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of `text` as `draw` puts it at (0, 0)."""
        ascent, descent = self.fonts[0].getmetrics()
        return 0, 0, round(self.length(text)), ascent + descent

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill) -> None:
        """Draw `text` with its top-left corner at xy; every font on the first one's baseline."""
        x, y = xy
        baseline = y + self.fonts[0].getmetrics()[0]
        for piece, font in self._runs(text):
            draw.text((x, baseline), piece, fill=fill, font=font, anchor="ls")
            x += font.getlength(piece)

    def _runs(self, text: str) -> list[tuple[str, ImageFont.FreeTypeFont]]:
        """`text` as (piece, font) runs; spaces and characters no font has go with the run before."""
        runs: list[tuple[str, ImageFont.FreeTypeFont]] = []
        for ch in text:
            font = None if ch.isspace() else self._font(ch)
            if runs and (font is None or font is runs[-1][1]):
                runs[-1] = (runs[-1][0] + ch, runs[-1][1])
            else:
                runs.append((ch, font or self.fonts[0]))
        return runs

    def _font(self, ch: str) -> ImageFont.FreeTypeFont | None:
        if ch not in self._font_of:
            self._font_of[ch] = next((font for font in self.fonts if _has_glyph(font, ch)), None)
        return self._font_of[ch]


def font_files() -> list[str]:
    """The font files of the chain, FOCUS_EVAL_FONT's first."""
    configured = [path for path in os.environ.get(FONT_ENV, "").split(os.pathsep) if path]
    return configured + [path for path in DEFAULT_FONTS if os.path.isfile(path)]


@lru_cache(maxsize=64)
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont | None:
    try:
        return ImageFont.truetype(path, size)
    except OSError as error:
        warnings.warn(f"cannot open font {path} ({FONT_ENV}): {error}; drawing without it", stacklevel=3)
        return None


@lru_cache(maxsize=64)
def _builtin(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _has_glyph(font: ImageFont.FreeTypeFont, ch: str) -> bool:
    return _mask(font, ch) != _mask(font, _NO_GLYPH)


@lru_cache(maxsize=1 << 16)
def _mask(font: ImageFont.FreeTypeFont, ch: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(ch)
    return mask.size, bytes(mask)
