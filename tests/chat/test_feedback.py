"""Thumbs up/down, the QA pairs a thumbs-down raises for review, and compare-mode preferences."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.http import Http404

from chat import services
from chat.models import Feedback, Preference
from chat.owners import Owner
from curation import selectors as curation_selectors
from curation.models import QAPair, QAPairRevision
from curation.tasks import embed_score_pairs
from tests.chat.support import make_assistant, openai_endpoint, session_owner, tiny_manual
from tests.fakeopenai import FakeOpenAI

pytestmark = pytest.mark.django_db

QUESTION = "What pressure should the tires have?"


@pytest.fixture
def manual():
    return tiny_manual()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(lambda messages: "Inflate them to 42 PSI when they are cold [1].") as server:
        yield server


@pytest.fixture
def assistant(manual, fake):
    return make_assistant(
        manual,
        name="Tire helper",
        endpoint=openai_endpoint(fake.base_url),
        answer_style="generated",
    )


def test_thumbs_down_puts_the_question_and_answer_in_the_review_queue(
    assistant, django_capture_on_commit_callbacks
):
    owner = session_owner()
    message = services.answer(assistant=assistant, question=QUESTION, owner=owner)

    with django_capture_on_commit_callbacks() as queued:
        feedback = services.feedback_submit(
            owner=owner,
            message=message,
            rating="down",
            comment="Mine has 19 inch wheels: is it the same?",
        )

    pair = feedback.qa_pair
    assert pair is not None
    assert list(curation_selectors.qa_pairs_review_queue()) == [pair]
    assert pair.status == QAPair.Status.PENDING
    assert pair.origin == QAPair.Origin.CHAT_FEEDBACK
    assert "chat_feedback" in pair.flags
    assert pair.question == pair.original_question == QUESTION
    assert pair.answer == pair.original_answer == "Inflate them to 42 PSI when they are cold [1]."
    # The cited passage is the pair's source, as for generated pairs.
    assert pair.chunk_id == message.citations[0]["chunk_id"]
    assert pair.document.source_name == "tires.md" and "42 PSI" in pair.source_text
    # Scored like any other pair, by a worker: the request only queues it (review M4).
    assert pair.scored_at is None and len(queued) == 1
    embed_score_pairs([pair.pk])
    pair.refresh_from_db()
    assert pair.grounding_score is not None and pair.scored_at is not None
    # Reviewers read the owner's comment in the pair's history.
    (revision,) = pair.revisions.all()
    assert revision.action == QAPairRevision.Action.CREATE
    assert revision.changes["owner_comment"] == [None, "Mine has 19 inch wheels: is it the same?"]
    assert revision.changes["assistant"] == [None, "Tire helper"]


def test_thumbs_up_raises_no_pair(assistant):
    owner = session_owner()
    message = services.answer(assistant=assistant, question=QUESTION, owner=owner)

    feedback = services.feedback_submit(owner=owner, message=message, rating="up")

    assert feedback.qa_pair is None and not QAPair.objects.exists()


def test_rating_an_answer_again_changes_it_and_raises_one_pair_at_most(assistant):
    owner = session_owner()
    message = services.answer(assistant=assistant, question=QUESTION, owner=owner)

    services.feedback_submit(owner=owner, message=message, rating="up")
    services.feedback_submit(owner=owner, message=message, rating="down", comment="wrong")
    services.feedback_submit(owner=owner, message=message, rating="down", comment="very wrong")

    feedback = Feedback.objects.get()
    assert feedback.rating == "down" and feedback.comment == "very wrong"
    assert QAPair.objects.count() == 1


def test_two_owners_thumbing_down_the_same_answer_each_reach_the_reviewers(assistant):
    first, second = session_owner("one"), session_owner("two")
    for owner in (first, second):
        message = services.answer(assistant=assistant, question=QUESTION, owner=owner)
        services.feedback_submit(owner=owner, message=message, rating="down")

    assert QAPair.objects.filter(status=QAPair.Status.PENDING).count() == 2


def test_nobody_rates_another_owners_answer(assistant):
    message = services.answer(assistant=assistant, question=QUESTION, owner=session_owner("a"))

    with pytest.raises(Http404):
        services.feedback_submit(owner=session_owner("b"), message=message, rating="down")
    assert not Feedback.objects.exists()


def test_feedback_refuses_questions_bad_ratings_and_long_comments(assistant):
    owner = session_owner()
    message = services.answer(assistant=assistant, question=QUESTION, owner=owner)

    with pytest.raises(services.FeedbackInvalid, match="this message is a question"):
        services.feedback_submit(owner=owner, message=message.reply_to, rating="up")
    with pytest.raises(services.FeedbackInvalid, match="Unknown rating 'meh'"):
        services.feedback_submit(owner=owner, message=message, rating="meh")
    with pytest.raises(services.FeedbackInvalid, match="comment is too long"):
        services.feedback_submit(owner=owner, message=message, rating="down", comment="x" * 2001)


def test_a_signed_in_owners_thumbs_down_is_attributed_to_them(assistant):
    user = User.objects.create_user("owner")
    owner = Owner.for_user(user)
    message = services.answer(assistant=assistant, question=QUESTION, owner=owner)

    feedback = services.feedback_submit(owner=owner, message=message, rating="down")

    assert feedback.user == user and feedback.session_key == ""
    assert feedback.qa_pair.revisions.get().user == user


def compare(manual, fake, owner):
    """The same question asked of two assistants, as compare mode does."""
    a = make_assistant(manual, name="A", endpoint=openai_endpoint(fake.base_url))
    b = make_assistant(manual, name="B", endpoint=None)
    answer_a = services.answer(assistant=a, question=QUESTION, owner=owner)
    answer_b = services.answer(assistant=b, question=QUESTION, owner=owner)
    return answer_a, answer_b


def test_compare_mode_preferences_export_as_chosen_and_rejected(manual, fake, tmp_path):
    owner = session_owner()
    answer_a, answer_b = compare(manual, fake, owner)

    services.preference_record(owner=owner, message_a=answer_a, message_b=answer_b, chosen="b")

    records = list(services.preferences_export_records())
    assert records == [
        {
            "prompt": QUESTION,
            "chosen": answer_b.content,
            "rejected": answer_a.content,
            "chosen_assistant": "B",
            "rejected_assistant": "A",
            "preference_id": Preference.objects.get().pk,
            "created_at": Preference.objects.get().created_at.isoformat(),
        }
    ]
    out = tmp_path / "prefs.jsonl"
    call_command("export_preferences", "--out", str(out), stdout=io.StringIO())
    assert [json.loads(line) for line in out.read_text().splitlines()] == records


def test_a_tie_is_stored_but_not_exported_and_choosing_again_changes_it(manual, fake):
    owner = session_owner()
    answer_a, answer_b = compare(manual, fake, owner)

    services.preference_record(owner=owner, message_a=answer_a, message_b=answer_b, chosen="tie")
    assert list(services.preferences_export_records()) == []
    services.preference_record(owner=owner, message_a=answer_a, message_b=answer_b, chosen="a")

    assert Preference.objects.get().chosen == "a"
    assert len(list(services.preferences_export_records())) == 1


def test_a_preference_needs_two_answers_to_the_same_question(manual, fake):
    owner = session_owner()
    answer_a, answer_b = compare(manual, fake, owner)
    other = services.answer(
        assistant=answer_b.assistant, question="Where is the charge port release?", owner=owner
    )

    with pytest.raises(services.PreferenceInvalid, match="same question"):
        services.preference_record(owner=owner, message_a=answer_a, message_b=other, chosen="a")
    with pytest.raises(services.PreferenceInvalid, match="two different answers"):
        services.preference_record(owner=owner, message_a=answer_a, message_b=answer_a, chosen="a")
    with pytest.raises(services.PreferenceInvalid, match="Unknown choice"):
        services.preference_record(owner=owner, message_a=answer_a, message_b=answer_b, chosen="c")
    with pytest.raises(Http404):
        services.preference_record(
            owner=session_owner("stranger"), message_a=answer_a, message_b=answer_b, chosen="a"
        )


def test_anonymous_thumbs_down_is_rate_limited(assistant, settings):
    """Security review M4: the sixth rating in a minute is refused, and raises no pair."""
    settings.CHAT_RATE_LIMIT = "0/min"
    settings.CHAT_FEEDBACK_RATE_LIMIT = "5/day"
    owner = Owner.for_session("f" * 64, client_ip="203.0.113.9")
    answers = [
        services.answer(assistant=assistant, question=f"{QUESTION} ({n})", owner=owner)
        for n in range(6)
    ]

    for message in answers[:5]:
        services.feedback_submit(owner=owner, message=message, rating="down")
    with pytest.raises(services.RateLimited, match="Too many ratings: the limit is 5 per day"):
        services.feedback_submit(owner=owner, message=answers[5], rating="down")

    assert QAPair.objects.filter(origin=QAPair.Origin.CHAT_FEEDBACK).count() == 5
    assert Feedback.objects.count() == 5


def test_anonymous_thumbs_down_raises_pairs_only_within_its_daily_quota(assistant, settings):
    settings.CHAT_RATE_LIMIT = "0/min"
    settings.CHAT_FEEDBACK_PAIRS_ANONYMOUS = "2/day"
    owner = Owner.for_session("e" * 64, client_ip="203.0.113.10")
    signed_in = Owner.for_user(User.objects.create_user("rita"), client_ip="203.0.113.10")

    for n in range(3):
        message = services.answer(assistant=assistant, question=f"{QUESTION} {n}", owner=owner)
        services.feedback_submit(owner=owner, message=message, rating="down")
    mine = services.answer(assistant=assistant, question=QUESTION, owner=signed_in)
    services.feedback_submit(owner=signed_in, message=mine, rating="down")

    assert Feedback.objects.count() == 4  # every rating is kept
    assert [f.qa_pair_id is not None for f in Feedback.objects.order_by("id")] == [
        True,
        True,
        False,  # over the anonymous quota
        True,  # a signed-in owner has none
    ]
