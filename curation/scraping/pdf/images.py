"""The pictures of a PDF: exported with PDFium, captioned from the text around them."""

from __future__ import annotations

import hashlib
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, UnidentifiedImageError

from curation.images import is_icon
from curation.scraping.pdf._base import (
    _BULLET_MAX_SIDE,
    _ICON_MAX_POINTS,
    _RECURRING_PAGES,
    MAX_FIGURES_PER_PAGE,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    _Figure,
    _Page,
    _Segment,
)
from curation.scraping.pdf.layout import (
    _body_size_of,
    _join_lines,
)
from curation.scraping.text import normalize_text

# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


@dataclass
class _ImageReader:
    """Reads a PDF's images once each (a logo on every page is decoded once), within limits
    on how many a page and how many bytes the whole PDF may keep."""

    notes: list[str]
    bullets_by_page: dict[int, list[tuple]]
    exported: dict[bytes, bytes | None] = field(default_factory=dict)
    kept_bytes: int = 0

    def read(self, image: pdfium.PdfImage, page: _Page) -> _Figure | None:
        try:
            x0, top, x1, bottom = _image_box(image, page)
            width, height = image.get_px_size()
        except pdfium.PdfiumError:
            self.notes.append(f"page {page.number}: an image could not be read; skipped")
            return None
        shown_width, shown_height = x1 - x0, bottom - top
        if shown_width <= _BULLET_MAX_SIDE * 1.6 and shown_height <= _BULLET_MAX_SIDE * 1.6:
            self.bullets_by_page[page.number].append((x0, top, x1, bottom))
        if is_icon((width, height)) or max(shown_width, shown_height) < _ICON_MAX_POINTS:
            return None
        if width * height > MAX_IMAGE_PIXELS:
            self.notes.append(
                f"page {page.number}: an image of {width}x{height} px is too large; skipped"
            )
            return None
        if shown_width * shown_height > 0.85 * page.width * page.height and any(
            isinstance(item, _Segment) for item in page.items
        ):
            # The page's scan under its recognised text, or a background: not a figure.
            self.notes.append(f"page {page.number}: a full-page image under the text; skipped")
            return None
        masked = any(
            abs(x0 - left) < 2 and abs(top - upper) < 2 and abs(x1 - right) < 2
            for left, upper, right, _ in page.masked
        )
        data = self._export(image, masked=masked, size=(width, height))
        if data is None:
            self.notes.append(f"page {page.number}: an image could not be read; skipped")
            return None
        if self.kept_bytes + len(data) > MAX_IMAGE_BYTES:
            self.notes.append(
                f"page {page.number}: an image was skipped: the PDF's images are over "
                f"{MAX_IMAGE_BYTES} bytes"
            )
            return None
        self.kept_bytes += len(data)
        key = hashlib.sha256(data).hexdigest()
        return _Figure(page.number, x0, top, x1, bottom, key=key, data=data)

    def _export(
        self, image: pdfium.PdfImage, *, masked: bool, size: tuple[int, int]
    ) -> bytes | None:
        try:
            raw = bytes(image.get_data(decode_simple=False))
        except pdfium.PdfiumError:
            raw = b""
        identity = hashlib.sha256(raw + repr((size, masked)).encode()).digest() if raw else b""
        if identity and identity in self.exported:
            return self.exported[identity]
        try:
            data: bytes | None = _export_image(image, masked=masked)
        except Exception:  # any decoder failure: the text must go on without this image
            data = None
        if identity:
            self.exported[identity] = data
        return data


def _read_images(
    document: pdfium.PdfDocument,
    pages: list[_Page],
    notes: list[str],
    bullets_by_page: dict[int, list[tuple]],
) -> dict[int, list[_Figure]]:
    """Every picture big enough to be a figure, as a PNG or JPEG file, by page.

    An image repeated on many pages (a logo in the header) is decoration and left out, like
    the running header it belongs to.
    """
    reader = _ImageReader(notes, bullets_by_page)
    found: dict[int, list[_Figure]] = defaultdict(list)
    pages_of_key: dict[str, set[int]] = defaultdict(set)
    for page in pages:
        try:
            pdfium_page = document[page.number - 1]
        except pdfium.PdfiumError:
            continue
        try:
            for image in pdfium_page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
                if len(found[page.number]) >= MAX_FIGURES_PER_PAGE:
                    notes.append(
                        f"page {page.number}: over {MAX_FIGURES_PER_PAGE} images; the rest skipped"
                    )
                    break
                figure = reader.read(image, page)
                if figure is not None:
                    found[page.number].append(figure)
                    pages_of_key[figure.key].add(page.number)
        except pdfium.PdfiumError as exc:
            notes.append(f"page {page.number}: its images could not be listed ({exc})")
        finally:
            pdfium_page.close()
    needed = _RECURRING_PAGES if len(pages) > 4 else len(pages) + 1
    for number, figures in found.items():
        found[number] = [f for f in figures if len(pages_of_key[f.key]) < needed]
    return found


def _image_box(image: pdfium.PdfImage, page: _Page) -> tuple[float, float, float, float]:
    left, bottom, right, top = image.get_bounds()
    # Objects inside a form XObject are placed by the forms' matrices around them.
    container = image.container
    if container is not None:
        corners = [(left, bottom), (right, top), (left, top), (right, bottom)]
        while container is not None:
            matrix = container.get_matrix()
            corners = [matrix.on_point(x, y) for x, y in corners]
            container = container.container
        xs = [x for x, _ in corners]
        ys = [y for _, y in corners]
        left, right, bottom, top = min(xs), max(xs), min(ys), max(ys)
    return left, page.height - top, right, page.height - bottom


def _export_image(image: pdfium.PdfImage, *, masked: bool) -> bytes:
    """The image as a standalone file: the JPEG as stored when it is one, else a PNG of its
    pixels (rendered with its transparency when it has a mask)."""
    if image.get_filters() == ["DCTDecode"]:
        raw = bytes(image.get_data(decode_simple=False))
        with Image.open(io.BytesIO(raw)) as opened:
            if opened.mode in {"RGB", "L"}:
                opened.load()
                return raw
    picture = image.get_bitmap(render=masked).to_pil()
    if picture.mode not in {"RGB", "RGBA", "L", "LA"}:
        picture = picture.convert("RGBA" if "A" in picture.mode else "RGB")
    if picture.width * picture.height == 0:
        raise UnidentifiedImageError("an empty image")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=3)  # re-encoded for the web later
    return buffer.getvalue()


def _caption_figures(page: _Page, figures: list[_Figure]) -> None:
    """Give each figure the text that labels it: "Figure 3 ..." right below or above it, or a
    short line right below it in a smaller or italic type. That text leaves the text flow."""
    segments = [item for item in page.items if isinstance(item, _Segment)]
    if not segments or not figures:
        return
    body = _body_size_of(segments)
    taken: set[int] = set()
    for figure in figures:
        caption_lines = _caption_below(figure, segments, body, taken) or _caption_above(
            figure, segments, body, taken
        )
        if caption_lines:
            taken.update(id(line) for line in caption_lines)
            figure.caption = normalize_text(_join_lines([line.text for line in caption_lines]))
    if taken:
        page.items = [item for item in page.items if id(item) not in taken]


def _overlaps_x(segment: _Segment, figure: _Figure) -> bool:
    return segment.x0 < figure.x1 and segment.x1 > figure.x0


def _caption_below(
    figure: _Figure, segments: list[_Segment], body: float, taken: set[int]
) -> list[_Segment]:
    below = sorted(
        (
            s
            for s in segments
            if id(s) not in taken
            and _overlaps_x(s, figure)
            and -2 <= s.top - figure.bottom <= 1.6 * body
        ),
        key=lambda s: s.top,
    )
    if not below:
        return []
    first = below[0]
    numbered = re.match(r"(?i)(figure|fig\.|illustration|image)\s*\d", first.text)
    distinct = first.size < body - 0.4 or first.italic
    if not numbered and not (distinct and len(first.text.split()) <= 20):
        return []
    lines = [first]
    for segment in sorted(segments, key=lambda s: s.top):
        if segment.top <= lines[-1].top or id(segment) in taken:
            continue
        if (
            abs(segment.size - first.size) <= 0.3
            and segment.italic == first.italic
            and 0 <= segment.top - lines[-1].bottom <= 0.6 * first.size
            and _overlaps_x(segment, figure)
            and len(lines) < 4
        ):
            lines.append(segment)
    return lines


def _caption_above(
    figure: _Figure, segments: list[_Segment], body: float, taken: set[int]
) -> list[_Segment]:
    for segment in segments:
        if (
            id(segment) not in taken
            and _overlaps_x(segment, figure)
            and -2 <= figure.top - segment.bottom <= 1.6 * body
            and re.match(r"(?i)(figure|fig\.)\s*\d", segment.text)
        ):
            return [segment]
    return []
