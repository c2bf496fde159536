"""Tests for curation.qa: prompts, LLM output parsing, quality gates, importers (no database)."""

from __future__ import annotations

import collections
import hashlib
import json
import math
import random
import re
import statistics
from pathlib import Path

import pytest

from curation.chunking import word_token_count
from curation.qa import (
    ANSWER_TEMPLATE_PLACEHOLDERS,
    DEFAULT_ANSWER_SYSTEM_PROMPT,
    DEFAULT_ANSWER_USER_TEMPLATE,
    DEFAULT_QUESTIONS_SYSTEM_PROMPT,
    DEFAULT_QUESTIONS_USER_TEMPLATE,
    FLAG_EMPTY_ANSWER,
    FLAG_NOT_A_QUESTION,
    FLAG_REFUSAL,
    FLAG_TOO_LONG,
    FLAG_TOO_SHORT,
    LOW_GROUNDING_THRESHOLD,
    QUALITY_FLAGS,
    QUESTIONS_TEMPLATE_PLACEHOLDERS,
    ImportProblem,
    ImportRecord,
    MalformedOutput,
    answer_flags,
    answer_messages,
    clean_answer,
    grounding_score,
    heading_slug,
    lexical_grounding,
    normalize_question,
    parse_inst_jsonl,
    parse_question_extractor_json,
    parse_question_list,
    question_flags,
    question_hash,
    questions_messages,
    split_to_fit,
    validate_template,
)
from manualqa.lib.prompt_formats import format_inst


def word_count(text: str) -> int:
    """A simple, exactly predictable token counter: one token per whitespace-separated word."""
    return len(text.split())


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------


def test_default_templates_use_exactly_their_placeholders() -> None:
    validate_template(DEFAULT_QUESTIONS_USER_TEMPLATE, QUESTIONS_TEMPLATE_PLACEHOLDERS)
    validate_template(DEFAULT_ANSWER_USER_TEMPLATE, ANSWER_TEMPLATE_PLACEHOLDERS)
    assert {"title", "heading_path", "text", "count"} == QUESTIONS_TEMPLATE_PLACEHOLDERS
    assert {"title", "heading_path", "text", "question"} == ANSWER_TEMPLATE_PLACEHOLDERS


def test_questions_messages_are_a_system_and_a_user_message_with_the_values_filled_in() -> None:
    messages = questions_messages(
        title="Charging",
        heading_path="Charging > Opening the Charge Port",
        text="Press the charge port door to open it.",
        count=5,
    )

    assert [message["role"] for message in messages] == ["system", "user"]
    assert messages[0]["content"] == DEFAULT_QUESTIONS_SYSTEM_PROMPT
    user = messages[1]["content"]
    assert user.startswith("Manual page: Charging\nSection: Charging > Opening the Charge Port\n")
    assert '"""\nPress the charge port door to open it.\n"""' in user
    assert "numbered list of up to 5 distinct questions" in user
    assert "THIS text alone answers fully" in user
    assert "do not write the answers" in user
    assert "{" not in user


def test_answer_messages_ask_for_an_answer_from_the_text_only() -> None:
    messages = answer_messages(
        title="Charging",
        heading_path="Charging > Opening the Charge Port",
        text="Press the charge port door to open it.",
        question="How do I open the charge port?",
    )

    assert [message["role"] for message in messages] == ["system", "user"]
    assert messages[0]["content"] == DEFAULT_ANSWER_SYSTEM_PROMPT
    user = messages[1]["content"]
    assert "Question: How do I open the charge port?" in user
    assert "using only the text above" in user
    assert "say plainly that the text does not answer it" in user


def test_braces_in_the_manual_text_and_question_survive_formatting_unchanged() -> None:
    text = 'Set {speed} with }{ and {{literal}} or {0} and {text.__class__} "x"'
    question = "What does {x} mean?"

    questions_user = questions_messages(title="{t}", heading_path="{h}", text=text, count=2)[1]
    answer_user = answer_messages(title="T", heading_path="H", text=text, question=question)[1]

    assert f'"""\n{text}\n"""' in questions_user["content"]
    assert "Manual page: {t}\nSection: {h}\n" in questions_user["content"]
    assert f'"""\n{text}\n"""' in answer_user["content"]
    assert "Question: What does {x} mean?" in answer_user["content"]


def test_edited_prompts_replace_the_defaults() -> None:
    messages = questions_messages(
        title="Wipers",
        heading_path="Wipers > Replacing",
        text="Lift the arm.",
        count=3,
        system_prompt="Be terse {not a placeholder}.",
        user_template="{count} questions on {title} / {heading_path}: {text} {{json}}",
    )

    assert messages == [
        {"role": "system", "content": "Be terse {not a placeholder}."},
        {
            "role": "user",
            "content": "3 questions on Wipers / Wipers > Replacing: Lift the arm. {json}",
        },
    ]


def test_answer_messages_with_an_edited_template() -> None:
    messages = answer_messages(
        title="Wipers",
        heading_path="Wipers",
        text="Lift the arm.",
        question="How?",
        system_prompt="S",
        user_template="{title}|{heading_path}|{text}|{question}",
    )

    assert messages[1] == {"role": "user", "content": "Wipers|Wipers|Lift the arm.|How?"}


def test_messages_refuse_a_template_with_a_missing_placeholder() -> None:
    with pytest.raises(ValueError, match=r"missing placeholder\(s\) \{count\}"):
        questions_messages(
            title="T",
            heading_path="H",
            text="x",
            count=3,
            user_template="{title}{heading_path}{text}",
        )
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \{page\}"):
        answer_messages(
            title="T",
            heading_path="H",
            text="x",
            question="q",
            user_template="{page}{title}{heading_path}{text}{question}",
        )


def test_questions_messages_refuse_a_count_below_one() -> None:
    with pytest.raises(ValueError, match="count must be at least 1, got 0"):
        questions_messages(title="T", heading_path="H", text="x", count=0)


def test_validate_template_accepts_repeated_placeholders_and_doubled_braces() -> None:
    validate_template('{text} again {text}; JSON: {{"q": "..."}} {count}', {"text", "count"})


@pytest.mark.parametrize("template", ["{text:>9} {count}", "{text!r} {count}", "{text} {count:d}"])
def test_validate_template_rejects_format_specs(template: str) -> None:
    """A width is enough to make one prompt hundreds of megabytes (security review L3)."""
    with pytest.raises(ValueError, match="take no format spec or conversion"):
        validate_template(template, {"text", "count"})


def test_a_huge_width_never_reaches_format() -> None:
    with pytest.raises(ValueError, match=r"\{text:>300000000\}"):
        answer_messages(
            title="T",
            heading_path="H",
            text="x",
            question="q",
            user_template="{title}{heading_path}{text:>300000000}{question}",
        )


def test_validate_template_names_unknown_and_missing_placeholders() -> None:
    with pytest.raises(ValueError) as error:
        validate_template("{text} {page} {page} {title}", {"text", "count", "title"})

    assert str(error.value) == (
        "unknown placeholder(s) {page}; missing placeholder(s) {count} "
        "(the template must use exactly {count}, {text}, {title})"
    )


@pytest.mark.parametrize(
    ("template", "unknown"),
    [
        ("{text} {}", "{}"),
        ("{text} {0}", "{0}"),
        ("{text} {text.__class__}", "{text.__class__}"),
        ("{text} {text[0]}", "{text[0]}"),
        ("{text:{width}}", "{width}"),
    ],
)
def test_validate_template_counts_positional_attribute_and_nested_fields_as_unknown(
    template: str, unknown: str
) -> None:
    with pytest.raises(ValueError, match=rf"unknown placeholder\(s\) {re.escape(unknown)}"):
        validate_template(template, {"text"})


@pytest.mark.parametrize("template", ["{text", "{text} }", "{text} {"])
def test_validate_template_explains_an_unbalanced_brace(template: str) -> None:
    with pytest.raises(ValueError, match=r"the template is not valid: .*write a literal brace"):
        validate_template(template, {"text"})


# --------------------------------------------------------------------------------------------
# Parsing the questions list
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "1. How do I open the charge port?",
        "1) How do I open the charge port?",
        "(1) How do I open the charge port?",
        "1 - How do I open the charge port?",
        "1: How do I open the charge port?",
        "1 \u2013 How do I open the charge port?",
        "Q1: How do I open the charge port?",
        "Question 1. How do I open the charge port?",
        "**1.** How do I open the charge port?",
        "**1. How do I open the charge port?**",
        '1. "How do I open the charge port?"',
        "1. \u201cHow do I open the charge port?\u201d",
        "1. **How do I open the charge port?**",
        '1. **"How do I open the charge port?"**',
        "1. Question: How do I open the charge port?",
        "   1.   How do I open the charge port?   ",
        "- How do I open the charge port?",
        "* How do I open the charge port?",
        "\u2022 How do I open the charge port?",
        "How do I open the charge port?",
    ],
)
def test_parse_question_list_accepts_common_item_styles(line: str) -> None:
    assert parse_question_list(line, limit=5) == ["How do I open the charge port?"]


def test_parse_question_list_ignores_a_preamble_and_trailing_chatter() -> None:
    output = (
        "Sure! Here are 3 questions about the charge port:\n"
        "\n"
        "1. How do I open the charge port?\n"
        "2. What does a blinking green light mean?\n"
        "3. Can I charge in the rain?\n"
        "\n"
        "Let me know if you would like more questions!"
    )

    assert parse_question_list(output, limit=10) == [
        "How do I open the charge port?",
        "What does a blinking green light mean?",
        "Can I charge in the rain?",
    ]


def test_parse_question_list_joins_an_item_that_wraps_onto_the_next_line() -> None:
    output = (
        "1. What should I do if the touchscreen shows\n"
        "   the alert DIF_a251 / DIR_a251?\n"
        "2. How long does it take to\n"
        "charge to 80 percent?\n"
        "3. Where is the\n"
        "Model 3 tow eye stored?"
    )

    assert parse_question_list(output, limit=10) == [
        "What should I do if the touchscreen shows the alert DIF_a251 / DIR_a251?",
        "How long does it take to charge to 80 percent?",
        "Where is the Model 3 tow eye stored?",
    ]


def test_parse_question_list_does_not_glue_chatter_onto_an_unterminated_last_item() -> None:
    output = "1. Explain how to open the frunk\nI hope these help!"

    assert parse_question_list(output, limit=5) == ["Explain how to open the frunk"]


def test_parse_question_list_does_not_join_a_line_after_a_finished_question() -> None:
    output = "1. What is the maximum charge rate?\n1.5 kW is typical for a wall outlet."

    assert parse_question_list(output, limit=5) == ["What is the maximum charge rate?"]


def test_parse_question_list_removes_duplicates_by_normalised_form_keeping_the_first() -> None:
    output = (
        "1. How do I open the charge port?\n"
        "2. how do I open the  charge port\n"
        "3. What is Track Mode?\n"
        "4. HOW DO I OPEN THE CHARGE-PORT?"
    )

    assert parse_question_list(output, limit=10) == [
        "How do I open the charge port?",
        "What is Track Mode?",
    ]


def test_parse_question_list_keeps_order_and_truncates_to_the_limit() -> None:
    output = "\n".join(f"{n}. Question number {n} about wipers?" for n in range(1, 8))

    assert parse_question_list(output, limit=3) == [
        "Question number 1 about wipers?",
        "Question number 2 about wipers?",
        "Question number 3 about wipers?",
    ]


def test_parse_question_list_counts_the_limit_after_removing_duplicates() -> None:
    output = "1. What is TPMS?\n2. What is TPMS?\n3. What is Autosteer?"

    assert parse_question_list(output, limit=2) == ["What is TPMS?", "What is Autosteer?"]


def test_parse_question_list_prefers_numbered_items_over_bullets() -> None:
    output = (
        "- Topic: charging\n"
        "1. How do I charge at home?\n"
        "   - at a Wall Connector\n"
        "2. How do I find a Supercharger?"
    )

    assert parse_question_list(output, limit=5) == [
        "How do I charge at home?",
        "How do I find a Supercharger?",
    ]


def test_parse_question_list_takes_unmarked_lines_ending_in_a_question_mark() -> None:
    output = "Questions:\nHow do I open the charge port?\nWhat is TPMS?\nThat is all."

    assert parse_question_list(output, limit=5) == [
        "How do I open the charge port?",
        "What is TPMS?",
    ]


def test_parse_question_list_keeps_items_that_are_not_questions_for_the_flags() -> None:
    output = "1. Describe the charging process\n2. Charging port location\n3. What is TPMS?"

    questions = parse_question_list(output, limit=5)

    assert questions == ["Describe the charging process", "Charging port location", "What is TPMS?"]
    assert question_flags(questions[1]) == [FLAG_NOT_A_QUESTION, FLAG_TOO_SHORT]


def test_parse_question_list_drops_an_answer_the_model_appended() -> None:
    output = "1. How do I open the frunk? Answer: press the button twice."

    assert parse_question_list(output, limit=5) == ["How do I open the frunk?"]


def test_parse_question_list_skips_items_with_no_words() -> None:
    assert parse_question_list("1. ?\n2. **\n3. What is TPMS?", limit=5) == ["What is TPMS?"]


@pytest.mark.parametrize(
    ("output", "shown"),
    [
        ("", "''"),
        ("I'm sorry, I cannot help with that.", '"I\'m sorry, I cannot help with that."'),
        ("1. ?\n2. !", "'1. ?\\n2. !'"),
    ],
)
def test_parse_question_list_raises_malformed_output_quoting_the_reply(
    output: str, shown: str
) -> None:
    with pytest.raises(MalformedOutput) as error:
        parse_question_list(output, limit=5)

    assert str(error.value) == f"no questions found in the model output: {shown}"


def test_malformed_output_quotes_only_the_first_80_characters() -> None:
    output = "x" * 200

    with pytest.raises(MalformedOutput) as error:
        parse_question_list(output, limit=5)

    assert str(error.value) == f"no questions found in the model output: '{'x' * 80}'"
    assert isinstance(error.value, ValueError)


def test_parse_question_list_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        parse_question_list("1. What?", limit=0)


# --------------------------------------------------------------------------------------------
# Cleaning answers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "cleaned"),
    [
        ("  Press the button twice.  \n", "Press the button twice."),
        ("Answer: Press the button twice.", "Press the button twice."),
        ("answer:Press the button twice.", "Press the button twice."),
        ("A: Press the button twice.", "Press the button twice."),
        ("**Answer:** Press the button twice.", "Press the button twice."),
        ('Answer: "Press the button twice."', "Press the button twice."),
        ("\u201cPress the button twice.\u201d", "Press the button twice."),
        ('"Park" and "Drive" are gears.', '"Park" and "Drive" are gears.'),
        ("*Note* the alert and *wait*", "*Note* the alert and *wait*"),
        ("Answers vary: ask Tesla.", "Answers vary: ask Tesla."),
        ("", ""),
    ],
)
def test_clean_answer_strips_labels_quotes_and_whitespace(output: str, cleaned: str) -> None:
    assert clean_answer(output) == cleaned


def test_clean_answer_keeps_markdown_lists_and_normalises_line_endings() -> None:
    output = (
        "Answer:\r\nTo calibrate a window:\r\n\r\n1. Close the door.\r\n2. Raise the window.\r\n"
    )

    assert (
        clean_answer(output) == "To calibrate a window:\n\n1. Close the door.\n2. Raise the window."
    )


# --------------------------------------------------------------------------------------------
# Identity and dedupe
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "normalized"),
    [
        ("How do I open the charge port?", "how do i open the charge port"),
        ("how do I open the  charge port", "how do i open the charge port"),
        ("  What's\tthe charge-port's status?! ", "whats the charge ports status"),
        ("What\u2019s TPMS?", "whats tpms"),
        ("\uff34\uff30\uff2d\uff33\u00a0warning?", "tpms warning"),
        ("What is DIF_a251/DIR_a251?", "what is dif_a251 dir_a251"),
        ("?!...", ""),
    ],
)
def test_normalize_question_removes_case_spacing_and_punctuation(
    question: str, normalized: str
) -> None:
    assert normalize_question(question) == normalized


def test_question_hash_is_the_sha256_of_the_normalised_question() -> None:
    expected = hashlib.sha256(b"how do i open the charge port").hexdigest()

    assert question_hash("How do I open the charge port?") == expected
    assert question_hash("how do I open the  charge port") == expected
    assert len(expected) == 64


def test_different_questions_have_different_hashes() -> None:
    assert question_hash("How do I open the charge port?") != question_hash(
        "How do I close the charge port?"
    )


# --------------------------------------------------------------------------------------------
# Quality flags
# --------------------------------------------------------------------------------------------


def test_quality_flags_are_distinct_and_complete() -> None:
    assert QUALITY_FLAGS == (
        "not_a_question",
        "too_short",
        "too_long",
        "empty_answer",
        "refusal",
        "duplicate",
        "source_changed",
        "low_grounding",
    )


@pytest.mark.parametrize(
    ("question", "flags"),
    [
        ("How do I open the charge port?", []),
        ("What is TPMS?", [FLAG_TOO_SHORT]),
        ("Explain how to open the frunk", []),
        ("Describe the steps to calibrate a window", []),
        ("Can the car charge in the rain", []),
        ("List the Autopilot features", []),
        ("The charge port opens with a press.", [FLAG_NOT_A_QUESTION]),
        ("Charging port location", [FLAG_NOT_A_QUESTION, FLAG_TOO_SHORT]),
        ("Charging?", [FLAG_TOO_SHORT]),
        ("", [FLAG_NOT_A_QUESTION, FLAG_TOO_SHORT]),
        ("  what about  it  ?", [FLAG_TOO_SHORT]),
        ("What does - mean here?", []),
        ("Why " + "very " * 38 + "long?", []),
        ("Why " + "very " * 39 + "long?", [FLAG_TOO_LONG]),
        ("Owner " + "notes " * 40, [FLAG_NOT_A_QUESTION, FLAG_TOO_LONG]),
    ],
)
def test_question_flags(question: str, flags: list[str]) -> None:
    assert question_flags(question) == flags


@pytest.mark.parametrize(
    "answer",
    [
        "Press the brake pedal.",
        "Yes, Model 3 can charge in the rain.",
        # Real Model 3 answers that mention "does not", "unable to" or "not covered" about the
        # car, not about the text.
        "This alert does not indicate a flat tire but rather serves as a warning.",
        'The "Unable to charge - Insufficient grounding" alert indicates a ground fault.',
        "Damage caused by water is not covered under warranty.",
        "The list provided in the documentation does not cover every possible situation.",
        "The system may not warn you when the speed limit cannot be determined.",
        "If a priority device is not specified, Model 3 connects to the last one used.",
        "If the alert does not clear after 24 hours, schedule service.",
    ],
)
def test_answer_flags_pass_real_answers(answer: str) -> None:
    assert answer_flags(answer) == []


@pytest.mark.parametrize(
    "answer",
    [
        "The text does not say how long charging takes.",
        "The provided text doesn't mention the tire size.",
        "The passage does not provide that information.",
        "The documentation does not specify a particular service provider.",
        "The context doesn\u2019t explicitly state the answer.",
        "The manual did not describe the procedure.",
        "The specific amount of the idle fees is not mentioned in the provided text.",
        "The frequency is not explicitly mentioned in the provided text.",
        "The scenarios are not listed in this section.",
        "That is not mentioned.",
        "There is no mention of a spare tire.",
        "There is no information about towing.",
        "No specific information is given.",
        "There is not enough information to answer.",
        "I don't know the answer to that.",
        "I do not know.",
        "I'm not sure which setting applies.",
        "I cannot answer this question from the text.",
        "This question cannot be answered from the text.",
        "I am unable to answer that.",
        "It is not possible to determine the range from the text.",
        "The range cannot be determined from the text.",
        "As an AI language model, I have no access to your car.",
        "I'm sorry, but the manual does not cover this.",
        "I apologize, but I cannot help.",
        "THE TEXT DOES NOT MENTION IT.",
        # What DEFAULT_ANSWER_USER_TEMPLATE asks the model to say when it cannot answer.
        "The text does not answer this question.",
    ],
)
def test_answer_flags_catch_refusals(answer: str) -> None:
    assert answer_flags(answer) == [FLAG_REFUSAL]


@pytest.mark.parametrize(
    ("answer", "flags"),
    [
        ("", [FLAG_EMPTY_ANSWER]),
        ("   \n ", [FLAG_EMPTY_ANSWER]),
        ("ERROR", [FLAG_EMPTY_ANSWER]),
        ("Yes.", [FLAG_EMPTY_ANSWER]),
        ("- ?", [FLAG_EMPTY_ANSWER]),
        ("Yes, twice.", []),
        ("Not mentioned.", [FLAG_REFUSAL]),
    ],
)
def test_answer_flags_catch_empty_answers(answer: str, flags: list[str]) -> None:
    assert answer_flags(answer) == flags


# --------------------------------------------------------------------------------------------
# Grounding
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "source", "score"),
    [
        # content words {press, brake, pedal, firmly}; 3 of 4 in the source
        ("Press the brake pedal firmly.", "Press the brake pedal.", 0.75),
        ("Press the brake pedal.", "To stop, press the brake pedal.", 1.0),
        # numbers are content words: {wait, 30, seconds}, "30" is not in the source
        ("Wait 30 seconds.", "Wait 10 seconds before you open it.", 2 / 3),
        # each distinct word counts once: {brake, pedal}
        ("Brake, brake, brake, then the pedal.", "Use the brake.", 0.5),
        ("PRESS THE PEDAL", "press the pedal", 1.0),
        ("It is what it is.", "It is.", 0.0),
        ("", "anything", 0.0),
        ("Open the frunk.", "", 0.0),
        ("Use DIF_a251 codes", "alert DIF_a251 shows codes", 2 / 3),
    ],
)
def test_lexical_grounding_is_the_share_of_answer_content_words_in_the_source(
    answer: str, source: str, score: float
) -> None:
    assert lexical_grounding(answer, source) == pytest.approx(score)


def test_an_answer_copied_from_its_source_is_fully_grounded() -> None:
    source = "Press the brake pedal, then touch Park on the touchscreen. Wait 2 seconds."

    assert lexical_grounding(source, source) == 1.0
    assert lexical_grounding(source[:30], source) == 1.0


@pytest.mark.parametrize(
    ("lexical", "semantic", "score"),
    [
        (0.6, None, 0.6),
        (0.6, 0.5, 0.55),  # (0.5 - 0.2) / 0.6 = 0.5; (0.6 + 0.5) / 2
        (0.2, 0.95, 0.6),  # cosine above 0.8 clamps to 1.0
        (0.8, 0.1, 0.4),  # cosine below 0.2 clamps to 0.0
        (0.8, -0.3, 0.4),
        (1.0, 0.8, 1.0),
        (0.0, 0.2, 0.0),
        (0.0, None, 0.0),
    ],
)
def test_grounding_score_averages_lexical_with_the_rescaled_cosine(
    lexical: float, semantic: float | None, score: float
) -> None:
    assert grounding_score(lexical=lexical, semantic=semantic) == pytest.approx(score)


@pytest.mark.parametrize(
    ("lexical", "semantic"), [(1.2, None), (-0.1, 0.5), (math.nan, None), (0.5, math.nan)]
)
def test_grounding_score_rejects_out_of_range_inputs(
    lexical: float, semantic: float | None
) -> None:
    with pytest.raises(ValueError):
        grounding_score(lexical=lexical, semantic=semantic)


def test_low_grounding_threshold_is_the_measured_cut_off() -> None:
    assert LOW_GROUNDING_THRESHOLD == 0.35


# --------------------------------------------------------------------------------------------
# Context fitting
# --------------------------------------------------------------------------------------------


def assert_no_text_lost(text: str, parts: list[str]) -> None:
    """Parts are slices of ``text`` in order, and only whitespace lies between them."""
    position = 0
    for part in parts:
        found = text.index(part, position)
        assert text[position:found].strip() == ""
        position = found + len(part)
    assert text[position:].strip() == ""
    assert " ".join(parts).split() == text.split()


def test_split_to_fit_returns_text_that_fits_unchanged_as_one_part() -> None:
    text = "  Two paragraphs.\n\nSecond one.  \n"

    assert split_to_fit(text, budget_tokens=5, count_tokens=word_count) == [text]


def test_split_to_fit_packs_whole_paragraphs_greedily() -> None:
    text = "a b c\n\nd e\n\nf g h i\n\nj"

    parts = split_to_fit(text, budget_tokens=5, count_tokens=word_count)

    assert parts == ["a b c\n\nd e", "f g h i\n\nj"]


def test_split_to_fit_splits_a_long_paragraph_into_lines_then_sentences_then_words() -> None:
    text = (
        "Intro para.\n\n"
        "- item one\n- item two\n- item three\n\n"
        "One two three. Four five six seven. Eight.\n\n"
        "w1 w2 w3 w4 w5 w6 w7 w8 w9"
    )

    parts = split_to_fit(text, budget_tokens=4, count_tokens=word_count)

    assert parts == [
        "Intro para.",
        "- item one",
        "- item two",
        "- item three",
        "One two three.",
        "Four five six seven.",
        "Eight.",
        "w1 w2 w3 w4",
        "w5 w6 w7 w8",
        "w9",
    ]
    assert_no_text_lost(text, parts)


def test_split_to_fit_drops_trailing_spaces_at_a_split_but_never_text() -> None:
    text = "alpha beta  \n\n  gamma delta\t\n\nepsilon"

    parts = split_to_fit(text, budget_tokens=2, count_tokens=word_count)

    assert parts == ["alpha beta", "gamma delta", "epsilon"]


def test_split_to_fit_cuts_a_word_longer_than_the_budget_into_characters() -> None:
    def characters(text: str) -> int:
        return len(text)

    parts = split_to_fit("ab abcdefghij", budget_tokens=4, count_tokens=characters)

    assert parts == ["ab", "abcd", "efgh", "ij"]


def test_split_to_fit_refuses_a_budget_that_cannot_hold_anything() -> None:
    with pytest.raises(ValueError, match="budget_tokens must be at least 1"):
        split_to_fit("text", budget_tokens=0, count_tokens=word_count)
    with pytest.raises(ValueError, match="cannot hold even the single character 'a'"):
        split_to_fit("a b", budget_tokens=1, count_tokens=lambda text: 2 * len(text))


def test_split_to_fit_keeps_every_part_within_budget_on_random_text() -> None:
    rng = random.Random(7)
    words = ["brake", "pedal", "Park.", "touchscreen", "the", "Wait!", "seconds?", "Model"]
    for _ in range(50):
        paragraphs = []
        for _ in range(rng.randint(1, 6)):
            lines = [
                " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
                for _ in range(rng.randint(1, 4))
            ]
            paragraphs.append("\n".join(lines))
        text = "\n\n".join(paragraphs)
        budget = rng.randint(3, 60)

        parts = split_to_fit(text, budget_tokens=budget, count_tokens=word_token_count)

        assert all(word_token_count(part) <= budget for part in parts)
        assert all(part == part.strip() and part for part in parts) or parts == [text]
        assert_no_text_lost(text, parts)


# --------------------------------------------------------------------------------------------
# Importers
# --------------------------------------------------------------------------------------------


def test_parse_question_extractor_json_reads_an_array_of_records() -> None:
    raw = json.dumps(
        [
            {
                "source": "data_gpt35_v2/docs/charging_instructions.md",
                "question": " How do I charge? ",
                "answer": "Plug it in.\n\n1. Open the port.",
            },
            {
                "source": (
                    "data_gpt35_v2/docs/troubleshooting_alerts_p1.md/##alert:-dif_a251-/-dir_a251"
                ),
                "question": "What does DIF_a251 mean?",
                "answer": "A drive inverter fault.",
            },
        ],
        indent=2,
    )

    records, problems = parse_question_extractor_json(raw)

    assert problems == []
    assert records == [
        ImportRecord(
            1,
            "charging_instructions.md",
            None,
            "How do I charge?",
            "Plug it in.\n\n1. Open the port.",
        ),
        ImportRecord(
            2,
            "troubleshooting_alerts_p1.md",
            "alert:-dif_a251-/-dir_a251",
            "What does DIF_a251 mean?",
            "A drive inverter fault.",
        ),
    ]


@pytest.mark.parametrize(
    ("source", "page", "slug"),
    [
        ("charging.md", "charging.md", None),
        ("docs/charging.md/##", "charging.md", None),
        ("C:\\data\\docs\\charging.md", "charging.md", None),
        (
            "a/b/maps.md/##home,-work,-and-favorite-destinations",
            "maps.md",
            "home,-work,-and-favorite-destinations",
        ),
    ],
)
def test_question_extractor_sources_become_page_and_section_slug(
    source: str, page: str, slug: str | None
) -> None:
    raw = json.dumps([{"source": source, "question": "Q?", "answer": "A a."}])

    records, _ = parse_question_extractor_json(raw)

    assert (records[0].page, records[0].section_slug) == (page, slug)


def test_parse_question_extractor_json_reports_bad_records_and_imports_the_rest() -> None:
    good = {"source": "p.md", "question": "Q?", "answer": "A."}
    raw = json.dumps(
        [
            good,
            {"source": "p.md", "question": "Q?"},
            {"source": "p.md", "question": "  ", "answer": 3},
            ["p.md", "Q?", "A."],
            {"question": None, "answer": "A."},
            good,
        ]
    )

    records, problems = parse_question_extractor_json(raw)

    assert [record.line for record in records] == [1, 6]
    assert problems == [
        ImportProblem(2, 'record 2: missing "answer"'),
        ImportProblem(3, 'record 3: "question" is empty; "answer" must be a string, got a number'),
        ImportProblem(
            4, 'record 4: expected an object with "source", "question" and "answer", got an array'
        ),
        ImportProblem(5, 'record 5: missing "source"; "question" must be a string, got null'),
    ]


def test_parse_question_extractor_json_reads_json_lines_with_line_numbers() -> None:
    raw = (
        '{"source": "p.md", "question": "Q1?", "answer": "A1."}\n'
        "\n"
        '{"source": "p.md/##s", "question": "Q2?", "answer": "A2."}\n'
        "not json\n"
        '{"source": "p.md", "question": "Q3?"}\n'
        "42\n"
    )

    records, problems = parse_question_extractor_json(raw)

    assert records == [
        ImportRecord(1, "p.md", None, "Q1?", "A1."),
        ImportRecord(3, "p.md", "s", "Q2?", "A2."),
    ]
    assert problems == [
        ImportProblem(4, "line 4: not valid JSON: Expecting value"),
        ImportProblem(5, 'line 5: missing "answer"'),
        ImportProblem(
            6, 'line 6: expected an object with "source", "question" and "answer", got a number'
        ),
    ]


def test_parse_question_extractor_json_reads_a_single_pretty_printed_object() -> None:
    raw = json.dumps({"source": "p.md", "question": "Q?", "answer": "A."}, indent=2)

    assert parse_question_extractor_json(raw) == ([ImportRecord(1, "p.md", None, "Q?", "A.")], [])


def test_invalid_json_array_is_one_problem_at_the_parser_line() -> None:
    raw = '[\n  {"source": "p.md", "question": "Q?", "answer": "A."},\n  {"source": oops}\n]'

    records, problems = parse_question_extractor_json(raw)

    assert records == []
    assert problems == [ImportProblem(3, "line 3: not valid JSON: Expecting value")]


def test_importers_accept_bytes_with_a_byte_order_mark() -> None:
    raw = '\ufeff[{"source": "p.md", "question": "Q\u2019s?", "answer": "A."}]'.encode()

    records, problems = parse_question_extractor_json(raw)

    assert (records[0].question, problems) == ("Q\u2019s?", [])


def test_importers_report_bytes_that_are_not_utf8_at_their_line() -> None:
    raw = b'{"text": "<s>[INST] q [/INST] a </s>"}\n{"text": "\xff"}\n'

    assert parse_inst_jsonl(raw) == (
        [],
        [ImportProblem(2, "line 2: the file is not UTF-8 text (invalid start byte)")],
    )
    assert parse_question_extractor_json(raw)[1][0].line == 2


def test_empty_files_import_nothing() -> None:
    assert parse_question_extractor_json("") == ([], [])
    assert parse_inst_jsonl("\n\n") == ([], [])


def test_parse_inst_jsonl_reads_question_and_answer() -> None:
    raw = json.dumps({"text": "<s>[INST] How do I open the frunk? [/INST] Press it twice. </s>"})

    records, problems = parse_inst_jsonl(raw)

    assert problems == []
    assert records == [ImportRecord(1, "", None, "How do I open the frunk?", "Press it twice.")]


@pytest.mark.parametrize(
    "text",
    [
        "[INST] How do I open the frunk? [/INST] Press it twice.",
        "<s>[INST]How do I open the frunk?[/INST]Press it twice.</s>",
        "  <s> [INST]\n  How do I open the frunk?\n [/INST]\n Press it twice. \n</s>\n",
        "<s>[INST] <<SYS>>\nAnswer from the Model 3 manual.\n<</SYS>>\n\n"
        "How do I open the frunk? [/INST] Press it twice. </s>",
    ],
)
def test_parse_inst_jsonl_tolerates_missing_tokens_whitespace_and_a_system_block(
    text: str,
) -> None:
    records, problems = parse_inst_jsonl(json.dumps({"text": text}))

    assert problems == []
    assert [(r.question, r.answer) for r in records] == [
        ("How do I open the frunk?", "Press it twice.")
    ]


def test_parse_inst_jsonl_keeps_a_multi_line_answer() -> None:
    text = "<s>[INST] How? [/INST] Do this:\n\n1. Open.\n2. Close. </s>"

    records, _ = parse_inst_jsonl(json.dumps({"text": text}))

    assert records[0].answer == "Do this:\n\n1. Open.\n2. Close."


def test_parse_inst_jsonl_reports_bad_lines_with_their_numbers() -> None:
    lines = [
        json.dumps({"text": format_inst("Q1?", "A1.")}),
        "",
        "{not json",
        json.dumps({"text": "How do I open the frunk? Press it twice."}),
        json.dumps({"prompt": "x"}),
        json.dumps({"text": ["x"]}),
        json.dumps({"text": "<s>[INST]  [/INST]  </s>"}),
        json.dumps({"text": "<s>[INST] q1 [/INST] a1 </s><s>[INST] q2 [/INST] a2 </s>"}),
        json.dumps("just a string"),
        json.dumps({"text": format_inst("Q2?", "A2.")}),
    ]

    records, problems = parse_inst_jsonl("\n".join(lines) + "\n")

    assert [(r.line, r.question, r.answer) for r in records] == [
        (1, "Q1?", "A1."),
        (10, "Q2?", "A2."),
    ]
    assert problems == [
        ImportProblem(
            3, "line 3: not valid JSON: Expecting property name enclosed in double quotes"
        ),
        ImportProblem(
            4, 'line 4: "text" is not in the form "<s>[INST] question [/INST] answer </s>"'
        ),
        ImportProblem(5, 'line 5: missing "text"'),
        ImportProblem(6, 'line 6: "text" must be a string, got an array'),
        ImportProblem(7, "line 7: the question is empty; the answer is empty"),
        ImportProblem(8, "line 8: more than one [INST] turn; expected exactly one"),
        ImportProblem(9, 'line 9: expected an object with "text", got a string'),
    ]


def test_format_inst_writes_the_seed_training_format() -> None:
    assert format_inst(" How do I open the frunk? ", "Press it twice.\n") == (
        "<s>[INST] How do I open the frunk? [/INST] Press it twice. </s>"
    )


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is [INST]?", "A."),
        ("Q?", "Ends with </s>"),
        ("Q?", "<<SYS>> x"),
        ("", "A."),
        ("Q?", " "),
    ],
)
def test_format_inst_refuses_pairs_that_would_not_read_back(question: str, answer: str) -> None:
    with pytest.raises(ValueError):
        format_inst(question, answer)


def test_format_inst_output_reads_back_through_parse_inst_jsonl() -> None:
    pairs = [("How do I open the {frunk}?", 'Press "Open" twice.\n\n- then lift'), ("Q2?", "A2.")]
    raw = "\n".join(json.dumps({"text": format_inst(q, a)}) for q, a in pairs)

    records, problems = parse_inst_jsonl(raw)

    assert problems == []
    assert [(r.question, r.answer) for r in records] == pairs


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Alert: DIF_a251 / DIR_a251", "alert:-dif_a251-/-dir_a251"),
        ("Alert: Alert: APP_w009", "alert:-alert:-app_w009"),
        (
            "Autosteer on City Streets (Full Self-Driving (Beta))",
            "autosteer-on-city-streets-(full-self-driving-(beta))",
        ),
        ("  Home, Work, and Favorite Destinations ", "home,-work,-and-favorite-destinations"),
        ("## Trip Planner", "trip-planner"),
        ("Two  spaces", "two--spaces"),
    ],
)
def test_heading_slug_follows_question_extractor(heading: str, slug: str) -> None:
    assert heading_slug(heading) == slug


# --------------------------------------------------------------------------------------------
# The real Model 3 data (skipped where ../shared/data/model3-manual is absent)
# --------------------------------------------------------------------------------------------


def model3_records(model3_dir: Path) -> list[ImportRecord]:
    records, problems = parse_question_extractor_json((model3_dir / "qa_pairs.json").read_bytes())
    assert problems == []
    return records


def model3_sections(markdown: str) -> dict[str, str]:
    """Each "## " section of a page (up to the next "#"/"##" heading), keyed by heading_slug."""
    sections: dict[str, str] = {}
    slug: str | None = None
    lines: list[str] = []
    for line in [*markdown.splitlines(), "# end"]:
        if line.startswith(("# ", "## ")):
            if slug is not None:
                sections.setdefault(slug, "\n".join(lines))
            slug = heading_slug(line[3:]) if line.startswith("## ") else None
            lines = []
        lines.append(line)
    return sections


def model3_source_texts(model3_dir: Path, records: list[ImportRecord]) -> list[str]:
    """The page, or the "## " section, each record was generated from."""
    pages = {path.name: path.read_text() for path in (model3_dir / "docs").glob("*.md")}
    sections = {name: model3_sections(text) for name, text in pages.items()}
    return [
        sections[record.page][record.section_slug] if record.section_slug else pages[record.page]
        for record in records
    ]


@pytest.mark.needs_model3
def test_the_model3_qa_pairs_import_without_problems(model3_dir: Path) -> None:
    records, problems = parse_question_extractor_json((model3_dir / "qa_pairs.json").read_bytes())

    assert (len(records), problems) == (2078, [])
    assert records[0].page == "installing_front_license_plate_bracket.md"
    assert sum(1 for record in records if record.section_slug) == 1090
    pages = {path.name for path in (model3_dir / "docs").glob("*.md")}
    assert {record.page for record in records} <= pages
    # Every section slug names a "## " heading of its page, so its text can be found.
    texts = model3_source_texts(model3_dir, records)
    assert all(text.strip() for text in texts)


@pytest.mark.needs_model3
def test_the_model3_qa_pairs_round_trip_through_both_jsonl_forms(model3_dir: Path) -> None:
    records = model3_records(model3_dir)
    inst = "\n".join(json.dumps({"text": format_inst(r.question, r.answer)}) for r in records)
    question_extractor_lines = "\n".join(
        json.dumps({"source": f"docs/{r.page}", "question": r.question, "answer": r.answer})
        for r in records
    )

    inst_records, inst_problems = parse_inst_jsonl(inst.encode())
    lines_records, lines_problems = parse_question_extractor_json(question_extractor_lines)

    assert (len(inst_records), inst_problems) == (2078, [])
    assert [(r.question, r.answer) for r in inst_records] == [
        (r.question, r.answer) for r in records
    ]
    assert (len(lines_records), lines_problems) == (2078, [])
    assert [r.line for r in lines_records] == list(range(1, 2079))


@pytest.mark.needs_model3
def test_model3_answers_are_grounded_in_their_own_source(model3_dir: Path) -> None:
    """The measurements behind LOW_GROUNDING_THRESHOLD (see the comment on it in qa.py)."""
    records = model3_records(model3_dir)
    sources = model3_source_texts(model3_dir, records)
    pages = {path.name: path.read_text() for path in sorted((model3_dir / "docs").glob("*.md"))}
    rng = random.Random(0)

    own = [lexical_grounding(r.answer, source) for r, source in zip(records, sources, strict=True)]
    random_page = [
        lexical_grounding(r.answer, pages[rng.choice([n for n in pages if n != r.page])])
        for r in records
    ]

    assert statistics.median(own) == pytest.approx(0.76, abs=0.01)
    assert statistics.median(random_page) == pytest.approx(0.18, abs=0.03)
    own_low = sum(score < LOW_GROUNDING_THRESHOLD for score in own)
    random_low = sum(score < LOW_GROUNDING_THRESHOLD for score in random_page)
    assert own_low == 41  # 2.0% of the genuine pairs
    assert random_low / len(records) > 0.80  # 84% of the answers put against the wrong page


@pytest.mark.needs_model3
def test_model3_pairs_flag_counts(model3_dir: Path) -> None:
    records = model3_records(model3_dir)

    question_counts = collections.Counter(f for r in records for f in question_flags(r.question))
    answer_counts = collections.Counter(f for r in records for f in answer_flags(r.answer))

    assert question_counts == {}
    assert answer_counts == {FLAG_REFUSAL: 8, FLAG_EMPTY_ANSWER: 1}
    assert [r.answer for r in records if answer_flags(r.answer) == [FLAG_EMPTY_ANSWER]] == ["ERROR"]


@pytest.mark.needs_model3
def test_model3_duplicate_questions_repeat_across_sources_not_within_one(
    model3_dir: Path,
) -> None:
    records = model3_records(model3_dir)

    by_hash = collections.Counter(question_hash(r.question) for r in records)
    by_source = collections.Counter(
        (r.page, r.section_slug, question_hash(r.question)) for r in records
    )

    assert len(by_hash) == 1910
    assert sum(count - 1 for count in by_hash.values()) == 168
    assert sum(1 for count in by_hash.values() if count > 1) == 81
    # The unique constraint is per chunk: none of these would collide within one source.
    assert max(by_source.values()) == 1


@pytest.mark.needs_model3
def test_the_largest_model3_page_splits_within_budget_without_losing_text(
    model3_dir: Path,
) -> None:
    text = (model3_dir / "docs" / "troubleshooting_alerts_p3.md").read_text()
    assert word_token_count(text) > 8000

    parts = split_to_fit(text, budget_tokens=1000, count_tokens=word_token_count)

    assert len(parts) >= 9
    assert all(word_token_count(part) <= 1000 for part in parts)
    # Packing whole paragraphs: every part starts where a paragraph of the page starts.
    first_lines = {paragraph.strip().splitlines()[0] for paragraph in text.split("\n\n")}
    assert all(part.splitlines()[0] in first_lines for part in parts)
    assert_no_text_lost(text, parts)
