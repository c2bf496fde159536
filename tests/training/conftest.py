"""Fixtures for the dataset tests: a manual with many small sections and approved pairs.

Documents and chunks are made by the real ingestion service from small markdown pages, so the
heading paths (and with them the sections the split is drawn by) are the real ones.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from curation import qa, services
from curation.models import DocumentChunk, Manual, QAPair
from curation.services import CleanDocument
from manualqa import roles


def build_manual(name: str = "Dataset manual", *, pages: int = 2, sections: int = 3) -> Manual:
    """A manual of ``pages`` markdown pages with ``sections`` ``##`` sections each."""
    manual = services.manual_get_or_create(name=name)
    for page in range(pages):
        markdown = f"# Page {page}\n\n" + "".join(
            f"## Topic {page}-{section}\n\nThe manual explains topic {page}-{section} here, "
            f"with enough words to make a chunk of its own.\n\n"
            for section in range(sections)
        )
        services.document_upsert(
            manual=manual,
            clean=CleanDocument(
                f"page-{page}.md", "", f"Page {page}", markdown, len(markdown.split())
            ),
        )
    return manual


def add_pairs(
    manual: Manual,
    *,
    per_chunk: int = 2,
    first: int = 0,
    status: str = QAPair.Status.APPROVED,
    flags: list[str] | None = None,
) -> list[QAPair]:
    """``per_chunk`` pairs on every chunk of ``manual``, in ``status``, numbered from ``first``."""
    pairs = []
    chunks = DocumentChunk.objects.filter(document__manual=manual).select_related("document")
    for chunk in chunks.order_by("id"):
        for number in range(first, first + per_chunk):
            question = f"What does the manual say about {chunk.heading_path}, point {number}?"
            answer = f"It says point {number} of {chunk.heading_path}."
            pairs.append(
                QAPair(
                    manual=manual,
                    document=chunk.document,
                    chunk=chunk,
                    document_version=chunk.document.version,
                    source_text=chunk.text,
                    question=question,
                    answer=answer,
                    question_hash=qa.question_hash(question),
                    original_question=question,
                    original_answer=answer,
                    status=status,
                    origin=QAPair.Origin.GENERATED,
                    grounding_score=0.8,
                    flags=list(flags or []),
                )
            )
    return QAPair.objects.bulk_create(pairs)


@pytest.fixture
def trainer(db) -> User:
    """A staff user in the Trainer group (may build and view datasets)."""
    roles.roles_ensure()
    user = User.objects.create_user("trainer", password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.TRAINER_GROUP))
    return user


@pytest.fixture
def reviewer(db) -> User:
    """A staff user in the Reviewer group (may review pairs, not build datasets)."""
    roles.roles_ensure()
    user = User.objects.create_user("reviewer", password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.REVIEWER_GROUP))
    return user


@pytest.fixture
def manual(db) -> Manual:
    """Two pages of three sections, two approved pairs per section."""
    manual = build_manual()
    add_pairs(manual)
    return manual


# The retriever tests' sample manual, snapshot and trained job (session-wide: training is slow).
from tests.training.retriever_support import (  # noqa: E402, F401
    retriever_job,
    retriever_output,
    retriever_snapshot,
)
