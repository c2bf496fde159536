"""The owner question sets that bench/answers.py reports on read as evaluation questions, and
every must-include string of an answerable one stands in a page it names (the Model 3 manual,
skipped where it is absent)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BASE_DIR
from training.evaluation import questions_parse_jsonl

QUESTIONS = BASE_DIR / "bench" / "questions"
REPORTED = [
    "model3-owners.jsonl",
    "model3-blind.jsonl",
    "model3-blind2.jsonl",
    "model3-blind3.jsonl",
    "model3-blind4.jsonl",
    "model3-blind5.jsonl",
    "model3-blind6.jsonl",
    "model3-blind7.jsonl",
    "model3-blind8.jsonl",
]


@pytest.mark.parametrize("name", REPORTED)
def test_a_reported_question_set_reads_as_evaluation_questions(name):
    text = (QUESTIONS / name).read_text(encoding="utf-8")

    questions = questions_parse_jsonl(text)

    assert len(questions) == len(text.splitlines())
    ids = [question["id"] for question in questions]
    assert len(set(ids)) == len(ids)
    answerable = [q for q in questions if q["kind"] != "unanswerable"]
    assert answerable and all(q["must_include"] for q in answerable)
    assert all(not q["must_include"] for q in questions if q["kind"] == "unanswerable")


@pytest.mark.parametrize("name", REPORTED)
def test_every_must_include_string_stands_in_a_page_the_question_names(name, model3_dir):
    missing = []
    for line in (QUESTIONS / name).read_text(encoding="utf-8").splitlines():
        question = json.loads(line)
        pages = " ".join(
            (model3_dir / "docs" / page).read_text(encoding="utf-8").lower()
            for page in question.get("sources", [])
        )
        missing += [
            (question["id"], wanted)
            for wanted in question.get("must_include", [])
            if wanted.lower() not in pages
        ]

    assert missing == []
