"""Scoring answers, with no database: the metrics table, page keys and ranks, the judge's prompt
and grades, and the run summary."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from training import metrics

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
