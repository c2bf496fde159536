"""Figures of an HTML page: which ``<img>`` to keep, their bytes (read through the page's
source), their captions, and the marker and caption lines that stand for them in the markdown
(``<!-- figure KEY -->`` then ``*Figure: caption*``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag

from curation.images import image_size, is_icon
from curation.scraping.text import normalize_text
from curation.sources.pages import ImageUnavailable, LoadedImage
from manualqa.lib.captions import NUMBERED_CAPTION

if TYPE_CHECKING:
    from curation.scraping.markdown import _Renderer

_INLINE_SPACE_RE: Final = re.compile(r"\s+")


@dataclass(frozen=True)
class PageFigure:
    """A picture a cleaned page keeps: ``key`` (the SHA-256 of ``data`` in hex) names it in the
    page's markdown (``<!-- figure KEY -->``); ``caption`` is its figcaption or alt text."""

    key: str
    data: bytes
    caption: str
    url: str


#: Reads an image of the page (see ``curation.sources.ImageLoader``).
ImageReader = Callable[[str], LoadedImage]
#: A page keeps at most this many figures, and this many bytes of them (they stay in memory
#: until the page is stored); the rest are left out with a note.
MAX_FIGURES_PER_PAGE: Final = 60
MAX_FIGURE_BYTES_PER_PAGE: Final = 60_000_000
_FIGURE_LINE: Final = "<!-- figure {key} -->"


def figure_caption_line(caption: str) -> str:
    """The paragraph that follows a figure's marker: ``*Figure: {caption}*`` (or the caption
    alone in emphasis when it already reads "Figure 3. ..."), empty without a caption. The
    document page finds a figure's place in a passage by this line."""
    caption = caption.strip().replace("*", "\\*")
    if not caption:
        return ""
    return f"*{caption}*" if NUMBERED_CAPTION.match(caption) else f"*Figure: {caption}*"


@dataclass
class _Kept:
    """An ``<img>`` kept as a figure: its key and bytes, and the paragraph written after its
    marker (empty for all but the last image of a ``<figure>`` sharing one caption)."""

    figure: PageFigure
    paragraph: str


class _FigureCollector:
    """Reads a page's images before it is rendered, so the renderer knows which ``<img>`` are
    figures (a figure is a block of its own; an icon stays out of the text's way)."""

    def __init__(self, soup: BeautifulSoup, load_image: ImageReader | None, limit: int) -> None:
        self.load_image = load_image
        self.limit = limit
        self.kept: dict[int, _Kept] = {}
        self.emitted: dict[str, PageFigure] = {}
        self.notes: list[str] = []
        self._bytes = 0
        base = soup.find("base")
        href = base.get("href") if isinstance(base, Tag) else None
        self._base = str(href).strip() if href else ""

    def collect(self, root: Tag, renderer: _Renderer) -> None:
        by_key: dict[str, PageFigure] = {}
        for img in root.find_all("img"):
            src = self._src(img)
            if not src or str(img.get("role", "")).lower() in {"presentation", "none"}:
                continue
            if _declared_icon(img):
                continue
            label = _image_label(src)
            if _is_svg(src):
                self.notes.append(f"image {label} left out: an SVG drawing (figures are raster)")
                continue
            if len(by_key) >= self.limit:
                self.notes.append(f"image {label} left out: over {self.limit} figures on the page")
                continue
            try:
                loaded = self.load_image(src) if self.load_image is not None else None
            except ImageUnavailable as exc:
                self.notes.append(f"image {label} left out: {exc}")
                continue
            if loaded is None:
                continue
            size = image_size(loaded.data)
            if size is None:
                self.notes.append(
                    f"image {label} left out: not a PNG, JPEG, GIF, WebP or BMP image"
                )
                continue
            if is_icon(size):
                continue
            key = hashlib.sha256(loaded.data).hexdigest()
            caption = _caption(img, renderer)
            figure = by_key.get(key)
            if figure is None:
                if self._bytes + len(loaded.data) > MAX_FIGURE_BYTES_PER_PAGE:
                    self.notes.append(
                        f"image {label} left out: the page's images are over "
                        f"{MAX_FIGURE_BYTES_PER_PAGE} bytes"
                    )
                    continue
                self._bytes += len(loaded.data)
                figure = PageFigure(key, loaded.data, caption, loaded.url)
                by_key[key] = figure
            self.kept[id(img)] = _Kept(figure, figure_caption_line(caption))
        self._share_figcaptions(root)

    def _src(self, img: Tag) -> str:
        src = str(img.get("src") or img.get("data-src") or "").strip()
        if not src:
            srcset = str(img.get("srcset") or "").strip()
            src = srcset.split(",")[0].split()[0] if srcset else ""
        if src and self._base and src[:5].lower() != "data:":
            src = urljoin(self._base, src)
        return src

    def _share_figcaptions(self, root: Tag) -> None:
        """A ``<figure>`` whose pictures are kept: its caption is written once, after its last
        picture, and its ``<figcaption>`` is not rendered a second time as text."""
        for figure in root.find_all("figure"):
            images = [img for img in figure.find_all("img") if id(img) in self.kept]
            if not images:
                continue
            for img in images[:-1]:
                if _own_figcaption(img) is not None:
                    self.kept[id(img)].paragraph = ""
            for caption in figure.find_all("figcaption"):
                if caption.find_parent("figure") is figure:
                    caption.decompose()

    def is_figure(self, tag: Tag) -> bool:
        return tag.name == "img" and id(tag) in self.kept

    def holds_figure(self, tag: Tag) -> bool:
        return bool(self.kept) and any(id(img) in self.kept for img in tag.find_all("img"))

    def block(self, img: Tag) -> str:
        """The marker of a kept ``<img>``, and its caption paragraph."""
        kept = self.kept[id(img)]
        self.emitted.setdefault(kept.figure.key, kept.figure)
        marker = _FIGURE_LINE.format(key=kept.figure.key)
        return f"{marker}\n\n{kept.paragraph}" if kept.paragraph else marker


def _own_figcaption(img: Tag) -> Tag | None:
    figure = img.find_parent("figure")
    if figure is None:
        return None
    for caption in figure.find_all("figcaption"):
        if caption.find_parent("figure") is figure:
            return caption
    return None


def _caption(img: Tag, renderer: _Renderer) -> str:
    """A picture's caption: its figure's ``<figcaption>``, else its alt text, else its title."""
    figcaption = _own_figcaption(img)
    text = renderer.inline(figcaption) if figcaption is not None else ""
    for candidate in (text, str(img.get("alt") or ""), str(img.get("title") or "")):
        caption = normalize_text(_INLINE_SPACE_RE.sub(" ", candidate))
        if caption:
            return caption[:1000]
    return ""


def _declared_icon(img: Tag) -> bool:
    """Whether the page itself sizes the image as an icon (a width or height under 32)."""
    for name in ("width", "height"):
        value = str(img.get(name, "")).strip().removesuffix("px")
        if value.isdigit() and int(value) < 32:
            return True
    return False


def _is_svg(src: str) -> bool:
    if src[:5].lower() == "data:":
        return src[5:18].lower() == "image/svg+xml"
    return urlsplit(src).path.lower().endswith((".svg", ".svgz"))


def _image_label(src: str) -> str:
    """How a note names an image: its address as written (a data: URI by its type only)."""
    if src[:5].lower() == "data:":
        return f"{src.split(',', 1)[0][:60]},... ({len(src)} characters)"
    return src if len(src) <= 200 else src[:200] + "..."


def _is_figure_block(block: str) -> bool:
    return block.startswith("<!-- figure ")
