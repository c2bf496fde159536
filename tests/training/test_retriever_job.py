"""Retrieval jobs (issue 18): a real embedder tuned on the sample manual's approved questions.

One job trains for a few steps on the CPU per module (committed, shared by the tests); the
tests check what it trained on, what it registered and that it did not make retrieval worse.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.models import DocumentChunk, RetrievalModel
from manualqa.lib.embeddings import encode
from tests.training.retriever_support import STEPS
from training import retrieval_jobs
from training.models import DatasetSnapshot, RetrievalJob, SnapshotPair
from training.retrievers.embedder import hyperparameters_check, measure

pytestmark = pytest.mark.django_db


def _page_hit_at_1(model_name: str, snapshot: DatasetSnapshot) -> float:
    chunks = list(
        DocumentChunk.objects.filter(document__manual=snapshot.manual_id, embedding__isnull=False)
        .order_by("pk")
        .values_list("pk", "text", "document_id")
    )
    pairs = list(snapshot.pairs.values_list("question", "qa_pair__chunk__document_id"))
    chunk_vectors = encode([text for _, text, _ in chunks], model_name=model_name)
    question_vectors = encode([question for question, _ in pairs], model_name=model_name)
    return measure(
        question_vectors,
        chunk_vectors,
        relevant_chunks=[set() for _ in pairs],
        relevant_documents=[{document} for _, document in pairs],
        chunk_ids=[pk for pk, _, _ in chunks],
        chunk_documents=[document for _, _, document in chunks],
    )["hit_at_1"]


def test_job_trains_registers_and_keeps_or_improves_hit_at_1(retriever_job, retriever_snapshot):
    snapshot = retriever_snapshot
    job = retriever_job
    assert job.status == RetrievalJob.Status.SUCCEEDED, job.message
    assert 1 <= job.step == job.total_steps <= STEPS
    assert job.loss is not None and job.loss > 0
    model = job.registered_model
    assert model.kind == RetrievalModel.Kind.EMBEDDER
    assert model.dimensions == django_settings.EMBEDDING_DIMENSIONS
    assert (Path(model.path) / "modules.json").is_file()
    # Before and after, measured by the job on the splits it did not train on.
    for split in ("eval", "test"):
        assert job.metrics[split]["questions"] == snapshot.pairs.filter(split=split).count()
        assert 0.0 <= job.metrics[split]["hit_at_1_after"] <= 1.0
    # The manual's saved owner questions, measured by page in the same job.
    owners = job.metrics["set:retriever-sample-owners"]
    assert owners["questions"] == 24
    assert owners["hit_at_3_before"] >= 0.75 and 0.0 <= owners["hit_at_3_after"] <= 1.0
    # Every question of the snapshot, base model against the tuned one, measured here.
    before = _page_hit_at_1(django_settings.EMBEDDING_MODEL, snapshot)
    after = _page_hit_at_1(model.path, snapshot)
    assert after >= before, (before, after)


def test_job_never_trains_on_eval_or_test_pairs(retriever_job, retriever_snapshot):
    snapshot = retriever_snapshot
    seen = [
        json.loads(line)
        for line in (Path(retriever_job.output_dir) / "train_examples.jsonl")
        .read_text()
        .splitlines()
    ]
    splits = dict(snapshot.pairs.values_list("pk", "split"))
    assert seen and {splits[example["pair_id"]] for example in seen} == {SnapshotPair.Split.TRAIN}
    held_out = set(snapshot.pairs.exclude(split="train").values_list("question", flat=True))
    assert held_out and not held_out & {example["question"] for example in seen}
    assert len(seen) == retriever_job.train_examples == snapshot.pairs.filter(split="train").count()
    # Hard negatives come from other pages than the source chunk's.
    page = dict(
        DocumentChunk.objects.filter(document__manual=snapshot.manual_id).values_list(
            "pk", "document_id"
        )
    )
    for example in seen:
        assert example["negative_ids"], example
        assert all(page[n] != page[example["chunk_id"]] for n in example["negative_ids"])


def test_cancelled_job_stops_and_registers_nothing(retriever_snapshot, retriever_output, settings):
    snapshot = retriever_snapshot
    settings.TRAINING_OUTPUT_DIR = retriever_output
    job = retrieval_jobs.retrieval_job_create(
        snapshot=snapshot,
        user=None,
        hyperparameters={"max_steps": 50, "epochs": 50, "batch_size": 4},
        enqueue=False,
    )
    assert retrieval_jobs.retrieval_job_claim(job_id=job.pk)
    retrieval_jobs.retrieval_job_cancel(job=job, user=None)  # asks the running job to stop
    job = retrieval_jobs.retrieval_job_execute(job_id=job.pk)
    assert job.status == RetrievalJob.Status.CANCELLED
    assert job.step < 50 and job.registered_model is None


def test_queued_job_cancels_at_once(retriever_snapshot):
    snapshot = retriever_snapshot
    job = retrieval_jobs.retrieval_job_create(snapshot=snapshot, user=None, enqueue=False)
    job = retrieval_jobs.retrieval_job_cancel(job=job, user=None)
    assert job.status == RetrievalJob.Status.CANCELLED
    assert not retrieval_jobs.retrieval_job_claim(job_id=job.pk)


def test_snapshot_without_pairs_on_chunks_is_refused(retriever_snapshot):
    snapshot = retriever_snapshot
    SnapshotPair.objects.filter(snapshot=snapshot).update(qa_pair=None)  # rolled back after
    with pytest.raises(ValidationError, match="no approved train pairs with a source chunk"):
        retrieval_jobs.retrieval_job_create(snapshot=snapshot, user=None, enqueue=False)


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="unknown hyperparameter 'lr'"):
        hyperparameters_check({"lr": 1})
    with pytest.raises(ValueError, match="max_steps must be between 1"):
        hyperparameters_check({"max_steps": 0})
    assert hyperparameters_check({"batch_size": 4})["batch_size"] == 4


def test_a_reranker_job_trains_through_the_reranker_trainer_and_registers_it(
    retriever_snapshot, retriever_output, settings
):
    settings.TRAINING_OUTPUT_DIR = retriever_output
    job = retrieval_jobs.retrieval_job_create(
        snapshot=retriever_snapshot,
        user=None,
        kind="reranker",
        hyperparameters={"max_steps": 1, "batch_size": 4, "max_length": 128, "eval_questions": 4},
        enqueue=False,
    )
    assert retrieval_jobs.retrieval_job_claim(job_id=job.pk)
    job = retrieval_jobs.retrieval_job_execute(job_id=job.pk)
    assert job.status == RetrievalJob.Status.SUCCEEDED, job.message
    model = job.registered_model
    assert model.kind == RetrievalModel.Kind.RERANKER
    assert model.decline_below is not None
    assert Path(model.path).is_dir()


def test_a_reranker_launch_with_an_unknown_hyperparameter_is_refused_naming_it(
    retriever_snapshot, retriever_output, settings
):
    settings.TRAINING_OUTPUT_DIR = retriever_output
    before = RetrievalJob.objects.count()
    with pytest.raises(ValidationError, match="epochs"):
        retrieval_jobs.retrieval_job_create(
            snapshot=retriever_snapshot,
            user=None,
            kind="reranker",
            hyperparameters={"epochs": 3},
            enqueue=False,
        )
    assert RetrievalJob.objects.count() == before


def test_command_trains_here_and_prints_metrics(
    retriever_snapshot, retriever_output, capsys, settings
):
    snapshot = retriever_snapshot
    settings.TRAINING_OUTPUT_DIR = retriever_output
    call_command("train_retriever", str(snapshot.pk), "--max-steps", "1", "--here")
    out = capsys.readouterr().out
    assert "Registered Embedder #" in out
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["train_examples"] == snapshot.pairs.filter(split="train").count()
    with pytest.raises(CommandError, match="No dataset snapshot #999999"):
        call_command("train_retriever", "999999")


def test_vectors_are_comparable_only_within_one_model(retriever_job):
    """Why the switch exists: the tuned model's vectors differ from the base model's."""
    text = ["How do I open the charge port without power?"]
    base = encode(text, model_name=django_settings.EMBEDDING_MODEL)
    tuned = encode(text, model_name=retriever_job.registered_model.path)
    assert base.shape == tuned.shape
    assert not np.allclose(base, tuned)
