"""The sample manual with its owner questions approved as pairs, for the retriever tests.

The bundled sample manual is ingested and embedded once per module (committed, like the chat
tests' ``sample_manual``); each answerable question of ``questions.jsonl`` becomes an approved
pair on the chunk of its source page that holds the most of its ``must_include`` phrases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from curation import qa
from curation import services as curation_services
from curation.models import DocumentChunk, Manual, QAPair, RetrievalModel
from tests.conftest import SAMPLE_SITE
from training import retrieval_jobs, services
from training.models import DatasetSnapshot, QuestionSet, QuestionSetVersion, RetrievalJob

QUESTIONS = Path(settings.BASE_DIR) / "curation" / "sample_manual" / "questions.jsonl"


def ingest_sample(name: str) -> Manual:
    manual = curation_services.manual_get_or_create(name=name)
    run = curation_services.ingestion_run_create(
        manual=manual, source=str(SAMPLE_SITE / "manual"), enqueue=False
    )
    curation_services.ingestion_run_execute(run_id=run.pk)
    return manual


def approve_sample_questions(manual: Manual) -> list[QAPair]:
    """An approved pair per answerable sample question, on its best source chunk."""
    pairs = []
    chunks = list(
        DocumentChunk.objects.filter(document__manual=manual, embedding__isnull=False)
        .select_related("document")
        .order_by("pk")
    )
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["kind"] == "unanswerable" or not row["sources"]:
            continue
        on_page = [c for c in chunks if c.document.source_name.endswith(row["sources"][0])]
        if not on_page:
            continue
        wanted = [phrase.lower() for phrase in row.get("must_include") or []]
        chunk = max(on_page, key=lambda c: sum(p in c.text.lower() for p in wanted))
        pairs.append(
            QAPair(
                manual=manual,
                document=chunk.document,
                chunk=chunk,
                document_version=chunk.document.version,
                source_text=chunk.text,
                question=row["question"],
                answer=", ".join(row.get("must_include") or []) or "See the manual.",
                question_hash=qa.question_hash(row["question"]),
                original_question=row["question"],
                original_answer="",
                status=QAPair.Status.APPROVED,
                origin=QAPair.Origin.GENERATED,
                grounding_score=0.8,
            )
        )
    return QAPair.objects.bulk_create(pairs)


STEPS = 4


def owner_question_set(manual: Manual) -> QuestionSet:
    """The sample's owner questions as a saved question set of the manual (version 1)."""
    text = QUESTIONS.read_text(encoding="utf-8")
    question_set = QuestionSet.objects.create(
        name="Sample owners", slug="retriever-sample-owners", manual=manual
    )
    QuestionSetVersion.objects.create(
        question_set=question_set,
        version=1,
        jsonl=text,
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        question_count=len(text.splitlines()),
    )
    return question_set


@pytest.fixture(scope="session")
def retriever_output(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("retrieval-jobs")


@pytest.fixture(scope="module")
def retriever_snapshot(django_db_setup, django_db_blocker) -> Iterator[DatasetSnapshot]:
    """The sample manual, its answerable questions approved, frozen 60/20/20."""
    with django_db_blocker.unblock():
        manual = ingest_sample("Retriever sample manual")
        approve_sample_questions(manual)
        owner_question_set(manual)
        snapshot = services.snapshot_create(
            manual=manual, user=None, train_fraction=0.6, eval_fraction=0.2, test_fraction=0.2
        )
    yield snapshot
    with django_db_blocker.unblock():
        RetrievalJob.objects.filter(snapshot__manual=manual).delete()
        QuestionSet.objects.filter(manual=manual).delete()
        DatasetSnapshot.objects.filter(manual=manual).delete()
        Manual.objects.filter(pk=manual.pk).delete()
        RetrievalModel.objects.filter(jobs__isnull=True).delete()


@pytest.fixture(scope="module")
def retriever_job(retriever_snapshot, retriever_output, django_db_blocker) -> RetrievalJob:
    """One job trained for ``STEPS`` steps on the snapshot, run to its end in this process."""
    with django_db_blocker.unblock():
        kept, settings.TRAINING_OUTPUT_DIR = settings.TRAINING_OUTPUT_DIR, retriever_output
        try:
            job = retrieval_jobs.retrieval_job_create(
                snapshot=retriever_snapshot,
                user=None,
                hyperparameters={"max_steps": STEPS, "batch_size": 4, "epochs": 10},
                enqueue=False,
            )
        finally:
            settings.TRAINING_OUTPUT_DIR = kept
        assert retrieval_jobs.retrieval_job_claim(job_id=job.pk)
        return retrieval_jobs.retrieval_job_execute(job_id=job.pk)
