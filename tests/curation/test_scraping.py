"""Tests for curation.scraping: HTML page -> clean markdown (plain Python, no database)."""

from __future__ import annotations

import re

import pytest

from curation.scraping import (
    CleanedPage,
    PageRejected,
    decode_html,
    drop_lost_references,
    html_to_markdown,
    normalize_text,
)

FILLER = "<p>The charge port is located on the left side of the vehicle.</p>"


def page(body: str, *, title: str = "Charging | Tesla") -> str:
    """A minimal full HTML document around `body`."""
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"


# --------------------------------------------------------------------------------------------
# decode_html
# --------------------------------------------------------------------------------------------


def test_decodes_with_charset_from_content_type_header() -> None:
    raw = "café déjà".encode("iso-8859-15")
    assert decode_html(raw, content_type_header='text/html; charset="ISO-8859-15"') == "café déjà"


def test_header_charset_wins_over_meta_charset() -> None:
    raw = b'<meta charset="utf-8"><p>caf\xe9</p>'
    assert "café" in decode_html(raw, content_type_header="text/html; charset=latin-1")


def test_latin1_label_decodes_as_windows_1252_like_browsers() -> None:
    # 0x93/0x94 are curly quotes in windows-1252 but C1 controls in strict latin-1.
    raw = b"\x93quoted\x94"
    assert decode_html(raw, content_type_header="text/html; charset=iso-8859-1") == "“quoted”"


def test_sniffs_meta_charset_in_first_2kb() -> None:
    raw = b'<html><head><meta charset="windows-1252"></head><p>caf\xe9</p>'
    assert "café" in decode_html(raw)


def test_sniffs_meta_http_equiv_content_type() -> None:
    raw = (
        b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-15">'
        b"<p>\xa4 price</p>"
    )
    assert "€ price" in decode_html(raw)


def test_ignores_meta_charset_beyond_first_2kb() -> None:
    raw = b"<!--" + b"x" * 2100 + b'--><meta charset="windows-1252"><p>caf\xc3\xa9</p>'
    assert "café" in decode_html(raw)  # utf-8 default, not windows-1252 ("cafÃ©")


def test_defaults_to_utf8_and_strips_utf8_bom() -> None:
    assert decode_html("\ufeff<p>Ünïcode</p>".encode()) == "<p>Ünïcode</p>"


def test_bom_decides_utf16_pages() -> None:
    assert decode_html("<p>hi</p>".encode("utf-16")) == "<p>hi</p>"


def test_rejects_invalid_bytes_naming_charset_and_offset() -> None:
    with pytest.raises(PageRejected, match=r"^undecodable: invalid utf-8 .*offset 5$"):
        decode_html(b"<p>ok\xff</p>")
    # The offset counts from the start of the raw bytes, BOM included.
    with pytest.raises(PageRejected, match=r"offset 8$"):
        decode_html(b"\xef\xbb\xbf<p>ok\xff</p>")


def test_rejects_unknown_charset_by_name() -> None:
    with pytest.raises(PageRejected, match=r"undecodable: unknown charset 'klingon'"):
        decode_html(b"<p>hi</p>", content_type_header="text/html; charset=klingon")


def test_rejects_non_text_codec_labels() -> None:
    with pytest.raises(PageRejected, match="undecodable"):
        decode_html(b"<p>hi</p>", content_type_header="text/html; charset=rot13")


def test_page_rejected_is_a_value_error() -> None:
    assert issubclass(PageRejected, ValueError)


# --------------------------------------------------------------------------------------------
# html_to_markdown: what is dropped
# --------------------------------------------------------------------------------------------


def test_drops_navigation_header_footer_and_scripts() -> None:
    html = page(
        "<header><a href='/'>Tesla home</a><nav><a>Models</a><a>Shop</a></nav></header>"
        "<div role='navigation'>Side menu</div>"
        "<h1>Charging</h1>" + FILLER + "<script>var tracking = 1;</script>"
        "<style>p { color: red }</style><noscript>Enable JavaScript</noscript>"
        "<footer>Copyright footer</footer>"
    )
    markdown = html_to_markdown(html).markdown
    for gone in ("Tesla home", "Models", "Side menu", "tracking", "color", "JavaScript", "footer"):
        assert gone not in markdown
    assert "charge port is located" in markdown


def test_drops_forms_iframes_svg_and_buttons() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<form><label>Search manual</label><input></form>"
        "<iframe src='x'>Embedded video</iframe><svg><text>Icon label</text></svg>"
        "<button>Print this page</button>"
    )
    markdown = html_to_markdown(html).markdown
    for gone in ("Search manual", "Embedded video", "Icon label", "Print this page"):
        assert gone not in markdown


def test_drops_images_with_alt_text_but_keeps_figcaption_as_paragraph() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<img src='a.png' alt='Photo of the charge port'>"
        "<figure><img src='b.png' alt='Another photo'>"
        "<figcaption>The charge port door <b>opens</b> outward.</figcaption></figure>"
    )
    markdown = html_to_markdown(html).markdown
    assert "Photo of" not in markdown and "Another photo" not in markdown
    assert "\n\nThe charge port door opens outward.\n" in markdown


def test_drops_breadcrumbs_and_hidden_elements() -> None:
    html = page(
        "<ol class='c-breadcrumb'><li>Home</li><li>Owners</li></ol>"
        "<h1>Charging</h1>" + FILLER + "<p hidden>Hidden attribute text</p>"
        "<span aria-hidden='true'>Decorative glyph</span>"
        "<div style='display: none'>Display none text</div>"
    )
    markdown = html_to_markdown(html).markdown
    for gone in ("Owners", "Hidden attribute", "Decorative glyph", "Display none"):
        assert gone not in markdown


def test_keeps_wrapper_whose_class_mentions_breadcrumbs() -> None:
    html = page("<div class='page has-breadcrumbs'><h1>Charging</h1>" + FILLER + "</div>")
    assert "charge port is located" in html_to_markdown(html).markdown


def test_drops_the_pages_own_date_and_revision_stamp() -> None:
    # The sample manual ends every page with this line; before, it was quoted with the last
    # sentence of a section ("... see Installing child seats. Updated 14 March 2025 - ...").
    html = page(
        "<article><h1>Charging</h1>" + FILLER + "<p class='page-meta'>Updated <time "
        "datetime='2025-03-14'>14 March 2025</time> - AST-OM-25-EN rev. C</p>"
        "<div id='last-updated'>Last modified 2 May 2024</div>"
        "<span class='entry-meta'>Posted by the service team</span></article>"
    )
    markdown = html_to_markdown(html).markdown
    for gone in ("14 March 2025", "Last modified", "Posted by"):
        assert gone not in markdown
    assert "charge port is located" in markdown


def test_keeps_content_in_an_element_marked_meta_that_is_more_than_a_stamp() -> None:
    facts = "The charge port is on the driver's side, behind the rear wheel. " * 4
    html = page(
        "<h1>Charging</h1>" + FILLER + "<div class='meta-box'><h2>Quick facts</h2>"
        f"<p>{facts}</p></div><p class='page-meta'>{facts}</p>"
    )
    markdown = html_to_markdown(html).markdown
    assert "## Quick facts" in markdown
    assert markdown.count("behind the rear wheel") == 8


def test_converts_only_main_when_page_has_one() -> None:
    html = page(
        "<div class='sidebar'>Related articles list</div>"
        "<main><h1>Charging</h1>" + FILLER + "</main><div>Cookie banner text</div>"
    )
    markdown = html_to_markdown(html).markdown
    assert "Related articles" not in markdown and "Cookie banner" not in markdown
    assert "charge port is located" in markdown


@pytest.mark.parametrize(
    "wrapper",
    ["<article>{}</article>", "<div role='main'>{}</div>"],
    ids=["article", "role-main"],
)
def test_converts_only_article_or_role_main(wrapper: str) -> None:
    html = page("<div>Sidebar junk words</div>" + wrapper.format("<h1>Charging</h1>" + FILLER))
    markdown = html_to_markdown(html).markdown
    assert "Sidebar junk" not in markdown
    assert "charge port is located" in markdown


def test_falls_back_to_body_minus_dropped_parts() -> None:
    html = page("<nav>Menu</nav><div><h1>Charging</h1>" + FILLER + "</div><p>Second part.</p>")
    markdown = html_to_markdown(html).markdown
    assert markdown == (
        "# Charging\n\nThe charge port is located on the left side of the vehicle.\n\n"
        "Second part.\n"
    )


def test_rejects_page_that_is_empty_after_cleaning() -> None:
    html = page("<nav>Lots of navigation words here in the menu</nav><main><h1>Hi</h1></main>")
    with pytest.raises(PageRejected, match="^empty after cleaning"):
        html_to_markdown(html, base_url="https://example.com/x")


# --------------------------------------------------------------------------------------------
# html_to_markdown: what is kept
# --------------------------------------------------------------------------------------------


def test_keeps_heading_levels_as_hashes() -> None:
    html = page(
        "<h1>Charging</h1>"
        + FILLER
        + "".join(f"<h{n}>Level {n}</h{n}><p>Body {n}.</p>" for n in range(2, 7))
    )
    markdown = html_to_markdown(html).markdown
    for n in range(2, 7):
        assert f"\n{'#' * n} Level {n}\n" in markdown


def test_extra_h1_headings_become_sections_so_title_line_is_unique() -> None:
    html = page("<h1>Charging</h1>" + FILLER + "<h1>Second Topic</h1><p>More text here.</p>")
    markdown = html_to_markdown(html).markdown
    assert "\n## Second Topic\n" in markdown
    assert len(re.findall(r"^# ", markdown, re.MULTILINE)) == 1


def test_keeps_paragraphs_and_unordered_lists_with_nested_indentation() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<ul><li>Open the door<ul><li>Press the button</li>"
        "<li>Or use the app<ul><li>Controls tab</li></ul></li></ul></li><li>Plug in</li></ul>"
    )
    markdown = html_to_markdown(html).markdown
    assert (
        "- Open the door\n  - Press the button\n  - Or use the app\n    - Controls tab\n- Plug in\n"
    ) in markdown


def test_keeps_ordered_lists_numbered_from_start_attribute() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<ol start='3'><li>Third<ol><li>Sub one</li></ol></li>"
        "<li><p>Fourth</p></li></ol>"
    )
    assert "3. Third\n   1. Sub one\n4. Fourth\n" in html_to_markdown(html).markdown


def test_table_with_thead_becomes_pipe_table_with_escaped_pipes_and_collapsed_newlines() -> None:
    html = page(
        "<h1>Lights</h1>" + FILLER + "<table><thead><tr><th>Light</th><th>Meaning</th></tr></thead>"
        "<tbody><tr><td>Blue | solid</td><td>Connected,<br>not\n charging</td></tr>"
        "<tr><td>Green</td><td><p>Charging</p><p>in progress</p></td></tr></tbody></table>"
    )
    assert (
        "| Light | Meaning |\n| --- | --- |\n| Blue \\| solid | Connected, not charging |\n"
        "| Green | Charging in progress |\n"
    ) in html_to_markdown(html).markdown


def test_table_without_thead_uses_first_row_as_header() -> None:
    html = page(
        "<h1>Lights</h1>" + FILLER + "<table><tr><td>Light</td><td>Meaning</td></tr>"
        "<tr><td>Red</td><td>Fault</td></tr><tr><td colspan='2'>Spans both</td></tr></table>"
    )
    assert (
        "| Light | Meaning |\n| --- | --- |\n| Red | Fault |\n| Spans both | Spans both |\n"
    ) in html_to_markdown(html).markdown


def test_links_become_their_text_without_urls() -> None:
    html = page(
        "<h1>Charging</h1>"
        + FILLER
        + "<p>See <a href='https://x.test/charge'>Charge Settings</a>.</p>"
    )
    markdown = html_to_markdown(html).markdown
    assert "See Charge Settings." in markdown
    assert "x.test" not in markdown and "](" not in markdown


def test_bold_and_italic_are_dropped_consistently() -> None:
    html = page("<h1>Charging</h1>" + FILLER + "<p>Do <b>not</b> <em>ever</em> <i>x</i>.</p>")
    markdown = html_to_markdown(html).markdown
    assert "Do not ever x." in markdown
    assert "*" not in markdown and "_" not in markdown


def test_br_becomes_a_newline_inside_the_paragraph() -> None:
    html = page("<h1>Charging</h1>" + FILLER + "<p>Line one<br>Line two<br/>  Line three</p>")
    assert "\n\nLine one\nLine two\nLine three\n" in html_to_markdown(html).markdown


def test_pre_becomes_fenced_code_keeping_indentation_and_inline_code_backticks() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<pre><code class='language-python'>def f():\n"
        "    return 1   \n</code></pre><p>Call <code>f()</code> once.</p>"
    )
    markdown = html_to_markdown(html).markdown
    assert "```python\ndef f():\n    return 1\n```" in markdown
    assert "Call `f()` once." in markdown


def test_page_text_that_looks_like_markdown_structure_is_escaped() -> None:
    html = page("<h1>Battery</h1>" + FILLER + "<p># of charge cycles<br>``` is not code</p>")
    assert "\n\n\\# of charge cycles\n\\``` is not code\n" in html_to_markdown(html).markdown


# --------------------------------------------------------------------------------------------
# html_to_markdown: callouts
# --------------------------------------------------------------------------------------------


def test_callout_class_becomes_one_labelled_paragraph() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<div class='tds-callout caution'><p>Do not force the "
        "charge port door open.</p><p>It can break the latch.</p></div>"
    )
    assert (
        "\n\nCaution: Do not force the charge port door open.\nIt can break the latch.\n"
        in html_to_markdown(html).markdown
    )


def test_callout_with_class_and_text_label_gets_exactly_one_label() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<div class='warning'><strong>Warning:</strong> "
        "Do X before driving.</div>"
    )
    markdown = html_to_markdown(html).markdown
    assert "\n\nWarning: Do X before driving.\n" in markdown
    assert "Warning: Warning" not in markdown


def test_callout_title_block_is_folded_into_the_label() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<div class='admonition note'>"
        "<p class='admonition-title'>Note</p><p>Keep the firmware updated.</p></div>"
    )
    assert "\n\nNote: Keep the firmware updated.\n" in html_to_markdown(html).markdown


def test_paragraph_with_label_prefix_gets_canonical_label() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<p>NOTE:<br>The light turns white.</p>"
        "<p><b>caution :</b> hot.</p>"
    )
    markdown = html_to_markdown(html).markdown
    assert "\n\nNote: The light turns white.\n" in markdown
    assert "\n\nCaution: hot.\n" in markdown


def test_label_only_paragraph_is_joined_with_the_paragraph_it_labels() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<p><b>Warning:</b></p><p>Never charge when wet.</p>"
    )
    assert "\n\nWarning: Never charge when wet.\n" in html_to_markdown(html).markdown


def test_words_containing_label_names_are_not_callouts() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<div class='tooltip footnote'>Plain footnote text.</div>"
        "<p>Note that the door closes itself.</p>"
    )
    markdown = html_to_markdown(html).markdown
    assert "\n\nPlain footnote text.\n" in markdown
    assert "\n\nNote that the door closes itself.\n" in markdown


# --------------------------------------------------------------------------------------------
# html_to_markdown: whitespace and title
# --------------------------------------------------------------------------------------------


def test_markdown_has_single_blank_lines_no_trailing_spaces_and_one_final_newline() -> None:
    html = page(
        "<h1>  Charging  </h1>\n\n\n<p>  First   paragraph  here.  </p>\n\n\n\n<div>\n\n</div>"
        "<p>Second&nbsp;&nbsp; paragraph.<br><br><br><br>After breaks.</p>\n<ul>\n<li> a </li></ul>"
    )
    markdown = html_to_markdown(html).markdown
    assert markdown.endswith("\n") and not markdown.endswith("\n\n")
    assert "\n\n\n" not in markdown
    assert not any(line != line.rstrip() for line in markdown.split("\n"))
    assert "  " not in markdown
    assert markdown == (
        "# Charging\n\nFirst paragraph here.\n\nSecond paragraph.\n\nAfter breaks.\n\n- a\n"
    )


def test_title_is_first_h1_and_appears_once() -> None:
    anchor = "<a class='anchor' aria-hidden='true' href='#top'>#</a>"
    html = page(f"<main><h1>Charging <em>Instructions</em>{anchor}</h1>" + FILLER + "</main>")
    cleaned = html_to_markdown(html)
    assert cleaned.title == "Charging Instructions"
    assert cleaned.markdown.startswith("# Charging Instructions\n\n")
    assert cleaned.markdown.count("Charging Instructions") == 1


def test_title_inside_article_header_is_used_though_header_is_dropped() -> None:
    html = page(
        "<header><h1>Tesla</h1></header><article><header><h1>Plugging In</h1>"
        "<p>Posted by admin</p></header>" + FILLER + "</article>"
    )
    cleaned = html_to_markdown(html)
    assert cleaned.title == "Plugging In"
    assert "Posted by" not in cleaned.markdown


def test_site_header_h1_is_not_taken_as_title() -> None:
    html = page("<header><h1>Tesla</h1></header><div>" + FILLER + "</div>", title="Charge Port")
    assert html_to_markdown(html).title == "Charge Port"


def test_title_falls_back_to_title_tag_then_empty() -> None:
    cleaned = html_to_markdown(page(FILLER, title="  Charging   Guide "))
    assert cleaned.title == "Charging Guide"
    assert cleaned.markdown.startswith("# Charging Guide\n\n")
    untitled = html_to_markdown(f"<body>{FILLER}</body>")
    assert untitled.title == ""
    assert not untitled.markdown.startswith("#")


def test_title_is_normalised() -> None:
    cleaned = html_to_markdown(page("<h1>Tesla’s Wall Connector™ — Setup</h1>" + FILLER))
    assert cleaned.title == "Tesla's Wall Connector - Setup"
    assert cleaned.markdown.startswith("# Tesla's Wall Connector - Setup\n\n")


def test_body_text_is_normalised_like_normalize_text() -> None:
    html = page("<h1>Climate</h1>" + FILLER + "<p>Below 20&nbsp;<b>°C</b> (68 °F) it’s cold…</p>")
    assert "Below 20 degrees C (68 degrees F) it's cold..." in html_to_markdown(html).markdown


def test_word_count_counts_words_of_the_markdown() -> None:
    cleaned = html_to_markdown(page("<h1>Charge Port</h1><p>Open it with the app now.</p>"))
    assert cleaned == CleanedPage(
        title="Charge Port",
        markdown="# Charge Port\n\nOpen it with the app now.\n",
        word_count=8,
    )


def test_output_is_deterministic() -> None:
    html = page(
        "<h1>Charging</h1>" + FILLER + "<div class='note'>Check it.</div>"
        "<table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>"
    )
    assert len({html_to_markdown(html) for _ in range(5)}) == 1


# --------------------------------------------------------------------------------------------
# normalize_text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("‘single’ “double” „low‟", '\'single\' "double" "low"'),
        ("pages 3–5", "pages 3-5"),
        ("brake—then steer", "brake - then steer"),
        ("brake — then steer", "brake - then steer"),
        ("wait…", "wait..."),
        ("Controls › Charging", "Controls > Charging"),
        ("a\u00a0b\u2009c\u202fd\u3000e", "a b c d e"),
        ("20 °C (68 °F)", "20 degrees C (68 degrees F)"),
        ("20°C and 41° F and 5℃", "20 degrees C and 41 degrees F and 5 degrees C"),
        ("turn 90° left", "turn 90 degrees left"),
        ("2×4, ±5, ≥3, ≤4", "2x4, +/-5, >=3, <=4"),
        ("Tesla™ Supercharger®", "Tesla Supercharger"),
        ("© 2024 Tesla", "(C) 2024 Tesla"),
        ("café naïve Ångström", "cafe naive Angstrom"),
        ("cafe\u0301", "cafe"),
        ("½ tank, 1½ hours", "1/2 tank, 1 1/2 hours"),
        ("10² m²", "10^2 m^2"),
        ("ﬁne Ｆull", "fine Full"),
        ("soft\u00adhyphen zero\u200bwidth", "softhyphen zerowidth"),
    ],
)
def test_normalize_text_maps_unicode_to_faithful_ascii(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_text_keeps_characters_without_ascii_equivalent() -> None:
    assert normalize_text("充电 Ladekabel 😀 μ") == "充电 Ladekabel 😀 μ"


def test_normalize_text_collapses_spaces_strips_line_ends_and_blank_line_runs() -> None:
    raw = "  one \t  two  \r\nthree\tfour   \n\n\n\nfive\t\n"
    assert normalize_text(raw) == "one two\nthree four\n\nfive"


def test_normalize_text_keeps_markdown_indentation() -> None:
    markdown = "- item\n  - nested  item\n\n    code  line"
    assert normalize_text(markdown) == "- item\n  - nested item\n\n    code line"


def test_normalize_text_leaves_plain_ascii_unchanged() -> None:
    text = "Press the brake pedal (see Driving) - 5 mph."
    assert normalize_text(text) == text


# --------------------------------------------------------------------------------------------
# merge_with_next: the one loop behind label, callout and list-marker merging
# --------------------------------------------------------------------------------------------


def test_merge_with_next_joins_pairs_and_never_joins_a_joined_item_again() -> None:
    from curation.scraping.merging import merge_with_next

    def join(item: str, following: str) -> str | None:
        return f"{item}+{following}" if item.endswith(":") else None

    # "b:" joins "c:"; the result is not offered to "d", which stays alone (and is kept).
    merged = merge_with_next(["a", "b:", "c:", "d", "e:"], join, keep=str.upper)
    assert merged == ["A", "b:+c:", "D", "E:"]
    assert merge_with_next([], join) == []


# --------------------------------------------------------------------------------------------
# Cross-references that lost their target
# --------------------------------------------------------------------------------------------


def test_drops_a_cross_reference_whose_link_text_was_lost() -> None:
    text = (
        "Park Assist: This chime occurs when you park near an object. See for more information.\n"
        "\n"
        "Chimes sound to draw your attention. See for more information on feature details and "
        "limitations. Keep your hands on the steering wheel.\n"
        "\n"
        "See for more information.\n"
        "\n"
        "- Forward Collision Warning (see ) warns you of a possible collision."
    )
    assert drop_lost_references(text) == (
        "Park Assist: This chime occurs when you park near an object.\n"
        "\n"
        "Chimes sound to draw your attention. Keep your hands on the steering wheel.\n"
        "\n"
        "- Forward Collision Warning warns you of a possible collision."
    )


@pytest.mark.parametrize(
    "text",
    [
        "See Jacking and Lifting for more information.",
        "See on-screen prompts for details.",
        "For details, see Charging (see Charge Port).",
        "Oversee for a while. Then go.",
        "| Code | See for details |",
    ],
)
def test_keeps_cross_references_that_name_their_target(text: str) -> None:
    assert drop_lost_references(text) == text


def test_clean_page_drops_lost_cross_references_from_markdown_and_html() -> None:
    from curation.services.documents import clean_page
    from curation.sources import RawPage

    markdown = RawPage(
        source_name="sounds.md",
        source_url="",
        content=b"# Sounds\n\nSpeed Limit Warning: A chime sounds. See for more information.\n",
        content_type="text/markdown",
        charset="utf-8",
        error=None,
    )
    html = RawPage(
        source_name="sounds.html",
        source_url="https://example.com/sounds.html",
        content=page(
            "<main><h1>Sounds</h1><p>Speed Limit Warning: A chime sounds when you exceed the"
            ' speed limit. See <a href="limits.html"></a> for more information.</p></main>'
        ).encode(),
        content_type="text/html",
        charset="utf-8",
        error=None,
    )
    assert "See for" not in clean_page(markdown).markdown
    assert clean_page(markdown).markdown.endswith("Speed Limit Warning: A chime sounds.\n")
    cleaned = clean_page(html).markdown
    assert "exceed the speed limit." in cleaned
    assert "See for" not in cleaned and "information" not in cleaned
