"""Reading evaluation runs: the report and its chart, the JSON and CSV exports, a job's runs."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from django.db.models import Q, QuerySet

from training.evaluation.runner import _summary_of
from training.evaluation.scoring import (
    HEADLINE_METRICS,
    METRICS,
    METRICS_BY_KEY,
    _mean,
    best_subjects,
    format_metric,
)
from training.models import EvaluationItem, EvaluationRun

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


#: What a spreadsheet reads as the start of a formula (security review L7).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: questions and answers come from owners and
    models, and ``=HYPERLINK(...)`` in a cell would otherwise run when a reviewer opens it."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def evaluation_run_csv(run: EvaluationRun) -> str:
    """A row per answer: the question, the answer, and every per-answer metric; text cells
    that a spreadsheet would run as a formula are quoted with a leading apostrophe."""
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
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()
