"""Retrieval quality of our chunking on the bundled sample manual (no database).

Chunking exists to make retrieval find the right page. The seed project chose heading-aware
chunks with a heading-path prefix because, on the Model 3 manual, they put the right page in the
top 3 more often than fixed 500-word windows (the Haystack default it replaced). This test keeps
that property true for the chunker and embedding model we ship, on the sample manual's
hand-written owner questions, so a change that quietly makes retrieval worse fails here rather
than in front of an owner. ``bench/chunking.py`` measures the same on the Model 3 manual.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from curation.chunking import chunk_markdown
from curation.services import CleanDocument, clean_page
from curation.sources import iter_html_folder
from manualqa.lib.embeddings import encode, token_counter

SAMPLE_MANUAL = Path(__file__).resolve().parents[2] / "curation" / "sample_manual"
WINDOW_WORDS = 500

# Measured (all-MiniLM-L6-v2, CHUNK_MAX_TOKENS=240, CHUNK_OVERLAP_TOKENS=32, 13 pages of 590-860
# words, 24 answerable questions): heading-aware chunks hit@3 = 24/24 = 1.0 (hit@1 0.875, MRR
# 0.93), 500-word windows also 24/24 (hit@1 0.875, MRR 0.93). The sample manual is too small to
# show the gain the Model 3 bench shows (13 short pages, 2 windows each), so here the comparison
# guards against a regression rather than proving an advantage. One question (q18, windshield
# fogging -> climate.html) already sits at rank 3, so the bar is 0.9, not 1.0: it allows two
# misses (22/24 = 0.917), enough for a different CPU/BLAS or a reworded page, while a third miss
# (0.875) fails.
MIN_HEADING_HIT_AT_3 = 0.9


@dataclass(frozen=True)
class Question:
    text: str
    pages: frozenset[str]


def sample_pages() -> list[CleanDocument]:
    """The manual's content pages, cleaned as ingestion cleans them.

    The table of contents (index.html) links every page and would be a near-match for every
    question; internal/ is the robots-disallowed dealer page a crawl never ingests.
    """
    pages = iter_html_folder(SAMPLE_MANUAL / "site" / "manual")
    return [
        clean_page(page)
        for page in pages
        if page.ok and page.source_name != "index.html" and "/" not in page.source_name
    ]


def answerable_questions() -> list[Question]:
    rows = [
        json.loads(line)
        for line in (SAMPLE_MANUAL / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return [
        Question(row["question"], frozenset(row["sources"]))
        for row in rows
        if row["kind"] != "unanswerable" and row["sources"]
    ]


def heading_chunks(pages: list[CleanDocument]) -> list[tuple[str, str]]:
    """``(page, text)`` of our chunks with the settings ingestion uses."""
    count_tokens = token_counter(settings.EMBEDDING_MODEL)
    return [
        (page.source_name, chunk.text)
        for page in pages
        for chunk in chunk_markdown(
            page.markdown,
            title=page.title,
            max_tokens=settings.CHUNK_MAX_TOKENS,
            overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            count_tokens=count_tokens,
        )
    ]


def window_chunks(pages: list[CleanDocument]) -> list[tuple[str, str]]:
    """The baseline: 500-word windows, no overlap, no title or heading prefix."""
    chunks: list[tuple[str, str]] = []
    for page in pages:
        words = page.markdown.split()
        chunks.extend(
            (page.source_name, " ".join(words[start : start + WINDOW_WORDS]))
            for start in range(0, len(words), WINDOW_WORDS)
        )
    return chunks


def embed(texts: list[str]) -> np.ndarray:
    return encode(
        texts, model_name=settings.EMBEDDING_MODEL, batch_size=settings.EMBEDDING_BATCH_SIZE
    )


def page_hit_rate(
    questions: list[Question], question_vectors: np.ndarray, chunks: list[tuple[str, str]], k: int
) -> tuple[float, list[str]]:
    """Share of questions with a source page among the top ``k`` pages, and the missed ones.

    A page scores as its best chunk (cosine = dot product of unit vectors): one good chunk is
    all an answer needs to cite the page.
    """
    chunk_vectors = embed([text for _, text in chunks])
    similarity = question_vectors @ chunk_vectors.T
    names = sorted({page for page, _ in chunks})
    owner = np.array([names.index(page) for page, _ in chunks])
    page_scores = np.stack([similarity[:, owner == i].max(axis=1) for i in range(len(names))], 1)
    missed = []
    for question, scores in zip(questions, page_scores, strict=True):
        top = {names[i] for i in np.argsort(-scores, kind="stable")[:k]}
        if not top & question.pages:
            missed.append(question.text)
    return 1 - len(missed) / len(questions), missed


@pytest.mark.slow
def test_heading_aware_chunks_find_the_right_page_at_least_as_often_as_500_word_windows() -> None:
    pages = sample_pages()
    questions = answerable_questions()
    # Every cited page must be among those indexed, or a miss would be the data's fault.
    assert questions
    assert {name for q in questions for name in q.pages} <= {page.source_name for page in pages}
    question_vectors = embed([question.text for question in questions])

    heading, heading_missed = page_hit_rate(questions, question_vectors, heading_chunks(pages), 3)
    window, window_missed = page_hit_rate(questions, question_vectors, window_chunks(pages), 3)

    print(f"page hit@3: heading-aware {heading:.3f}, 500-word windows {window:.3f}")
    assert heading >= window, (heading, window, heading_missed, window_missed)
    assert heading >= MIN_HEADING_HIT_AT_3, heading_missed
