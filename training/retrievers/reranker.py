"""Training a cross-encoder reranker on a snapshot's reviewed pairs (issue 18).

Given a question and a passage, the cross-encoder scores whether the passage answers it. The
chat uses it to reorder the retrieved passages and as the answerability signal of its decline
decision (``chat.reranking``); the scoring itself is ``manualqa.lib.reranking``.

**Examples** (train split only): for each approved pair with a source chunk,

* a *positive*: the question with its source chunk's text;
* *hard negatives*: the question with the best passages the current retrieval finds for it
  (vector, without matching approved questions) that are not from the source page; a passage of
  the same page may answer too (pages repeat themselves), so it is never called a negative;
* *random negatives*: the question with chunks of other pages, drawn at random, so that the
  score also falls for passages retrieval would not offer.

**Model**: no cross-encoder weights can be downloaded here, so it starts from a BERT-style
encoder folder (the bundled all-MiniLM-L6-v2 by default) with a fresh one-logit head, trained
with binary cross-entropy for a bounded number of steps (``max_steps``), reading at most
``max_length`` word pieces of question and passage together.

**Threshold** (``decline_below``), chosen on the **eval** split, never on test: the eval split
holds answerable questions only (every pair is one a reviewer approved), so what can honestly be
chosen there is the false-refusal side: each eval question's candidates (retrieved as the chat
retrieves them) are scored, and ``decline_below`` is the highest score that leaves at most
``max_false_refusals`` (default 5%) of the eval questions with a best passage below it. That
declines as much as possible while keeping the false refusals the issue allows. How many
unanswerable questions it then declines cannot be measured on eval; as a stand-in, the same
eval questions are scored with their source page's passages taken away
(``eval_declined_without_source``), and the owner questions (``bench/reranker.py``) measure it
for real. The split ids it read are written to ``training.json`` in the model's folder.

Generated questions are phrased like the pages and score higher than owners' own, so a
threshold set on eval alone can refuse many owner questions (45% of Model 3's, for a reranker
trained to the end). ``threshold_question_set`` names a saved set of owners' questions (a
development set) that holds the threshold too: it is lowered until at most
``max_false_refusals`` of that set's answerable questions fall under it (:func:`hold_threshold`).
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from django.conf import settings

from curation.models import DocumentChunk, RetrievalModel
from training.models import DatasetSnapshot, SnapshotPair
from training.retrievers import Progress, Stopped, TrainedModel

logger = logging.getLogger("training.retrievers")

__all__ = [
    "DEFAULTS",
    "Example",
    "hold_threshold",
    "hyperparameters_check",
    "register",
    "train",
    "training_examples",
]

#: Hyperparameters and their defaults. Measured on the Model 3 snapshot (bench/reranker.py,
#: 2-core CPU shared with other work, load ~8): a step of 16 pairs of up to 256 word pieces took
#: ~12.5 s (5 s on a quieter machine), so 200 steps are 15-40 minutes; 80 steps (a sixth of one
#: pass over the 7,599 examples) were not enough to rank better than retrieval (eval hit@1
#: 0.526 retrieved, 0.309 reranked), so more steps, or a GPU, are needed for a useful model.
DEFAULTS: Final[dict[str, Any]] = {
    "max_steps": 200,
    "batch_size": 16,
    "learning_rate": 5e-5,
    "warmup_fraction": 0.1,
    "weight_decay": 0.01,
    "max_length": 256,
    "hard_negatives": 3,
    "random_negatives": 1,
    #: Candidates retrieved per question for hard negatives and for choosing the threshold.
    "candidates": 10,
    #: The largest share of (answerable) eval questions the threshold may decline.
    "max_false_refusals": 0.05,
    #: Eval questions scored for the threshold and the metrics (0: all of them).
    "eval_questions": 0,
    #: A saved question set of owners' questions (its slug; "" for none) whose answerable
    #: questions hold the threshold too: at most ``max_false_refusals`` of them declined. The
    #: eval split's questions are generated from the pages and score higher than owners' own:
    #: a reranker trained to the end on the Model 3 snapshot (bench/reranker.py) kept 4.6% of
    #: eval declined but refused 45% of answerable owner questions. Name a development set
    #: here, not the set the assistant is then judged on.
    "threshold_question_set": "",
    "seed": 42,
}


@dataclass(frozen=True)
class Example:
    """One training pair: a question, a passage, 1.0 when the passage answers it, and where
    the passage comes from (``positive``, ``hard`` or ``random``)."""

    question: str
    passage: str
    label: float
    kind: str


@dataclass(frozen=True)
class _Question:
    pair_id: int
    question: str
    chunk_id: int
    document_id: int
    text: str


def _hyperparameters(given: dict[str, Any] | None) -> dict[str, Any]:
    given = dict(given or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown reranker hyperparameters {unknown}; expected some of {sorted(DEFAULTS)}"
        )
    values = {**DEFAULTS, **given}
    for name in ("max_steps", "batch_size", "max_length", "candidates"):
        if not isinstance(values[name], int) or values[name] < 1:
            raise ValueError(f"reranker hyperparameter {name} must be a positive integer")
    for name in ("hard_negatives", "random_negatives", "eval_questions"):
        if not isinstance(values[name], int) or values[name] < 0:
            raise ValueError(f"reranker hyperparameter {name} must be an integer >= 0")
    if not 0.0 <= float(values["max_false_refusals"]) < 1.0:
        raise ValueError("reranker hyperparameter max_false_refusals must be in [0, 1)")
    if float(values["learning_rate"]) <= 0:
        raise ValueError("reranker hyperparameter learning_rate must be positive")
    if not isinstance(values["threshold_question_set"], str):
        raise ValueError("reranker hyperparameter threshold_question_set must be a set's slug")
    return values


def hyperparameters_check(given: dict[str, Any] | None) -> dict[str, Any]:
    """``DEFAULTS`` with ``given`` applied, checked when a job is launched: ``ValueError``
    naming a bad value or a threshold question set that is not saved."""
    values = _hyperparameters(given)
    if values["threshold_question_set"]:
        _saved_question_set(values["threshold_question_set"])
    return values


def _saved_question_set(slug: str):
    """The newest version of the saved question set ``slug``; ``ValueError`` if there is none."""
    from training.question_sets import question_set_version_get

    version = question_set_version_get(slug=slug)
    if version is None:
        raise ValueError(f"no saved question set {slug!r} to hold the reranker's threshold to")
    return version


def _threshold_questions(slug: str, snapshot: DatasetSnapshot) -> list[_Question]:
    """The answerable questions of the saved question set ``slug`` (none for "")."""
    if not slug:
        return []
    from training.question_sets import question_set_version_questions

    version = _saved_question_set(slug)
    manual_id = version.question_set.manual_id
    if manual_id is not None and manual_id != snapshot.manual_id:
        raise ValueError(
            f"question set {slug!r} is of another manual than snapshot #{snapshot.pk}'s"
        )
    rows = question_set_version_questions(version)
    questions = [
        _Question(0, row["question"], 0, 0, "") for row in rows if row.get("kind") != "unanswerable"
    ]
    if not questions:
        raise ValueError(f"question set {slug!r} has no answerable question")
    return questions


def _base_folder(base_model: str) -> Path:
    folder = Path(base_model or settings.EMBEDDING_MODEL)
    if not folder.is_dir():
        raise ValueError(
            f"the reranker's base model folder {str(folder)!r} does not exist (a cross-encoder "
            "starts from a local BERT-style model folder; nothing is downloaded)"
        )
    if not (folder / "config.json").is_file():
        raise ValueError(f"the reranker's base model folder {str(folder)!r} has no config.json")
    return folder


def _questions(snapshot: DatasetSnapshot, split: str) -> list[_Question]:
    """The split's pairs whose source chunk is still served (it has an embedding)."""
    rows = (
        SnapshotPair.objects.filter(
            snapshot=snapshot, split=split, qa_pair__chunk__embedding__isnull=False
        )
        .order_by("id")
        .values_list(
            "id",
            "question",
            "qa_pair__chunk_id",
            "qa_pair__chunk__document_id",
            "qa_pair__chunk__text",
        )
    )
    return [_Question(*row) for row in rows]


def _candidates(questions: Sequence[_Question], manual_id: int, k: int) -> list[list]:
    """Each question's ``k`` best passages as the chat retrieves them (without matching
    approved questions: these questions are approved pairs themselves)."""
    from chat.retrieval import embed_texts, retrieve

    vectors = embed_texts([q.question for q in questions]) if questions else []
    return [
        retrieve(
            question=q.question,
            manual_ids=[manual_id],
            k=k,
            match_questions=False,
            query_embedding=vector.tolist(),
        ).passages
        for q, vector in zip(questions, vectors, strict=True)
    ]


def training_examples(
    snapshot: DatasetSnapshot,
    *,
    hard_negatives: int,
    random_negatives: int,
    candidates: int,
    seed: int,
) -> tuple[list[Example], list[int]]:
    """The train split's examples (see the module docstring) and the pair ids they came from."""
    questions = _questions(snapshot, SnapshotPair.Split.TRAIN)
    rng = random.Random(seed)
    chunks = list(
        DocumentChunk.objects.filter(
            document__manual_id=snapshot.manual_id, embedding__isnull=False
        ).values_list("document_id", "text")
    )
    retrieved = _candidates(questions, snapshot.manual_id, candidates) if hard_negatives else []
    examples = []
    for index, q in enumerate(questions):
        examples.append(Example(q.question, q.text, 1.0, "positive"))
        if hard_negatives:
            others = [p.text for p in retrieved[index] if p.document_id != q.document_id]
            examples += [Example(q.question, text, 0.0, "hard") for text in others[:hard_negatives]]
        elsewhere = [text for document_id, text in chunks if document_id != q.document_id]
        for text in rng.sample(elsewhere, min(random_negatives, len(elsewhere))):
            examples.append(Example(q.question, text, 0.0, "random"))
    return examples, [q.pair_id for q in questions]


def train(
    snapshot: DatasetSnapshot,
    *,
    base_model: str,
    hyperparameters: dict[str, Any] | None,
    output_dir: Path,
    progress: Progress,
    should_stop: Callable[[], bool],
) -> TrainedModel:
    """Train a reranker on ``snapshot`` into ``output_dir`` (see the module docstring).

    Raises ``ValueError`` on bad input (an unknown hyperparameter, a missing base model folder,
    a non-empty ``output_dir``, a snapshot without usable train or eval pairs) and
    :class:`Stopped` when ``should_stop()`` turns true; ``output_dir`` is written only once the
    model is complete.
    """
    values = _hyperparameters(hyperparameters)
    base = _base_folder(base_model)
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise ValueError(f"the reranker's output folder {str(output_dir)!r} is not empty")
    if should_stop():
        raise Stopped()
    examples, train_ids = training_examples(
        snapshot,
        hard_negatives=values["hard_negatives"],
        random_negatives=values["random_negatives"],
        candidates=values["candidates"],
        seed=values["seed"],
    )
    if not train_ids:
        raise ValueError(
            f"snapshot #{snapshot.pk} has no train pairs with a served source chunk to train a "
            "reranker on"
        )
    evaluation = _questions(snapshot, SnapshotPair.Split.EVAL)
    if values["eval_questions"]:
        evaluation = evaluation[: values["eval_questions"]]
    if not evaluation:
        raise ValueError(
            f"snapshot #{snapshot.pk} has no eval pairs with a served source chunk to choose the "
            "reranker's threshold on"
        )
    held_to = _threshold_questions(values["threshold_question_set"], snapshot)
    logger.info(
        "reranker: %d examples from %d train questions; %d eval questions",
        len(examples),
        len(train_ids),
        len(evaluation),
    )
    started = time.monotonic()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".reranker-", dir=output_dir.parent))
    try:
        model, tokenizer, steps, loss = _fit(examples, base, values, progress, should_stop)
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        if should_stop():
            raise Stopped()
        from manualqa.lib.reranking import CrossEncoderScorer

        scorer = CrossEncoderScorer(staging, max_length=values["max_length"])
        metrics, decline_below = _evaluate(
            scorer, snapshot, evaluation, values["candidates"], values["max_false_refusals"]
        )
        if held_to:
            decline_below = hold_threshold(
                scorer,
                held_to,
                snapshot.manual_id,
                decline_below,
                k=values["candidates"],
                max_refusals=values["max_false_refusals"],
                metrics=metrics,
            )
        metrics.update(
            {
                f"train_{kind}": sum(e.kind == kind for e in examples)
                for kind in ("positive", "hard", "random")
            },
            train_loss=round(loss, 4) if loss is not None else None,
            train_seconds=round(time.monotonic() - started, 1),
        )
        info = {
            "threshold_question_set": values["threshold_question_set"] or None,
            "snapshot": snapshot.pk,
            "base_model": str(base),
            "hyperparameters": values,
            "train_pair_ids": train_ids,
            "threshold_split": SnapshotPair.Split.EVAL,
            "threshold_pair_ids": [q.pair_id for q in evaluation],
            "decline_below": decline_below,
            "metrics": metrics,
        }
        (staging / "training.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        if output_dir.exists():
            output_dir.rmdir()  # empty, checked above
        staging.rename(output_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return TrainedModel(
        path=output_dir,
        base_model=str(base),
        train_examples=len(examples),
        steps=steps,
        metrics={k: v for k, v in metrics.items() if v is not None},
        decline_below=decline_below,
    )


def _fit(
    examples: list[Example],
    base: Path,
    values: dict[str, Any],
    progress: Progress,
    should_stop: Callable[[], bool],
):
    """Binary cross-entropy on the examples, in shuffled batches, for ``max_steps`` steps (or
    until each example was seen three times, whichever comes first)."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )
    from transformers.utils import logging as hf_logging

    torch.manual_seed(values["seed"])
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "classifier.* newly initialised" is the point here
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(base), num_labels=1, local_files_only=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    model.train()
    batch_size = values["batch_size"]
    total = min(values["max_steps"], max(1, math.ceil(3 * len(examples) / batch_size)))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=float(values["learning_rate"]), weight_decay=values["weight_decay"]
    )
    schedule = get_linear_schedule_with_warmup(
        optimizer, int(total * float(values["warmup_fraction"])), total
    )
    rng = random.Random(values["seed"])
    order: list[int] = []
    running: float | None = None
    progress(0, total, None)
    for step in range(1, total + 1):
        if should_stop():
            raise Stopped()
        if len(order) < batch_size:
            more = list(range(len(examples)))
            rng.shuffle(more)
            order += more
        batch = [examples[i] for i in order[:batch_size]]
        del order[:batch_size]
        encoded = tokenizer(
            [e.question for e in batch],
            [e.passage for e in batch],
            padding=True,
            truncation="only_second",
            max_length=values["max_length"],
            return_tensors="pt",
        ).to(device)
        labels = torch.tensor([e.label for e in batch], device=device)
        logits = model(**encoded).logits.view(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        value = float(loss.detach())
        running = value if running is None else 0.9 * running + 0.1 * value
        progress(step, total, round(running, 4))
    model.to("cpu")
    model.eval()
    return model, tokenizer, total, running


def _scored(
    scorer, questions: Sequence[_Question], manual_id: int, k: int
) -> list[tuple[list, list[float]]]:
    """Each question's ``k`` candidates as the chat retrieves them, and the scorer's score of
    each (both empty when nothing is retrieved)."""
    return [
        (passages, scorer.score(q.question, [p.text for p in passages]))
        for q, passages in zip(questions, _candidates(questions, manual_id, k), strict=True)
    ]


def _evaluate(
    scorer, snapshot: DatasetSnapshot, evaluation: list[_Question], k: int, max_refusals: float
) -> tuple[dict[str, float | None], float]:
    """Hit@1 (the source page first) before and after reranking, and the threshold (see the
    module docstring), on the eval questions."""
    before = after = 0
    best, best_elsewhere = [], []
    for q, (passages, scores) in zip(
        evaluation, _scored(scorer, evaluation, snapshot.manual_id, k), strict=True
    ):
        if not passages:
            best.append(0.0)
            continue
        top = max(range(len(passages)), key=lambda i: scores[i])
        before += passages[0].document_id == q.document_id
        after += passages[top].document_id == q.document_id
        best.append(max(scores))
        others = [
            s for s, p in zip(scores, passages, strict=True) if p.document_id != q.document_id
        ]
        best_elsewhere.append(max(others) if others else 0.0)
    decline_below = choose_threshold(best, max_refusals)
    n = len(evaluation)
    metrics: dict[str, float | None] = {
        "eval_questions": n,
        "eval_hit_at_1_retrieved": round(before / n, 4),
        "eval_hit_at_1_reranked": round(after / n, 4),
        "eval_false_refusal_rate": round(sum(s < decline_below for s in best) / n, 4),
        "eval_declined_without_source": round(
            sum(s < decline_below for s in best_elsewhere) / len(best_elsewhere), 4
        )
        if best_elsewhere
        else None,
    }
    return metrics, decline_below


def hold_threshold(
    scorer,
    questions: Sequence[_Question],
    manual_id: int,
    decline_below: float,
    *,
    k: int,
    max_refusals: float,
    metrics: dict,
) -> float:
    """``decline_below`` lowered, where needed, so that at most ``max_refusals`` of the
    (answerable) ``questions`` have their best passage under it; what it measured goes into
    ``metrics``."""
    best = [max(scores, default=0.0) for _, scores in _scored(scorer, questions, manual_id, k)]
    held = min(decline_below, choose_threshold(best, max_refusals))
    metrics.update(
        threshold_from_eval=decline_below,
        question_set_questions=len(best),
        question_set_refusals_at_eval_threshold=round(
            sum(score < decline_below for score in best) / len(best), 4
        ),
        question_set_false_refusal_rate=round(sum(score < held for score in best) / len(best), 4),
    )
    return held


def choose_threshold(best_scores: Sequence[float], max_refusals: float) -> float:
    """The highest threshold that leaves at most ``max_refusals`` of ``best_scores`` (each an
    answerable question's best passage score) below it."""
    ordered = sorted(best_scores)
    if not ordered:
        raise ValueError("no scores to choose a threshold on")
    return ordered[math.floor(max_refusals * len(ordered))]


def register(trained: TrainedModel, name: str) -> RetrievalModel:
    """Record ``trained`` as a reranker the assistants may use."""
    return RetrievalModel.objects.create(
        name=name,
        kind=RetrievalModel.Kind.RERANKER,
        path=str(trained.path),
        base_model=trained.base_model,
        decline_below=trained.decline_below,
        metrics={
            **trained.metrics,
            "steps": trained.steps,
            "train_examples": trained.train_examples,
        },
    )
