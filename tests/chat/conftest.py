"""Fixtures for chat tests: the sample manual ingested once per module, assistants, owners.

Ingesting and embedding the sample manual takes seconds, so a module ingests it once, commits
it, and deletes it again when the module is done; each test still runs in its own transaction,
so what a test writes (assistants, conversations, QA pairs) is rolled back after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis
from django.conf import settings

from chat.text_units import Vocabulary
from curation import services as curation_services
from curation.models import Manual
from tests.conftest import SAMPLE_SITE

SAMPLE_QUESTIONS = Path(settings.BASE_DIR) / "curation" / "sample_manual" / "questions.jsonl"


@dataclass(frozen=True)
class SampleQuestion:
    id: str
    question: str
    sources: tuple[str, ...]
    must_include: tuple[str, ...]
    answerable: bool


def sample_questions() -> list[SampleQuestion]:
    rows = [
        json.loads(line)
        for line in SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return [
        SampleQuestion(
            id=row["id"],
            question=row["question"],
            sources=tuple(row["sources"]),
            must_include=tuple(row.get("must_include") or ()),
            answerable=row["kind"] != "unanswerable",
        )
        for row in rows
    ]


def sample_question(question_id: str) -> SampleQuestion:
    return next(q for q in sample_questions() if q.id == question_id)


@pytest.fixture(scope="module")
def sample_manual(django_db_setup, django_db_blocker) -> Iterator[Manual]:
    """The bundled sample manual's pages, ingested and embedded (committed for the module)."""
    with django_db_blocker.unblock():
        manual = curation_services.manual_get_or_create(name="Chat sample manual")
        run = curation_services.ingestion_run_create(
            manual=manual, source=str(SAMPLE_SITE / "manual"), enqueue=False
        )
        curation_services.ingestion_run_execute(run_id=run.pk)
    yield manual
    with django_db_blocker.unblock():
        Manual.objects.filter(pk=manual.pk).delete()


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    """Every test starts with no chat requests counted (the counters live in Redis)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{settings.CHAT_RATE_LIMIT_PREFIX}*"))
    if keys:
        client.delete(*keys)


# --------------------------------------------------------------------------------------------
# For the answer path's plain modules (no database)


@pytest.fixture(scope="session")
def embed() -> Callable[[list[str]], np.ndarray]:
    """The site's embedding model. A text met before is not encoded again: the passages are
    the same in many tests, and the CPU is slow."""
    from manualqa.lib.embeddings import encode

    vectors: dict[str, np.ndarray] = {}

    def embed_texts(texts: list[str]) -> np.ndarray:
        new = [text for text in dict.fromkeys(texts) if text not in vectors]
        if new:
            encoded = encode(
                new, model_name=settings.EMBEDDING_MODEL, batch_size=settings.EMBEDDING_BATCH_SIZE
            )
            vectors.update(zip(new, encoded, strict=True))
        return np.stack([vectors[text] for text in texts])

    return embed_texts


@pytest.fixture(scope="session")
def manual_chunks() -> dict[str, list[str]]:
    """The sample manual's chunk texts by page (``"tires.html"``), as ingestion makes them
    (without a database)."""
    from curation.chunking import chunk_markdown
    from curation.services import clean_page
    from curation.sources import iter_html_folder
    from manualqa.lib.embeddings import token_counter

    count_tokens = token_counter(settings.EMBEDDING_MODEL)
    pages = [
        clean_page(page)
        for page in iter_html_folder(SAMPLE_SITE / "manual")
        if page.ok and page.source_name != "index.html" and "/" not in page.source_name
    ]
    return {
        page.source_name: [
            chunk.text
            for chunk in chunk_markdown(
                page.markdown,
                title=page.title,
                max_tokens=settings.CHUNK_MAX_TOKENS,
                overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
                count_tokens=count_tokens,
            )
        ]
        for page in pages
    }


@pytest.fixture(scope="session")
def vocabulary(manual_chunks: dict[str, list[str]]) -> Vocabulary:
    """IDF weights over the sample manual's chunks, chunked with the settings ingestion uses.
    (A module that reads another manual's words defines its own.)"""
    return Vocabulary.from_texts(text for texts in manual_chunks.values() for text in texts)
