"""The plain parts of evaluation: question files, page matching, the judge's reply, summaries.

Every value below is computed by hand in the comment next to it. No database is needed.
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from training import evaluation
from training.evaluation import (
    citation_hit,
    document_rank,
    evaluation_item_failures,
    format_metric,
    judge_prompt_render,
    judge_scores_parse,
    page_key,
    questions_parse_jsonl,
    ranked_documents,
    summarize,
    summary_table,
)
from training.models import EvaluationItem


def jsonl(*rows) -> str:
    return "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n"


# --------------------------------------------------------------------------------------------
# Question files


def test_a_question_file_is_read_with_defaults_for_what_a_line_leaves_out():
    questions = questions_parse_jsonl(
        jsonl(
            {"id": "q1", "question": " What PSI? ", "answer": "42 PSI", "sources": ["tires.md"]},
            "",
            {"question": "Resale value?", "kind": "unanswerable"},
            {"id": 7, "question": "Fob battery?", "must_include": ["CR2032"], "kind": None},
        )
    )

    assert questions == [
        {
            "id": "q1",
            "question": "What PSI?",
            "answer": "42 PSI",
            "sources": ["tires.md"],
            "must_include": [],
            "kind": "answerable",
        },
        {
            "id": "line-3",
            "question": "Resale value?",
            "answer": "",
            "sources": [],
            "must_include": [],
            "kind": "unanswerable",
        },
        {
            "id": "7",
            "question": "Fob battery?",
            "answer": "",
            "sources": [],
            "must_include": ["CR2032"],
            "kind": "answerable",
        },
    ]


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ('{"question": "ok?"', "Line 2: not valid JSON"),
        ('["question"]', "Line 2: expected a JSON object, got list"),
        ('{"answer": "42"}', 'Line 2: it has no "question"'),
        ('{"question": "   "}', 'Line 2: it has no "question"'),
        ('{"question": "q?", "kind": "a very long category label"}', "Line 2: the kind 'a very"),
        ('{"question": "q?", "kind": "fact!"}', "Line 2: the kind 'fact!' is not a short label"),
        ('{"question": "q?", "kind": 3}', 'Line 2: "kind" must be a string'),
        ('{"question": "q?", "sources": "tires.md"}', 'Line 2: "sources" must be a list'),
        ('{"question": "q?", "must_include": [42]}', 'Line 2: "must_include" must be a list'),
        ('{"question": "q?", "answer": 42}', 'Line 2: "answer" must be a string'),
        ('{"id": "a", "question": "again?"}', "Line 2: the id 'a' is already used on line 1"),
    ],
)
def test_a_bad_line_refuses_the_file_naming_the_line(bad_line, expected):
    raw = jsonl({"id": "a", "question": "Fine?"}, bad_line, {"question": "Also fine?"})

    with pytest.raises(ValidationError) as caught:
        questions_parse_jsonl(raw)

    assert len(caught.value.messages) == 1
    assert caught.value.messages[0].startswith(expected), caught.value.messages


def test_every_bad_line_is_named_not_only_the_first():
    raw = jsonl("not json", {"question": "Good?"}, {"kind": "answerable"}, "[]")

    with pytest.raises(ValidationError) as caught:
        questions_parse_jsonl(raw)

    assert [m.split(":")[0] for m in caught.value.messages] == ["Line 1", "Line 3", "Line 4"]


def test_a_question_longer_than_the_chat_allows_is_refused(settings):
    settings.CHAT_MAX_QUESTION_CHARS = 10

    with pytest.raises(ValidationError, match="Line 1: the question is 11 characters"):
        questions_parse_jsonl(jsonl({"question": "x" * 11}))


def test_an_empty_file_and_a_file_that_is_not_utf8_are_refused():
    with pytest.raises(ValidationError, match="has no questions"):
        questions_parse_jsonl("\n\n")
    with pytest.raises(ValidationError, match="not UTF-8"):
        questions_parse_jsonl(b'{"question": "caf\xe9?"}\n')


def test_a_byte_order_mark_is_not_part_of_the_first_line():
    questions = questions_parse_jsonl('\ufeff{"question": "Hi?"}\n'.encode())

    assert questions[0]["question"] == "Hi?"


# --------------------------------------------------------------------------------------------
# Matching pages


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("charging_instructions.md", "charging_instructions"),
        (
            "data_gpt35_v2/docs/charging_instructions.md/##Charging Settings",
            "charging_instructions",
        ),
        ("manual/charging.html", "charging"),
        ("Charging.HTML", "charging"),
        ("https://example.com/manual/tires.html?lang=en#pressure", "tires"),
        ("docs\\keys.md", "keys"),
        ("faq?page=2", "faq"),
        (".md", ".md"),
    ],
)
def test_page_key_reduces_every_way_of_naming_a_page_to_its_base_name(name, key):
    assert page_key(name) == key


def test_a_question_set_written_for_markdown_pages_matches_html_documents():
    assert document_rank(["manual/tires.html"], ["tires.md"]) == 1


def test_documents_are_ranked_by_their_first_chunk_and_counted_once():
    # Chunks from a, a, b, a, c: documents a, b, c; "c" is the third document, not the fifth
    # chunk.
    documents = ranked_documents(["a.md", "a.md", "b.md", "a.md", "c.md", ""])

    assert documents == ["a.md", "b.md", "c.md"]
    assert document_rank(documents, ["c.md"]) == 3
    assert document_rank(documents, ["x.md", "b.md"]) == 2
    assert document_rank(documents, ["x.md"]) is None


def test_citation_hit_is_one_when_any_cited_document_is_expected():
    assert citation_hit(["a.html", "tires.html"], ["tires.md"]) == 1.0
    assert citation_hit(["a.html"], ["tires.md"]) == 0.0
    assert citation_hit([], ["tires.md"]) is None  # cited nothing: a decline, not a miss
    assert citation_hit(["a.html"], []) is None  # nothing expected


# --------------------------------------------------------------------------------------------
# The judge


def test_the_judge_prompt_fills_its_placeholders_once_and_keeps_other_braces():
    template = 'Q: {question}\nR: {reference}\nC: {context}\nA: {answer}\n{"correctness": 4}'

    prompt = judge_prompt_render(
        template, question="Why?", reference="Because.", context="[1] x", answer="{context}"
    )

    # The answer's literal "{context}" is text, not a placeholder to fill again.
    assert prompt == 'Q: Why?\nR: Because.\nC: [1] x\nA: {context}\n{"correctness": 4}'


def test_the_default_judge_prompt_has_every_placeholder():
    for placeholder in ("{question}", "{reference}", "{context}", "{answer}"):
        assert placeholder in evaluation.DEFAULT_JUDGE_PROMPT


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # (5 - 1) / 4 = 1.0 and (3 - 1) / 4 = 0.5
        ('{"correctness": 5, "faithfulness": 3}', {"correctness": 1.0, "faithfulness": 0.5}),
        (
            'Sure!\n```json\n{"Correctness": 2, "faithfulness": null}\n```',
            {"correctness": 0.25, "faithfulness": None},
        ),
        ("correctness: 4\nfaithfulness = 1", {"correctness": 0.75, "faithfulness": 0.0}),
        ('{"correctness": "3"}', {"correctness": 0.5, "faithfulness": None}),
        ("Correctness: 4.5, faithfulness: n/a", {"correctness": 0.875, "faithfulness": None}),
    ],
)
def test_the_judges_grades_are_read_and_mapped_onto_zero_to_one(reply, expected):
    assert judge_scores_parse(reply) == expected


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("It is a fine answer.", "no correctness grade"),
        ('{"correctness": 7}', "outside 1-5"),
        ('{"correctness": "good"}', "not a number"),
    ],
)
def test_an_unreadable_judge_reply_says_why(reply, problem):
    with pytest.raises(ValueError, match=problem):
        judge_scores_parse(reply)


# --------------------------------------------------------------------------------------------
# Summaries


def test_summarize_adds_context_recall_citations_judge_grades_and_errors_to_aggregate():
    items = [
        {
            "token_f1": 0.5,
            "rank": 1,
            "refused": False,
            "context_recall": 1.0,
            "citation_hit": 1.0,
            "judge_correctness": 0.75,
            "judge_faithfulness": 1.0,
            "latency_ms": 100,
            "error": "",
        },
        {
            "token_f1": 0.0,
            "rank": None,
            "context_recall": 0.5,
            "citation_hit": 0.0,
            "judge_correctness": 0.25,
            "error": "The model could not answer: boom",
        },
        {"refused": True, "unanswerable": True, "latency_ms": 300, "error": ""},
    ]

    summary = summarize(items)

    assert summary["token_f1"] == pytest.approx(0.25)  # (0.5 + 0.0) / 2 answerable
    assert summary["hit@1"] == pytest.approx(0.5)  # ranks 1 and None
    assert summary["mrr"] == pytest.approx(0.5)  # (1/1 + 0) / 2
    assert summary["context_recall"] == pytest.approx(0.75)  # (1.0 + 0.5) / 2
    assert summary["citation_hit_rate"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert summary["judge_correctness"] == pytest.approx(0.5)  # (0.75 + 0.25) / 2
    assert summary["judge_faithfulness"] == pytest.approx(1.0)  # one grade
    assert summary["refusal_accuracy"] == 1.0  # the one unanswerable question was declined
    assert summary["false_refusal_rate"] == 0.0  # the one answerable, answered item
    assert summary["latency_p50_ms"] == pytest.approx(200)  # between 100 and 300
    assert summary["errors"] == 1
    assert summary["count"] == 3


def test_a_summary_leaves_out_what_does_not_apply():
    summary = summarize([{"refused": False, "latency_ms": 10}])

    assert set(summary) == {
        "false_refusal_rate",
        "latency_p50_ms",
        "latency_p95_ms",
        "errors",
        "count",
    }


def test_metric_values_are_formatted_by_unit():
    assert format_metric("token_f1", 0.66666) == "0.667"
    assert format_metric("latency_p95_ms", 1234.6) == "1,235"
    assert format_metric("prompt_tokens", 412.25) == "412.2"
    assert format_metric("errors", 2) == "2"
    assert format_metric("mrr", None) == "-"


def test_the_summary_table_has_a_row_per_subject_and_a_column_per_metric_present():
    table = summary_table({"RAG": {"hit@1": 0.5, "count": 4}, "Base": {"count": 4}})

    lines = table.splitlines()
    assert lines[0].split() == ["subject", "hit@1", "count"]
    assert lines[1].split() == ["RAG", "0.500", "4"]
    assert lines[2].split() == ["Base", "-", "4"]


# --------------------------------------------------------------------------------------------
# What counts as a failed answer


@pytest.mark.parametrize(
    ("fields", "reasons"),
    [
        ({"metrics": {"token_f1": 0.9, "refused": False, "rank": 2}}, []),
        ({"error": "boom", "metrics": {}}, ["the answer failed"]),
        ({"metrics": {"rank": None}}, ["no expected page in the top 5"]),
        ({"metrics": {"rank": 6}}, ["no expected page in the top 5"]),
        ({"metrics": {"refused": True}}, ["declined an answerable question"]),
        (
            {"metrics": {"refused": False, "unanswerable": True}},
            ["answered an unanswerable question"],
        ),
        ({"metrics": {"must_include_rate": 0.5}}, ["missing must-include text"]),
        ({"metrics": {"judge_correctness": 0.25}}, ["the judge graded it incorrect"]),
        ({"metrics": {"refused": True, "unanswerable": True}}, []),
    ],
)
def test_an_answer_fails_for_the_reasons_the_drill_down_shows(fields, reasons):
    assert evaluation_item_failures(EvaluationItem(**fields)) == reasons
