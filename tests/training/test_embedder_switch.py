"""Re-embedding a manual with a tuned embedder: built beside the old vectors, switched at once,
switched back without embedding again; chat only ever compares one model's vectors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from chat.retrieval import retrieve
from curation import services as curation_services
from curation.models import ChunkVector, DocumentChunk, Manual, ReembedRun, RetrievalModel
from curation.services import CleanDocument, embedders
from manualqa.lib.embeddings import encode
from tests.training.conftest import build_manual

QUESTION = "How do I open the charge port when the car has no power?"


def _vectors(manual: Manual) -> dict[int, np.ndarray]:
    return {
        pk: np.asarray(vector)
        for pk, vector in DocumentChunk.objects.filter(
            document__manual=manual, embedding__isnull=False
        ).values_list("pk", "embedding")
    }


def _stored(manual: Manual, embedder: RetrievalModel | None) -> dict[int, np.ndarray]:
    return {
        pk: np.asarray(vector)
        for pk, vector in ChunkVector.objects.filter(
            chunk__document__manual=manual, embedder=embedder
        ).values_list("chunk_id", "embedding")
    }


def _similarities(question: str, model: str, vectors: dict[int, np.ndarray]) -> dict[int, float]:
    q = encode([question], model_name=model)[0]
    return {pk: float(q @ vector) for pk, vector in vectors.items()}


def _model_of(found, expected: dict[str, dict[int, float]]) -> set[str]:
    """Which models' similarities the retrieved passages show (one name per passage)."""
    return _models(found.passages, expected)


def _models(passages, expected: dict[str, dict[int, float]]) -> set[str]:
    """A passage whose similarity both models give (within rounding) tells nothing; every other
    one must match exactly one model's."""
    models = set()
    for passage in passages:
        matches = {
            name
            for name, table in expected.items()
            if passage.chunk_id in table
            and abs(table[passage.chunk_id] - passage.similarity) < 1.5e-4
        }
        assert matches, (passage.chunk_id, passage.similarity, "matches no model")
        if len(matches) == 1:
            models |= matches
    return models


@pytest.mark.django_db
def test_build_switch_and_switch_back(retriever_job, retriever_snapshot):
    manual = retriever_snapshot.manual
    tuned = retriever_job.registered_model
    original = _vectors(manual)

    built = embedders.vectors_build(manual, tuned)
    assert built == len(original)
    # Built beside: chat's vectors and model are untouched, retrieval is the base model's.
    manual.refresh_from_db()
    assert manual.embedder is None
    assert all(np.array_equal(original[pk], v) for pk, v in _vectors(manual).items())
    base_table = _similarities(QUESTION, django_settings.EMBEDDING_MODEL, original)
    tuned_table = _similarities(QUESTION, tuned.path, _stored(manual, tuned))
    tables = {"base": base_table, "tuned": tuned_table}
    found = retrieve(question=QUESTION, manual_ids=[manual.pk], k=4, match_questions=False)
    assert found.passages and _model_of(found, tables) == {"base"}

    embedders.embedder_switch(manual, tuned)
    manual.refresh_from_db()
    assert manual.embedder == tuned
    assert set(
        DocumentChunk.objects.filter(document__manual=manual).values_list("embedder", flat=True)
    ) == {tuned.pk}
    found = retrieve(question=QUESTION, manual_ids=[manual.pk], k=4, match_questions=False)
    assert found.passages and _model_of(found, tables) == {"tuned"}
    # The base vectors were kept: switching back builds nothing and restores them exactly.
    assert embedders.vectors_build(manual, None) == 0
    embedders.embedder_switch(manual, None)
    manual.refresh_from_db()
    assert manual.embedder is None
    assert all(np.allclose(original[pk], v, atol=1e-6) for pk, v in _vectors(manual).items())
    found = retrieve(question=QUESTION, manual_ids=[manual.pk], k=4, match_questions=False)
    assert _model_of(found, tables) == {"base"}


@pytest.mark.django_db
def test_switch_refuses_while_vectors_are_missing(retriever_job, retriever_snapshot):
    manual = retriever_snapshot.manual
    with pytest.raises(embedders.VectorsMissing, match="have no vector under"):
        embedders.embedder_switch(manual, retriever_job.registered_model)
    manual.refresh_from_db()
    assert manual.embedder is None


@pytest.mark.django_db
def test_new_pages_of_a_tuned_manual_are_embedded_with_its_embedder(retriever_job):
    tuned = retriever_job.registered_model
    manual = build_manual("Tuned manual", pages=1, sections=2)
    curation_services.chunks_embed_pending(manual=manual)
    assert embedders.embedder_use(manual, tuned)
    markdown = "# Wipers\n\n## Replacing the blades\n\nLift the wiper arm and press the tab.\n"
    curation_services.document_upsert(
        manual=manual,
        clean=CleanDocument("wipers.md", "", "Wipers", markdown, len(markdown.split())),
    )
    assert curation_services.chunks_embed_pending(manual=manual) >= 1
    chunk = DocumentChunk.objects.get(document__source_name="wipers.md", document__manual=manual)
    assert chunk.embedder == tuned
    expected = encode([chunk.text], model_name=tuned.path)[0]
    assert np.allclose(np.asarray(chunk.embedding), expected, atol=1e-5)


@pytest.mark.django_db
def test_chat_over_manuals_with_different_embedders_compares_each_with_its_own(
    retriever_job, retriever_snapshot
):
    tuned = retriever_job.registered_model
    sample = retriever_snapshot.manual
    other = build_manual("Other manual", pages=2, sections=2)
    curation_services.chunks_embed_pending(manual=other)
    assert embedders.embedder_use(other, tuned)
    question = "What does the manual explain about topic 0-1?"
    tables = {
        "base": _similarities(question, django_settings.EMBEDDING_MODEL, _vectors(sample)),
        "tuned": _similarities(question, tuned.path, _vectors(other)),
    }
    found = retrieve(question=question, manual_ids=[sample.pk, other.pk], k=40)
    by_manual: dict[int, set[str]] = {}
    for passage in found.passages:
        by_manual.setdefault(passage.manual_id, set()).update(_models([passage], tables))
    assert by_manual[sample.pk] == {"base"} and by_manual[other.pk] == {"tuned"}


@pytest.mark.django_db
def test_reembed_run_and_its_cancel(retriever_job, retriever_snapshot):
    manual = retriever_snapshot.manual
    tuned = retriever_job.registered_model
    run = embedders.reembed_run_create(manual=manual, embedder=tuned, user=None, enqueue=False)
    assert embedders.reembed_run_claim(run_id=run.pk)
    embedders.reembed_run_cancel(run=run, user=None)
    run = embedders.reembed_run_execute(run_id=run.pk)
    assert run.status == ReembedRun.Status.CANCELLED
    manual.refresh_from_db()
    assert manual.embedder is None

    run = embedders.reembed_run_create(manual=manual, embedder=tuned, user=None, enqueue=False)
    assert embedders.reembed_run_claim(run_id=run.pk)
    run = embedders.reembed_run_execute(run_id=run.pk)
    assert run.status == ReembedRun.Status.SUCCEEDED, run.message
    assert run.done == run.total == len(_vectors(manual))
    manual.refresh_from_db()
    assert manual.embedder == tuned and run.previous_embedder is None
    with pytest.raises(ValidationError, match="uses .* already"):
        embedders.reembed_run_create(manual=manual, embedder=tuned, user=None, enqueue=False)


@pytest.mark.django_db
def test_bad_embedders_are_named(retriever_job, retriever_snapshot, tmp_path):
    manual = retriever_snapshot.manual
    tuned = retriever_job.registered_model
    wide = RetrievalModel.objects.create(
        name="wide", kind="embedder", path=tuned.path, dimensions=768
    )
    with pytest.raises(ValidationError, match="768-dimensional vectors; the chunks' vector"):
        embedders.reembed_run_create(manual=manual, embedder=wide, user=None, enqueue=False)
    reranker = RetrievalModel.objects.create(name="rr", kind="reranker", path=tuned.path)
    with pytest.raises(ValidationError, match="is a reranker \\(cross-encoder\\), not an"):
        embedders.embedder_switch(manual, reranker)
    gone = RetrievalModel.objects.create(
        name="gone", kind="embedder", path=str(tmp_path / "nothing"), dimensions=384
    )
    with pytest.raises(ValidationError, match="model folder .*nothing is missing"):
        embedders.embedder_check(gone)
    with pytest.raises(CommandError, match="No retrieval model #999999"):
        call_command("reembed", str(manual.pk), "--embedder", "999999")
    with pytest.raises(CommandError, match="No manual 'no such manual'"):
        call_command("reembed", "no such manual", "--embedder", "default")
    with pytest.raises(CommandError, match="uses the default model already"):
        call_command("reembed", str(manual.pk), "--embedder", "default")


def test_chat_during_a_reembed_sees_one_models_vectors(
    retriever_job, retriever_snapshot, django_db_blocker
):
    """A reader thread retrieves over and over while the manual is built, switched to the tuned
    embedder and switched back (committed, as in production); every answer it got shows one
    model's similarities only, and it saw both models."""
    with django_db_blocker.unblock():
        manual = retriever_snapshot.manual
        tuned = retriever_job.registered_model
        seen = []
        stop = threading.Event()

        def reader() -> None:
            try:
                while not stop.is_set():
                    seen.append(
                        retrieve(
                            question=QUESTION, manual_ids=[manual.pk], k=4, match_questions=False
                        )
                    )
            finally:
                connection.close()

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            assert embedders.embedder_use(manual, tuned)
            in_tuned = len(seen)
            while len(seen) < in_tuned + 3:
                stop.wait(0.05)
            assert embedders.embedder_use(manual, None)
        finally:
            stop.set()
            thread.join(60)
        tables = {
            "base": _similarities(QUESTION, django_settings.EMBEDDING_MODEL, _stored(manual, None)),
            "tuned": _similarities(QUESTION, tuned.path, _stored(manual, tuned)),
        }
        models = [_model_of(found, tables) for found in seen]
        assert not [names for names in models if len(names) > 1]  # never two models at once
        assert {"base"} in models and {"tuned"} in models
        ChunkVector.objects.filter(chunk__document__manual=manual).delete()
