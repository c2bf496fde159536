"""Review reads and writes: the supporting-sentence highlight, the review queue and dashboard
selectors, and re-generating answers against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from curation import qa, selectors, services
from curation.highlighting import (
    highlight_supporting_sentence,
    sentence_spans,
    supporting_sentence_span,
)
from curation.models import LLMEndpoint, QAPair, QAPairRevision
from manualqa.celery import app as celery_app
from tests.conftest import wait_for
from tests.curation.generation_support import make_manual, openai_endpoint
from tests.curation.review_support import make_pairs, reviewer, staff_user
from tests.fakeopenai import FakeOpenAI

SOURCE = (
    "Charging > Opening the Charge Port\n\n"
    "Press the button on the charge cable to open the charge port door. "
    "You can also touch Controls > Charge Port on the touchscreen.\n"
    "- If the door does not open, check that the vehicle is unlocked."
)


# -- the supporting sentence (plain functions, no database) ------------------------------------


def test_sentences_end_at_stops_and_at_line_breaks():
    sentences = [SOURCE[a:b] for a, b in sentence_spans(SOURCE)]
    assert sentences == [
        "Charging > Opening the Charge Port",
        "Press the button on the charge cable to open the charge port door.",
        "You can also touch Controls > Charge Port on the touchscreen.",
        "- If the door does not open, check that the vehicle is unlocked.",
    ]


def test_the_supporting_sentence_shares_the_most_words_with_the_answer():
    answer = "Use the touchscreen: touch Controls, then Charge Port."
    start, end = supporting_sentence_span(answer, SOURCE)
    assert SOURCE[start:end] == "You can also touch Controls > Charge Port on the touchscreen."

    answer = "Press the button on the charge cable and the door opens."
    start, end = supporting_sentence_span(answer, SOURCE)
    assert SOURCE[start:end].startswith("Press the button on the charge cable")


def test_nothing_is_highlighted_when_no_sentence_shares_a_word():
    assert supporting_sentence_span("Wipers: replace yearly.", SOURCE) is None
    assert supporting_sentence_span("", SOURCE) is None
    assert highlight_supporting_sentence("Wipers: replace yearly.", "<b>bold</b>") == (
        "&lt;b&gt;bold&lt;/b&gt;"
    )


def test_the_highlight_escapes_everything_and_marks_only_the_sentence():
    source = 'Intro <script>alert("x")</script>.\nHold the <brake> pedal for 3 seconds & wait.'
    html = highlight_supporting_sentence("Hold the brake pedal for 3 seconds.", source)
    assert html == (
        "Intro &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.\n"
        "<mark>Hold the &lt;brake&gt; pedal for 3 seconds &amp; wait.</mark>"
    )
    assert html.count("<mark>") == 1


# -- the review queue and the dashboard's numbers ----------------------------------------------


@pytest.fixture
def manual(db):
    return make_manual("Review manual")


@pytest.mark.django_db
def test_the_queue_holds_pending_pairs_lowest_grounding_first_unscored_last(manual):
    pairs = make_pairs(manual, 5, grounding=[0.9, None, 0.1, 0.5, 0.3])
    QAPair.objects.filter(pk=pairs[3].pk).update(status=QAPair.Status.APPROVED)
    other = make_manual("Other manual")
    make_pairs(other, 1, grounding=[0.0])

    queue = selectors.qa_pairs_review_queue(manual_id=manual.pk, order="grounding")

    assert [pair.pk for pair in queue] == [pairs[2].pk, pairs[4].pk, pairs[0].pk, pairs[1].pk]
    assert selectors.qa_pairs_review_queue().count() == 5  # every manual


@pytest.mark.django_db
def test_the_queue_can_go_by_document_or_newest_first(manual):
    pairs = make_pairs(manual, 4)
    by_document = list(selectors.qa_pairs_review_queue(manual_id=manual.pk, order="document"))
    titles = [pair.document.title for pair in by_document]
    assert titles == sorted(titles)
    second = selectors.qa_pair_review_position(
        pair_id=by_document[1].pk, manual_id=manual.pk, order="document"
    )
    assert (second.position, second.previous_id, second.next_id) == (
        2,
        by_document[0].pk,
        by_document[2].pk,
    )
    newest = selectors.qa_pairs_review_queue(manual_id=manual.pk, order="newest")
    assert [pair.pk for pair in newest] == [pair.pk for pair in reversed(pairs)]
    with pytest.raises(ValueError, match="unknown review order"):
        selectors.qa_pairs_review_queue(order="random")


@pytest.mark.django_db
def test_a_pairs_queue_position_knows_its_neighbours(manual, django_assert_num_queries):
    pairs = make_pairs(manual, 4, grounding=[0.4, 0.3, 0.2, 0.1])  # queue: 3, 2, 1, 0

    with django_assert_num_queries(1):
        middle = selectors.qa_pair_review_position(pair_id=pairs[2].pk, manual_id=manual.pk)
    first = selectors.qa_pair_review_position(pair_id=None, manual_id=manual.pk)
    last = selectors.qa_pair_review_position(pair_id=pairs[0].pk, manual_id=manual.pk)

    assert (middle.position, middle.previous_id, middle.next_id) == (
        2,
        pairs[3].pk,
        pairs[1].pk,
    )
    assert (first.pair_id, first.position, first.previous_id) == (pairs[3].pk, 1, None)
    assert (last.position, last.next_id) == (4, None)


@pytest.mark.django_db
def test_a_reviewed_pair_falls_back_to_the_start_of_the_queue(manual):
    pairs = make_pairs(manual, 3, grounding=[0.1, 0.2, 0.3])
    QAPair.objects.filter(pk=pairs[1].pk).update(status=QAPair.Status.REJECTED)

    position = selectors.qa_pair_review_position(pair_id=pairs[1].pk, manual_id=manual.pk)

    assert (position.pair_id, position.position) == (pairs[0].pk, 1)
    assert selectors.qa_pair_review_position(pair_id=None, manual_id=manual.pk + 999) is None


@pytest.mark.django_db
def test_status_and_document_counts_put_pages_without_approvals_first(
    manual, django_assert_num_queries
):
    pairs = make_pairs(manual, 6)  # 4 on charging.md's two chunks, 2 on tires.md's
    by_page = {"charging.md": [], "tires.md": []}
    for pair in pairs:
        by_page[pair.document.source_name].append(pair.pk)
    QAPair.objects.filter(pk__in=by_page["charging.md"]).update(status=QAPair.Status.APPROVED)
    QAPair.objects.filter(pk=by_page["tires.md"][0]).update(status=QAPair.Status.REJECTED)

    with django_assert_num_queries(2):
        counts = selectors.qa_pair_status_counts(manual_id=manual.pk)
        documents = list(selectors.documents_review_counts(manual_id=manual.pk))

    assert (counts.approved, counts.pending, counts.rejected, counts.total) == (4, 1, 1, 6)
    assert counts.reviewed_percent == 83
    assert [(d.source_name, d.approved, d.pending, d.rejected) for d in documents] == [
        ("tires.md", 0, 1, 1),
        ("charging.md", 4, 0, 0),
    ]


@pytest.mark.django_db
def test_throughput_counts_each_reviewers_actions_per_day(manual, django_assert_num_queries):
    rita, sam = reviewer("rita"), reviewer("sam")
    pairs = make_pairs(manual, 4)
    services.qa_pairs_bulk_set_status(
        pairs=QAPair.objects.filter(pk__in=[p.pk for p in pairs[:3]]),
        status=QAPair.Status.APPROVED,
        reviewer=rita,
    )
    services.qa_pair_set_status(pair=pairs[3], status=QAPair.Status.REJECTED, reviewer=sam)
    two_days_ago = timezone.now() - timedelta(days=2)
    QAPairRevision.objects.filter(user=rita, pair=pairs[0]).update(created_at=two_days_ago)
    QAPairRevision.objects.filter(user=sam).update(created_at=timezone.now() - timedelta(days=30))

    with django_assert_num_queries(1):
        days, rows = selectors.review_throughput(days=14)

    assert len(days) == 14 and days[-1] == timezone.localdate()
    assert [(row.username, row.total) for row in rows] == [("rita", 3)]
    assert rows[0].per_day[-1] == 2 and rows[0].per_day[-3] == 1
    assert sum(rows[0].per_day) == 3


# -- re-generating answers ---------------------------------------------------------------------


def answer_from_the_text(messages):
    user = messages[-1]["content"]
    text = user.split('"""')[1].strip()
    return f"Answer: {text.splitlines()[0]} (regenerated)"


@pytest.fixture
def fake_llm():
    with FakeOpenAI(responder=answer_from_the_text) as server:
        yield server


@pytest.mark.django_db
def test_regenerating_asks_the_endpoint_from_the_source_and_records_a_revision(manual, fake_llm):
    rita = reviewer()
    endpoint = openai_endpoint(fake_llm.base_url)
    pair = make_pairs(manual, 1)[0]
    old_answer = pair.answer

    report = services.qa_pairs_regenerate_answers(
        pair_ids=[pair.pk], endpoint_id=endpoint.pk, reviewer_id=rita.pk
    )

    pair.refresh_from_db()
    body = pair.source_text.partition("\n\n")[2]
    assert report.regenerated == [pair.pk] and not report.failed
    assert pair.answer == f"{body.splitlines()[0]} (regenerated)"  # "Answer:" label cleaned
    assert pair.original_answer == old_answer
    assert (pair.reviewed_by, pair.status, pair.scored_at) == (rita, QAPair.Status.PENDING, None)
    revision = pair.revisions.get()
    assert revision.action == QAPairRevision.Action.REGENERATE
    assert revision.changes == {"answer": [old_answer, pair.answer]}
    assert revision.user == rita
    prompt = fake_llm.chat_requests()[0]["body"]["messages"][-1]["content"]
    assert pair.question in prompt and body.splitlines()[0] in prompt
    assert f"Section: {pair.chunk.heading_path}" in prompt


@pytest.mark.django_db
def test_regenerate_task_run_twice_calls_the_endpoint_once_per_pair(manual, fake_llm):
    """Security review M9: a task delivered again (its worker died, or Redis's visibility
    timeout passed) skips what its batch already did: one call and one revision per pair."""
    rita = reviewer()
    endpoint = openai_endpoint(fake_llm.base_url)
    pairs = make_pairs(manual, 3)
    ids = [pair.pk for pair in pairs]

    first = services.qa_pairs_regenerate_answers(
        pair_ids=ids, endpoint_id=endpoint.pk, reviewer_id=rita.pk, batch="batch-1"
    )
    again = services.qa_pairs_regenerate_answers(
        pair_ids=ids, endpoint_id=endpoint.pk, reviewer_id=rita.pk, batch="batch-1"
    )

    assert sorted(first.regenerated) == ids and sorted(again.unchanged) == ids
    assert len(fake_llm.chat_requests()) == 3
    revisions = QAPairRevision.objects.filter(action=QAPairRevision.Action.REGENERATE)
    assert revisions.count() == 3
    assert {r.changes["regeneration"][1] for r in revisions} == {"batch-1"}


def test_a_regenerated_answer_of_a_decided_pair_goes_back_to_review(manual, fake_llm):
    rita = reviewer()
    endpoint = openai_endpoint(fake_llm.base_url)
    pair = make_pairs(manual, 1, status=QAPair.Status.APPROVED)[0]

    services.qa_pairs_regenerate_answers(
        pair_ids=[pair.pk], endpoint_id=endpoint.pk, reviewer_id=rita.pk
    )

    pair.refresh_from_db()
    assert pair.status == QAPair.Status.PENDING
    assert pair.revisions.get().changes["status"] == ["approved", "pending"]


@pytest.mark.django_db
def test_llm_errors_leave_the_pair_unchanged_and_are_logged(manual, fake_llm, caplog):
    rita = reviewer()
    endpoint = openai_endpoint(fake_llm.base_url, max_retries=0)
    first, second = make_pairs(manual, 2)
    fake_llm.fail_next(1, status=400, body='{"error": {"message": "bad request"}}')

    with caplog.at_level(logging.WARNING, logger="curation.regenerate"):
        report = services.qa_pairs_regenerate_answers(
            pair_ids=[first.pk, second.pk], endpoint_id=endpoint.pk, reviewer_id=rita.pk
        )

    assert len(report.failed) == 1 and len(report.regenerated) == 1
    failed = QAPair.objects.get(pk=next(iter(report.failed)))
    original = first if failed.pk == first.pk else second
    assert failed.answer == original.answer == failed.original_answer
    assert not failed.revisions.exists()
    assert f"QA pair {failed.pk}" in caplog.text


@pytest.mark.django_db
def test_an_endpoint_without_its_key_fails_every_pair_and_changes_nothing(manual, monkeypatch):
    monkeypatch.delenv("REVIEW_TEST_KEY", raising=False)
    rita = reviewer()
    endpoint = openai_endpoint("", api_key_env="REVIEW_TEST_KEY")  # api.openai.com needs a key
    pair = make_pairs(manual, 1)[0]

    report = services.qa_pairs_regenerate_answers(
        pair_ids=[pair.pk], endpoint_id=endpoint.pk, reviewer_id=rita.pk
    )

    assert "REVIEW_TEST_KEY" in report.failed[pair.pk]
    pair.refresh_from_db()
    assert pair.answer == pair.original_answer
    assert not pair.revisions.exists()


@pytest.mark.django_db
def test_only_reviewers_may_regenerate_and_only_with_an_active_endpoint(manual, fake_llm):
    viewer = staff_user("viewer")
    endpoint = openai_endpoint(fake_llm.base_url)
    pair = make_pairs(manual, 1)[0]
    with pytest.raises(PermissionDenied):
        services.qa_pairs_regenerate_answers(
            pair_ids=[pair.pk], endpoint_id=endpoint.pk, reviewer_id=viewer.pk
        )
    endpoint.is_active = False
    endpoint.save()
    with pytest.raises(ValidationError, match="switched off"):
        services.qa_pairs_regenerate_enqueue(
            pairs=QAPair.objects.all(), endpoint=endpoint, reviewer=reviewer()
        )
    assert not fake_llm.chat_requests()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "task_name", "queue"),
    [
        (LLMEndpoint.Kind.OPENAI, "curation.regenerate_answers", "default"),
        (LLMEndpoint.Kind.LOCAL, "curation.generate_local_regenerate", "gpu"),
    ],
)
def test_regeneration_is_queued_on_commit_to_the_endpoints_queue(
    manual, kind, task_name, queue, django_capture_on_commit_callbacks, monkeypatch
):
    rita = reviewer()
    endpoint = LLMEndpoint.objects.create(name=f"E {kind}", kind=kind, model="m")
    pairs = make_pairs(manual, 3)
    sent = []
    # What would reach the broker: the task's name and JSON arguments, captured at send time.
    monkeypatch.setattr(
        celery_app, "send_task", lambda name, args=None, *rest, **kw: sent.append((name, args))
    )

    with django_capture_on_commit_callbacks() as callbacks:
        queued = services.qa_pairs_regenerate_enqueue(
            pairs=QAPair.objects.filter(pk__in=[p.pk for p in pairs]),
            endpoint=endpoint,
            reviewer=rita,
        )
        assert queued == 3 and not sent  # nothing leaves before the transaction commits
    assert len(callbacks) == 1
    callbacks[0]()
    ((name, (pair_ids, endpoint_id, reviewer_id, batch)),) = sent
    assert (name, pair_ids, endpoint_id, reviewer_id) == (
        task_name,
        [pair.pk for pair in pairs],
        endpoint.pk,
        rita.pk,
    )
    assert len(batch) == 32  # the request's own batch id
    assert celery_app.amqp.router.route({}, task_name)["queue"].name == queue


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_regenerates_queued_answers_and_rescores_them(celery_worker, fake_llm):
    manual = make_manual("Worker review manual")
    rita = reviewer()
    endpoint = openai_endpoint(fake_llm.base_url)
    pairs = make_pairs(manual, 2)

    with transaction.atomic():
        services.qa_pairs_regenerate_enqueue(
            pairs=QAPair.objects.filter(pk__in=[p.pk for p in pairs]),
            endpoint=endpoint,
            reviewer=rita,
        )

    # The worker answers on the default queue, then scores the new answers on the gpu queue.
    wait_for(
        lambda: (
            QAPair.objects.filter(
                pk__in=[p.pk for p in pairs],
                scored_at__isnull=False,
                answer__endswith="(regenerated)",
            ).count()
            == 2
        ),
        timeout=180,
        what="the worker to regenerate and rescore both answers",
    )
    for pair in QAPair.objects.filter(pk__in=[p.pk for p in pairs]):
        assert pair.original_answer != pair.answer
        assert pair.grounding_score is not None
        assert pair.revisions.get().user == rita


@pytest.mark.django_db
def test_an_edited_pair_is_rescored_once_the_edit_commits(
    manual, django_capture_on_commit_callbacks, monkeypatch
):
    from curation.tasks import embed_score_pairs

    (pair,) = make_pairs(manual, 1)
    services.qa_pairs_score(pairs=QAPair.objects.filter(pk=pair.pk))
    pair.refresh_from_db()
    scored_before = (pair.semantic_grounding, pair.grounding_score, pair.scored_at)
    assert None not in scored_before
    sent = []
    monkeypatch.setattr(
        celery_app, "send_task", lambda name, args=None, *rest, **kw: sent.append((name, args))
    )

    with django_capture_on_commit_callbacks() as callbacks:
        services.qa_pair_edit(
            pair=pair,
            reviewer=reviewer(),
            question=pair.question,
            answer="The provided text does not mention this; ask a service centre.",
        )
        assert not sent  # nothing leaves before the transaction commits
    pair.refresh_from_db()
    # The lexical part and the text flags follow the new answer at once; the scores of the
    # old answer are cleared until the rescoring task has run.
    assert pair.scored_at is None
    assert qa.FLAG_REFUSAL in pair.flags
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent == [("curation.embed_score_pairs", ([pair.pk],))]
    assert celery_app.amqp.router.route({}, "curation.embed_score_pairs")["queue"].name == "gpu"

    embed_score_pairs(*sent[0][1])  # what the gpu worker runs

    pair.refresh_from_db()
    assert pair.scored_at is not None and pair.scored_at > scored_before[2]
    assert pair.semantic_grounding != scored_before[0]
    assert pair.grounding_score < scored_before[1]
