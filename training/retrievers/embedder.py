"""The embedder trainer: a sentence-transformers model tuned on a snapshot's reviewed pairs.

Each approved question of the snapshot's ``train`` split is an example against its source
chunk's text (as the chunk is embedded), with the other passages of its batch as negatives
(``MultipleNegativesRankingLoss``) and ``hard_negatives`` more from the current retrieval: the
chunks nearest to the question that are neither its source chunk nor on its page. ``eval`` and
``test`` pairs are never trained on; both are measured before and after (hit@1 and hit@3, by
chunk and by page), and so are the owners' questions of the manual's saved question sets (by
page, ``set:<slug>`` in the metrics), in the same job. The examples trained on are written to
``train_examples.jsonl`` beside the model, so what the trainer saw can be checked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from training.retrievers import Progress, Stopped, TrainedModel

__all__ = ["DEFAULTS", "Example", "hyperparameters_check", "measure", "train"]

logger = logging.getLogger(__name__)

#: The recipe a launch starts from. ``max_steps`` bounds the CPU cost: measured on this host's 2
#: shared (busy) cores, all-MiniLM-L6-v2 with batches of 32 questions and one hard negative each
#: took about 24 s a step (50 steps, one epoch of 1,569 Model 3 train pairs: 1,186 s); owner
#: hit@1 0.567 -> 0.633, test-split page hit@1 0.616 -> 0.734 (bench/retriever.py).
DEFAULTS: dict[str, Any] = {
    "epochs": 1,
    "batch_size": 16,
    "learning_rate": 3e-5,
    "max_steps": 100,
    "hard_negatives": 1,
    "warmup_ratio": 0.1,
    "seed": 42,
}
_LIMITS = {
    "epochs": (1, 50),
    "batch_size": (2, 512),
    "learning_rate": (1e-7, 1e-2),
    "max_steps": (1, 100_000),
    "hard_negatives": (0, 10),
    "warmup_ratio": (0.0, 0.5),
    "seed": (0, 2**31 - 1),
}


def hyperparameters_check(values: dict | None) -> dict[str, Any]:
    """``DEFAULTS`` with ``values`` applied; ``ValueError`` naming each bad key or value."""
    merged = dict(DEFAULTS)
    problems = []
    for key, value in (values or {}).items():
        if key not in DEFAULTS:
            problems.append(f"unknown hyperparameter {key!r} (known: {', '.join(DEFAULTS)})")
            continue
        kind = float if isinstance(DEFAULTS[key], float) else int
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{key} must be a number, not {value!r}")
            continue
        if kind is int and value != int(value):
            problems.append(f"{key} must be a whole number, not {value!r}")
            continue
        low, high = _LIMITS[key]
        if not low <= value <= high:
            problems.append(f"{key} must be between {low} and {high}, not {value!r}")
            continue
        merged[key] = kind(value)
    if problems:
        raise ValueError("; ".join(problems))
    return merged


@dataclass(frozen=True)
class Example:
    """One question with its source chunk and hard negatives, as the trainer saw it."""

    pair_id: int
    split: str
    question: str
    chunk_id: int
    negative_ids: tuple[int, ...]


@dataclass
class _Corpus:
    """The manual's served chunks: ids, texts, their documents."""

    ids: list[int]
    texts: list[str]
    documents: list[int]
    sources: dict[str, int] = dataclasses.field(default_factory=dict)  # source name -> document

    def index(self) -> dict[int, int]:
        return {chunk_id: row for row, chunk_id in enumerate(self.ids)}


def _corpus(snapshot) -> _Corpus:
    from curation.models import DocumentChunk

    rows = (
        DocumentChunk.objects.filter(document__manual=snapshot.manual_id, embedding__isnull=False)
        .order_by("pk")
        .values_list("pk", "text", "document_id", "document__source_name")
    )
    corpus = _Corpus([], [], [])
    for chunk_id, text, document_id, source_name in rows:
        corpus.ids.append(chunk_id)
        corpus.texts.append(text)
        corpus.documents.append(document_id)
        corpus.sources[source_name] = document_id
    return corpus


def _served_vectors(snapshot, base: str, corpus: _Corpus) -> np.ndarray | None:
    """The chunks' stored vectors when they are ``base``'s (the manual on the configured model,
    tuning from it): what retrieval uses now, without encoding the manual again."""
    from curation.models import DocumentChunk

    manual = snapshot.manual
    if manual.embedder_id is not None or base != settings.EMBEDDING_MODEL:
        return None
    stored = dict(
        DocumentChunk.objects.filter(pk__in=corpus.ids, embedder=None).values_list(
            "pk", "embedding"
        )
    )
    if len(stored) != len(corpus.ids):  # switched meanwhile: encode instead
        return None
    return np.asarray([stored[pk] for pk in corpus.ids], dtype=np.float32)


def _pairs(snapshot, split: str) -> list[tuple[int, str, int]]:
    """``(snapshot pair id, question, source chunk id)`` of one split, pairs with a chunk."""
    return list(
        snapshot.pairs.filter(split=split, qa_pair__chunk__isnull=False)
        .order_by("pk")
        .values_list("pk", "question", "qa_pair__chunk_id")
    )


def _encode(model, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    return model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def measure(
    question_vectors: np.ndarray,
    chunk_vectors: np.ndarray,
    *,
    relevant_chunks: Sequence[set[int]],
    relevant_documents: Sequence[set[int]],
    chunk_ids: Sequence[int],
    chunk_documents: Sequence[int],
) -> dict[str, float]:
    """hit@1 and hit@3 of ranking the chunks by cosine similarity for each question: by chunk
    (a relevant chunk in the top k) and by page (a top-k chunk on a relevant document)."""
    n = len(question_vectors)
    if not n:
        return {}
    top = np.argsort(-(question_vectors @ chunk_vectors.T), axis=1)[:, :3]
    found = {"chunk_hit_at_1": 0, "chunk_hit_at_3": 0, "hit_at_1": 0, "hit_at_3": 0}
    for row, columns in enumerate(top):
        ids = [chunk_ids[c] for c in columns]
        docs = [chunk_documents[c] for c in columns]
        found["chunk_hit_at_1"] += ids[0] in relevant_chunks[row]
        found["chunk_hit_at_3"] += any(i in relevant_chunks[row] for i in ids)
        found["hit_at_1"] += docs[0] in relevant_documents[row]
        found["hit_at_3"] += any(d in relevant_documents[row] for d in docs)
    return {key: round(value / n, 4) for key, value in found.items()}


def _examples(
    pairs: list[tuple[int, str, int]],
    question_vectors: np.ndarray,
    corpus: _Corpus,
    corpus_vectors: np.ndarray,
    hard_negatives: int,
) -> list[Example]:
    """The train examples: hard negatives are the nearest chunks of other pages."""
    row_of = corpus.index()
    examples = []
    scores = question_vectors @ corpus_vectors.T if len(pairs) else np.zeros((0, 0))
    for (pair_id, question, chunk_id), row_scores in zip(pairs, scores, strict=True):
        if chunk_id not in row_of:  # its chunk is not served (retired or not embedded)
            continue
        page = corpus.documents[row_of[chunk_id]]
        negatives: list[int] = []
        if hard_negatives:
            for column in np.argsort(-row_scores):
                if corpus.documents[column] != page:
                    negatives.append(corpus.ids[column])
                    if len(negatives) == hard_negatives:
                        break
        if len(negatives) < hard_negatives:  # a manual of one page has no other pages
            continue
        examples.append(Example(pair_id, "train", question, chunk_id, tuple(negatives)))
    return examples


def _progress_callback(progress: Progress, should_stop: Callable[[], bool], total: int):
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        loss: float | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, args, state, control, **kwargs):
            progress(state.global_step, total, self.loss)
            if should_stop():
                raise Stopped()

    return _Callback()


def _split_vectors(snapshot, split, model, corpus: _Corpus, corpus_vectors):
    pairs = _pairs(snapshot, split)
    if not pairs:
        return None
    row_of = corpus.index()
    vectors = _encode(model, [question for _, question, _ in pairs])
    return {
        "question_vectors": vectors,
        "relevant_chunks": [{chunk_id} for _, _, chunk_id in pairs],
        "relevant_documents": [
            {corpus.documents[row_of[chunk_id]]} if chunk_id in row_of else set()
            for _, _, chunk_id in pairs
        ],
    }


def _question_sets(snapshot) -> dict[str, list[dict]]:
    """The owners' questions of the manual's saved question sets (newest versions), those that
    name the pages that answer them: ``{slug: [{question, sources}]}``."""
    from training.models import QuestionSet
    from training.question_sets import (
        question_set_latest_version,
        question_set_version_questions,
    )

    found = {}
    for question_set in QuestionSet.objects.filter(manual=snapshot.manual_id):
        version = question_set_latest_version(question_set)
        rows = question_set_version_questions(version) if version is not None else []
        rows = [r for r in rows if r.get("sources") and r.get("kind") != "unanswerable"]
        if rows:
            found[question_set.slug] = rows
    return found


def _measure_question_sets(sets, model, corpus: _Corpus, corpus_vectors) -> dict[str, dict]:
    results = {}
    for slug, rows in sets.items():
        vectors = _encode(model, [row["question"] for row in rows])
        results[f"set:{slug}"] = {
            **measure(
                vectors,
                corpus_vectors,
                relevant_chunks=[set() for _ in rows],
                relevant_documents=[
                    {corpus.sources[s] for s in row["sources"] if s in corpus.sources}
                    for row in rows
                ],
                chunk_ids=corpus.ids,
                chunk_documents=corpus.documents,
            ),
            "questions": len(rows),
        }
    return results


def _measure_splits(snapshot, model, corpus: _Corpus, corpus_vectors) -> dict[str, dict]:
    results = {}
    for split in ("eval", "test"):
        found = _split_vectors(snapshot, split, model, corpus, corpus_vectors)
        if found is None:
            continue
        results[split] = {
            **measure(
                found["question_vectors"],
                corpus_vectors,
                relevant_chunks=found["relevant_chunks"],
                relevant_documents=found["relevant_documents"],
                chunk_ids=corpus.ids,
                chunk_documents=corpus.documents,
            ),
            "questions": len(found["question_vectors"]),
        }
    return results


def _before_after(before: dict, after: dict) -> dict:
    """``{metric_before, metric_after, questions}`` of one split."""
    merged: dict[str, Any] = {"questions": before["questions"]}
    for key in before:
        if key != "questions":
            merged[f"{key}_before"] = before[key]
            merged[f"{key}_after"] = after[key]
    return merged


def train(
    snapshot,
    *,
    base_model: str,
    hyperparameters: dict,
    output_dir: Path,
    progress: Progress,
    should_stop: Callable[[], bool],
) -> TrainedModel:
    """Tune ``base_model`` (empty: the configured embedding model) on ``snapshot``'s train
    split (see the module docstring); ``ValueError`` names a snapshot that cannot train one."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    config = hyperparameters_check(hyperparameters)
    base = base_model or settings.EMBEDDING_MODEL
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    torch.manual_seed(config["seed"])

    corpus = _corpus(snapshot)
    if not corpus.ids:
        raise ValueError(f"The manual of {snapshot} has no embedded chunks to retrieve from.")
    train_pairs = _pairs(snapshot, "train")
    if not train_pairs:
        raise ValueError(
            f"{snapshot} has no train pairs with a source chunk: a retriever learns questions "
            "against the passages they were approved on."
        )
    # A model of its own (not the process's shared one): training changes its weights.
    device = settings.EMBEDDING_DEVICE
    model = SentenceTransformer(base, device=device, local_files_only=True)
    before_vectors = _served_vectors(snapshot, base, corpus)
    if before_vectors is None:
        before_vectors = _encode(model, corpus.texts)
    before = _measure_splits(snapshot, model, corpus, before_vectors)
    question_sets = _question_sets(snapshot)
    before |= _measure_question_sets(question_sets, model, corpus, before_vectors)
    train_vectors = _encode(model, [question for _, question, _ in train_pairs])
    examples = _examples(
        train_pairs, train_vectors, corpus, before_vectors, config["hard_negatives"]
    )
    if not examples:
        raise ValueError(f"No train pair of {snapshot} has a served source chunk.")
    with (output_dir / "train_examples.jsonl").open("w", encoding="utf-8") as file:
        for example in examples:
            file.write(json.dumps(dataclasses.asdict(example)) + "\n")

    text_of = dict(zip(corpus.ids, corpus.texts, strict=True))
    columns: dict[str, list[str]] = {
        "anchor": [e.question for e in examples],
        "positive": [text_of[e.chunk_id] for e in examples],
    }
    for n in range(config["hard_negatives"]):
        columns[f"negative_{n + 1}"] = [text_of[e.negative_ids[n]] for e in examples]
    dataset = Dataset.from_dict(columns)
    # No batch may hold one passage twice (as a positive or a negative): the sampler skips
    # such rows, so a batch needs about (1 + hard negatives) distinct passages per question.
    distinct = len({e.chunk_id for e in examples})
    batch_size = max(2, min(config["batch_size"], distinct // (1 + config["hard_negatives"])))
    steps_per_epoch = max(1, len(examples) // batch_size)
    total = min(config["max_steps"], steps_per_epoch * config["epochs"])
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        num_train_epochs=config["epochs"],
        max_steps=total,
        per_device_train_batch_size=batch_size,
        learning_rate=config["learning_rate"],
        warmup_steps=config["warmup_ratio"],  # a float below 1 is a ratio (Transformers 5)
        seed=config["seed"],
        batch_sampler="no_duplicates",  # two questions on one chunk must not be negatives
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=device == "cpu",
        dataloader_drop_last=True,
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model),
        callbacks=[_progress_callback(progress, should_stop, total)],
    )
    progress(0, total, None)
    result = trainer.train()
    if not result.global_step:
        raise ValueError(
            f"No training step ran: {snapshot}'s {len(examples)} train questions have too few "
            f"distinct passages ({distinct}) for batches of {batch_size}."
        )
    model_dir = output_dir / "model"
    model.save(str(model_dir))

    after_vectors = _encode(model, corpus.texts)
    after = _measure_splits(snapshot, model, corpus, after_vectors)
    after |= _measure_question_sets(question_sets, model, corpus, after_vectors)
    metrics: dict[str, Any] = {
        split: {
            **{
                f"{key}_before": value for key, value in before[split].items() if key != "questions"
            },
            **{f"{key}_after": value for key, value in after[split].items() if key != "questions"},
            "questions": before[split]["questions"],
        }
        for split in before
    }
    metrics["train_examples"] = len(examples)
    metrics["train_loss"] = round(float(result.training_loss), 4)
    metrics["seconds"] = round(time.monotonic() - started, 1)
    return TrainedModel(
        path=model_dir,
        base_model=base,
        train_examples=len(examples),
        steps=int(result.global_step),
        metrics=metrics,
        dimensions=int(model.get_embedding_dimension()),
    )
