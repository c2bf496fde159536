"""PDF manuals to markdown sections (``curation.scraping.pdf``), on PDFs that Chromium prints.

Every PDF here is made by a real renderer from HTML (the bundled sample manual site, and small
pages for columns, tables, callouts, figures and page breaks), so the extraction meets the same
fonts, drawn bullets, ruled tables, outlines and running headers a printed manual has. The PDFs
are printed once per module; no database is needed.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import random
import re
from pathlib import Path

import pdfplumber
import pytest
from PIL import Image

from curation.scraping import PageRejected, html_to_markdown, normalize_text
from curation.scraping.pdf import PdfManual, PdfRejected, pdf_to_sections
from tests.curation.pdf_support import (
    FOOTER_TEXT,
    HEADER_TEXT,
    PdfPrinter,
    combine_pdfs,
    damage_images,
    data_uri,
    encrypt_pdf,
    jpeg_bytes,
    png_bytes,
    print_page,
    require_chromium,
    sample_site_page_html,
)

SITE_PAGES = ("charging", "tires", "specifications")
SITE_TITLES = ["Charging", "Tires and Wheels", "Specifications"]
PAGE_MARKER = re.compile(r"^<!-- page (\d+) -->$", re.MULTILINE)
FIGURE_CAPTION = "Figure 3: The release cable behind the left trim panel."

# --------------------------------------------------------------------------------------------
# The test PDFs
# --------------------------------------------------------------------------------------------


def columns_html() -> str:
    paragraphs = "".join(
        f"<p>Paragraph {n} starts here. "
        + " ".join(f"Step {n}.{k} of the wiper service is done with care." for k in range(1, 8))
        + f" Paragraph {n} ends here.</p>"
        for n in range(1, 9)
    )
    return print_page(
        "Wiper service",
        "<h1>Wiper Service</h1><p>This introduction spans the whole width of the page, above "
        "the two columns, and is long enough to wrap onto a second line of text.</p>"
        f'<div style="columns: 2; column-gap: 1.4em; text-align: justify">{paragraphs}</div>'
        "<h2>After the columns</h2><p>Closing words that span the page again.</p>",
    )


TABLE_ROWS = [
    ("Tire size", "Front", "Rear"),
    ("235/45 R18", "2.9 bar (42 psi)", "2.9 bar (42 psi)"),
    ("235/40 R19", "3.0 bar (44 psi)", "3.0 bar (44 psi)"),
    ("Compact spare", "4.2 bar (60 psi)", "4.2 bar (60 psi)"),
]

CALLOUTS_BODY = """
<h1>Tire Care</h1>
<p>Check the pressures when the tires are cold, at least once a month.</p>
<table>
<thead><tr><th>Tire size</th><th>Front</th><th>Rear</th></tr></thead>
<tbody>
<tr><td>235/45 R18</td><td>2.9 bar (42 psi)</td><td>2.9 bar (42 psi)</td></tr>
<tr><td>235/40 R19</td><td>3.0 bar (44 psi)</td><td>3.0 bar (44 psi)</td></tr>
<tr><td>Compact spare</td><td>4.2 bar (60 psi)</td><td>4.2 bar (60 psi)</td></tr>
</tbody>
</table>
<div class="note"><strong>Note:</strong> Pressures rise by about 0.2 bar while you drive.</div>
<div class="warning"><strong>Warning:</strong> Never drive on a tire that has lost its pressure;
it can overheat and fail.</div>
<div class="caution"><p><strong>CAUTION</strong></p><p>Do not use a tire sealant on the compact
spare.</p></div>
<p>Replace the valve caps after checking.</p>
"""


def lamps_html() -> str:
    """A table long enough to run on to a second page, with a row that the break cuts in
    two (Chromium splits a row that does not fit) and its header repeated on the next page."""
    rows = "".join(
        f"<tr><td>LAMP {n} - SOLID<br><br>(action {n})</td><td>Lamp {n} begins. "
        + "The lamp shows the state of the port. " * 3
        + f"Lamp {n} ends.</td><td>Do {n} first. "
        + "Check the cable and the port for dirt. " * 2
        + f"Do {n} last.</td></tr>"
        for n in range(1, 14)
    )
    return print_page(
        "Lamps",
        "<h1>Lamps</h1>"
        + "<p>Intro text that fills some space on the page.</p>" * 3
        + "<table><thead><tr><th>Lamp</th><th>Meaning</th><th>What to do</th></tr></thead>"
        + f"<tbody>{rows}</tbody></table><p>After the table.</p>",
    )


def figure_html() -> str:
    picture = data_uri(png_bytes(400, 250, seed=3))
    plain = data_uri(jpeg_bytes(300, 200, seed=5), "image/jpeg")
    icon = data_uri(png_bytes(20, 20, seed=4))
    return print_page(
        "Release cable",
        "<h1>Release Cable</h1>"
        "<p>The release cable sits behind the trim panel on the left of the trunk.</p>"
        f'<figure><img src="{picture}" style="width: 300px"><figcaption>{FIGURE_CAPTION}'
        "</figcaption></figure>"
        f'<p>Pull the tag <img src="{icon}" style="width: 12px"> gently toward the front.</p>'
        f'<p>The trim panel from below:</p><img src="{plain}" style="width: 240px">'
        "<p>Refit the cover when you are done.</p>",
    )


LONG_START = "The tire repair kit begins its work"
LONG_END = "and the kit is stowed again under the floor"


def long_paragraph_html() -> str:
    sentences = " ".join(
        f"Sentence {n} of the tire repair procedure explains one more detail of the work."
        for n in range(1, 75)
    )
    return print_page(
        "Tire repair",
        f"<h1>Tire Repair</h1><p>{LONG_START}. {sentences} Finally the hose is coiled, "
        f"{LONG_END}.</p><p>The next paragraph stands on its own.</p>",
    )


def hyphens_html() -> str:
    words = " ".join(
        "The in&shy;stru&shy;men&shy;ta&shy;tion panel of the high-voltage system shows "
        "the con&shy;fig&shy;u&shy;ra&shy;tion."
        for _ in range(8)
    )
    return print_page(
        "Display",
        "<h1>Display</h1><p>The instrumentation and the configuration are described below.</p>"
        f'<p style="width: 11em">{words}</p>',
    )


def scanned_html() -> str:
    page = data_uri(png_bytes(800, 1100, seed=9))
    return print_page("Scan", f'<img src="{page}" style="width: 100%">')


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every PDF of this module, printed once."""
    require_chromium()
    folder = tmp_path_factory.mktemp("pdfs")
    made: dict[str, Path] = {}
    with PdfPrinter() as printer:
        site = [
            printer.print(sample_site_page_html(name), folder / f"{name}.pdf", header_footer=True)
            for name in SITE_PAGES
        ]
        made["site"] = combine_pdfs(site, folder / "site.pdf", title="Corvan Aster EV Manual")
        plain = [
            printer.print(sample_site_page_html(name), folder / f"{name}-plain.pdf", outline=False)
            for name in SITE_PAGES[:2]
        ]
        made["no_outline"] = combine_pdfs(plain, folder / "no-outline.pdf")
        made["titled"] = combine_pdfs(plain, folder / "titled.pdf", titles=SITE_TITLES[:2])
        made["nested"] = combine_pdfs(site[:2], folder / "nested.pdf", titles=SITE_TITLES[:2])
        made["columns"] = printer.print(columns_html(), folder / "columns.pdf")
        made["callouts"] = printer.print(
            print_page("Tire care", CALLOUTS_BODY), folder / "callouts.pdf"
        )
        made["figure"] = printer.print(figure_html(), folder / "figure.pdf")
        made["lamps"] = printer.print(lamps_html(), folder / "lamps.pdf", header_footer=True)
        made["long"] = printer.print(long_paragraph_html(), folder / "long.pdf", header_footer=True)
        made["hyphens"] = printer.print(hyphens_html(), folder / "hyphens.pdf")
        made["scanned"] = printer.print(scanned_html(), folder / "scanned.pdf")
    made["encrypted"] = encrypt_pdf(made["callouts"], folder / "encrypted.pdf")
    made["owner_only"] = encrypt_pdf(
        made["callouts"], folder / "owner-only.pdf", user_password="", owner_password="owner"
    )
    made["bad_image"] = damage_images(made["figure"], folder / "bad-image.pdf", how="garbage")
    made["huge_image"] = damage_images(made["figure"], folder / "huge-image.pdf", how="huge")
    return made


def read(path: Path, **kwargs: object) -> PdfManual:
    return pdf_to_sections(path.read_bytes(), file_name=path.name, **kwargs)


@pytest.fixture(scope="module")
def site(pdfs: dict[str, Path]) -> PdfManual:
    return read(pdfs["site"])


def section(manual: PdfManual, title: str) -> str:
    return next(s.markdown for s in manual.sections if s.title == title)


def paragraphs(markdown: str) -> list[str]:
    return [block.strip() for block in markdown.split("\n\n") if block.strip()]


def page_of(markdown: str, phrase: str) -> int:
    """The page marker in force where ``phrase`` appears in ``markdown``."""
    position = markdown.index(phrase)
    markers = [m for m in PAGE_MARKER.finditer(markdown) if m.start() < position]
    assert markers, f"no page marker before {phrase!r}"
    return int(markers[-1].group(1))


def printed_page_of(pdf: Path, phrase: str) -> int:
    """The page on which Chromium printed ``phrase`` (the first words of a block)."""
    with pdfplumber.open(pdf) as document:
        for number, page in enumerate(document.pages, start=1):
            if phrase in " ".join(normalize_text(page.extract_text() or "").split()):
                return number
    raise AssertionError(f"{phrase!r} is not printed in {pdf.name}")


# --------------------------------------------------------------------------------------------
# The sample manual, printed page by page and combined with an outline
# --------------------------------------------------------------------------------------------


def test_outline_gives_one_section_per_chapter(site, pdfs):
    assert [s.title for s in site.sections] == SITE_TITLES
    assert site.title == "Corvan Aster EV Manual"
    with pdfplumber.open(pdfs["site"]) as document:
        assert site.page_count == len(document.pages) >= 6
    assert site.sections[0].first_page == 1
    for before, after in zip(site.sections, site.sections[1:], strict=False):
        assert after.first_page == before.last_page + 1
    assert site.sections[-1].last_page == site.page_count
    for part in site.sections:
        assert part.markdown.startswith(f"# {part.title}\n\n<!-- page {part.first_page} -->\n\n")
        assert part.markdown.count("\n# ") == 0  # the title is the only top-level heading


def test_deeper_outline_entries_become_headings(site):
    charging = section(site, "Charging")
    for heading in (
        "## Opening the charge port",
        "### Manually releasing the charge port door and connector",
        "## Charge settings",
        "### Charge limit",
        "### Scheduled charging",
        "## Stopping charging and unplugging",
    ):
        assert heading in paragraphs(charging)
    assert "## Recommended tire pressures" in paragraphs(section(site, "Tires and Wheels"))


def test_tables_become_pipe_tables(site):
    charging = section(site, "Charging")
    assert (
        "| Light | Meaning |\n"
        "| --- | --- |\n"
        "| White | Charge port door open; ready for a connector. |\n"
        "| Blue | Connector detected; the vehicle is communicating with the charger. |\n"
        "| Green, pulsing | Charging. The pulses slow down as the battery approaches the charge "
        "limit. |"
    ) in charging
    assert (
        "| Red | Charging fault. Check the touchscreen for an alert (see Charging alerts). |"
        in (charging)
    )
    specifications = section(site, "Specifications")
    assert "| Dimension | Metric | Imperial |\n| --- | --- | --- |" in specifications
    assert "| Overall length | 4,695 mm | 184.8 in |" in specifications


def test_callouts_read_as_html_ingestion_writes_them(site):
    html = Path(__file__).resolve().parents[2] / "curation/sample_manual/site/manual"
    for name, title in zip(SITE_PAGES, SITE_TITLES, strict=True):
        from_html = html_to_markdown((html / f"{name}.html").read_text(encoding="utf-8"))
        callouts = [
            block
            for block in paragraphs(from_html.markdown)
            if block.startswith(("Note: ", "Warning: ", "Caution: "))
        ]
        assert callouts, name
        assert set(callouts) <= set(paragraphs(section(site, title))), name


def test_lists_keep_their_markers(site):
    charging = paragraphs(section(site, "Charging"))
    assert (
        "- Press and release the rear edge of the charge port door.\n"
        "- On the touchscreen, touch Controls > Charging > Open Charge Port.\n"
        "- Press the button on the handle of a Corvan Mobile Connector or Corvan Home Charger "
        "while you are close to the vehicle."
    ) in charging
    numbered = next(block for block in charging if block.startswith("1. Open the trunk."))
    assert [line[:3] for line in numbered.split("\n")] == ["1. ", "2. ", "3. ", "4. ", "5. "]


def test_text_reads_as_the_html_page_does(site):
    """Word for word, a printed chapter reads as the web page it was printed from (figures'
    drawn labels aside)."""
    html = Path(__file__).resolve().parents[2] / "curation/sample_manual/site/manual"
    for name, title in zip(SITE_PAGES, SITE_TITLES, strict=True):
        expected = re.findall(
            r"\w+", html_to_markdown((html / f"{name}.html").read_text()).markdown
        )
        got = re.findall(r"\w+", PAGE_MARKER.sub("", section(site, title)))
        ratio = difflib.SequenceMatcher(None, expected, got, autojunk=False).ratio()
        assert ratio > 0.97, (name, ratio)


def test_page_markers_name_the_page_each_block_starts_on(site, pdfs):
    charging = section(site, "Charging")
    for phrase in (
        "The Aster's charge port is on the left rear",
        "If the Aster has lost 12 V power",
        "Touch Controls > Charging to view and adjust",
        "The connector stays locked in the charge port",
    ):
        assert page_of(charging, phrase) == printed_page_of(pdfs["site"], phrase), phrase
    specifications = section(site, "Specifications")
    phrase = "Curb weight is the weight of the vehicle"
    assert page_of(specifications, phrase) == printed_page_of(pdfs["site"], phrase)
    for part in site.sections:
        numbers = [int(n) for n in PAGE_MARKER.findall(part.markdown)]
        assert numbers == sorted(set(numbers))
        assert numbers[0] == part.first_page and numbers[-1] <= part.last_page


def test_running_headers_footers_and_page_numbers_are_dropped(site):
    text = "\n".join(part.markdown for part in site.sections)
    assert HEADER_TEXT not in text
    assert FOOTER_TEXT not in text
    assert not re.search(r"Page \d+ of \d+", text)
    assert not re.search(r"^\d+$", text, re.MULTILINE)


def test_without_an_outline_chapters_come_from_heading_sizes(pdfs):
    manual = read(pdfs["no_outline"])
    assert [s.title for s in manual.sections] == SITE_TITLES[:2]
    charging = paragraphs(section(manual, "Charging"))
    assert "## Opening the charge port" in charging
    assert "### Charge limit" in charging
    assert "## Recommended tire pressures" in paragraphs(section(manual, "Tires and Wheels"))
    assert manual.title == "Charging"  # no Title in the merged PDF: its first heading


@pytest.mark.parametrize("pdf", ["titled", "nested"])
def test_an_outline_of_part_titles_gives_the_same_sections(pdfs, pdf):
    """Parts merged under a title each: with no outline of their own (headings come from
    their type), or with their own outline below the part's title (which repeats the page's
    first heading)."""
    manual = read(pdfs[pdf])
    assert [s.title for s in manual.sections] == SITE_TITLES[:2]
    charging = paragraphs(section(manual, "Charging"))
    assert charging[1] == "<!-- page 1 -->"
    assert "## Charging" not in charging
    assert "## Opening the charge port" in charging
    assert "### Manually releasing the charge port door and connector" in charging
    assert "## Recommended tire pressures" in paragraphs(section(manual, "Tires and Wheels"))


# --------------------------------------------------------------------------------------------
# Layout: columns, page breaks, split words, tables and callouts on their own
# --------------------------------------------------------------------------------------------


def test_two_columns_are_read_one_after_the_other(pdfs):
    with pdfplumber.open(pdfs["columns"]) as document:
        page = document.pages[0]
        starts = {w["x0"] < page.width / 2 for w in page.extract_words() if w["text"] == "starts"}
    assert starts == {True, False}, "the test page must have two columns"
    manual = read(pdfs["columns"])
    assert [s.title for s in manual.sections] == ["Wiper Service"]
    blocks = paragraphs(manual.sections[0].markdown)
    body = [block for block in blocks if block.startswith("Paragraph")]
    # Each paragraph whole, the one that runs from the first column into the second included.
    assert len(body) == 8
    for number, block in enumerate(body, start=1):
        assert block.startswith(f"Paragraph {number} starts here.")
        assert block.endswith(f"Paragraph {number} ends here.")
        assert f"Step {number}.4 of the wiper service is done with care." in block
    assert blocks.index("## After the columns") > blocks.index(body[-1])
    assert blocks[2].startswith("This introduction spans the whole width")


def test_a_paragraph_running_over_a_page_break_is_joined(pdfs):
    assert printed_page_of(pdfs["long"], LONG_START) == 1
    assert printed_page_of(pdfs["long"], "kit is stowed again") == 2
    manual = read(pdfs["long"])
    (part,) = manual.sections
    blocks = paragraphs(part.markdown)
    whole = [block for block in blocks if block.startswith(LONG_START)]
    assert len(whole) == 1
    assert whole[0].endswith(f"{LONG_END}.")
    assert "Sentence 74 of the tire repair procedure" in whole[0]
    # The paragraph counts for the page it starts on; page 2's marker comes before the first
    # block that starts there.
    assert blocks.index("<!-- page 2 -->") == blocks.index(whole[0]) + 1
    assert blocks[blocks.index("<!-- page 2 -->") + 1] == "The next paragraph stands on its own."
    assert (part.first_page, part.last_page) == (1, 2)
    assert HEADER_TEXT not in part.markdown and FOOTER_TEXT not in part.markdown


def test_words_split_at_a_line_end_are_put_back_together(pdfs):
    manual = read(pdfs["hyphens"])
    text = manual.sections[0].markdown
    assert text.count("instrumentation") == 9 and text.count("configuration") == 9
    assert text.count("high-voltage") == 8
    assert "highvoltage" not in text and "instru-" not in text


def test_a_table_and_its_callouts(pdfs):
    manual = read(pdfs["callouts"])
    (part,) = manual.sections
    assert part.title == "Tire Care"
    expected_table = "\n".join(
        ["| " + " | ".join(TABLE_ROWS[0]) + " |", "| --- | --- | --- |"]
        + ["| " + " | ".join(row) + " |" for row in TABLE_ROWS[1:]]
    )
    blocks = paragraphs(part.markdown)
    assert expected_table in blocks
    assert "Note: Pressures rise by about 0.2 bar while you drive." in blocks
    assert (
        "Warning: Never drive on a tire that has lost its pressure; it can overheat and fail."
        in blocks
    )
    # A label on a line of its own joins the text it labels.
    assert "Caution: Do not use a tire sealant on the compact spare." in blocks
    assert blocks[-1] == "Replace the valve caps after checking."


def test_a_table_running_over_a_page_break_stays_one_table(pdfs):
    with pdfplumber.open(pdfs["lamps"]) as document:
        texts = [page.extract_text() for page in document.pages]
    assert len(texts) == 2
    assert "Lamp 9 begins." in texts[0] and "Lamp 9 ends." in texts[1], "row 9 must be cut"
    manual = read(pdfs["lamps"])
    blocks = paragraphs(manual.sections[0].markdown)
    (table,) = [block for block in blocks if block.startswith("|")]
    rows = table.split("\n")
    assert rows[:2] == ["| Lamp | Meaning | What to do |", "| --- | --- | --- |"]
    assert len(rows) == 2 + 13  # the header repeated on page 2 is not a row
    for n, row in enumerate(rows[2:], start=1):
        cells = row.strip("|").split(" | ")
        assert cells[0].strip() == f"LAMP {n} - SOLID (action {n})"
        assert cells[1].strip().startswith(f"Lamp {n} begins.")
        assert cells[1].strip().endswith(f"Lamp {n} ends.")
        assert (
            cells[2].strip()
            == f"Do {n} first. " + "Check the cable and the port for dirt. " * 2 + f"Do {n} last."
        )
    assert blocks[-3:] == [table, "<!-- page 2 -->", "After the table."]
    assert [b for b in blocks if b.startswith("Intro")] == [
        "Intro text that fills some space on the page."
    ] * 3


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def test_figures_are_kept_in_place_with_their_captions(pdfs):
    manual = read(pdfs["figure"])
    (part,) = manual.sections
    assert manual.notes == []
    captioned, plain = part.figures  # the 20-pixel icon is left out, silently
    for figure in (captioned, plain):
        assert figure.key == hashlib.sha256(figure.data).hexdigest()
        assert figure.page == 1
        with Image.open(io.BytesIO(figure.data)) as image:
            image.load()
    with Image.open(io.BytesIO(captioned.data)) as image:
        assert (image.format, image.size) == ("PNG", (400, 250))
    with Image.open(io.BytesIO(plain.data)) as image:
        assert (image.format, image.size) == ("JPEG", (300, 200))
    assert captioned.caption == FIGURE_CAPTION
    assert plain.caption == ""
    blocks = paragraphs(part.markdown)
    at = blocks.index(f"<!-- figure {captioned.key} -->")
    assert blocks[at - 1].startswith("The release cable sits behind the trim panel")
    assert blocks[at + 1] == f"*{FIGURE_CAPTION}*"  # the caption, searchable with its chunk
    assert blocks[at + 2] == "Pull the tag gently toward the front."
    at = blocks.index(f"<!-- figure {plain.key} -->")
    assert blocks[at - 1] == "The trim panel from below:"
    assert blocks[at + 1] == "Refit the cover when you are done."
    assert FIGURE_CAPTION not in [b for b in blocks if not b.startswith("*")]


def test_an_image_that_cannot_be_read_is_skipped_with_a_note(pdfs):
    manual = read(pdfs["bad_image"])
    assert manual.notes == ["page 1: an image could not be read; skipped"] * 2
    (part,) = manual.sections
    assert part.figures == ()
    assert "<!-- figure" not in part.markdown
    assert "Refit the cover when you are done." in part.markdown
    assert FIGURE_CAPTION in part.markdown  # the caption stays as text


def test_a_huge_image_is_skipped_with_a_note(pdfs):
    manual = read(pdfs["huge_image"])
    assert manual.notes == ["page 1: an image of 20000x20000 px is too large; skipped"] * 2
    assert manual.sections[0].figures == ()
    assert "Pull the tag gently toward the front." in manual.sections[0].markdown


# --------------------------------------------------------------------------------------------
# Bad input: a clear message, and nothing read
# --------------------------------------------------------------------------------------------


def test_an_encrypted_pdf_is_rejected(pdfs):
    with pytest.raises(PdfRejected, match=r"^encrypted PDF"):
        read(pdfs["encrypted"])


def test_a_pdf_with_only_an_owner_password_is_read(pdfs):
    """Restrictions without a password to open (common on manuals) do not stop reading."""
    manual = read(pdfs["owner_only"])
    assert [s.title for s in manual.sections] == ["Tire Care"]


def test_a_scanned_pdf_is_rejected_as_having_no_text_layer(pdfs):
    with pytest.raises(PdfRejected) as caught:
        read(pdfs["scanned"])
    assert str(caught.value) == (
        "no text layer: a scanned PDF (1 page, no text); ingest nothing from it"
    )


def test_a_truncated_pdf_is_rejected(pdfs):
    data = pdfs["site"].read_bytes()
    with pytest.raises(PdfRejected, match=r"^not a PDF / truncated or corrupt: "):
        pdf_to_sections(data[: len(data) // 2], file_name="cut.pdf")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        random.Random(1).randbytes(20_000),
        b"%PDF-1.7\n" + random.Random(2).randbytes(20_000) + b"\n%%EOF\n",
        b"<!DOCTYPE html><html><body>Not a PDF at all</body></html>",
    ],
    ids=["empty", "random-bytes", "corrupt-body", "html"],
)
def test_bytes_that_are_no_pdf_are_rejected(data):
    with pytest.raises(PdfRejected, match=r"^not a PDF / truncated or corrupt: "):
        pdf_to_sections(data, file_name="manual.pdf")


def test_a_pdf_over_the_size_limit_is_rejected_before_reading(pdfs):
    data = pdfs["site"].read_bytes()
    with pytest.raises(PdfRejected) as caught:
        pdf_to_sections(data, file_name="site.pdf", max_bytes=100_000)
    message = str(caught.value)
    assert re.fullmatch(r"PDF is [\d.]+ MB, over the limit of 0\.1 MB", message), message
    assert isinstance(caught.value, PageRejected)
    assert pdf_to_sections(data, file_name="site.pdf", max_bytes=len(data)).sections


def test_the_same_pdf_reads_the_same_every_time(pdfs):
    first, second = read(pdfs["figure"]), read(pdfs["figure"])
    assert first == second
