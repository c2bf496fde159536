"""Answer-quality metrics against values worked out by hand (no DB)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training import metrics
from training.metrics import (
    aggregate,
    cosine,
    hit_at,
    is_refusal,
    must_include_rate,
    normalize_tokens,
    percentile,
    reciprocal_rank,
    refusal_outcome,
    retrieval_ranks,
    rouge_l,
    source_key,
    token_f1,
)

# normalize_tokens


def test_normalize_tokens_lowercases_strips_punctuation_and_drops_articles():
    assert normalize_tokens("The tires: set them to 42 PSI, an hour after a drive!") == [
        "tires",
        "set",
        "them",
        "to",
        "42",
        "psi",
        "hour",
        "after",
        "drive",
    ]


def test_normalize_tokens_joins_contractions_and_decimals_like_squad():
    assert normalize_tokens("Don't exceed 3.5 kW") == ["dont", "exceed", "35", "kw"]


def test_normalize_tokens_removes_unicode_quotes_and_dashes():
    assert normalize_tokens("“Service Mode” — then tap “Reset”…") == [
        "service",
        "mode",
        "then",
        "tap",
        "reset",
    ]


def test_normalize_tokens_keeps_article_letters_inside_words():
    assert normalize_tokens("Anthem theater an") == ["anthem", "theater"]


def test_normalize_tokens_of_blank_text_is_empty():
    assert normalize_tokens("  . , ! the  ") == []


# token_f1


def test_token_f1_is_one_for_answers_equal_after_normalisation():
    assert token_f1("The 42 psi.", "42 PSI") == 1.0


def test_token_f1_from_precision_and_recall_of_shared_tokens():
    # prediction: cat sat on mat (4); reference: cat sat (2); shared 2
    # precision 2/4, recall 2/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert token_f1("the cat sat on the mat", "a cat sat") == pytest.approx(2 / 3)


def test_token_f1_counts_shared_tokens_once_per_occurrence():
    # "red" appears three times predicted but once in the reference: it is shared once.
    # precision 1/3, recall 1/2, F1 = 2 * (1/6) / (5/6) = 0.4
    assert token_f1("red red red", "red blue") == pytest.approx(0.4)


def test_token_f1_ignores_word_order():
    assert token_f1("killed gunman police", "police killed gunman") == 1.0


def test_token_f1_is_zero_without_shared_tokens():
    assert token_f1("open the frunk", "press brake pedal") == 0.0


def test_token_f1_is_one_when_both_are_empty_and_zero_when_one_is():
    assert token_f1("", "the") == 1.0
    assert token_f1("", "42 psi") == 0.0
    assert token_f1("42 psi", "") == 0.0


# rouge_l


def test_rouge_l_uses_longest_common_subsequence():
    # prediction x y z w (4), reference x z w q r (5): LCS x z w = 3
    # precision 3/4, recall 3/5, F = 2 * 0.75 * 0.6 / 1.35 = 2/3
    assert rouge_l("x y z w", "x z w q r") == pytest.approx(2 / 3)


def test_rouge_l_penalises_word_order_that_token_f1_forgives():
    # police killed gunman vs gunman killed police: LCS is one token, so P = R = F = 1/3.
    assert rouge_l("police killed the gunman", "the gunman killed police") == pytest.approx(1 / 3)
    assert token_f1("police killed the gunman", "the gunman killed police") == 1.0


def test_rouge_l_is_one_for_identical_text_and_zero_without_overlap():
    assert rouge_l("Press the brake pedal.", "press brake pedal") == 1.0
    assert rouge_l("open frunk", "press brake") == 0.0


def test_rouge_l_follows_the_empty_conventions():
    assert rouge_l("", "") == 1.0
    assert rouge_l("", "42 psi") == 0.0
    assert rouge_l("42 psi", "") == 0.0


# must_include_rate


def test_must_include_rate_is_fraction_of_strings_found():
    answer = "Set the tires to 42 psi when cold."
    assert must_include_rate(answer, ["42 psi", "cold", "Service Mode"]) == pytest.approx(2 / 3)


def test_must_include_rate_ignores_case_and_collapses_whitespace():
    answer = "Tap Controls > SERVICE\n   mode, then wait."
    assert must_include_rate(answer, ["service mode", "Controls  >  Service Mode"]) == 1.0


def test_must_include_rate_is_none_without_strings_to_check():
    assert must_include_rate("anything", []) is None
    assert must_include_rate("anything", ["", "   "]) is None


def test_must_include_rate_is_zero_for_an_empty_answer():
    assert must_include_rate("", ["42 psi"]) == 0.0


# source_key and retrieval_ranks


@pytest.mark.parametrize(
    "name",
    [
        "charging_instructions.md",
        "data_gpt35_v2/docs/charging_instructions.md",
        "data_gpt35_v2/docs/charging_instructions.md/##some-section",
        "docs/Charging_Instructions.md/##Charging / Discharging/###Settings",
        "docs\\charging_instructions.md",
    ],
)
def test_source_key_reduces_names_and_paths_to_the_page_file_name(name):
    assert source_key(name) == "charging_instructions.md"


def test_source_key_falls_back_to_the_last_segment_for_other_sources():
    assert source_key("https://example.com/manual/keys.html") == "keys.html"


def test_retrieval_ranks_gives_one_based_rank_of_first_match():
    retrieved = [
        "data_gpt35_v2/docs/keys.md/##Key Card",
        "data_gpt35_v2/docs/tire_care_and_maintenance.md/##Tire Pressures",
        "data_gpt35_v2/docs/checking_and_adjusting_tire_pressures.md/##Checking",
    ]
    expected = ["checking_and_adjusting_tire_pressures.md", "tire_care_and_maintenance.md"]
    assert retrieval_ranks(retrieved, expected) == 2


def test_retrieval_ranks_is_none_when_nothing_relevant_was_retrieved():
    assert retrieval_ranks(["docs/keys.md/##Key Card"], ["wipers_and_washers.md"]) is None
    assert retrieval_ranks([], ["wipers_and_washers.md"]) is None
    assert retrieval_ranks(["docs/keys.md"], []) is None


def test_retrieval_ranks_does_not_match_a_page_whose_name_merely_contains_the_expected_one():
    retrieved = [
        "docs/jump_starting_the_low_voltage_lithium-ion_battery.md",
        "docs/jump_starting.md",
    ]
    assert retrieval_ranks(retrieved, ["jump_starting.md"]) == 2


# hit_at and reciprocal_rank


def test_hit_at_counts_ranks_within_k():
    assert hit_at(1, 1) == 1.0
    assert hit_at(3, 3) == 1.0
    assert hit_at(4, 3) == 0.0
    assert hit_at(None, 5) == 0.0


def test_reciprocal_rank_is_inverse_rank_or_zero():
    assert reciprocal_rank(1) == 1.0
    assert reciprocal_rank(4) == 0.25
    assert reciprocal_rank(None) == 0.0


def test_ranks_below_one_are_refused():
    with pytest.raises(ValueError, match="starts at 1"):
        reciprocal_rank(0)
    with pytest.raises(ValueError, match="starts at 1"):
        hit_at(0, 5)


# is_refusal and refusal_outcome


@pytest.mark.parametrize(
    "answer",
    [
        "The manual does not say how long the battery warranty lasts.",
        "I could not find this in the manual.",
        "The manual doesn't cover resale values.",
        "I don't know.",
        "I'm sorry, but the Owner’s Manual doesn’t mention insurance premiums.",
        "Sorry. I'm unable to answer that from the manual.",
        "That is not covered in the provided context.",
        "There is no information about resale value in the manual.",
        "Unfortunately, the provided excerpts do not specify that.",
        "I do not have enough information to answer this question.",
        "Insurance pricing isn't mentioned in the Owner's Manual.",
        "I can't find anything about that.",
    ],
)
def test_is_refusal_detects_honest_declines(answer):
    assert is_refusal(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "Do not open the door while charging.",
        "The car will not charge if the cable is not latched.",
        "If the manual release does not work, contact Tesla Service.",
        "Can't find the charge port button? Press the button on the cable handle instead.",
        "Set the tires to 42 psi. Don't use a pressure washer on the charge port.",
        "It is not recommended to tow Model 3 with the wheels on the ground.",
        "The touchscreen does not display the key card prompt when the phone key is found.",
        "",
    ],
)
def test_is_refusal_ignores_answers_that_merely_contain_a_negation(answer):
    assert not is_refusal(answer)


def test_is_refusal_treats_a_caveat_after_the_answer_as_an_answer():
    answer = (
        "Inflate the tires to 42 psi. Check them when cold. "
        "The manual does not specify a pressure for snow chains."
    )
    assert not is_refusal(answer)


def test_refusal_outcome_on_unanswerable_question_counts_refusal_as_correct():
    assert refusal_outcome("The manual does not say.", unanswerable=True) == {
        "refused": True,
        "unanswerable": True,
        "correct_refusal": True,
        "false_refusal": None,
    }
    assert refusal_outcome("It is worth $30,000.", unanswerable=True)["correct_refusal"] is False


def test_refusal_outcome_on_answerable_question_counts_refusal_as_false():
    assert refusal_outcome("I don't know.", unanswerable=False) == {
        "refused": True,
        "unanswerable": False,
        "correct_refusal": None,
        "false_refusal": True,
    }
    assert refusal_outcome("42 psi.", unanswerable=False)["false_refusal"] is False


# percentile


def test_percentile_interpolates_linearly_like_numpy():
    values = [40, 10, 30, 20]
    # sorted 10 20 30 40; p50 at position 1.5 -> 25; p95 at 2.85 -> 30 + 0.85 * 10 = 38.5
    assert percentile(values, 50) == pytest.approx(25.0)
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile(values, 95) == pytest.approx(float(np.percentile(values, 95)))


def test_percentile_ends_are_min_and_max_and_one_value_is_itself():
    assert percentile([3, 1, 2], 0) == 1.0
    assert percentile([3, 1, 2], 100) == 3.0
    assert percentile([7.5], 95) == 7.5


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None


def test_percentile_outside_zero_to_hundred_is_refused():
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1, 2], 101)


# cosine


def test_cosine_of_lists_and_numpy_arrays():
    assert cosine([1, 0], [1, 1]) == pytest.approx(1 / math.sqrt(2))
    assert cosine(np.array([3.0, 4.0]), np.array([6.0, 8.0])) == pytest.approx(1.0)
    assert cosine([1, 0], np.array([-1.0, 0.0])) == pytest.approx(-1.0)
    assert cosine([1, 0], [0, 2]) == 0.0


def test_cosine_with_a_zero_vector_is_zero():
    assert cosine([0, 0], [1, 2]) == 0.0


def test_cosine_refuses_vectors_of_different_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        cosine([1, 2, 3], [1, 2])


# aggregate


def test_aggregate_summarises_a_small_run():
    items = [
        {
            "token_f1": 1.0,
            "rouge_l": 0.5,
            "semantic_similarity": 0.9,
            "must_include_rate": 1.0,
            "rank": 1,
            "refused": False,
            "unanswerable": False,
            "latency_ms": 100,
            "prompt_tokens": 200,
            "completion_tokens": 20,
        },
        {
            "token_f1": 0.5,
            "rouge_l": 0.25,
            "semantic_similarity": 0.7,
            "must_include_rate": 0.5,
            "rank": 4,
            "refused": True,
            "unanswerable": False,
            "latency_ms": 300,
            "prompt_tokens": 400,
            "completion_tokens": 40,
        },
        {
            "token_f1": 0.0,
            "rouge_l": 0.0,
            "semantic_similarity": 0.1,
            "must_include_rate": None,
            "rank": None,
            "refused": False,
            "unanswerable": False,
            "latency_ms": 200,
            "prompt_tokens": 300,
            "completion_tokens": 30,
        },
        {
            # Unanswerable: its text scores are ignored even if a caller filled them in.
            "token_f1": 0.0,
            "rouge_l": 0.0,
            "must_include_rate": None,
            "refused": True,
            "unanswerable": True,
            "latency_ms": 400,
            "prompt_tokens": 100,
            "completion_tokens": 10,
        },
    ]
    summary = aggregate(items)
    assert summary == pytest.approx(
        {
            # ranks 1, 4, None
            "hit@1": 1 / 3,
            "hit@3": 1 / 3,
            "hit@5": 2 / 3,
            "mrr": (1 + 0.25 + 0) / 3,
            "must_include_rate": 0.75,
            "refusal_accuracy": 1.0,
            "false_refusal_rate": 1 / 3,
            "token_f1": 0.5,
            "rouge_l": 0.25,
            "semantic_similarity": (0.9 + 0.7 + 0.1) / 3,
            # latencies 100 200 300 400: p50 at 1.5 -> 250, p95 at 2.85 -> 385
            "latency_p50_ms": 250.0,
            "latency_p95_ms": 385.0,
            "prompt_tokens": 250.0,
            "completion_tokens": 25.0,
            "count": 4,
        }
    )
    assert isinstance(summary["count"], int)


def test_aggregate_leaves_out_keys_no_item_has_input_for():
    summary = aggregate([{"token_f1": 0.5}, {"token_f1": None, "must_include_rate": None}])
    assert summary == {"token_f1": 0.5, "count": 2}


def test_aggregate_scores_retrieval_only_over_items_with_a_rank_key():
    # The second item had no expected sources (no "rank" key): it is not a retrieval miss.
    summary = aggregate([{"rank": 2}, {"token_f1": 1.0}, {"rank": None}])
    assert summary["hit@1"] == 0.0
    assert summary["hit@3"] == 0.5
    assert summary["mrr"] == 0.25


def test_aggregate_treats_items_without_unanswerable_as_answerable():
    summary = aggregate([{"refused": True}, {"refused": False}])
    assert summary["false_refusal_rate"] == 0.5
    assert "refusal_accuracy" not in summary


def test_aggregate_of_no_items_only_counts():
    assert aggregate([]) == {"count": 0}


SILVER_HANDLE = (
    "2. Working in a circular pattern around the perimeter of the door handle, use the bottom "
    "of your fist to forcefully bump the door handle to break and release the ice buildup.\n"
    "3. Aiming for the rearmost end of the wide part of the door handle, use the bottom of your "
    "fist to forcefully bump the door handle. Increase the intensity of the bumps as necessary."
)


def test_a_long_run_the_manual_repeats_is_no_loop_when_quoted_from_it():
    # Steps 2 and 3 share 16 words ("of the door handle, use the bottom of your fist to
    # forcefully bump the door handle"): a loop by the guard's rule, but the manual's own text.
    assert metrics.loops(SILVER_HANDLE) == 1
    assert metrics.loops(SILVER_HANDLE, [f"To remove the ice:\n{SILVER_HANDLE}"]) == 0
    # A line written more often than the passages hold it is a loop all the same.
    step = SILVER_HANDLE.splitlines()[0]
    assert metrics.loops(f"{step}\n{step}", [SILVER_HANDLE]) == 1
    # Text the passages do not hold is checked as before.
    assert metrics.loops("Press the handle. " * 3, [SILVER_HANDLE]) == 1
