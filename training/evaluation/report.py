"""Reading evaluation runs: the report and its chart, the JSON and CSV exports, a job's runs."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from django.db.models import Q, QuerySet

from training.evaluation import judge_check
from training.evaluation.baselines import evaluation_gates
from training.evaluation.compare import (
    GateError,
    comparison_rows,
    run_comparisons,
    subject_answers,
    summary_by_kind,
    winners,
)
from training.evaluation.runner import _summary_of
from training.evaluation.scoring import (
    HEADLINE_METRICS,
    METRICS,
    METRICS_BY_KEY,
    _mean,
    format_metric,
)
from training.evaluation.stats import ITEM_VALUES
from training.models import EvaluationBaseline, EvaluationItem, EvaluationRun

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


def run_summary(run: EvaluationRun) -> dict[str, dict[str, float | int]]:
    """The run's summary with its intervals: as stored, or recomputed from the answers for a
    run stored before intervals were (the bootstrap is seeded, so both give the same)."""
    stored = run.summary or {}
    if any(key.endswith("_ci_low") for figures in stored.values() for key in figures):
        return stored
    return _summary_of(run) if run.items.exists() else stored


def _chart(
    summary: Mapping[str, Mapping[str, float]], subjects: list[str], *, judge_trusted: bool
) -> dict[str, Any]:
    """Bar geometry for the headline 0-1 metrics: a group per metric, a bar per subject. The
    judge's grades are a headline only once the judge agrees with people."""
    keys = [
        key
        for key in HEADLINE_METRICS
        if any(key in summary[s] for s in subjects)
        and (judge_trusted or not key.startswith("judge_"))
    ]
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


def _cells(
    summary: Mapping[str, Any], columns, best: Mapping[str, set[str]], subject: str
) -> list[dict[str, Any]]:
    cells = []
    for metric in columns:
        low = summary.get(f"{metric.key}_ci_low")
        high = summary.get(f"{metric.key}_ci_high")
        interval = ""
        if low is not None and high is not None and metric.unit == "score":
            interval = f"{low:.2f}–{high:.2f}"
        elif low is not None and high is not None:
            interval = f"{format_metric(metric.key, low)}–{format_metric(metric.key, high)}"
        cells.append(
            {
                "key": metric.key,
                "display": format_metric(metric.key, summary.get(metric.key)),
                "interval": interval,
                "best": subject in best.get(metric.key, set()),
            }
        )
    return cells


def _kind_tables(
    by_kind: Mapping[str, Mapping[str, Mapping[str, Any]]], subjects: list[str]
) -> list[dict[str, Any]]:
    """A summary table per question category (``kind``), intervals included."""
    kinds = sorted({kind for figures in by_kind.values() for kind in figures})
    tables = []
    for kind in kinds:
        figures = {s: by_kind.get(s, {}).get(kind, {}) for s in subjects}
        columns = [
            m
            for m in METRICS
            if (m.key in ITEM_VALUES or m.key == "count")
            and m.key not in ("prompt_tokens", "completion_tokens")
            and any(m.key in f for f in figures.values())
        ]
        tables.append(
            {
                "kind": kind,
                "questions": max((f.get("count", 0) for f in figures.values()), default=0),
                "columns": columns,
                "rows": [
                    {"subject": s, "cells": _cells(figures[s], columns, {}, s)}
                    for s in subjects
                    if figures[s]
                ],
            }
        )
    return tables


def _baselines(run: EvaluationRun) -> dict[str, Any] | None:
    """Better / worse / same against each assistant's baseline run (None: no baseline)."""
    if (
        not EvaluationBaseline.objects.filter(assistant__in=run.assistants.all())
        .exclude(run=run)
        .exists()
    ):
        return None
    try:
        gates = evaluation_gates(run)
    except GateError as exc:
        return {"error": str(exc), "gates": []}
    return {
        "error": "",
        "gates": [
            {
                "baseline": gate.baseline_id,
                "passed": gate.passed,
                "subjects": [
                    {**pair, "rows": comparison_rows(pair["comparisons"])} for pair in gate.pairs
                ],
            }
            for gate in gates
        ],
    }


def evaluation_report(run: EvaluationRun) -> dict[str, Any]:
    """What the report page shows: the summary table with 95% intervals (a winner marked only
    where the difference is significant), the per-category tables, the pairwise comparisons,
    the baseline's verdicts, the judge's agreement with people, the chart, and the questions
    with every subject's answer side by side, grouped by category, failures first."""
    summary = run_summary(run)
    items = list(run.items.order_by("position", "id"))
    subjects = list(summary) or list(dict.fromkeys(item.subject for item in items))
    for item in items:
        if item.subject not in subjects:
            subjects.append(item.subject)
    by_subject = subject_answers(run)  # read once for the categories and the comparisons
    comparisons = run_comparisons(run, by_subject)
    best = winners(comparisons)
    columns = [m for m in METRICS if any(m.key in summary.get(s, {}) for s in subjects)]
    rows = [
        {"subject": subject, "cells": _cells(summary.get(subject, {}), columns, best, subject)}
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
            q["kind"],
            -q["failure_count"],
            q["mean_f1"] if q["mean_f1"] is not None else 1.0,
            q["position"],
        )
    )
    failures_by_kind: dict[str, list[int]] = {}
    for q in questions:
        tally = failures_by_kind.setdefault(q["kind"], [0, 0])
        tally[0] += 1 if q["failure_count"] else 0
        tally[1] += 1
    check = run.judge_check or None
    return {
        "subjects": subjects,
        "columns": columns,
        "rows": rows,
        "kinds": _kind_tables(summary_by_kind(run, by_subject), subjects),
        "pairs": [
            {"a": pair["a"], "b": pair["b"], "rows": comparison_rows(pair["comparisons"])}
            for pair in comparisons
        ],
        "baselines": _baselines(run),
        "judge": {
            "check": check,
            "text": judge_check.describe(check),
            "trusted": judge_check.trusted(check),
        }
        if run.judge_model
        else None,
        "chart": _chart(
            summary,
            [s for s in subjects if s in summary],
            judge_trusted=judge_check.trusted(check),
        ),
        "questions": questions,
        "failures_by_kind": [
            {"kind": kind, "failed": failed, "questions": total}
            for kind, (failed, total) in failures_by_kind.items()
        ],
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
    """``{"run": {...}, "summary": {subject: {metric: value, metric_ci_low, metric_ci_high}},
    "summary_by_kind": {subject: {kind: {...}}}, "comparisons": [...], "judge_check",
    "items": [...]}``."""
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
        **evaluation_run_statistics(run),
        "items": [evaluation_item_record(item) for item in run.items.order_by("position", "id")],
    }


def evaluation_run_statistics(run: EvaluationRun) -> dict[str, Any]:
    """The run's figures without its answers: ``summary`` (with intervals),
    ``summary_by_kind``, ``comparisons`` (every pair of subjects) and ``judge_check``; the
    API's ``statistics/`` and part of the JSON export."""
    answers = subject_answers(run)
    return {
        "summary": run_summary(run),
        "summary_by_kind": summary_by_kind(run, answers),
        "comparisons": [
            {"a": pair["a"], "b": pair["b"], "metrics": [c.as_dict() for c in pair["comparisons"]]}
            for pair in run_comparisons(run, answers)
        ],
        "judge_check": run.judge_check or None,
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


def evaluation_run_summary_csv(run: EvaluationRun) -> str:
    """The summary as CSV: a row per subject, category ("all" for the whole set) and metric,
    with the value and its 95% interval (empty where the metric is not a mean)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["assistant", "kind", "metric", "value", "ci_low", "ci_high"])
    by_kind = summary_by_kind(run)
    for subject, figures in run_summary(run).items():
        for kind, values in [("all", figures), *by_kind.get(subject, {}).items()]:
            for metric in METRICS:
                if metric.key not in values:
                    continue
                writer.writerow(
                    [
                        _cell(subject),
                        _cell(kind),
                        metric.key,
                        values[metric.key],
                        values.get(f"{metric.key}_ci_low", ""),
                        values.get(f"{metric.key}_ci_high", ""),
                    ]
                )
    return out.getvalue()
