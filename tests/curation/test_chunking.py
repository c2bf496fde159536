"""Tests for curation.chunking: heading-aware chunking to a token budget (no database)."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from curation.chunking import Chunk, chunk_markdown, word_token_count

# The shared Model 3 corpus sits next to the project root (see tests/conftest.py: MODEL3_DIR).
MODEL3_DOCS = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "model3-manual" / "docs"
)

_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+|$)")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def chars_per_four(text: str) -> int:
    """A tokenizer-like counter that is not word based (exercises the character fallback)."""
    return math.ceil(len(text) / 4)


def sentence(words: int, start: int = 0) -> str:
    """A sentence of distinct words w{start}..., so every word can be traced to its chunk."""
    return " ".join(f"w{start + i}" for i in range(words)).capitalize() + "."


def body(chunk: Chunk) -> str:
    """A chunk's text without its heading-path prefix line."""
    prefix = f"{chunk.heading_path}\n\n"
    assert chunk.text.startswith(prefix)
    return chunk.text[len(prefix) :]


def non_heading_lines(markdown: str) -> list[str]:
    """The document's lines that are text, not headings (fenced code counts as text)."""
    lines, fence = [], None
    for line in markdown.split("\n"):
        match = _FENCE_RE.match(line)
        if fence is not None:
            if match and match.group(1).startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            lines.append(line)
        elif match:
            fence = match.group(1)
            lines.append(line)
        elif not _HEADING_RE.match(line):
            lines.append(line)
    return lines


def is_subsequence(needle: list[str], haystack: list[str]) -> bool:
    items = iter(haystack)
    return all(any(item == wanted for item in items) for wanted in needle)


def assert_invariants(
    markdown: str,
    title: str,
    chunks: list[Chunk],
    *,
    max_tokens: int,
    count_tokens: Callable[[str], int] = word_token_count,
) -> None:
    """What every chunking must satisfy, whatever the document."""
    text_lines = set(non_heading_lines(markdown))
    section_headings = {
        line
        for line in markdown.split("\n")
        if re.match(r"^ {0,3}#{1,2}(?:[ \t]|$)", line) and line not in text_lines
    }
    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.token_count == count_tokens(chunk.text)
        assert chunk.token_count <= max_tokens, chunk
        assert chunk.heading_path.startswith(title)
        prefix = f"{chunk.heading_path}\n\n"
        if count_tokens(prefix) <= max_tokens // 2:  # else the prefix is shortened by design
            assert chunk.text.startswith(prefix)
        # Never crosses a "#"/"##" boundary: none of the document's level 1-2 headings
        # is inside a chunk.
        assert not section_headings & set(chunk.text.split("\n")), chunk
    # No text is lost: the document's non-heading words, in order, are a subsequence of the
    # chunks' words (overlap, repeated table headers and sub-heading lines only add words).
    document_words = re.findall(r"\w+", "\n".join(non_heading_lines(markdown)))
    chunk_words = [word for chunk in chunks for word in re.findall(r"\w+", chunk.text)]
    assert is_subsequence(document_words, chunk_words)


# --------------------------------------------------------------------------------------------
# word_token_count
# --------------------------------------------------------------------------------------------


def test_word_token_count_counts_words_and_punctuation_times_1_3_rounded_up() -> None:
    assert word_token_count("") == 0
    assert word_token_count("Open the door.") == math.ceil(4 * 1.3)
    assert word_token_count("Press (and hold) for 2-3 seconds!") == math.ceil(11 * 1.3)


# --------------------------------------------------------------------------------------------
# Sections and heading paths
# --------------------------------------------------------------------------------------------


def test_splits_at_level_two_headings_even_when_the_whole_page_would_fit() -> None:
    markdown = (
        "# Charging\n\n## Opening the Port\n\nPress the button.\n\n## Plugging In\n\nPlug it in.\n"
    )
    chunks = chunk_markdown(markdown, title="Charging")
    assert [(c.heading_path, c.text) for c in chunks] == [
        ("Charging > Opening the Port", "Charging > Opening the Port\n\nPress the button."),
        ("Charging > Plugging In", "Charging > Plugging In\n\nPlug it in."),
    ]


def test_text_before_the_first_section_is_an_intro_chunk_under_the_title() -> None:
    markdown = "# Charging\n\nAbout charging.\n\n## Plugging In\n\nPlug it in.\n"
    chunks = chunk_markdown(markdown, title="Charging")
    assert chunks[0].heading_path == "Charging"
    assert chunks[0].text == "Charging\n\nAbout charging."


def test_title_line_is_not_repeated_in_any_chunk() -> None:
    markdown = "# Charging\n\nAbout charging.\n"
    assert [c.text for c in chunk_markdown(markdown, title="Charging")] == [
        "Charging\n\nAbout charging."
    ]


def test_another_level_one_heading_starts_its_own_section_under_the_title() -> None:
    markdown = "# Charging\n\nIntro text.\n\n# Appendix\n\nMore text.\n\n## Tables\n\nRows.\n"
    paths = [c.heading_path for c in chunk_markdown(markdown, title="Charging")]
    assert paths == ["Charging", "Charging > Appendix", "Charging > Appendix > Tables"]


def test_subsections_stay_in_their_section_chunk_when_the_section_fits() -> None:
    markdown = (
        "# Seats\n\n## Heating\n\nTouch the icon.\n\n### Rear Seats\n\nUse the rear screen.\n"
    )
    chunks = chunk_markdown(markdown, title="Seats")
    assert [(c.heading_path, c.text) for c in chunks] == [
        (
            "Seats > Heating",
            "Seats > Heating\n\nTouch the icon.\n\n### Rear Seats\n\nUse the rear screen.",
        )
    ]


def test_subsections_of_a_long_section_get_their_own_chunks_and_extended_paths() -> None:
    markdown = (
        f"# Seats\n\n## Heating\n\n{sentence(40)}\n\n### Rear Seats\n\n{sentence(30, 100)}\n\n"
        f"#### Third Row\n\n{sentence(5, 200)}\n\n### Steering Wheel\n\n{sentence(30, 300)}\n"
    )
    chunks = chunk_markdown(markdown, title="Seats", max_tokens=80, overlap_tokens=0)
    assert [c.heading_path for c in chunks] == [
        "Seats > Heating",
        "Seats > Heating > Rear Seats",
        "Seats > Heating > Steering Wheel",
    ]
    # "Rear Seats" fits with its own subsection, which stays inside it.
    assert body(chunks[1]) == f"{sentence(30, 100)}\n\n#### Third Row\n\n{sentence(5, 200)}"


def test_headings_inside_fenced_code_are_not_headings() -> None:
    markdown = (
        "# Scripts\n\n## Example\n\n```bash\n# not a heading\n## nor this\n```\n\n"
        "~~~\n## still code\n~~~\n\nAfter the code.\n"
    )
    chunks = chunk_markdown(markdown, title="Scripts")
    assert len(chunks) == 1
    assert body(chunks[0]) == (
        "```bash\n# not a heading\n## nor this\n```\n\n~~~\n## still code\n~~~\n\nAfter the code."
    )


def test_closing_hashes_and_extra_spaces_are_not_part_of_the_heading_path() -> None:
    markdown = "# Lights #\n\n##   Headlights   ##\n\nTurn them on.\n"
    assert chunk_markdown(markdown, title="Lights")[0].heading_path == "Lights > Headlights"


def test_tiny_sections_are_still_their_own_chunks() -> None:
    markdown = "# Mobile App\n\n## Location\n\nLocate it.\n\n## Horn\n\nHonk.\n"
    chunks = chunk_markdown(markdown, title="Mobile App")
    assert [body(c) for c in chunks] == ["Locate it.", "Honk."]


def test_sections_without_text_are_dropped_but_name_their_subsections() -> None:
    markdown = (
        f"# Alerts\n\n## Battery\n\n### BAT-048\n\n{sentence(20)}\n\n### BAT-102\n\n"
        f"{sentence(20, 100)}\n\n## Empty\n\n## Also Empty\n\n### Empty Too\n"
    )
    chunks = chunk_markdown(markdown, title="Alerts", max_tokens=40, overlap_tokens=0)
    assert [(c.heading_path, body(c)) for c in chunks] == [
        ("Alerts > Battery > BAT-048", sentence(20)),
        ("Alerts > Battery > BAT-102", sentence(20, 100)),
    ]


def test_whole_section_that_fits_is_one_chunk_and_keeps_everything_but_its_heading() -> None:
    section = "Intro line.\n\n- item one\n- item two\n\n| A | B |\n| --- | --- |\n| 1 | 2 |"
    markdown = f"# Doc\n\n## Part\n\n{section}\n"
    assert [c.text for c in chunk_markdown(markdown, title="Doc")] == [f"Doc > Part\n\n{section}"]


# --------------------------------------------------------------------------------------------
# Splitting long sections
# --------------------------------------------------------------------------------------------


def test_long_section_splits_on_paragraph_boundaries_with_prefix_on_every_piece() -> None:
    paragraphs = [sentence(20, 100 * i) for i in range(6)]
    markdown = "# Doc\n\n## Part\n\n" + "\n\n".join(paragraphs) + "\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=80, overlap_tokens=0)
    assert len(chunks) == 3
    assert [body(c) for c in chunks] == [
        "\n\n".join(paragraphs[0:2]),
        "\n\n".join(paragraphs[2:4]),
        "\n\n".join(paragraphs[4:6]),
    ]
    assert all(c.text.startswith("Doc > Part\n\n") for c in chunks)


def test_a_list_is_kept_together_with_its_lead_in_when_it_fits() -> None:
    items = "\n".join(f"- {sentence(5, 10 * i)}" for i in range(5))
    block = f"Use any of these methods:\n{items}"
    markdown = f"# Doc\n\n## Part\n\n{sentence(40)}\n\n{block}\n\n{sentence(40, 500)}\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=80, overlap_tokens=0)
    assert any(body(c) == block for c in chunks)


def test_long_list_splits_between_items() -> None:
    items = [f"- {sentence(12, 20 * i)}" for i in range(12)]
    markdown = "# Doc\n\n## Part\n\n" + "\n".join(items) + "\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=60, overlap_tokens=0)
    assert len(chunks) > 1
    for chunk in chunks:
        assert all(line in items for line in body(chunk).split("\n"))
    assert_invariants(markdown, "Doc", chunks, max_tokens=60)


def test_long_paragraph_splits_on_sentence_boundaries() -> None:
    sentences = [sentence(15, 20 * i) for i in range(10)]
    markdown = "# Doc\n\n## Part\n\n" + " ".join(sentences) + "\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=60, overlap_tokens=0)
    assert len(chunks) > 1
    for chunk in chunks:
        assert body(chunk).endswith(".")
        assert re.split(r"(?<=\.) ", body(chunk)) == [s for s in sentences if s in body(chunk)]


def test_sentence_longer_than_budget_splits_on_word_boundaries() -> None:
    words = [f"w{i}" for i in range(300)]
    markdown = "# Doc\n\n## Part\n\n" + " ".join(words) + "\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=50, overlap_tokens=0)
    assert len(chunks) > 1
    assert [w for c in chunks for w in body(c).split(" ")] == words
    assert all(c.token_count <= 50 for c in chunks)


def test_run_of_symbols_longer_than_budget_splits_on_characters() -> None:
    markdown = "# Doc\n\n## Part\n\n" + "=" * 500 + "\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=40, overlap_tokens=0)
    assert "".join(body(c) for c in chunks) == "=" * 500
    assert all(c.token_count <= 40 for c in chunks)


def test_big_table_splits_by_rows_repeating_the_header() -> None:
    header = "| Alert | Meaning |\n| --- | --- |"
    rows = [f"| CODE-{i:03d} | {sentence(6, 10 * i)} |" for i in range(30)]
    markdown = f"# Alerts\n\n## Codes\n\n{header}\n" + "\n".join(rows) + "\n"
    chunks = chunk_markdown(markdown, title="Alerts", max_tokens=100, overlap_tokens=16)
    assert len(chunks) > 1
    seen: list[str] = []
    for chunk in chunks:
        lines = body(chunk).split("\n")
        assert "\n".join(lines[:2]) == header
        seen.extend(lines[2:])
    assert seen == rows  # every row exactly once: tables are not repeated as overlap


def test_table_row_longer_than_budget_still_loses_no_text() -> None:
    markdown = (
        "# Doc\n\n## Part\n\n|Feature|Available When|\n|---|---|\n"
        f"|Autosteer|{sentence(120)} {sentence(80, 200)}|\n|Short|Row.|\n"
    )
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=64, overlap_tokens=8)
    assert_invariants(markdown, "Doc", chunks, max_tokens=64)


def test_long_code_block_splits_by_lines_each_piece_fenced() -> None:
    code = [f"step_{i} = run({i})" for i in range(60)]
    markdown = "# Doc\n\n## Part\n\n```python\n" + "\n".join(code) + "\n```\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=80, overlap_tokens=16)
    assert len(chunks) > 1
    seen: list[str] = []
    for chunk in chunks:
        lines = body(chunk).split("\n")
        assert lines[0] == "```python" and lines[-1] == "```"
        seen.extend(lines[1:-1])
    assert seen == code


# --------------------------------------------------------------------------------------------
# Overlap
# --------------------------------------------------------------------------------------------


def test_next_piece_starts_with_the_previous_piece_last_paragraph_when_it_fits_the_overlap() -> (
    None
):
    paragraphs = [sentence(30, 100 * i) for i in range(3)] + [sentence(8, 900)]
    paragraphs += [sentence(30, 1000 + 100 * i) for i in range(3)]
    markdown = "# Doc\n\n## Part\n\n" + "\n\n".join(paragraphs) + "\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=150, overlap_tokens=20)
    # Piece 1 holds paragraphs 0-3 (the short one last); piece 2 repeats that short paragraph.
    assert body(chunks[0]).endswith(paragraphs[3])
    assert body(chunks[1]).startswith(paragraphs[3] + "\n\n" + paragraphs[4])


def test_overlap_never_exceeds_overlap_tokens() -> None:
    paragraphs = [sentence(12, 100 * i) for i in range(20)]
    markdown = "# Doc\n\n## Part\n\n" + "\n\n".join(paragraphs) + "\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=90, overlap_tokens=40)
    for previous, current in zip(chunks, chunks[1:], strict=False):
        previous_paragraphs = body(previous).split("\n\n")
        repeated = [p for p in body(current).split("\n\n") if p in previous_paragraphs]
        assert repeated, "expected some overlap"
        assert word_token_count("\n\n".join(repeated)) <= 40


def test_overlap_uses_last_sentences_when_the_last_paragraph_is_longer_than_the_overlap() -> None:
    first = sentence(40)
    last = " ".join([sentence(20, 100), sentence(20, 200), sentence(6, 300)])
    following = sentence(40, 400)
    markdown = f"# Doc\n\n## Part\n\n{first}\n\n{last}\n\n{following}\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=130, overlap_tokens=12)
    assert body(chunks[0]) == f"{first}\n\n{last}"
    assert body(chunks[1]) == f"{sentence(6, 300)}\n\n{following}"


@pytest.mark.parametrize("marker", ["4. ", "- "])
def test_overlap_never_cuts_sentences_out_of_a_step_or_bullet(marker: str) -> None:
    # A sentence taken from the end of a list item opens the next chunk as if it were prose of
    # its own: "Follow the prompts ... to set up your phone key." without the step it ends.
    first = sentence(40)
    item = marker + " ".join([sentence(20, 100), sentence(20, 200), sentence(6, 300)])
    following = sentence(40, 400)
    markdown = f"# Doc\n\n## Part\n\n{first}\n\n{item}\n\n{following}\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=130, overlap_tokens=12)
    assert body(chunks[0]) == f"{first}\n\n{item}"
    assert body(chunks[1]) == following


def test_overlap_zero_disables_overlap() -> None:
    paragraphs = [sentence(10, 100 * i) for i in range(12)]
    markdown = "# Doc\n\n## Part\n\n" + "\n\n".join(paragraphs) + "\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=60, overlap_tokens=0)
    assert [p for c in chunks for p in body(c).split("\n\n")] == paragraphs


# --------------------------------------------------------------------------------------------
# Contract: budgets, determinism, no loss
# --------------------------------------------------------------------------------------------


def test_no_non_heading_word_is_lost() -> None:
    markdown = (
        "Preamble before the title.\n\n# Doc\n\nIntro.\n\n## A\n\n"
        + " ".join(sentence(9, 10 * i) for i in range(40))
        + "\n\n### A1\n\n- x1\n  - x2\n\n## B\n\n| h1 | h2 |\n| --- | --- |\n| c1 | c2 |\n"
    )
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=50, overlap_tokens=10)
    assert_invariants(markdown, "Doc", chunks, max_tokens=50)
    chunk_words = {w for c in chunks for w in re.findall(r"\w+", c.text)}
    assert set(re.findall(r"\w+", "\n".join(non_heading_lines(markdown)))) <= chunk_words


def test_chunking_is_deterministic_with_consecutive_positions() -> None:
    markdown = "# Doc\n\n" + "\n\n".join(f"## S{i}\n\n{sentence(50, 100 * i)}" for i in range(5))
    runs = [chunk_markdown(markdown, title="Doc", max_tokens=40) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert [c.position for c in runs[0]] == list(range(len(runs[0])))


def test_token_count_uses_the_given_counter() -> None:
    markdown = "# Doc\n\n## Part\n\n" + " ".join(sentence(10, 20 * i) for i in range(30)) + "\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=64, count_tokens=chars_per_four)
    assert len(chunks) > 1
    assert all(c.token_count == chars_per_four(c.text) <= 64 for c in chunks)


def test_very_long_heading_path_is_shortened_in_the_text_to_keep_the_budget() -> None:
    heading = " ".join(f"h{i}" for i in range(60))
    markdown = f"# Doc\n\n## {heading}\n\n{sentence(30)}\n"
    chunks = chunk_markdown(markdown, title="Doc", max_tokens=40, overlap_tokens=0)
    assert all(c.token_count <= 40 for c in chunks)
    assert all(c.heading_path == f"Doc > {heading}" for c in chunks)
    assert_invariants(markdown, "Doc", chunks, max_tokens=40)


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens"),
    [(0, 0), (10, -1), (10, 10), (10, 11)],
)
def test_rejects_impossible_budgets(max_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError, match="tokens"):
        chunk_markdown(
            "# T\n\nText.", title="T", max_tokens=max_tokens, overlap_tokens=overlap_tokens
        )


def test_rejects_a_token_counter_that_pads() -> None:
    def padded(text: str) -> int:  # like a tokenizer.json with "padding": {"Fixed": 128}
        return max(128, word_token_count(text))

    with pytest.raises(ValueError, match="padding"):
        chunk_markdown("# T\n\nText.", title="T", max_tokens=240, count_tokens=padded)


def test_rejects_a_token_counter_that_truncates() -> None:
    def truncated(text: str) -> int:  # like a tokenizer.json with "truncation": 128
        return min(128, word_token_count(text))

    with pytest.raises(ValueError, match="truncating"):
        chunk_markdown("# T\n\nText.", title="T", max_tokens=240, count_tokens=truncated)


def test_empty_document_gives_no_chunks() -> None:
    assert chunk_markdown("# Title\n\n## Empty\n", title="Title") == []


def random_markdown(rng: random.Random) -> tuple[str, str]:
    """A random page mixing every construct the chunker handles; words are unique."""
    counter = iter(range(10**9))

    def words(n: int) -> str:
        return " ".join(f"{rng.choice('abcdefgh')}{next(counter)}" for _ in range(n))

    def paragraph() -> str:
        kind = rng.random()
        if kind < 0.1:  # one very long sentence
            return words(rng.randint(100, 400))
        if kind < 0.15:  # a run of symbols
            return rng.choice("=+*") * rng.randint(50, 400)
        return " ".join(
            words(rng.randint(1, 40)) + rng.choice([".", "!", "?", ".)", ";"])
            for _ in range(rng.randint(1, 10))
        )

    def block() -> str:
        kind = rng.random()
        if kind < 0.5:
            return paragraph()
        if kind < 0.7:
            return "\n".join(
                " " * rng.choice([0, 0, 2, 4]) + rng.choice(["- ", "1. "]) + paragraph()
                for _ in range(rng.randint(1, 12))
            )
        if kind < 0.85:
            columns = rng.randint(1, 4)
            rows = [
                "| " + " | ".join(words(rng.randint(1, 30)) for _ in range(columns)) + " |"
                for _ in range(rng.randint(1, 30))
            ]
            separator = "| " + " | ".join(["---"] * columns) + " |"
            return "\n".join([rows[0], separator, *rows[1:]])
        code = [
            rng.choice(["# comment ", "## not heading ", "x = ", ""]) + words(rng.randint(0, 8))
            for _ in range(rng.randint(1, 40))
        ]
        return "```\n" + "\n".join(code) + "\n```"

    title = "Title " + words(rng.randint(1, 4))
    parts = [f"# {title}"]
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.6:
            parts.append("#" * rng.randint(1, 5) + " " + words(rng.randint(1, 6)))
        parts.extend(block() for _ in range(rng.randint(0, 4)))
    return "\n\n".join(parts) + "\n", title


@pytest.mark.parametrize("seed", range(150))
def test_random_documents_never_exceed_budget_or_lose_text(seed: int) -> None:
    rng = random.Random(seed)
    markdown, title = random_markdown(rng)
    max_tokens = rng.choice([24, 48, 64, 128, 256, 512])
    overlap_tokens = rng.choice([0, max_tokens // 8, max_tokens // 3])
    count_tokens = word_token_count if seed % 3 else chars_per_four
    kwargs = {"max_tokens": max_tokens, "overlap_tokens": overlap_tokens}
    chunks = chunk_markdown(markdown, title=title, count_tokens=count_tokens, **kwargs)
    assert_invariants(markdown, title, chunks, max_tokens=max_tokens, count_tokens=count_tokens)
    assert chunk_markdown(markdown, title=title, count_tokens=count_tokens, **kwargs) == chunks


# --------------------------------------------------------------------------------------------
# Real pages
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not MODEL3_DOCS.is_dir(),
    reason=f"Model 3 manual corpus not found at {MODEL3_DOCS} (it lives in ../shared/data)",
)
def test_chunks_all_model3_manual_pages_within_budget_without_losing_text() -> None:
    pages = sorted(MODEL3_DOCS.glob("*.md"))
    assert len(pages) == 128
    total = 0
    for page in pages:
        markdown = page.read_text(encoding="utf-8")
        title = next(line[2:].strip() for line in markdown.split("\n") if line.startswith("# "))
        chunks = chunk_markdown(markdown, title=title, max_tokens=256, overlap_tokens=32)
        assert chunks, page.name
        assert_invariants(markdown, title, chunks, max_tokens=256)
        total += len(chunks)
    # 1,310 at the time of writing; a big change means the splitting rules changed.
    assert 1000 < total < 1700


# ---------------------------------------------------------------------------------------------
# Page and figure markers (PDF sections, pictures)


def test_page_and_figure_markers_become_the_chunks_pages_and_figures_not_their_text():
    markdown = (
        "# Charging\n\n<!-- page 3 -->\n\n"
        + "Plug the connector in firmly. " * 12
        + "\n\n## Lights\n\nSolid blue means a scheduled charge.\n\n<!-- page 4 -->\n\n"
        "<!-- figure 0123456789abcdef -->\n\n*Figure: the charge port light.*\n\n"
        "Blinking green means charging.\n\n## Cable\n\nPull the release cable.\n"
    )

    chunks = chunk_markdown(markdown, title="Charging", max_tokens=60, overlap_tokens=0)

    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all("<!--" not in c.text for c in chunks)
    lights = next(c for c in chunks if c.heading_path == "Charging > Lights")
    cable = next(c for c in chunks if c.heading_path == "Charging > Cable")
    # Lights starts on page 3 and runs onto page 4, where its figure is; Cable is on page 4.
    assert lights.pages == (3, 4) and lights.figures == ("0123456789abcdef",)
    assert "*Figure: the charge port light.*" in lights.text  # the caption is searchable
    assert cable.pages == (4,) and cable.figures == ()
    assert chunks[0].pages == (3,)
    assert all(c.token_count <= 60 for c in chunks)


def test_a_document_without_markers_has_no_pages_or_figures():
    chunks = chunk_markdown("# Tires\n\nCheck them monthly.\n", title="Tires")

    assert [(c.pages, c.figures) for c in chunks] == [((), ())]


def test_a_figure_alone_under_its_heading_goes_to_the_next_passage():
    # "Diagram" holds nothing but a picture without a caption: its passage is dropped, and the
    # picture belongs to the passage that follows.
    markdown = (
        "# Seats\n\n## Diagram\n\n<!-- figure 00112233445566778899aabb -->\n\n"
        "## Adjusting\n\nPull the lever under the seat and slide it forward.\n"
    )

    chunks = chunk_markdown(markdown, title="Seats", max_tokens=60, overlap_tokens=0)

    assert [(c.heading_path, c.figures) for c in chunks] == [
        ("Seats > Adjusting", ("00112233445566778899aabb",))
    ]
