"""How sure a summary is: bootstrap intervals, per-category summaries, paired comparisons.

No database. Everything reads the per-answer metric dicts that :func:`.scoring.summarize`
reads (``EvaluationItem.metrics`` plus ``error``), so a figure here is always the same mean the
summary shows, with its uncertainty beside it.

Intervals
    Each mean metric gets a 95% percentile-bootstrap interval: the answers it is defined for
    are resampled with replacement :data:`RESAMPLES` times with a fixed seed, so a run's report
    gives the same interval every time it is drawn. Medians and percentiles (latency, words)
    get none: the issue asks for means, and a bootstrap of a 95th percentile from 60 answers
    says little.

Comparisons
    Two subjects are compared on the questions both answered (matched by position in the run,
    or by question id across runs). A 0/1 metric (hit@k, refusals, loops, citation hit) uses
    McNemar's exact test on the discordant questions; any other mean the paired randomization
    (sign-flip) test of the per-question differences, exact on few questions, whose p-value
    does not shrink on a handful of questions the way a bootstrap's does. The difference's
    interval is a paired bootstrap of the same differences. A difference counts only when
    ``p < ALPHA``; otherwise there is "no detectable difference". Each metric is tested at 5%
    on its own (no correction for testing several), which the report says.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from training import metrics
from training.evaluation.scoring import summarize

#: Resamples per bootstrap: enough for a stable 95% interval at the second decimal.
RESAMPLES: Final = 2000
#: The seed of every bootstrap, so a report is reproducible.
SEED: Final = 20261203
CONFIDENCE: Final = 0.95
#: Significance level of a comparison.
ALPHA: Final = 0.05

Item = Mapping[str, Any]


def _rank(k: int | None) -> Callable[[Item], float | None]:
    def value(item: Item) -> float | None:
        if "rank" not in item:
            return None
        if k is None:
            return metrics.reciprocal_rank(item["rank"])
        return metrics.hit_at(item["rank"], k)

    return value


def _plain(key: str, *, answerable_only: bool = False) -> Callable[[Item], float | None]:
    def value(item: Item) -> float | None:
        if answerable_only and item.get("unanswerable", False):
            return None
        found = item.get(key)
        return None if found is None else float(found)

    return value


def _refused(*, unanswerable: bool) -> Callable[[Item], float | None]:
    def value(item: Item) -> float | None:
        if item.get("refused") is None or bool(item.get("unanswerable", False)) != unanswerable:
            return None
        return 1.0 if item["refused"] else 0.0

    return value


#: For each mean metric of the summary, the per-answer value its mean is taken over (None:
#: the metric does not apply to that answer). The same rules as ``training.metrics.aggregate``
#: and ``scoring.summarize``, which a test checks.
ITEM_VALUES: Final[dict[str, Callable[[Item], float | None]]] = {
    "hit@1": _rank(1),
    "hit@3": _rank(3),
    "hit@5": _rank(5),
    "mrr": _rank(None),
    "context_recall": _plain("context_recall"),
    "citation_hit_rate": _plain("citation_hit"),
    "must_include_rate": _plain("must_include_rate"),
    "refusal_accuracy": _refused(unanswerable=True),
    "false_refusal_rate": _refused(unanswerable=False),
    "token_f1": _plain("token_f1", answerable_only=True),
    "rouge_l": _plain("rouge_l", answerable_only=True),
    "semantic_similarity": _plain("semantic_similarity", answerable_only=True),
    "supported_sentence_rate": _plain("supported_sentence_rate"),
    "model_supported_rate": _plain("model_supported_rate"),
    "loop_rate": _plain("loops"),
    "judge_correctness": _plain("judge_correctness"),
    "judge_faithfulness": _plain("judge_faithfulness"),
    "prompt_tokens": _plain("prompt_tokens"),
    "completion_tokens": _plain("completion_tokens"),
}
#: Metrics whose per-answer value is 0 or 1: compared with McNemar's test.
BINARY_METRICS: Final = frozenset(
    {
        "hit@1",
        "hit@3",
        "hit@5",
        "citation_hit_rate",
        "refusal_accuracy",
        "false_refusal_rate",
        "loop_rate",
    }
)


def item_values(items: Sequence[Item], key: str) -> list[float]:
    """The values ``key``'s mean is taken over, in the items' order."""
    pick = ITEM_VALUES[key]
    return [value for value in map(pick, items) if value is not None]


def _rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


def bootstrap_interval(
    values: Sequence[float], *, resamples: int = RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """The percentile-bootstrap interval of the mean of ``values`` (None: no values).

    One value gives a zero-width interval: nothing was resampled that could differ."""
    sample = np.asarray(values, dtype=float)
    if sample.size == 0:
        return None
    draws = _rng().integers(0, sample.size, size=(resamples, sample.size))
    means = sample[draws].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    # Floating sums of identical values can drift past the mean in the last place.
    mean = float(sample.mean())
    return min(float(low), mean), max(float(high), mean)


def intervals(items: Sequence[Item]) -> dict[str, float]:
    """``{metric}_ci_low`` and ``{metric}_ci_high`` for every mean metric the items have."""
    found: dict[str, float] = {}
    for key in ITEM_VALUES:
        interval = bootstrap_interval(item_values(items, key))
        if interval is not None:
            found[f"{key}_ci_low"], found[f"{key}_ci_high"] = interval
    return found


def summary_with_intervals(items: Sequence[Item]) -> dict[str, float | int]:
    """:func:`.scoring.summarize` of ``items`` with each mean's interval beside it."""
    return {**summarize(items), **intervals(items)}


def by_kind(items: Sequence[Item], kinds: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """A summary (with intervals) per question category; ``kinds[i]`` is ``items[i]``'s."""
    grouped: dict[str, list[Item]] = {}
    for item, kind in zip(items, kinds, strict=True):
        grouped.setdefault(kind, []).append(item)
    return {kind: summary_with_intervals(group) for kind, group in sorted(grouped.items())}


# --------------------------------------------------------------------------------------------
# Paired comparisons


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` on one metric, over the ``n`` questions both have a value for.

    ``difference`` is mean(a) - mean(b) on those questions, with its paired bootstrap
    interval;
    ``verdict`` is "better" or "worse" (for ``a``, taking the metric's direction into account)
    when ``p_value < ALPHA``, else "same" (no detectable difference); "unknown" when there is
    nothing to compare.
    """

    metric: str
    n: int
    a_mean: float | None
    b_mean: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    method: str
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "n": self.n,
            "a": self.a_mean,
            "b": self.b_mean,
            "difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "method": self.method,
            "verdict": self.verdict,
        }


def mcnemar_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes (1.0 with no discordant pair)."""
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**discordant)


#: Up to this many non-zero differences a sign-flip test enumerates every sign pattern.
EXACT_FLIPS_UP_TO: Final = 16
#: Random sign patterns drawn beyond that.
SIGN_FLIPS: Final = 20000


def sign_flip_p(differences: Sequence[float]) -> float:
    """Two-sided p-value that paired ``differences`` are centred on zero: the paired
    randomization (sign-flip) test.

    Under the null either subject's answer to a question could have been the better one, so
    each difference is as likely to have the opposite sign; p is the share of sign patterns
    whose mean is at least as far from zero as the observed one. Exact (every pattern) up to
    :data:`EXACT_FLIPS_UP_TO` non-zero differences, else :data:`SIGN_FLIPS` seeded patterns
    (the observed one counted). Unlike a bootstrap p-value it stays honest on a handful of
    questions: three questions can never be significant at 5%.
    """
    sample = np.asarray(differences, dtype=float)
    nonzero = sample[sample != 0]
    observed = abs(float(nonzero.sum()))
    if nonzero.size == 0 or observed == 0.0:
        return 1.0
    tolerance = 1e-9 * max(1.0, observed)
    if nonzero.size <= EXACT_FLIPS_UP_TO:
        patterns = np.array(list(itertools.product((1.0, -1.0), repeat=nonzero.size)))
        sums = np.abs(patterns @ nonzero)
        return float(np.count_nonzero(sums >= observed - tolerance)) / len(patterns)
    signs = _rng().choice((1.0, -1.0), size=(SIGN_FLIPS, nonzero.size))
    sums = np.abs(signs @ nonzero)
    return (int(np.count_nonzero(sums >= observed - tolerance)) + 1) / (SIGN_FLIPS + 1)


def compare(
    metric: str,
    a_items: Mapping[Hashable, Item],
    b_items: Mapping[Hashable, Item],
    *,
    higher_is_better: bool | None,
) -> Comparison:
    """``a`` against ``b`` on ``metric`` over the questions (keys) both have a value for."""
    pick = ITEM_VALUES[metric]
    pairs = []
    for key, a_item in a_items.items():
        if key not in b_items:
            continue
        a_value, b_value = pick(a_item), pick(b_items[key])
        if a_value is not None and b_value is not None:
            pairs.append((a_value, b_value))
    method = "McNemar" if metric in BINARY_METRICS else "sign-flip"
    if not pairs:
        return Comparison(metric, 0, None, None, None, None, None, None, method, "unknown")
    a_values = [a for a, _ in pairs]
    b_values = [b for _, b in pairs]
    differences = [a - b for a, b in pairs]
    if metric in BINARY_METRICS:
        p_value = mcnemar_p(a_values, b_values)
    else:
        p_value = sign_flip_p(differences)
    difference = math.fsum(differences) / len(differences)
    low, high = bootstrap_interval(differences) or (None, None)
    verdict = "same"
    if p_value < ALPHA and difference != 0 and higher_is_better is not None:
        verdict = "better" if (difference > 0) == higher_is_better else "worse"
    return Comparison(
        metric,
        len(pairs),
        math.fsum(a_values) / len(a_values),
        math.fsum(b_values) / len(b_values),
        difference,
        low,
        high,
        p_value,
        method,
        verdict,
    )


def cohen_kappa(labels: Sequence[bool], predictions: Sequence[bool]) -> float | None:
    """Cohen's kappa of two raters' yes/no labels (None: no items; 1.0 when both raters gave
    every item the same single label, where chance agreement is total)."""
    n = len(labels)
    if n == 0:
        return None
    observed = sum(1 for x, y in zip(labels, predictions, strict=True) if x == y) / n
    yes_a = sum(1 for x in labels if x) / n
    yes_b = sum(1 for y in predictions if y) / n
    expected = yes_a * yes_b + (1 - yes_a) * (1 - yes_b)
    if math.isclose(expected, 1.0):
        return 1.0 if math.isclose(observed, 1.0) else 0.0
    return (observed - expected) / (1 - expected)
