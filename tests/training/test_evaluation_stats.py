"""The statistics of evaluation (issue 16), without a database: categories, bootstrap
intervals, paired comparisons and winners, and the judge's agreement with people, each
checked on values computed by hand."""

from __future__ import annotations

import math
import random

import pytest

from training.evaluation import judge_check, stats
from training.evaluation.compare import winners
from training.evaluation.questions import questions_parse_jsonl
from training.evaluation.scoring import summarize

# --------------------------------------------------------------------------------------------
# Categories


def test_a_file_with_four_categories_and_unanswerable_is_accepted():
    raw = "\n".join(
        [
            '{"id": "f1", "question": "Tire pressure?", "kind": "fact"}',
            '{"id": "p1", "question": "How do I open the frunk?", "kind": "procedure"}',
            '{"id": "t1", "question": "Why does it not charge?", "kind": "Troubleshooting"}',
            '{"id": "m1", "question": "Charge and tow?", "kind": "multi_page"}',
            '{"id": "u1", "question": "Insurance cost?", "kind": "unanswerable"}',
            '{"id": "a1", "question": "No kind at all?"}',
        ]
    )

    kinds = [question["kind"] for question in questions_parse_jsonl(raw)]

    # Labels are folded to lower case, so "Troubleshooting" and "troubleshooting" are one.
    assert kinds == [
        "fact",
        "procedure",
        "troubleshooting",
        "multi_page",
        "unanswerable",
        "answerable",
    ]


def item(kind: str, **values):
    return {"unanswerable": kind == "unanswerable", **values}


# Six answers in four categories. Hand-computed per category:
#   fact:        must-include (1 + 0.5) / 2 = 0.75; false refusals 0 / 2; F1 (0.8 + 0.4) / 2
#   procedure:   must-include 0; false refusals 1 / 1 (it declined)
#   multi_page:  must-include 1; hit@1 over its one ranked answer: rank 2 -> 0, mrr 0.5
#   unanswerable: refusal accuracy 1 / 2 (one declined, one answered)
ITEMS = [
    item("fact", must_include_rate=1.0, refused=False, token_f1=0.8, rank=1),
    item("fact", must_include_rate=0.5, refused=False, token_f1=0.4),
    item("procedure", must_include_rate=0.0, refused=True, token_f1=0.0),
    item("multi_page", must_include_rate=1.0, refused=False, rank=2),
    item("unanswerable", refused=True),
    item("unanswerable", refused=False),
]
KINDS = ["fact", "fact", "procedure", "multi_page", "unanswerable", "unanswerable"]


def test_every_metric_is_also_given_per_category_with_hand_computed_values():
    breakdown = stats.by_kind(ITEMS, KINDS)

    assert list(breakdown) == ["fact", "multi_page", "procedure", "unanswerable"]
    fact = breakdown["fact"]
    assert fact["must_include_rate"] == pytest.approx(0.75)
    assert fact["false_refusal_rate"] == 0.0
    assert fact["token_f1"] == pytest.approx(0.6)
    assert fact["hit@1"] == 1.0 and fact["count"] == 2
    assert breakdown["procedure"]["must_include_rate"] == 0.0
    assert breakdown["procedure"]["false_refusal_rate"] == 1.0
    assert breakdown["multi_page"]["hit@1"] == 0.0
    assert breakdown["multi_page"]["mrr"] == pytest.approx(0.5)
    unanswerable = breakdown["unanswerable"]
    assert unanswerable["refusal_accuracy"] == pytest.approx(0.5)
    assert "false_refusal_rate" not in unanswerable and "token_f1" not in unanswerable
    # Each category's mean has its interval, which holds the mean.
    assert fact["must_include_rate_ci_low"] <= 0.75 <= fact["must_include_rate_ci_high"]


def test_the_item_values_give_exactly_the_summarys_means():
    rng = random.Random(7)
    items = []
    for index in range(40):
        unanswerable = index % 5 == 0
        items.append(
            {
                "unanswerable": unanswerable,
                "refused": rng.random() < 0.3,
                "rank": rng.choice([None, 1, 2, 4, 9]),
                "must_include_rate": rng.choice([0.0, 0.5, 1.0]),
                "token_f1": rng.random(),
                "rouge_l": rng.random(),
                "semantic_similarity": rng.random(),
                "context_recall": rng.random(),
                "citation_hit": rng.choice([None, 0.0, 1.0]),
                "supported_sentence_rate": rng.random(),
                "loops": rng.choice([0, 1]),
                "judge_correctness": rng.choice([0.0, 0.25, 1.0]),
                "prompt_tokens": rng.randint(100, 900),
                "completion_tokens": rng.randint(5, 90),
                "latency_ms": rng.randint(50, 5000),
            }
        )
    summary = summarize(items)

    checked = 0
    for key in stats.ITEM_VALUES:
        if key in summary:
            values = stats.item_values(items, key)
            assert math.fsum(values) / len(values) == pytest.approx(summary[key]), key
            checked += 1
    assert checked >= 15


# --------------------------------------------------------------------------------------------
# Intervals


def test_the_bootstrap_interval_of_a_known_sample():
    # Ten 1s and ten 0s: the mean's sampling distribution is Binomial(20, 0.5) / 20, whose
    # 2.5% and 97.5% quantiles are 6/20 and 14/20; the normal approximation gives
    # 0.5 +- 1.96 * 0.5 / sqrt(20) = [0.281, 0.719].
    sample = [1.0, 0.0] * 10

    low, high = stats.bootstrap_interval(sample)

    assert low == pytest.approx(0.3, abs=0.03)
    assert high == pytest.approx(0.7, abs=0.03)
    assert stats.bootstrap_interval(sample) == (low, high)  # seeded: reproducible


def test_an_interval_narrows_with_more_answers_and_a_constant_sample_has_none_to_give():
    small = stats.bootstrap_interval([1.0, 0.0] * 5)
    large = stats.bootstrap_interval([1.0, 0.0] * 200)
    assert large[1] - large[0] < (small[1] - small[0]) / 4
    assert stats.bootstrap_interval([0.7] * 9) == (pytest.approx(0.7), pytest.approx(0.7))
    assert stats.bootstrap_interval([]) is None


def test_the_summary_keeps_its_means_and_adds_ci_low_and_ci_high():
    summary = stats.summary_with_intervals(ITEMS)

    assert summary["must_include_rate"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert summary["must_include_rate_ci_low"] <= summary["must_include_rate"]
    assert summary["must_include_rate"] <= summary["must_include_rate_ci_high"]
    # Percentiles and counts have no interval.
    assert "latency_p50_ms_ci_low" not in summary and "count_ci_low" not in summary


# --------------------------------------------------------------------------------------------
# Comparisons


@pytest.mark.parametrize(
    ("only_a", "only_b", "expected"),
    [
        (6, 0, 2 / 64),  # the smallest count of discordant pairs significant at 5%
        (5, 0, 2 / 32),
        (8, 2, 2 * (1 + 10 + 45) / 1024),
        (3, 3, 1.0),
        (0, 0, 1.0),
    ],
)
def test_mcnemar_exact_p_values(only_a, only_b, expected):
    # Ten concordant questions besides, which McNemar ignores.
    a = [1.0] * only_a + [0.0] * only_b + [1.0] * 5 + [0.0] * 5
    b = [0.0] * only_a + [1.0] * only_b + [1.0] * 5 + [0.0] * 5
    assert stats.mcnemar_p(a, b) == pytest.approx(expected)


def test_the_sign_flip_test_finds_a_real_shift_and_not_noise():
    rng = random.Random(3)
    noise = [rng.gauss(0, 0.2) for _ in range(60)]
    centred = [value - sum(noise) / len(noise) for value in noise]

    assert stats.sign_flip_p([0.0] * 30) == 1.0
    assert stats.sign_flip_p(centred) > 0.5
    assert stats.sign_flip_p([value + 0.15 for value in centred]) < 0.01


def test_the_sign_flip_test_is_exact_on_few_questions():
    # Ten questions better by the same amount: only the two all-same-sign patterns of 2**10
    # are as extreme. Three questions can never be significant: 2 of 8 patterns are.
    assert stats.sign_flip_p([0.5] * 10 + [0.0] * 4) == pytest.approx(2 / 1024)
    assert stats.sign_flip_p([1.0, 1.0, 1.0]) == pytest.approx(2 / 8)
    # One question of five differing: half the patterns are as extreme, both signs.
    assert stats.sign_flip_p([0.0, 0.5, 0.0, 0.0, 0.0]) == 1.0


def by_question(values, key="must_include_rate"):
    return {f"q{index}": {key: value} for index, value in enumerate(values)}


def test_a_significant_difference_is_better_or_worse_by_the_metrics_direction():
    good = by_question([1.0] * 12)
    bad = by_question([0.0] * 10 + [1.0] * 2)

    comparison = stats.compare("must_include_rate", good, bad, higher_is_better=True)
    assert (comparison.n, comparison.difference, comparison.verdict) == (
        12,
        pytest.approx(10 / 12),
        "better",
    )
    assert comparison.method == "sign-flip"
    assert comparison.p_value == pytest.approx(2 / 1024)

    declines = {f"q{i}": {"refused": i < 8, "unanswerable": False} for i in range(12)}
    answers = {f"q{i}": {"refused": False, "unanswerable": False} for i in range(12)}
    fewer = stats.compare("false_refusal_rate", answers, declines, higher_is_better=False)
    assert fewer.method == "McNemar" and fewer.p_value == pytest.approx(2 / 256)
    assert fewer.verdict == "better"  # fewer false refusals is better


def test_a_small_difference_on_few_questions_is_no_detectable_difference():
    a = by_question([1.0, 1.0, 0.5, 1.0, 0.0])
    b = by_question([1.0, 0.5, 0.5, 1.0, 0.0])

    comparison = stats.compare("must_include_rate", a, b, higher_is_better=True)

    assert comparison.difference == pytest.approx(0.1)
    assert comparison.verdict == "same" and comparison.p_value >= 0.05


def test_only_questions_both_answered_are_compared():
    a = by_question([1.0, 1.0, 1.0])
    b = {"q0": {"must_include_rate": 0.0}, "other": {"must_include_rate": 0.0}}

    comparison = stats.compare("must_include_rate", a, b, higher_is_better=True)

    assert comparison.n == 1


def test_a_winner_must_beat_every_other_subject_significantly():
    def pair(a, b, metric, verdict):
        return {
            "a": a,
            "b": b,
            "comparisons": [
                stats.Comparison(
                    metric, 20, 0, 0, 0, 0, 0, 0.01 if verdict != "same" else 0.5, "x", verdict
                )
            ],
        }

    comparisons = [
        pair("rag", "tuned", "token_f1", "better"),
        pair("rag", "base", "token_f1", "better"),
        pair("tuned", "base", "token_f1", "better"),
        pair("rag", "tuned", "hit@5", "same"),
        pair("rag", "base", "hit@5", "better"),
        pair("tuned", "base", "hit@5", "better"),
    ]

    found = winners(comparisons)

    assert found == {"token_f1": {"rag"}}  # on hit@5 rag and tuned are not told apart


# --------------------------------------------------------------------------------------------
# The judge against people


def test_cohens_kappa_on_hand_computed_labels():
    people = [True, True, True, False, False, False, True, False]
    judge = [True, True, False, False, False, True, True, False]
    # Observed agreement 6/8; each rater says yes half the time, so chance agreement 1/2:
    # kappa = (0.75 - 0.5) / (1 - 0.5) = 0.5.
    assert stats.cohen_kappa(people, judge) == pytest.approx(0.5)
    assert stats.cohen_kappa([], []) is None
    assert stats.cohen_kappa([True, False], [True, True]) == pytest.approx(0.0)


def labelled(right: bool, n: int) -> judge_check.Labelled:
    return judge_check.Labelled("qa_pair", n, f"Question {n}?", f"answer {n}", "", right)


def test_the_judges_agreement_with_people_on_a_small_labelled_set():
    people = [True, True, True, False, False, False, True, False]
    grades = [1.0, 0.75, 0.25, 0.0, 0.25, 0.5, 1.0, 0.0]  # right from 0.5 (3 of 5)
    items = [labelled(right, n) for n, right in enumerate(people)]
    grade_of = {item.ref: grade for item, grade in zip(items, grades, strict=True)}

    check = judge_check.judge_agreement(lambda item: {"correctness": grade_of[item.ref]}, items)

    assert check["n"] == 8 and check["accuracy"] == pytest.approx(0.75)
    assert check["kappa"] == pytest.approx(0.5)
    assert check["status"] == "thin"  # under MIN_ITEMS: too few to trust
    assert [d["id"] for d in check["disagreements"]] == [2, 5]
    assert not judge_check.trusted(check)
    assert "kappa 0.50 on 8 items" in judge_check.describe(check)


def test_a_judge_that_fails_leaves_items_out_and_an_unchecked_judge_is_unmeasured():
    items = [labelled(n % 2 == 0, n) for n in range(24)]

    agreeing = judge_check.judge_agreement(
        lambda item: {"correctness": 1.0 if item.right else 0.0}, items
    )
    failing = judge_check.judge_agreement(lambda item: {"error": "timeout"}, items)
    yes_man = judge_check.judge_agreement(lambda item: {"correctness": 1.0}, items)

    assert (agreeing["kappa"], agreeing["status"]) == (1.0, "ok")
    assert judge_check.trusted(agreeing)
    assert (failing["n"], failing["errors"], failing["status"]) == (0, 24, "unmeasured")
    assert "not been checked against people" in judge_check.describe(failing)
    # Calling everything right agrees half the time here, and kappa says it is chance.
    assert (yes_man["accuracy"], yes_man["kappa"], yes_man["status"]) == (0.5, 0.0, "low")
