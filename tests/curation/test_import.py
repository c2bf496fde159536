"""Importing existing QA pairs onto ingested documents."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from curation import qa, services
from curation.models import DocumentChunk, QAPair
from tests.curation.generation_support import make_manual

pytestmark = pytest.mark.django_db


def test_question_extractor_records_land_on_their_page_and_section():
    manual = make_manual()
    raw = json.dumps(
        [
            {
                "source": "data/docs/charging.md/##manual-release",
                "question": "How do I open the charge port with no power?",
                "answer": "Pull the charge port release cable in the trunk on the left side.",
            },
            {
                "source": "data/docs/tires.md",
                "question": "What pressure should 18 inch tires have?",
                "answer": "42 PSI (290 kPa) cold, front and rear.",
            },
        ]
    )

    report = services.qa_pairs_import(manual=manual, raw=raw)

    assert (report.created, report.already_present, report.problems) == (2, 0, [])
    release = QAPair.objects.get(question__startswith="How do I open")
    assert release.chunk.heading_path == "Charging > Manual Release"
    assert release.origin == QAPair.Origin.IMPORTED
    assert release.status == QAPair.Status.PENDING
    tires = QAPair.objects.get(question__startswith="What pressure")
    assert tires.chunk.heading_path == "Tires > Tire Pressure"  # closest chunk of its page
    assert tires.grounding_score is not None and tires.question_embedding is not None


def test_bad_lines_are_reported_by_number_and_the_rest_import():
    manual = make_manual()
    lines = [
        json.dumps({"text": "<s>[INST] How often should I rotate the tires? [/INST] Every "
                    "10,000 km. </s>"}),
        "this is not json",
        json.dumps({"text": "no instruction markers here"}),
        json.dumps({"text": "<s>[INST] How do I open the charge port? [/INST] ERROR </s>"}),
        json.dumps({"text": "<s>[INST] What does the release cable do? [/INST] It opens the "
                    "charge port door when there is no power. </s>"}),
    ]  # fmt: skip

    report = services.qa_pairs_import(manual=manual, raw="\n".join(lines))

    assert report.created == 2
    assert sorted(problem.line for problem in report.problems) == [2, 3, 4]
    assert any("placeholder" in problem.message for problem in report.problems)
    assert not QAPair.objects.filter(answer__icontains="ERROR").exists()
    rotate = QAPair.objects.get(question__startswith="How often")
    assert rotate.chunk.heading_path == "Tires > Rotation"  # matched across the whole manual


def test_importing_the_same_file_twice_adds_nothing():
    manual = make_manual()
    raw = json.dumps(
        [{"source": "tires.md", "question": "How often do I rotate tires?", "answer": "10,000 km."}]
    )
    services.qa_pairs_import(manual=manual, raw=raw)

    again = services.qa_pairs_import(manual=manual, raw=raw)

    assert (again.created, again.already_present) == (0, 1)
    assert QAPair.objects.count() == 1


def test_a_record_for_an_unknown_page_is_a_problem_not_a_guess():
    manual = make_manual()
    raw = json.dumps([{"source": "docs/wipers.md", "question": "How?", "answer": "Like so."}])

    report = services.qa_pairs_import(manual=manual, raw=raw)

    assert report.created == 0
    assert report.problems[0].message == "record 1: no document named 'wipers.md'"


@pytest.mark.slow
@pytest.mark.needs_model3
def test_the_2078_model3_pairs_import_onto_the_ingested_manual(model3_dir):
    manual = services.manual_get_or_create(name="Model 3")
    run = services.ingestion_run_create(
        manual=manual, source=str(model3_dir / "docs"), enqueue=False
    )
    assert services.ingestion_run_execute(run_id=run.pk).status == "succeeded"

    report = services.qa_pairs_import(
        manual=manual, raw=(model3_dir / "qa_pairs.json").read_bytes()
    )

    records = json.loads((model3_dir / "qa_pairs.json").read_text())
    placeholders = sum(1 for r in records if qa.FLAG_EMPTY_ANSWER in qa.answer_flags(r["answer"]))
    assert [p.message for p in report.problems if "placeholder" not in p.message] == []
    assert report.created + report.already_present + placeholders == len(records) == 2078
    pairs = QAPair.objects.filter(manual=manual)
    assert pairs.count() == report.created
    assert not pairs.filter(chunk=None).exists()
    assert not pairs.filter(grounding_score=None).exists()

    # A record that names a section lands on a chunk of that section.
    def page_of(record: dict) -> str:
        return record["source"].rsplit("/docs/", 1)[1].split("/##", 1)[0]

    # A question repeated on one page is stored once, under the first section that asked it.
    asked = Counter((page_of(r), r["question"]) for r in records)
    checked = 0
    for record in (r for r in records if "/##" in r["source"]):
        page, slug = record["source"].rsplit("/docs/", 1)[1].split("/##", 1)
        if asked[(page, record["question"])] > 1:
            continue
        pair = pairs.filter(question=record["question"], document__source_name=page).first()
        if pair is None:  # a placeholder answer
            continue
        section = pair.chunk.heading_path.split(" > ")[1]
        assert qa.heading_slug(section) == slug, (record["source"], pair.chunk.heading_path)
        checked += 1
    assert checked > 800  # of 1,090 sectioned records, the rest are repeats
    assert DocumentChunk.objects.filter(document__manual=manual).count() > 1000
