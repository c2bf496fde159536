"""Build real PDFs for tests: Chromium's print-to-PDF (through Playwright), merged, encrypted.

Plain functions, no database, so that any test (extraction, ingestion, citations) can make the
PDFs it needs. Chromium and Playwright are optional on a developer's machine: call
:func:`require_chromium` first, and the test is skipped with a clear reason when either is
missing.

Launching Chromium takes about a second, so a test module that prints several PDFs opens one
:class:`PdfPrinter` and passes it to :func:`html_to_pdf` (or calls ``printer.print``).
"""

from __future__ import annotations

import base64
import html as html_lib
import io
import random
import re
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SAMPLE_SITE = Path(__file__).resolve().parents[2] / "curation" / "sample_manual" / "site"

# The running header and footer that Chromium prints in each page's margin; extraction must
# drop both (they are the same on every page, bar the page number).
HEADER_TEXT = "Corvan Aster EV - Printed Owner's Guide"
FOOTER_TEXT = "Print edition PRN-2025-03"
_HEADER_TEMPLATE = (
    '<div style="font-size:9px;width:100%;text-align:center;font-family:sans-serif">'
    f"{HEADER_TEXT}</div>"
)
_FOOTER_TEMPLATE = (
    '<div style="font-size:9px;width:100%;font-family:sans-serif;padding:0 1.5cm;'
    f'display:flex;justify-content:space-between"><span>{FOOTER_TEXT}</span>'
    '<span>Page <span class="pageNumber"></span> of <span class="totalPages"></span></span></div>'
)
# A sober print style for pages that bring none: ruled tables and boxed callouts, as a
# printed owner's manual has them.
PRINT_CSS = """
body { font-family: "Liberation Serif", serif; font-size: 11pt; line-height: 1.35; margin: 0; }
h1 { font-family: "Liberation Sans", sans-serif; font-size: 22pt; }
h2 { font-family: "Liberation Sans", sans-serif; font-size: 16pt; }
h3 { font-family: "Liberation Sans", sans-serif; font-size: 13pt; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #889; padding: .3em .6em; vertical-align: top; text-align: left; }
.note, .caution, .warning { border-left: 4px solid #c0262d; padding: .5em 1em; margin: 1em 0; }
figure { margin: 1em 0; }
figcaption { font-size: 9pt; }
"""
# The sample site's chrome (site header, table of contents, breadcrumb, footer) is screen-only;
# a printed manual has none of it.
_SITE_PRINT_CSS = """
.site-header, nav.toc, .breadcrumb, .site-footer, .skip-link { display: none !important; }
main { margin: 0 !important; padding: 0 !important; max-width: none !important; }
body { font-size: 11pt; }
"""


def chromium_available() -> bool:
    """Whether Chromium and Playwright are both here to print PDFs."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM.exists()


def require_chromium() -> None:
    """Skip the calling test (or fixture) when no PDF can be printed here."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: cannot print test PDFs")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


class PdfPrinter:
    """One headless Chromium that prints HTML to PDF files; use it as a context manager."""

    def __init__(self) -> None:
        self._playwright = None
        self._browser = None
        self._page = None

    def __enter__(self) -> PdfPrinter:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        self._page = self._browser.new_page()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()

    def print(
        self, html: str, path: Path | str, *, outline: bool = True, header_footer: bool = False
    ) -> Path:
        """Print ``html`` to an A4 PDF at ``path``.

        ``outline`` makes Chromium write the PDF outline (bookmarks) from the headings;
        ``header_footer`` prints :data:`HEADER_TEXT` at the top of every page and
        ":data:`FOOTER_TEXT` ... Page N of M" at the bottom, as printed manuals have.
        """
        assert self._page is not None, "use PdfPrinter as a context manager"
        path = Path(path)
        self._page.set_content(html, wait_until="load")
        options: dict[str, object] = {
            "path": str(path),
            "format": "A4",
            "print_background": True,
            "outline": outline,
            "tagged": True,
            "margin": {"top": "2cm", "bottom": "2cm", "left": "1.8cm", "right": "1.8cm"},
        }
        if header_footer:
            options.update(
                display_header_footer=True,
                header_template=_HEADER_TEMPLATE,
                footer_template=_FOOTER_TEMPLATE,
            )
        self._page.pdf(**options)
        return path


def html_to_pdf(
    html: str,
    path: Path | str,
    *,
    outline: bool = True,
    header_footer: bool = False,
    printer: PdfPrinter | None = None,
) -> Path:
    """Print ``html`` to a PDF file with Chromium; see :meth:`PdfPrinter.print`.

    Without ``printer`` a Chromium is started (and stopped) for this one PDF.
    """
    if printer is not None:
        return printer.print(html, path, outline=outline, header_footer=header_footer)
    with PdfPrinter() as own_printer:
        return own_printer.print(html, path, outline=outline, header_footer=header_footer)


def combine_pdfs(
    sources: Sequence[Path | str],
    path: Path | str,
    *,
    titles: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Concatenate PDFs into one, keeping each one's outline.

    Without ``titles`` each source's own outline entries are kept as they are (a page printed
    with ``outline=True`` has its ``<h1>`` as a top-level entry, so each source becomes one
    top-level section). With ``titles`` each source gets a top-level entry of that title, with
    its own outline nested below it. ``title`` is written as the PDF's Title metadata.
    """
    from pypdf import PdfWriter

    if titles is not None and len(titles) != len(sources):
        raise ValueError("one title per source PDF")
    writer = PdfWriter()
    for index, source in enumerate(sources):
        writer.append(str(source), outline_item=titles[index] if titles else None)
    if title:
        writer.add_metadata({"/Title": title})
    path = Path(path)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def encrypt_pdf(
    source: Path | str,
    path: Path | str,
    *,
    user_password: str = "secret",  # noqa: S107 (a test PDF's password)
    owner_password: str | None = None,
) -> Path:
    """Write an AES-256 encrypted copy of ``source``; it opens only with ``user_password``."""
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=str(source))
    writer.encrypt(
        user_password=user_password,
        owner_password=owner_password or f"{user_password}-owner",
        algorithm="AES-256",
    )
    path = Path(path)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def damage_images(source: Path | str, path: Path | str, *, how: str) -> Path:
    """A copy of ``source`` whose larger images are broken, to test that text survives them.

    ``how="garbage"`` replaces each image's data with random bytes (a JPEG that no decoder
    reads); ``how="huge"`` makes each one claim 20000 x 20000 pixels.
    """
    from pypdf import PdfWriter
    from pypdf.generic import NameObject, NumberObject, StreamObject

    if how not in {"garbage", "huge"}:
        raise ValueError(f"unknown damage {how!r}")
    writer = PdfWriter(clone_from=str(source))
    rng = random.Random(17)
    for page in writer.pages:
        resources = page.get("/Resources")
        xobjects = resources.get_object().get("/XObject") if resources else None
        for reference in xobjects.get_object().values() if xobjects else []:
            image = reference.get_object()
            if image.get("/Subtype") != "/Image" or int(image.get("/Width", 0)) < 64:
                continue
            if how == "garbage":
                # The raw stream, as stored: pypdf re-encodes only Flate streams itself.
                StreamObject.set_data(image, rng.randbytes(4000))
                image[NameObject("/Filter")] = NameObject("/DCTDecode")
            else:
                image[NameObject("/Width")] = NumberObject(20000)
                image[NameObject("/Height")] = NumberObject(20000)
    path = Path(path)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def jpeg_bytes(width: int, height: int, *, seed: int = 0) -> bytes:
    """A JPEG version of :func:`png_bytes` (Chromium embeds JPEGs as they are)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(width, height, seed=seed))).save(buffer, format="JPEG")
    return buffer.getvalue()


def png_bytes(width: int, height: int, *, seed: int = 0) -> bytes:
    """A PNG of coloured stripes and noise (so it is not a flat image a printer may simplify)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (240, 240, 235))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 12):
        colour = (rng.randrange(40, 220), rng.randrange(40, 220), rng.randrange(40, 220))
        draw.rectangle([x, 0, x + 6, height], fill=colour)
    draw.ellipse([width // 4, height // 4, 3 * width // 4, 3 * height // 4], outline=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data:`` URL for an ``<img src>``, so printed pages need no file or server."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def print_page(title: str, body_html: str, *, css: str = "") -> str:
    """A whole HTML document around ``body_html`` with :data:`PRINT_CSS`."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html_lib.escape(title)}</title><style>{PRINT_CSS}{css}</style></head>"
        f"<body>{body_html}</body></html>"
    )


def sample_site_page_html(name: str) -> str:
    """A page of the bundled sample manual site (``manual/{name}.html``), ready to print.

    Its stylesheet is inlined and its images become ``data:`` URLs; the site chrome is hidden
    as a print stylesheet would, leaving the article as a printed manual shows it.
    """
    html = (SAMPLE_SITE / "manual" / f"{name}.html").read_text(encoding="utf-8")
    css = (SAMPLE_SITE / "static" / "css" / "manual.css").read_text(encoding="utf-8")
    html = re.sub(
        r'<link rel="stylesheet" href="/static/css/manual.css">',
        lambda _: f"<style>{css}{_SITE_PRINT_CSS}</style>",
        html,
    )

    def inline_image(match: re.Match[str]) -> str:
        image = SAMPLE_SITE / match.group(1).lstrip("/")
        mime = "image/svg+xml" if image.suffix == ".svg" else "image/png"
        return f'src="{data_uri(image.read_bytes(), mime)}"'

    html = re.sub(r'src="(/static/img/[^"]+)"', inline_image, html)
    # Scripts only track page views; they have nothing to print.
    return re.sub(r"<script\b.*?</script>", "", html, flags=re.S)


_LIST_LINE_RE = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,3}[.)])\s+\S")


def markdown_page_html(markdown_text: str, title: str = "") -> str:
    """Printable HTML for a markdown page (headings, lists, pipe tables).

    A list that follows its paragraph with no blank line between (as scraped pages often have
    it) is still printed as a list: Python-Markdown would otherwise run it into the paragraph.
    """
    import markdown

    lines: list[str] = []
    for line in markdown_text.splitlines():
        previous = lines[-1] if lines else ""
        if (
            _LIST_LINE_RE.match(line)
            and previous.strip()
            and not _LIST_LINE_RE.match(previous)
            and not previous.startswith((" ", "\t"))
        ):
            lines.append("")
        lines.append(line)
    body = markdown.markdown("\n".join(lines), extensions=["tables"])
    return print_page(title, body)
