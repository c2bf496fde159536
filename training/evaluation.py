"""Evaluating assistants on a question set: create, claim, execute, cancel, report, export.

An :class:`~training.models.EvaluationRun` puts every *subject* (an assistant, or a manual's
default retrieval) to every question of a set and stores one
:class:`~training.models.EvaluationItem` per answer, with the per-answer metrics of
:mod:`training.metrics` (pure functions); :func:`summarize` turns them into the run's summary,
``{subject: {metric: value}}``, with a key left out wherever it does not apply.

Question sets
    The test split of a dataset snapshot (the approved answers are the references, the pair's
    document its source), or JSON Lines with ``{"id"?, "question", "answer"?, "sources"?,
    "must_include"?, "kind"?}`` per line (:func:`questions_parse_jsonl`; a bad line is refused
    with its number and nothing is stored). The questions are frozen on the run when it is
    created.

How each answer is made
    Generators answer through the chat's own answering (``chat.services``), as an owner of
    their own: the session ``evaluation-run-<id>``, which no browser session can have (Django's
    keys are 32 letters and digits), so the conversations never show up for a real owner. Each
    question starts a new conversation, so no answer sees another's history. The chat's
    per-owner rate limit is for people, not for a batch: :func:`_chat_answer` asks
    ``chat.services.answer(..., batch=True)``, the same checks and pipeline without the rate
    limit. Inactive assistants can be evaluated too (a model not offered to owners yet).

What is measured (``EvaluationItem.metrics``)
    * ``token_f1``, ``rouge_l`` and ``semantic_similarity`` (cosine of the answer's and the
      reference's embeddings with ``EMBEDDING_MODEL``) against the reference answer, when the
      question has one;
    * ``must_include_rate``: the share of the question's ``must_include`` strings in the answer;
    * ``refused`` (the assistant declined, by its own flag or :func:`training.metrics.is_refusal`)
      and ``unanswerable``, from which the summary computes ``refusal_accuracy`` and
      ``false_refusal_rate``;
    * ``rank``, for RAG assistants and in retrieval-only runs, when the question names its
      sources: the rank of the first expected page among the *documents* retrieval returned, best
      first (several chunks of one page count once), over the top :data:`RETRIEVAL_DEPTH`
      chunks, so that hit@5 means something even for an assistant that puts 4 passages in its
      prompt. The ranking is the assistant's own (its manuals, method and question matching);
      its first ``top_k`` chunks are exactly the passages it answers from;
    * ``citation_hit`` (RAG): 1.0 when a document the answer cites is an expected page, 0.0 when
      it cites only others (absent when it cites nothing);
    * ``context_recall``: the share of ``must_include`` strings found in the ``top_k`` passages,
      i.e. whether the generator was given what it needed;
    * ``latency_ms`` (question to last token, retrieval included), ``prompt_tokens`` and
      ``completion_tokens``;
    * with a judge, ``judge_correctness`` and ``judge_faithfulness`` (to the retrieved passages;
      RAG only), each a 1-5 grade mapped onto 0-1.

    A failed answer (the model's endpoint failed) scores 0 on the answer-quality metrics (a
    failed answer is a wrong one), and counts in ``errors``; it has no latency or refusal.

Retrieval only
    No generator runs: each subject's retrieval ranks the pages (hit@k, MRR) and its confidence
    decides whether it would decline (``refused``: below the assistant's ``min_score``, where
    the chat declines without calling a model). With a manual instead of assistants the subject
    is the retrieval RAG assistants get by default (the ``Assistant`` model's defaults: vector,
    question matching on, top 4, ``min_score`` 0.35).

Matching sources
    Expected sources are page file names (``charging_instructions.md``, ``charging.html``);
    documents are named by the ingestion (a path relative to the manual's root, or for a crawl
    the URL path under the start page). :func:`page_key` reduces both to the page's base name
    without its extension, through :func:`training.metrics.source_key`, so
    ``data_gpt35_v2/docs/keys.md/##Key Card``, ``manual/charging.html`` and ``charging.md``
    match the names a question set uses.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from curation.models import DocumentChunk
from manualqa.jobs import lifecycle, runner
from training import metrics
from training.models import DatasetSnapshot, EvaluationItem, EvaluationRun, SnapshotPair

logger = logging.getLogger("training.evaluation")

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "HEADLINE_METRICS",
    "KINDS",
    "METRICS",
    "RETRIEVAL_DEPTH",
    "citation_hit",
    "evaluation_item_failures",
    "evaluation_item_record",
    "evaluation_report",
    "evaluation_run_cancel",
    "evaluation_run_claim",
    "evaluation_run_create",
    "evaluation_run_csv",
    "evaluation_run_execute",
    "evaluation_run_export",
    "evaluation_runs_fail_stale",
    "evaluation_runs_for_job",
    "judge_prompt_render",
    "judge_scores_parse",
    "page_key",
    "questions_from_snapshot",
    "questions_parse_jsonl",
    "ranked_documents",
    "summarize",
    "summary_table",
]

#: Chunks retrieved to rank pages (the fusion's candidate count in ``chat.retrieval``).
RETRIEVAL_DEPTH: Final = 20
KINDS: Final = ("answerable", "unanswerable")
#: The session key prefix of the owner that evaluation answers belong to.
EVALUATION_SESSION_PREFIX: Final = "evaluation-run-"
#: Largest question file accepted (bytes): 68 questions take 20 KB.
MAX_QUESTIONS_BYTES: Final = 5 * 1024 * 1024
#: Bad lines listed in a refusal before "and N more".
MAX_LISTED_PROBLEMS: Final = 20
_PAGE_SUFFIXES: Final = (".markdown", ".md", ".html", ".htm", ".txt")

DEFAULT_JUDGE_PROMPT: Final = """\
You are grading the answer an owner's-manual assistant gave to a car owner.

Question:
{question}

Reference answer (empty when there is none):
{reference}

Passages from the manual that the assistant was given (empty when it was given none):
{context}

The assistant's answer:
{answer}

Grade two things from 1 (worst) to 5 (best):
- correctness: does the answer state the same facts as the reference answer (without a
  reference: does it answer the question correctly)? Declining to answer scores 1, unless the
  question cannot be answered from the manual, where declining scores 5.
- faithfulness: is every statement in the answer supported by the passages? Use null when no
  passages were given.

Reply with JSON only, for example: {"correctness": 4, "faithfulness": 5}"""
_JUDGE_PLACEHOLDERS: Final = ("{question}", "{reference}", "{context}", "{answer}")


@dataclass(frozen=True)
class Metric:
    """How a summary key is shown: its label, whether higher is better (None: neither), and
    whether it is a 0-1 score (shown to three places and drawn on the chart)."""

    key: str
    label: str
    higher_is_better: bool | None
    unit: str = "score"


#: Every summary key, in the order reports show them.
METRICS: Final = (
    Metric("hit@1", "Hit@1", True),
    Metric("hit@3", "Hit@3", True),
    Metric("hit@5", "Hit@5", True),
    Metric("mrr", "MRR", True),
    Metric("context_recall", "Context recall", True),
    Metric("citation_hit_rate", "Citation hit", True),
    Metric("must_include_rate", "Must-include", True),
    Metric("refusal_accuracy", "Refusal accuracy", True),
    Metric("false_refusal_rate", "False refusals", False),
    Metric("token_f1", "Token F1", True),
    Metric("rouge_l", "ROUGE-L", True),
    Metric("semantic_similarity", "Semantic sim.", True),
    Metric("supported_sentence_rate", "Supported sentences", True),
    Metric("model_supported_rate", "Model text supported", True),
    Metric("loop_rate", "Loops", False),
    Metric("answer_words", "Words (median)", None, "words"),
    Metric("judge_correctness", "Judge: correct", True),
    Metric("judge_faithfulness", "Judge: faithful", True),
    Metric("latency_p50_ms", "Latency p50 (ms)", False, "ms"),
    Metric("latency_p95_ms", "Latency p95 (ms)", False, "ms"),
    Metric("prompt_tokens", "Prompt tokens", None, "tokens"),
    Metric("completion_tokens", "Completion tokens", None, "tokens"),
    Metric("errors", "Errors", False, "count"),
    Metric("count", "Answers", None, "count"),
)
METRICS_BY_KEY: Final = {metric.key: metric for metric in METRICS}
#: The 0-1 metrics the report's bar chart draws, when present.
HEADLINE_METRICS: Final = (
    "hit@5",
    "mrr",
    "must_include_rate",
    "refusal_accuracy",
    "token_f1",
    "rouge_l",
    "semantic_similarity",
    "supported_sentence_rate",
    "judge_correctness",
)


# --------------------------------------------------------------------------------------------
# Question sets


def _string_list(row: Mapping[str, Any], key: str) -> list[str]:
    value = row.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f'"{key}" must be a list of strings')
    return [item.strip() for item in value if item.strip()]


def question_normalize(row: Mapping[str, Any], *, default_id: str) -> dict[str, Any]:
    """One question-set record in the stored form; ``ValueError`` says what is wrong with it."""
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError('it has no "question" (a non-empty string)')
    question = question.strip()
    limit = settings.CHAT_MAX_QUESTION_CHARS
    if len(question) > limit:
        raise ValueError(
            f"the question is {len(question):,} characters, over the chat's limit of {limit:,}"
        )
    answer = row.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise ValueError('"answer" must be a string')
    kind = row.get("kind", "answerable")
    if kind is None:
        kind = "answerable"
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (use {' or '.join(repr(k) for k in KINDS)})")
    identifier = row.get("id")
    if identifier is None or identifier == "":
        identifier = default_id
    elif not isinstance(identifier, str | int) or isinstance(identifier, bool):
        raise ValueError('"id" must be a string or a number')
    return {
        "id": str(identifier),
        "question": question,
        "answer": (answer or "").strip(),
        "sources": _string_list(row, "sources"),
        "must_include": _string_list(row, "must_include"),
        "kind": kind,
    }


def questions_parse_jsonl(raw: str | bytes) -> list[dict[str, Any]]:
    """The questions of a JSON Lines file, each in the stored form (see the module docstring).

    Blank lines are skipped. Any bad line (not JSON, not an object, no ``question``, an unknown
    ``kind``, a repeated ``id``) refuses the whole file with a ``ValidationError`` whose
    messages name every bad line by number, so nothing half-read is ever stored.
    """
    if isinstance(raw, bytes):
        if len(raw) > MAX_QUESTIONS_BYTES:
            raise ValidationError(
                f"The question file is {len(raw):,} bytes; the limit is {MAX_QUESTIONS_BYTES:,}."
            )
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"The question file is not UTF-8 text (byte {exc.start} cannot be read)."
            ) from None
    problems: list[str] = []
    questions: list[dict[str, Any]] = []
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            problems.append(f"Line {number}: not valid JSON ({getattr(exc, 'msg', exc)}).")
            continue
        if not isinstance(row, dict):
            problems.append(f"Line {number}: expected a JSON object, got {type(row).__name__}.")
            continue
        try:
            question = question_normalize(row, default_id=f"line-{number}")
        except ValueError as exc:
            problems.append(f"Line {number}: {exc}.")
            continue
        if question["id"] in first_line_of:
            problems.append(
                f"Line {number}: the id {question['id']!r} is already used on line "
                f"{first_line_of[question['id']]}."
            )
            continue
        first_line_of[question["id"]] = number
        questions.append(question)
    if problems:
        shown = problems[:MAX_LISTED_PROBLEMS]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more bad lines.")
        raise ValidationError(shown)
    if not questions:
        raise ValidationError("The question file has no questions.")
    return questions


def questions_from_snapshot(snapshot: DatasetSnapshot) -> list[dict[str, Any]]:
    """The test split of ``snapshot`` as questions: the approved answer is the reference and
    the pair's document the expected source."""
    pairs = snapshot.pairs.filter(split=SnapshotPair.Split.TEST).order_by("id")
    return [
        {
            "id": f"pair-{pair.qa_pair_id}" if pair.qa_pair_id else f"snapshot-pair-{pair.pk}",
            "question": pair.question,
            "answer": pair.answer,
            "sources": [pair.source_name] if pair.source_name else [],
            "must_include": [],
            "kind": "answerable",
        }
        for pair in pairs
    ]


# --------------------------------------------------------------------------------------------
# Per-answer helpers (plain values)


def page_key(name: str) -> str:
    """The page a source name, a document's source name or a URL refers to, comparably.

    :func:`training.metrics.source_key` (last page segment, heading dropped, case folded) of
    the name without a URL's scheme and host, query or fragment, and then without the file
    extension, so a question set written against the markdown pages (``charging.md``) also
    matches a manual ingested from its HTML pages (``charging.html``).
    """
    text = name.strip().replace("\\", "/")
    if "://" in text:
        text = urlsplit(text).path
    page, _, _ = text.partition("/#")  # "page.md/##Heading": the heading is not the page
    page = page.split("?", 1)[0].split("#", 1)[0]
    key = metrics.source_key(page)
    for suffix in _PAGE_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)]
    return key


def ranked_documents(source_names: Iterable[str]) -> list[str]:
    """Distinct documents in the order retrieval first returned them (best first)."""
    return list(dict.fromkeys(name for name in source_names if name))


def document_rank(retrieved_sources: Sequence[str], expected_sources: Iterable[str]) -> int | None:
    """1-based rank of the first retrieved document that is an expected page (None: none)."""
    return metrics.retrieval_ranks(
        [page_key(source) for source in retrieved_sources],
        [page_key(source) for source in expected_sources],
    )


def citation_hit(cited_sources: Sequence[str], expected_sources: Iterable[str]) -> float | None:
    """1.0 when a cited document is an expected page, 0.0 when none is; None when the answer
    cites nothing or nothing is expected."""
    expected = {page_key(source) for source in expected_sources} - {""}
    if not expected or not cited_sources:
        return None
    return 1.0 if any(page_key(source) in expected for source in cited_sources) else 0.0


def judge_prompt_render(
    template: str, *, question: str, reference: str, context: str, answer: str
) -> str:
    """The judge's prompt: ``template`` with its ``{question}``, ``{reference}``,
    ``{context}`` and ``{answer}`` filled in (other braces, such as a JSON example, stay)."""
    values = {
        "{question}": question,
        "{reference}": reference,
        "{context}": context,
        "{answer}": answer,
    }
    # One pass, so text filled in (an answer containing "{context}") is never replaced again.
    pattern = re.compile("|".join(re.escape(placeholder) for placeholder in values))
    return pattern.sub(lambda match: values[match.group(0)], template)


_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)
_GRADE = r"\s*[\"']?\s*[:=]\s*[\"']?\s*(null|none|n/?a|\d+(?:\.\d+)?)"


def _grade(value: Any, name: str) -> float | None:
    if value is None or (
        isinstance(value, str) and value.strip().lower() in {"null", "none", "n/a", "na"}
    ):
        return None
    try:
        grade = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the {name} grade {value!r} is not a number") from None
    if not 1 <= grade <= 5:
        raise ValueError(f"the {name} grade {grade:g} is outside 1-5")
    return (grade - 1) / 4


def judge_scores_parse(text: str) -> dict[str, float | None]:
    """``{"correctness", "faithfulness"}`` on 0-1 from a judge's reply (1-5 grades).

    Reads the first JSON object in the reply (models like to wrap it in prose or a code
    fence), else ``correctness: 4``-style text. Faithfulness may be null. ``ValueError`` when
    no correctness grade can be read or a grade is outside 1-5.
    """
    found: dict[str, Any] = {}
    for candidate in _JSON_OBJECT.findall(text):
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            found = {str(key).lower(): value for key, value in parsed.items()}
            break
    if "correctness" not in found:
        for name in ("correctness", "faithfulness"):
            match = re.search(rf"{name}{_GRADE}", text, re.IGNORECASE)
            if match:
                found[name] = match.group(1)
    if "correctness" not in found:
        raise ValueError(f"no correctness grade in the judge's reply {text[:200]!r}")
    return {
        "correctness": _grade(found["correctness"], "correctness"),
        "faithfulness": _grade(found.get("faithfulness"), "faithfulness"),
    }


def _mean(values: Iterable[float]) -> float | None:
    collected = [float(value) for value in values]
    return math.fsum(collected) / len(collected) if collected else None


def summarize(items: Sequence[Mapping[str, Any]]) -> dict[str, float | int]:
    """One subject's summary from its items' metric dicts.

    :func:`training.metrics.aggregate` (hit@k, MRR, must-include, refusals, F1, ROUGE-L,
    semantic similarity, latency percentiles, tokens, count), plus the means of
    ``context_recall``, ``citation_hit`` (as ``citation_hit_rate``) and the judge's grades,
    and ``errors`` (answers that failed). As in ``aggregate``, a key no item has is left out.
    """
    summary = metrics.aggregate(items)
    for item_key, summary_key in (
        ("context_recall", "context_recall"),
        ("citation_hit", "citation_hit_rate"),
        ("judge_correctness", "judge_correctness"),
        ("judge_faithfulness", "judge_faithfulness"),
    ):
        value = _mean(item[item_key] for item in items if item.get(item_key) is not None)
        if value is not None:
            summary[summary_key] = value
    summary["errors"] = sum(1 for item in items if item.get("error"))
    return summary


def best_subjects(summary: Mapping[str, Mapping[str, float]]) -> dict[str, set[str]]:
    """For each metric with a direction, the subjects with the best value (ties share it).

    Nothing is marked when fewer than two subjects have the metric.
    """
    best: dict[str, set[str]] = {}
    for metric in METRICS:
        if metric.higher_is_better is None:
            continue
        values = {
            subject: float(figures[metric.key])
            for subject, figures in summary.items()
            if figures.get(metric.key) is not None
        }
        if len(values) < 2:
            continue
        target = max(values.values()) if metric.higher_is_better else min(values.values())
        best[metric.key] = {
            subject for subject, value in values.items() if math.isclose(value, target)
        }
    return best


def format_metric(key: str, value: float | int | None) -> str:
    """A summary value as reports show it."""
    if value is None:
        return "-"
    unit = METRICS_BY_KEY[key].unit if key in METRICS_BY_KEY else "score"
    if unit == "ms":
        return f"{value:,.0f}"
    if unit == "tokens":
        return f"{value:,.1f}"
    if unit == "words":
        return f"{value:,.0f}"
    if unit == "count":
        return f"{int(value):,}"
    return f"{value:.3f}"


def summary_table(summary: Mapping[str, Mapping[str, float]]) -> str:
    """The summary as a plain-text table: a row per subject, a column per metric present."""
    keys = [m.key for m in METRICS if any(m.key in figures for figures in summary.values())]
    if not summary:
        return "(no results)"
    subject_width = max(len("subject"), *(len(subject) for subject in summary))
    widths = [max(len(key), 7) for key in keys]
    lines = [
        "  ".join(
            [
                "subject".ljust(subject_width),
                *(k.rjust(w) for k, w in zip(keys, widths, strict=True)),
            ]
        )
    ]
    for subject, figures in summary.items():
        cells = [format_metric(key, figures.get(key)) for key in keys]
        lines.append(
            "  ".join(
                [
                    subject.ljust(subject_width),
                    *(c.rjust(w) for c, w in zip(cells, widths, strict=True)),
                ]
            )
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Creating, claiming and cancelling runs


def _require_launcher(user) -> None:
    if user is not None and not user.has_perm("training.launch_trainingjob"):
        raise PermissionDenied("Running evaluations needs the Trainer role.")


def _manual_label(manual) -> str:
    return f"{manual.name} (default retrieval)"


@transaction.atomic
def evaluation_run_create(
    *,
    user,
    questions_jsonl: str | bytes | None = None,
    questions_name: str = "",
    snapshot: DatasetSnapshot | None = None,
    assistants: Iterable = (),
    manual=None,
    retrieval_only: bool = False,
    judge_endpoint=None,
    judge_prompt: str = "",
    name: str = "",
    training_job=None,
    max_questions: int | None = None,
    enqueue: bool = True,
) -> EvaluationRun:
    """Validate an evaluation and queue it (on the ``default`` queue); refusals name the field.

    The questions come from ``questions_jsonl`` (the text of a JSONL file, see
    :func:`questions_parse_jsonl`) or from the test split of ``snapshot``, and are frozen on
    the run; ``max_questions`` keeps the first N. Subjects are ``assistants``, and in a
    ``retrieval_only`` run also ``manual``'s default retrieval. A judge grades answers, so a
    retrieval-only run cannot have one; its prompt must have an ``{answer}`` placeholder.
    """
    from curation.models import DocumentChunk

    _require_launcher(user)
    assistants = list(assistants)
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    questions: list[dict[str, Any]] = []
    if (questions_jsonl is None) == (snapshot is None):
        refuse(
            "questions",
            "Choose one question set: the test split of a dataset snapshot, or a JSONL file.",
        )
    elif snapshot is not None:
        questions = questions_from_snapshot(snapshot)
        questions_name = questions_name or f"{snapshot} (test split)"
        if not questions:
            refuse("snapshot", f"The snapshot {snapshot} has no pairs in its test split.")
    else:
        try:
            questions = questions_parse_jsonl(questions_jsonl)
        except ValidationError as exc:
            for message in exc.messages:
                refuse("questions", message)
    if max_questions is not None:
        if max_questions < 1:
            refuse("max_questions", "Evaluate at least one question.")
        questions = questions[:max_questions]

    if manual is not None and not retrieval_only:
        refuse(
            "manual",
            "A manual alone has no generator: measure its retrieval with retrieval only, or "
            "choose assistants.",
        )
    if manual is not None and not (
        DocumentChunk.objects.filter(document__manual=manual, embedding__isnull=False).exists()
    ):
        refuse("manual", f"The manual {manual.name} has no embedded chunks: ingest it first.")
    if not assistants and manual is None:
        refuse("assistants", "Choose at least one assistant, or a manual for retrieval only.")
    if retrieval_only:
        for assistant in assistants:
            if not assistant.manuals.exists():
                refuse(
                    "assistants",
                    f"The assistant {assistant.name} has no manuals, so it has no retrieval.",
                )
    if judge_endpoint is not None:
        if retrieval_only:
            refuse("judge_endpoint", "A judge grades answers; a retrieval-only run has none.")
        judge_prompt = judge_prompt.strip() or DEFAULT_JUDGE_PROMPT
        if "{answer}" not in judge_prompt:
            refuse("judge_prompt", "The judge prompt needs an {answer} placeholder.")
    else:
        judge_prompt = ""
    if errors:
        raise ValidationError(errors)

    subjects = len(assistants) + (1 if manual is not None else 0)
    run = EvaluationRun.objects.create(
        name=(name.strip() or _default_name(assistants, manual, retrieval_only, questions_name))[
            :200
        ],
        question_source=(
            EvaluationRun.QuestionSource.SNAPSHOT
            if snapshot is not None
            else EvaluationRun.QuestionSource.UPLOAD
        ),
        snapshot=snapshot,
        questions_name=questions_name[:300],
        questions=questions,
        manual=manual,
        retrieval_only=retrieval_only,
        training_job=training_job,
        judge_endpoint=judge_endpoint,
        judge_prompt=judge_prompt,
        judge_model=_endpoint_model(judge_endpoint) if judge_endpoint is not None else "",
        total=len(questions) * subjects,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    run.assistants.set(assistants)
    if enqueue:
        from training.tasks import run_evaluation

        transaction.on_commit(lambda: run_evaluation.apply_async((run.pk,), queue="default"))
    return run


def _default_name(assistants, manual, retrieval_only: bool, questions_name: str) -> str:
    names = [assistant.name for assistant in assistants]
    if manual is not None:
        names.append(_manual_label(manual))
    what = "Retrieval" if retrieval_only else "Evaluation"
    on = f" on {questions_name}" if questions_name else ""
    return f"{what}: {', '.join(names)}{on}"


def _endpoint_model(endpoint) -> str:
    if endpoint.model:
        return endpoint.model
    if endpoint.kind == "local":
        return "SmolLM2-135M-Instruct (bundled)"
    return endpoint.name


def evaluation_run_claim(*, run_id: int, task_id: str = "") -> bool:
    """Take a queued run, or a running one whose worker stopped beating. False: someone has it.

    A reclaimed run continues where it stopped: answers already stored are not asked again.
    """
    return lifecycle.claim(
        EvaluationRun, run_id, task_id=task_id, stale_after_s=settings.TRAINING_STALE_AFTER_S
    )


def evaluation_runs_fail_stale() -> int:
    """Mark failed every running evaluation whose worker stopped beating; return how many.

    Uses the training heartbeat settings (``TRAINING_HEARTBEAT_S``, ``TRAINING_STALE_AFTER_S``).
    Each update is conditional on the heartbeat it read, so a worker that beats in between
    keeps its run.
    """

    def message(run: EvaluationRun, quiet: float) -> str:
        return (
            f"The worker stopped sending heartbeats ({quiet:.0f} s of silence, more than the "
            f"{settings.TRAINING_STALE_AFTER_S} s allowed) after {run.done} of {run.total} "
            "answers: it was probably killed or lost its machine."
        )

    return lifecycle.fail_stale(
        EvaluationRun, stale_after_s=settings.TRAINING_STALE_AFTER_S, message=message
    )


@transaction.atomic
def evaluation_run_cancel(*, run: EvaluationRun, user) -> EvaluationRun:
    """Cancel a queued run now, or ask a running one to stop after its current answer."""
    _require_launcher(user)
    run = EvaluationRun.objects.select_for_update().get(pk=run.pk)
    if run.is_finished:
        raise ValidationError(f"The evaluation is already {run.get_status_display().lower()}.")
    if run.status == EvaluationRun.Status.QUEUED:
        return lifecycle.finish(
            run, EvaluationRun.Status.CANCELLED, message="Cancelled before it started."
        )
    EvaluationRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    run.refresh_from_db()
    return run


# --------------------------------------------------------------------------------------------
# Executing a run


@dataclass(frozen=True)
class Subject:
    """Who answers: an assistant, or (``assistant`` None) a manual's default retrieval."""

    label: str
    assistant: Any
    manual_ids: tuple[int, ...]
    method: str
    match_questions: bool
    top_k: int
    min_score: float
    rag: bool


def _subjects(run: EvaluationRun) -> list[Subject]:
    from chat.models import Assistant

    subjects = []
    for assistant in run.assistants.select_related("endpoint").order_by("name"):
        subjects.append(
            Subject(
                label=assistant.name,
                assistant=assistant,
                manual_ids=tuple(assistant.manuals.order_by("name").values_list("pk", flat=True)),
                method=assistant.retrieval,
                match_questions=assistant.match_questions,
                top_k=assistant.top_k,
                min_score=assistant.min_score,
                rag=assistant.mode == Assistant.Mode.RAG,
            )
        )
    if run.manual_id is not None:

        def default(field: str):
            return Assistant._meta.get_field(field).default

        subjects.append(
            Subject(
                label=_manual_label(run.manual),
                assistant=None,
                manual_ids=(run.manual_id,),
                method=default("retrieval"),
                match_questions=default("match_questions"),
                top_k=default("top_k"),
                min_score=default("min_score"),
                rag=True,
            )
        )
    return subjects


def evaluation_run_execute(
    *, run_id: int, on_item: Callable[[EvaluationItem], None] | None = None
) -> EvaluationRun:
    """Run a claimed evaluation to the end (or to a cancel) and store its summary.

    An expected failure (every answer failed, e.g. an endpoint that is down) ends FAILED with
    the reason; a crash ends ERRORED with the traceback on the row. ``on_item`` is called after
    each stored answer (the management command prints progress with it).
    """
    run = EvaluationRun.objects.select_related("manual", "judge_endpoint").get(pk=run_id)
    if run.status != EvaluationRun.Status.RUNNING:
        return run  # only a claimed run is executed
    heartbeat = runner.Heartbeat(EvaluationRun, run.pk, settings.TRAINING_HEARTBEAT_S)
    heartbeat.start()
    try:
        return _execute(run, on_item)
    except Exception as exc:
        return runner.errored(run, exc, doing="The evaluation crashed: ", summary=_summary_of(run))
    finally:
        heartbeat.stop()


def _summary_of(run: EvaluationRun) -> dict[str, dict[str, float | int]]:
    """The run's summary from its stored items, subjects in the order they ran."""
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for subject, item_metrics, error in run.items.order_by("id").values_list(
        "subject", "metrics", "error"
    ):
        by_subject.setdefault(subject, []).append({**item_metrics, "error": error})
    return {subject: summarize(items) for subject, items in by_subject.items()}


def _execute(run: EvaluationRun, on_item) -> EvaluationRun:
    subjects = _subjects(run)
    done = set(run.items.values_list("subject", "position"))
    EvaluationRun.objects.filter(pk=run.pk).update(
        done=len(done), total=len(subjects) * len(run.questions)
    )
    evaluator = _Evaluator(run)
    for subject in subjects:
        for position, question in enumerate(run.questions):
            if (subject.label, position) in done:
                continue
            if EvaluationRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
                return lifecycle.finish(
                    run,
                    EvaluationRun.Status.CANCELLED,
                    message=f"Cancelled after {run.items.count()} of {run.total} answers.",
                    summary=_summary_of(run),
                )
            item = evaluator.evaluate(subject, position, question)
            progress: dict[str, Any] = {"done": F("done") + 1, "heartbeat_at": timezone.now()}
            if evaluator.judge_calls:
                progress.update(
                    judge_prompt_tokens=evaluator.judge_tokens_in,
                    judge_completion_tokens=evaluator.judge_tokens_out,
                    judge_cost=evaluator.judge_cost,
                )
            EvaluationRun.objects.filter(pk=run.pk).update(**progress)
            if on_item is not None:
                on_item(item)
    summary = _summary_of(run)
    items = run.items.count()
    failed = run.items.exclude(error="").count()
    if items and failed == items:
        first = run.items.exclude(error="").order_by("id").first()
        return lifecycle.finish(
            run,
            EvaluationRun.Status.FAILED,
            message=f"Every answer failed; the first said: {first.error}",
            summary=summary,
        )
    message = f"{failed} of {items} answers failed." if failed else ""
    return lifecycle.finish(run, EvaluationRun.Status.SUCCEEDED, message=message, summary=summary)


def _embed(texts: list[str]) -> list[list[float]]:
    from curation.embeddings import encode

    vectors = encode(texts, model_name=settings.EMBEDDING_MODEL, device=settings.EMBEDDING_DEVICE)
    return [vector.tolist() for vector in vectors]


def answer_checks(message, answer: str, passages: Sequence, *, declined: bool) -> dict[str, Any]:
    """The judge-free checks of one answer: ``answer_words``, ``loops`` (0/1: it repeats
    itself), ``supported_sentence_rate`` (share of its sentences that the passages it rests on
    support, ``chat.verification``; not for a decline, which states nothing) and
    ``model_supported_rate`` (the same for the model's own sentences before unsupported ones
    were cut, from the answer's record; only where a model wrote text)."""
    from chat.retrieval import embed_texts
    from chat.verification import verify

    checks: dict[str, Any] = {"answer_words": metrics.answer_words(answer)}
    checks["loops"] = metrics.loops(answer)
    if not declined and answer.strip():
        texts = _resting_texts(message) or [passage.text for passage in passages]
        if texts:
            rate = verify(answer, list(enumerate(texts, start=1)), embed=embed_texts).supported_rate
            if rate is not None:
                checks["supported_sentence_rate"] = rate
    counted = [v for v in message.verification or [] if v.get("reason") not in ("empty", "decline")]
    if counted:
        checks["model_supported_rate"] = sum(bool(v.get("supported")) for v in counted) / len(
            counted
        )
    return checks


def _resting_texts(message) -> list[str]:
    """The texts of the passages an answer cites (what it rests on), in citation order."""
    ids = [c.get("chunk_id") for c in message.citations or [] if c.get("chunk_id")]
    if not ids:
        return []
    texts = dict(DocumentChunk.objects.filter(pk__in=ids).values_list("pk", "text"))
    return [texts[pk] for pk in ids if pk in texts]


def _chat_answer(*, assistant, question: str, owner):
    """The chat's own answer in batch mode: no per-owner rate limit (it is for people), and an
    inactive assistant answers too. The stored answer message (``error`` set when it failed)."""
    from chat import services as chat_services

    return chat_services.answer(assistant=assistant, question=question, owner=owner, batch=True)


class _Evaluator:
    """Answers and scores one (subject, question) at a time for one run, caching what repeats:
    the reference embeddings, the judge's client, the judge's running cost."""

    def __init__(self, run: EvaluationRun) -> None:
        from chat.owners import Owner
        from curation.embeddings import load_model

        self.run = run
        self.owner = Owner.for_session(f"{EVALUATION_SESSION_PREFIX}{run.pk}")
        # Loaded before the first question, so that its latency is not the model's load time.
        load_model(settings.EMBEDDING_MODEL, settings.EMBEDDING_DEVICE)
        self.reference_vectors: dict[int, list[float]] = {}
        self.judge_client = None
        if run.judge_endpoint is not None and not run.retrieval_only:
            from manualqa.lib.llm import make_client

            self.judge_client = make_client(run.judge_endpoint.config())
        self.judge_calls = 0
        self.judge_tokens_in = run.judge_prompt_tokens
        self.judge_tokens_out = run.judge_completion_tokens
        self.judge_cost: float | None = run.judge_cost

    def evaluate(self, subject: Subject, position: int, question: Mapping[str, Any]):
        if self.run.retrieval_only:
            values = self._retrieval_only(subject, question)
        else:
            values = self._answered(subject, position, question)
        return EvaluationItem.objects.create(
            run=self.run,
            position=position,
            assistant=subject.assistant,
            subject=subject.label,
            question_id=question["id"],
            question=question["question"],
            reference=question.get("answer", ""),
            kind=question["kind"],
            sources=question["sources"],
            must_include=question["must_include"],
            **values,
        )

    # -- retrieval ---------------------------------------------------------------------------

    def _retrieve(self, subject: Subject, question: str):
        """(the ranked documents over RETRIEVAL_DEPTH chunks, the passages the subject answers
        from, whether it is confident enough to answer, seconds it took)."""
        from chat.retrieval import embed_question, retrieve

        started = time.monotonic()
        vector = embed_question(question)
        own = retrieve(
            question=question,
            manual_ids=subject.manual_ids,
            k=subject.top_k,
            method=subject.method,
            match_questions=subject.match_questions,
            query_embedding=vector,
        )
        seconds = time.monotonic() - started
        deep = retrieve(
            question=question,
            manual_ids=subject.manual_ids,
            k=max(RETRIEVAL_DEPTH, subject.top_k),
            method=subject.method,
            match_questions=subject.match_questions,
            query_embedding=vector,
        )
        documents = ranked_documents(passage.source_name for passage in deep.passages)
        return documents, own.passages, own.confident(subject.min_score), seconds

    @staticmethod
    def _retrieval_metrics(question, documents, passages) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if question["sources"]:
            values["rank"] = document_rank(documents, question["sources"])
        if question["must_include"] and question["kind"] != "unanswerable":
            context = "\n".join(passage.text for passage in passages)
            values["context_recall"] = metrics.must_include_rate(context, question["must_include"])
        return values

    def _retrieval_only(self, subject: Subject, question: Mapping[str, Any]) -> dict[str, Any]:
        documents, passages, confident, seconds = self._retrieve(subject, question["question"])
        unanswerable = question["kind"] == "unanswerable"
        latency_ms = round(1000 * seconds)
        item_metrics = {
            **self._retrieval_metrics(question, documents, passages),
            "refused": not confident,
            "unanswerable": unanswerable,
            "latency_ms": latency_ms,
        }
        return {
            "retrieved_sources": documents[:10],
            "metrics": item_metrics,
            "latency_ms": latency_ms,
            "refused": not confident,
        }

    # -- answering ---------------------------------------------------------------------------

    def _answered(
        self, subject: Subject, position: int, question: Mapping[str, Any]
    ) -> dict[str, Any]:
        documents: list[str] = []
        passages: list = []
        item_metrics: dict[str, Any] = {}
        if subject.rag and subject.manual_ids:
            documents, passages, _, _ = self._retrieve(subject, question["question"])
            item_metrics.update(self._retrieval_metrics(question, documents, passages))
        message = _chat_answer(
            assistant=subject.assistant, question=question["question"], owner=self.owner
        )
        # What the owner reads: the answer, and the quote from the manual shown under it.
        answer = message.visible_text if not message.error else ""
        cited = ranked_documents(
            citation.get("source_name", "")
            for citation in message.citations
            if citation.get("in_prompt", True)
        )
        reference = question.get("answer", "")
        unanswerable = question["kind"] == "unanswerable"
        values: dict[str, Any] = {
            "answer": answer,
            "retrieved_sources": documents[:10],
            "cited_sources": cited,
            "error": message.error,
            "chat_message_id": message.pk,
        }
        if reference and not unanswerable:
            item_metrics["token_f1"] = metrics.token_f1(answer, reference)
            item_metrics["rouge_l"] = metrics.rouge_l(answer, reference)
            item_metrics["semantic_similarity"] = self._similarity(position, answer, reference)
        rate = metrics.must_include_rate(answer, question["must_include"])
        if rate is not None and not unanswerable:
            item_metrics["must_include_rate"] = rate
        if subject.rag and subject.manual_ids:
            hit = citation_hit(cited, question["sources"])
            if hit is not None:
                item_metrics["citation_hit"] = hit
        if message.error:
            values["metrics"] = item_metrics
            return values

        outcome = metrics.refusal_outcome(answer, unanswerable)
        refused = bool(message.declined or outcome["refused"])
        item_metrics.update(
            refused=refused,
            unanswerable=unanswerable,
            latency_ms=message.latency_ms,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            **answer_checks(message, answer, passages, declined=refused),
        )
        if self.judge_client is not None:
            context = "\n\n".join(
                f"[{number}] {passage.heading_path}\n{passage.text}"
                for number, passage in enumerate(passages if subject.rag else [], start=1)
            )
            values["judge"] = self._judge(question, answer, context)
            for key in ("correctness", "faithfulness"):
                if values["judge"].get(key) is not None:
                    item_metrics[f"judge_{key}"] = values["judge"][key]
        values.update(
            metrics=item_metrics,
            latency_ms=message.latency_ms,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            refused=refused,
        )
        return values

    def _similarity(self, position: int, answer: str, reference: str) -> float:
        if not answer.strip():
            return 0.0  # an empty text against a non-empty one (metrics' convention)
        if position not in self.reference_vectors:
            self.reference_vectors[position] = _embed([reference])[0]
        return metrics.cosine(_embed([answer])[0], self.reference_vectors[position])

    def _judge(self, question: Mapping[str, Any], answer: str, context: str) -> dict[str, Any]:
        """The judge's grades for one answer, with its raw reply, tokens and cost; a judge
        that fails or answers unreadably leaves the grades out and says why in ``error``."""
        from manualqa.lib.llm import LLMError

        prompt = judge_prompt_render(
            self.run.judge_prompt,
            question=question["question"],
            reference=question.get("answer", ""),
            context=context,
            answer=answer,
        )
        self.judge_calls += 1
        try:
            completion = self.judge_client.complete(
                [{"role": "user", "content": prompt}], temperature=0.0
            )
        except LLMError as exc:
            return {"error": f"The judge failed: {exc.message}"}
        self.judge_tokens_in += completion.tokens_in
        self.judge_tokens_out += completion.tokens_out
        cost = completion.cost(self.judge_client.config)
        if cost is not None:
            self.judge_cost = (self.judge_cost or 0.0) + cost
        record: dict[str, Any] = {
            "raw": completion.text[:2000],
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "cost": cost,
        }
        try:
            record.update(judge_scores_parse(completion.text))
        except ValueError as exc:
            record["error"] = f"The judge's reply could not be read: {exc}"
        if not context:
            record["faithfulness"] = None  # nothing to be faithful to (a direct answer)
        return record


# --------------------------------------------------------------------------------------------
# Reading runs: the report, exports, the runs of a training job


def evaluation_runs_for_job(job) -> QuerySet[EvaluationRun]:
    """Runs launched for ``job``, or that evaluate an assistant answering with its model."""
    lookup = Q(training_job=job)
    if job.registered_endpoint_id is not None:
        lookup |= Q(assistants__endpoint_id=job.registered_endpoint_id)
    ids = EvaluationRun.objects.filter(lookup).values("pk")
    return EvaluationRun.objects.filter(pk__in=ids).select_related("created_by", "snapshot")


def evaluation_item_failures(item: EvaluationItem) -> list[str]:
    """Why an answer counts as a failure (empty: it did not fail), for the drill-down."""
    values = item.metrics or {}
    reasons = []
    if item.error:
        reasons.append("the answer failed")
    if "rank" in values and (values["rank"] is None or values["rank"] > 5):
        reasons.append("no expected page in the top 5")
    if values.get("refused") is True and not values.get("unanswerable"):
        reasons.append("declined an answerable question")
    if values.get("refused") is False and values.get("unanswerable"):
        reasons.append("answered an unanswerable question")
    if values.get("must_include_rate") is not None and values["must_include_rate"] < 1:
        reasons.append("missing must-include text")
    if values.get("loops"):
        reasons.append("the answer repeats itself")
    rate = values.get("supported_sentence_rate")
    if rate is not None and rate < 1:
        reasons.append("sentences the passages do not support")
    model_rate = values.get("model_supported_rate")
    if model_rate is not None and model_rate < 1:
        reasons.append("the model wrote sentences the manual does not support (cut)")
    if values.get("judge_correctness") is not None and values["judge_correctness"] < 0.5:
        reasons.append("the judge graded it incorrect")
    return reasons


def _chart(summary: Mapping[str, Mapping[str, float]], subjects: list[str]) -> dict[str, Any]:
    """Bar geometry for the headline 0-1 metrics: a group per metric, a bar per subject."""
    keys = [key for key in HEADLINE_METRICS if any(key in summary[s] for s in subjects)]
    width, height, left, top, bottom = 760, 250, 36, 30, 50
    plot_height = height - top - bottom
    if not keys or not subjects:
        return {"groups": [], "width": width, "height": height}
    group_width = (width - left - 10) / len(keys)
    bar_width = min(36.0, (group_width - 12) / len(subjects))
    palette = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777")
    groups = []
    for index, key in enumerate(keys):
        x0 = left + index * group_width + (group_width - bar_width * len(subjects)) / 2
        bars = []
        for position, subject in enumerate(subjects):
            value = summary[subject].get(key)
            if value is None:
                continue
            bar_height = max(0.0, min(1.0, float(value))) * plot_height
            bars.append(
                {
                    "subject": subject,
                    "value": f"{float(value):.3f}",
                    "x": round(x0 + position * bar_width, 1),
                    "y": round(top + plot_height - bar_height, 1),
                    "width": round(bar_width - 2, 1),
                    "height": round(bar_height, 1),
                    "color": palette[position % len(palette)],
                }
            )
        groups.append(
            {
                "label": METRICS_BY_KEY[key].label,
                "label_x": round(left + index * group_width + group_width / 2, 1),
                "bars": bars,
            }
        )
    legend = [
        {
            "subject": subject,
            "color": palette[position % len(palette)],
            "x": left + position * 180,
        }
        for position, subject in enumerate(subjects)
    ]
    return {
        "groups": groups,
        "legend": legend,
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "baseline": top + plot_height,
        "middle": top + plot_height / 2,
        "label_y": height - bottom + 18,
    }


def _item_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def evaluation_report(run: EvaluationRun) -> dict[str, Any]:
    """What the report page shows: the summary table (best values marked), the chart, and the
    questions with every subject's answer side by side, the questions with failures first."""
    summary = run.summary or _summary_of(run)
    items = list(run.items.order_by("position", "id"))
    subjects = list(summary) or list(dict.fromkeys(item.subject for item in items))
    for item in items:
        if item.subject not in subjects:
            subjects.append(item.subject)
    best = best_subjects(summary)
    columns = [m for m in METRICS if any(m.key in summary.get(s, {}) for s in subjects)]
    rows = [
        {
            "subject": subject,
            "cells": [
                {
                    "key": metric.key,
                    "display": format_metric(metric.key, summary.get(subject, {}).get(metric.key)),
                    "best": subject in best.get(metric.key, set()),
                }
                for metric in columns
            ],
        }
        for subject in subjects
    ]
    by_question: dict[int, dict[str, Any]] = {}
    for item in items:
        entry = by_question.setdefault(
            item.position,
            {
                "position": item.position,
                "id": item.question_id,
                "question": item.question,
                "reference": item.reference,
                "kind": item.kind,
                "sources": item.sources,
                "must_include": item.must_include,
                "answers": {},
            },
        )
        entry["answers"][item.subject] = {
            "item": item,
            "failures": evaluation_item_failures(item),
            "metrics": [
                (key, _item_value(value))
                for key, value in item.metrics.items()
                if key not in ("unanswerable", "latency_ms")
            ],
        }
    questions = []
    for entry in by_question.values():
        answers = [entry["answers"].get(subject) for subject in subjects]
        entry["answers"] = answers
        entry["failure_count"] = sum(1 for answer in answers if answer and answer["failures"])
        f1s = [
            answer["item"].metrics.get("token_f1")
            for answer in answers
            if answer and answer["item"].metrics.get("token_f1") is not None
        ]
        entry["mean_f1"] = _mean(f1s)
        questions.append(entry)
    questions.sort(
        key=lambda q: (
            -q["failure_count"],
            q["mean_f1"] if q["mean_f1"] is not None else 1.0,
            q["position"],
        )
    )
    return {
        "subjects": subjects,
        "columns": columns,
        "rows": rows,
        "chart": _chart(summary, [s for s in subjects if s in summary]),
        "questions": questions,
        "failed_questions": sum(1 for q in questions if q["failure_count"]),
    }


def evaluation_item_record(item: EvaluationItem) -> dict[str, Any]:
    """One answer as the JSON export (and ``manage.py evaluate --json``) writes it."""
    return {
        "assistant": item.subject,
        "question_id": item.question_id,
        "question": item.question,
        "kind": item.kind,
        "reference": item.reference,
        "sources": item.sources,
        "must_include": item.must_include,
        "answer": item.answer,
        "retrieved_sources": item.retrieved_sources,
        "cited_sources": item.cited_sources,
        "refused": item.refused,
        "latency_ms": item.latency_ms,
        "prompt_tokens": item.prompt_tokens,
        "completion_tokens": item.completion_tokens,
        "error": item.error,
        "metrics": item.metrics,
        "judge": item.judge,
        "failures": evaluation_item_failures(item),
    }


def evaluation_run_export(run: EvaluationRun) -> dict[str, Any]:
    """``{"run": {...}, "summary": {subject: {metric: value}}, "items": [...]}``."""
    return {
        "run": {
            "id": run.pk,
            "name": run.name,
            "status": run.status,
            "questions": run.questions_name,
            "question_count": len(run.questions),
            "retrieval_only": run.retrieval_only,
            "judge_model": run.judge_model,
            "judge_prompt": run.judge_prompt,
            "judge_prompt_tokens": run.judge_prompt_tokens,
            "judge_completion_tokens": run.judge_completion_tokens,
            "judge_cost": run.judge_cost,
            "created_at": run.created_at.isoformat() if run.created_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
        "summary": run.summary or _summary_of(run),
        "items": [evaluation_item_record(item) for item in run.items.order_by("position", "id")],
    }


_CSV_FIXED = (
    "assistant",
    "question_id",
    "kind",
    "question",
    "reference",
    "answer",
    "refused",
    "error",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "sources",
    "retrieved_sources",
    "cited_sources",
    "must_include",
)
_CSV_METRICS = (
    "rank",
    "context_recall",
    "citation_hit",
    "must_include_rate",
    "token_f1",
    "rouge_l",
    "semantic_similarity",
    "supported_sentence_rate",
    "model_supported_rate",
    "loops",
    "answer_words",
    "judge_correctness",
    "judge_faithfulness",
)


def evaluation_run_csv(run: EvaluationRun) -> str:
    """A row per answer: the question, the answer, and every per-answer metric."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*_CSV_FIXED, *_CSV_METRICS, "failures"])
    for item in run.items.order_by("position", "id"):
        record = evaluation_item_record(item)
        row = []
        for key in _CSV_FIXED:
            value = record[key]
            if isinstance(value, list):
                value = " | ".join(value)
            row.append("" if value is None else value)
        row += ["" if item.metrics.get(key) is None else item.metrics[key] for key in _CSV_METRICS]
        row.append("; ".join(record["failures"]))
        writer.writerow(row)
    return out.getvalue()
