"""Reading a run's answers for statistics: per-category summaries, comparisons between its
subjects, and the regression gate against a baseline run.

The arithmetic is in :mod:`.stats` (no database); this module reads the items and pairs them.
Questions are matched by their id (``question_id``; a set's ids are unique, and a snapshot's
are its pairs'), else by their text, so two runs on the same question file line up question
by question even when one of them was limited or cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Final

from training.evaluation import stats
from training.evaluation.scoring import HEADLINE_METRICS, METRICS, METRICS_BY_KEY
from training.models import EvaluationRun

#: The metrics two subjects are compared on: every mean metric with a direction.
COMPARED_METRICS: Final = tuple(
    metric.key
    for metric in METRICS
    if metric.key in stats.ITEM_VALUES and metric.higher_is_better is not None
)
#: What the regression gate refuses to see get significantly worse.
GATE_METRICS: Final = (*HEADLINE_METRICS, "false_refusal_rate")


@dataclass
class SubjectAnswers:
    """One subject's answers in a run, keyed by question."""

    label: str
    assistant_id: int | None = None
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)


def subject_answers(run: EvaluationRun) -> list[SubjectAnswers]:
    """The run's subjects in the order they ran, each with its answers' metric dicts."""
    subjects: dict[str, SubjectAnswers] = {}
    rows = run.items.order_by("id").values_list(
        "subject", "assistant_id", "question_id", "question", "kind", "metrics", "error"
    )
    for label, assistant_id, question_id, question, kind, item_metrics, error in rows:
        subject = subjects.setdefault(label, SubjectAnswers(label, assistant_id))
        key = question_id or question
        subject.items[key] = {**item_metrics, "error": error}
        subject.kinds[key] = kind or "answerable"
    return list(subjects.values())


def summary_by_kind(
    run: EvaluationRun, answers: list[SubjectAnswers] | None = None
) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{subject: {kind: {metric: value, metric_ci_low: ..., ...}}}`` (``answers``: the run's
    :func:`subject_answers`, when the caller has read them already)."""
    found = {}
    for subject in answers if answers is not None else subject_answers(run):
        keys = list(subject.items)
        found[subject.label] = stats.by_kind(
            [subject.items[key] for key in keys], [subject.kinds[key] for key in keys]
        )
    return found


def compare_subjects(
    a: SubjectAnswers, b: SubjectAnswers, metrics: Iterable[str] = COMPARED_METRICS
) -> list[stats.Comparison]:
    """``a`` against ``b`` on each metric either of them has, question by question."""
    return [
        stats.compare(key, a.items, b.items, higher_is_better=METRICS_BY_KEY[key].higher_is_better)
        for key in metrics
        if stats.item_values(list(a.items.values()), key)
        and stats.item_values(list(b.items.values()), key)
    ]


def run_comparisons(
    run: EvaluationRun, answers: list[SubjectAnswers] | None = None
) -> list[dict[str, Any]]:
    """Every pair of the run's subjects: ``{"a", "b", "comparisons": [Comparison, ...]}``."""
    subjects = answers if answers is not None else subject_answers(run)
    return [
        {"a": a.label, "b": b.label, "comparisons": compare_subjects(a, b)}
        for a, b in combinations(subjects, 2)
    ]


def winners(comparisons: list[dict[str, Any]]) -> dict[str, set[str]]:
    """For each metric, the subject significantly better than every other one (at most one).

    With two subjects that is the better of the two where the difference is significant;
    with more, a subject must beat each of the others. Where no subject does, the metric has
    no winner: the report says "no detectable difference" rather than starring noise.
    """
    beaten: dict[tuple[str, str], set[str]] = {}
    subjects: set[str] = set()
    for pair in comparisons:
        subjects.update((pair["a"], pair["b"]))
        for comparison in pair["comparisons"]:
            if comparison.verdict == "better":
                beaten.setdefault((comparison.metric, pair["a"]), set()).add(pair["b"])
            elif comparison.verdict == "worse":
                beaten.setdefault((comparison.metric, pair["b"]), set()).add(pair["a"])
    found: dict[str, set[str]] = {}
    for (metric, subject), losers in beaten.items():
        if losers >= subjects - {subject}:
            found[metric] = {subject}
    return found


# --------------------------------------------------------------------------------------------
# The regression gate


class GateError(ValueError):
    """The runs cannot be compared (no common subject or no common question)."""


@dataclass(frozen=True)
class GateResult:
    """The run against its baseline: a comparison per matched subject, and the regressions
    (headline metrics significantly worse)."""

    run_id: int
    baseline_id: int
    pairs: list[dict[str, Any]]

    @property
    def regressions(self) -> list[dict[str, Any]]:
        return [
            {"subject": pair["subject"], "baseline_subject": pair["baseline_subject"], **c}
            for pair in self.pairs
            for c in pair["comparisons"]
            if c["metric"] in GATE_METRICS and c["verdict"] == "worse"
        ]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "baseline": self.baseline_id,
            "passed": self.passed,
            "regressions": self.regressions,
            "subjects": self.pairs,
        }

    def describe(self) -> str:
        """What the gate found, a line per regression (``manage.py evaluate --gate``)."""
        if self.passed:
            return (
                "Gate passed: no headline metric is significantly worse than run "
                f"#{self.baseline_id}."
            )
        lines = [f"Gate failed against run #{self.baseline_id}:"]
        for regression in self.regressions:
            label = METRICS_BY_KEY[regression["metric"]].label
            lines.append(
                f"  {regression['subject']}: {label} ({regression['metric']}) fell from "
                f"{regression['b']:.3f} to {regression['a']:.3f} on {regression['n']} "
                f"questions (p={regression['p_value']:.3g}, {regression['method']})"
            )
        return "\n".join(lines)


def _match(
    subjects: list[SubjectAnswers], baseline: list[SubjectAnswers]
) -> list[tuple[SubjectAnswers, SubjectAnswers]]:
    by_assistant = {s.assistant_id: s for s in baseline if s.assistant_id is not None}
    by_label = {s.label: s for s in baseline}
    pairs = []
    for subject in subjects:
        match = by_assistant.get(subject.assistant_id) or by_label.get(subject.label)
        if match is None and len(subjects) == 1 and len(baseline) == 1:
            match = baseline[0]  # one assistant against one: a new model against the old one
        if match is not None:
            pairs.append((subject, match))
    return pairs


def evaluation_gate(
    run: EvaluationRun, baseline: EvaluationRun, *, assistant_ids: set[int] | None = None
) -> GateResult:
    """Compare ``run`` with ``baseline`` subject by subject, question by question.

    A subject is matched with the baseline's answers of the same assistant, else of the same
    label, else (one subject on each side) with the baseline's only subject. ``GateError``
    names the problem when no subject or no question is shared, so a gate never passes for
    having compared nothing. ``assistant_ids`` limits the gate to those assistants' answers
    (a baseline set for some of the run's assistants only).
    """
    if run.pk == baseline.pk:
        raise GateError(f"Run #{run.pk} cannot be its own baseline.")
    if baseline.status != EvaluationRun.Status.SUCCEEDED:
        raise GateError(
            f"The baseline run #{baseline.pk} {baseline.get_status_display().lower()}; "
            "a baseline must have succeeded."
        )
    subjects, baseline_subjects = subject_answers(run), subject_answers(baseline)
    if assistant_ids is not None:
        subjects = [s for s in subjects if s.assistant_id in assistant_ids]
    pairs = _match(subjects, baseline_subjects)
    if not pairs:
        raise GateError(
            f"Run #{run.pk} ({', '.join(s.label for s in subjects) or 'no answers'}) and the "
            f"baseline run #{baseline.pk} "
            f"({', '.join(s.label for s in baseline_subjects) or 'no answers'}) share no "
            "assistant."
        )
    found = []
    for subject, matched in pairs:
        shared = subject.items.keys() & matched.items.keys()
        if not shared:
            raise GateError(
                f"{subject.label} in run #{run.pk} and {matched.label} in run #{baseline.pk} "
                "answered no question in common (the gate compares the same questions)."
            )
        found.append(
            {
                "subject": subject.label,
                "baseline_subject": matched.label,
                "questions": len(shared),
                "comparisons": [
                    c.as_dict() for c in compare_subjects(subject, matched, GATE_METRICS)
                ],
            }
        )
    return GateResult(run.pk, baseline.pk, found)


def comparison_rows(comparisons: Iterable[stats.Comparison | Mapping[str, Any]]) -> list[dict]:
    """Comparisons as the report's table rows (label, figures formatted, verdict)."""
    rows = []
    for comparison in comparisons:
        c = comparison.as_dict() if isinstance(comparison, stats.Comparison) else comparison
        metric = METRICS_BY_KEY[c["metric"]]
        rows.append(
            {
                **c,
                "label": metric.label,
                "shown": {
                    key: "-" if c[key] is None else f"{c[key]:+.3f}"
                    for key in ("difference", "ci_low", "ci_high")
                },
                "p_shown": "-" if c["p_value"] is None else f"{c['p_value']:.3g}",
            }
        )
    return rows
