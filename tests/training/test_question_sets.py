"""Question sets that grow from use: reviewed thumbs-down pairs become regression questions.

Thumbs-down pairs are made by the service the chat calls when an owner marks an answer wrong
(``curation.services.qa_pair_from_chat_feedback``) and reviewed with the review services, so
every pair here is in the state a real one would be.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import strip_tags

from chat import services as chat_services
from curation import services as curation_services
from curation.models import DocumentChunk, Manual, QAPair
from tests.training.conftest import add_pairs, build_manual
from training import evaluation, question_sets
from training.evaluation import questions_parse_jsonl
from training.models import EvaluationRun, QuestionSet, QuestionSetVersion

pytestmark = pytest.mark.django_db

QA_PAIRS = "admin:curation_qapair_changelist"
_messages = itertools.count(1)


def thumbs_down(manual: Manual, number: int, *, chunk: DocumentChunk | None = None) -> QAPair:
    """A pending pair as an owner's thumbs-down raises it: their question, the wrong answer."""
    chunk = chunk or DocumentChunk.objects.filter(document__manual=manual).order_by("id").first()
    return curation_services.qa_pair_from_chat_feedback(
        manual=manual,
        chunk=chunk,
        question=f"How do I do thing {number} with the car?",
        answer=f"Wrong answer {number}.",
        comment="That is not right.",
        assistant_name="RAG",
        chat_message_id=next(_messages),
        user_id=None,
    )


def reviewed(pair: QAPair, reviewer: User) -> QAPair:
    """The pair after a reviewer corrected its answer and approved it."""
    curation_services.qa_pair_edit(
        pair=pair,
        reviewer=reviewer,
        question=pair.question,
        answer=f"Corrected answer for #{pair.pk}.",
    )
    return curation_services.qa_pair_set_status(
        pair=pair, status=QAPair.Status.APPROVED, reviewer=reviewer
    )


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


def add_by_action(client, pairs: list[QAPair], **form) -> object:
    """Choose ``pairs`` in the review list and confirm "Add to question set…" with ``form``."""
    return client.post(
        reverse(QA_PAIRS),
        {
            "action": "add_to_question_set",
            "_selected_action": [pair.pk for pair in pairs],
            "select_across": "0",
            "index": "0",
            "confirm": "yes",
            **form,
        },
        follow=True,
    )


def shown_messages(response) -> list[str]:
    """The messages the page shows, as text (a message may link to the version)."""
    return [strip_tags(str(message)) for message in get_messages(response.wsgi_request)]


# -- the action on the review list -------------------------------------------------------------


def test_the_action_adds_the_reviewed_thumbs_down_pairs_as_questions_of_a_new_set(
    reviewer_client, reviewer, manual
):
    first = reviewed(thumbs_down(manual, 1), reviewer)
    second = reviewed(thumbs_down(manual, 2), reviewer)

    # The first post shows the form that asks which set.
    asked = reviewer_client.post(
        reverse(QA_PAIRS),
        {"action": "add_to_question_set", "_selected_action": [first.pk, second.pk]},
    )
    assert asked.status_code == 200
    assert "Add 2 QA pairs to which question set?" in asked.content.decode()
    assert not QuestionSet.objects.exists()

    response = add_by_action(reviewer_client, [first, second], new_set_name="Owner regressions")

    assert response.status_code == 200
    question_set = QuestionSet.objects.get()
    assert (question_set.name, question_set.slug) == ("Owner regressions", "owner-regressions")
    version = question_set.versions.get()
    assert version.version == 1
    assert version.added_pairs == [first.pk, second.pk]
    assert version.created_by == reviewer
    source = first.document.source_name
    assert question_sets.question_set_version_questions(version) == [
        {
            "id": f"pair-{pair.pk}",
            "question": pair.question,
            "answer": f"Corrected answer for #{pair.pk}.",
            "sources": [source],
            "must_include": [],
            "kind": "answerable",
        }
        for pair in (first, second)
    ]
    assert "Added 2 questions to Owner regressions v1: 2 questions in all." in shown_messages(
        response
    )


def test_the_action_refuses_pairs_that_are_not_reviewed_thumbs_down_ones_naming_them(
    reviewer_client, reviewer, manual
):
    good = reviewed(thumbs_down(manual, 1), reviewer)
    pending = thumbs_down(manual, 2)
    approved_unedited = curation_services.qa_pair_set_status(
        pair=thumbs_down(manual, 3), status=QAPair.Status.APPROVED, reviewer=reviewer
    )
    rejected = reviewed(thumbs_down(manual, 4), reviewer)
    curation_services.qa_pair_set_status(
        pair=rejected, status=QAPair.Status.REJECTED, reviewer=reviewer
    )
    generated = add_pairs(manual, per_chunk=1, first=10)[0]
    curation_services.qa_pair_edit(
        pair=generated, reviewer=reviewer, question=generated.question, answer="Edited."
    )
    chosen = [good, pending, approved_unedited, rejected, generated]

    response = add_by_action(reviewer_client, chosen, new_set_name="Owner regressions")

    refused = sorted([pending.pk, approved_unedited.pk, rejected.pk, generated.pk])
    (message,) = shown_messages(response)
    assert "corrected and approved" in message
    assert message.endswith(", ".join(f"#{pk}" for pk in refused) + ".")
    assert f"#{good.pk}" not in message
    assert not QuestionSet.objects.exists()
    assert not QuestionSetVersion.objects.exists()


def test_a_refused_addition_writes_nothing_not_even_the_new_set(reviewer, manual):
    pending = thumbs_down(manual, 1)
    good = reviewed(thumbs_down(manual, 2), reviewer)

    with pytest.raises(ValidationError) as refusal:
        question_sets.question_set_add_pairs(
            pairs=[good, pending], user=reviewer, new_set_name="Half written?"
        )

    assert f"#{pending.pk}" in refusal.value.messages[0]
    assert not QuestionSet.objects.exists()


def test_only_users_allowed_to_grow_sets_see_the_action_and_may_call_the_service(
    client, reviewer, manual
):
    pair = reviewed(thumbs_down(manual, 1), reviewer)
    staff = User.objects.create_user("staff", password="pw-123456", is_staff=True)

    client.force_login(reviewer)
    choices = dict(client.get(reverse(QA_PAIRS)).context["action_form"].fields["action"].choices)
    assert "add_to_question_set" in choices

    with pytest.raises(PermissionDenied):
        question_sets.question_set_add_pairs(pairs=[pair], user=staff, new_set_name="No")
    assert not QuestionSet.objects.exists()


def test_the_review_list_filters_to_the_pairs_the_action_takes(reviewer_client, reviewer, manual):
    good = reviewed(thumbs_down(manual, 1), reviewer)
    thumbs_down(manual, 2)
    add_pairs(manual, per_chunk=1, first=10)

    response = reviewer_client.get(reverse(QA_PAIRS), {"regression": "reviewed_feedback"})

    assert [pair.pk for pair in response.context["cl"].result_list] == [good.pk]


# -- versions ----------------------------------------------------------------------------------


def test_each_addition_writes_a_new_version_and_never_changes_an_earlier_one(
    reviewer_client, reviewer, manual
):
    first = reviewed(thumbs_down(manual, 1), reviewer)
    second = reviewed(thumbs_down(manual, 2), reviewer)
    add_by_action(reviewer_client, [first], new_set_name="Owner regressions")
    question_set = QuestionSet.objects.get()
    v1 = question_set.versions.get()
    written = (v1.jsonl, v1.content_hash, v1.question_count)

    # The pair already in the set is not repeated; the new one is appended.
    response = add_by_action(reviewer_client, [first, second], question_set=question_set.pk)

    v1.refresh_from_db()
    assert (v1.jsonl, v1.content_hash, v1.question_count) == written
    v2 = question_set.versions.get(version=2)
    assert [q["id"] for q in question_sets.question_set_version_questions(v2)] == [
        f"pair-{first.pk}",
        f"pair-{second.pk}",
    ]
    assert v2.added_pairs == [second.pk]
    assert v2.content_hash == hashlib.sha256(v2.jsonl.encode()).hexdigest() != v1.content_hash
    assert f"Already in the set: #{first.pk}." in shown_messages(response)[0]

    # Adding only pairs the set holds writes no version at all.
    response = add_by_action(reviewer_client, [first, second], question_set=question_set.pk)
    assert list(question_set.versions.values_list("version", flat=True)) == [2, 1]
    assert "Nothing added" in shown_messages(response)[0]


def test_a_version_is_read_only_in_the_admin(reviewer_client, reviewer, manual):
    pair = reviewed(thumbs_down(manual, 1), reviewer)
    addition = question_sets.question_set_add_pairs(
        pairs=[pair], user=reviewer, new_set_name="Owner regressions"
    )
    version = addition.version
    url = reverse("admin:training_questionsetversion_change", args=[version.pk])

    page = reviewer_client.get(url)
    reviewer_client.post(url, {"jsonl": "", "content_hash": "changed"})

    assert page.status_code == 200
    assert 'name="jsonl"' not in page.content.decode()
    version.refresh_from_db()
    assert version.content_hash == hashlib.sha256(version.jsonl.encode()).hexdigest()


def test_a_set_of_one_manual_refuses_pairs_of_another(reviewer, manual):
    other = build_manual("Other manual", pages=1, sections=1)
    ours = reviewed(thumbs_down(manual, 1), reviewer)
    theirs = reviewed(thumbs_down(other, 2), reviewer)

    with pytest.raises(ValidationError) as refusal:
        question_sets.question_set_add_pairs(
            pairs=[ours, theirs], user=reviewer, new_set_name="Ours", new_set_manual=manual
        )

    assert refusal.value.messages == [
        f"The question set is for {manual.name}; these pairs are from another manual: #{theirs.pk}."
    ]
    assert not QuestionSet.objects.exists()


def test_the_downloaded_version_is_a_question_file_an_evaluation_accepts(
    reviewer_client, reviewer, manual
):
    pairs = [reviewed(thumbs_down(manual, number), reviewer) for number in (1, 2, 3)]
    version = question_sets.question_set_add_pairs(
        pairs=pairs, user=reviewer, new_set_name="Owner regressions"
    ).version

    response = reviewer_client.get(
        reverse("admin:training_questionsetversion_download", args=[version.pk])
    )

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="owner-regressions-v1.jsonl"'
    assert hashlib.sha256(response.content).hexdigest() == version.content_hash
    questions = questions_parse_jsonl(response.content)
    assert [q["id"] for q in questions] == [f"pair-{pair.pk}" for pair in pairs]
    assert questions == question_sets.question_set_version_questions(version)


def test_the_question_set_lists_take_a_constant_number_of_queries(
    reviewer_client, reviewer, manual
):
    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert reviewer_client.get(url).status_code == 200
        return len(captured)

    first = reviewed(thumbs_down(manual, 1), reviewer)
    question_sets.question_set_add_pairs(pairs=[first], user=reviewer, new_set_name="One")
    sets_url = reverse("admin:training_questionset_changelist")
    versions_url = reverse("admin:training_questionsetversion_changelist")
    before = (queries(sets_url), queries(versions_url))

    for number in range(2, 5):
        pair = reviewed(thumbs_down(manual, number), reviewer)
        question_sets.question_set_add_pairs(
            pairs=[pair], user=reviewer, new_set_name=f"Set {number}"
        )
        question_sets.question_set_add_pairs(
            pairs=[pair], user=reviewer, question_set=QuestionSet.objects.get(name="One")
        )

    assert (queries(sets_url), queries(versions_url)) == before
    one = QuestionSet.objects.get(name="One")
    page = reviewer_client.get(reverse("admin:training_questionset_change", args=[one.pk]))
    assert page.status_code == 200
    assert (
        reverse("admin:training_questionsetversion_download", args=[one.versions.get(version=4).pk])
        in page.content.decode()
    )


# -- evaluating on a saved set -----------------------------------------------------------------


@pytest.fixture
def saved_version(reviewer, manual) -> QuestionSetVersion:
    pairs = [reviewed(thumbs_down(manual, number), reviewer) for number in (1, 2)]
    return question_sets.question_set_add_pairs(
        pairs=pairs, user=reviewer, new_set_name="Owner regressions"
    ).version


def test_an_evaluation_run_from_a_set_version_carries_its_questions_frozen(
    trainer, reviewer, manual, saved_version
):
    assistant = chat_services.assistant_create(name="RAG under test", manuals=[manual])

    run = evaluation.evaluation_run_create(
        user=trainer, question_set_version=saved_version, assistants=[assistant], enqueue=False
    )

    assert run.question_source == EvaluationRun.QuestionSource.SAVED_SET
    assert run.question_set_version == saved_version
    assert run.questions == question_sets.question_set_version_questions(saved_version)
    assert run.questions_name == "Owner regressions v1 (owner-regressions-v1.jsonl)"
    assert run.total == 2

    # The set grows; the run keeps the questions it was created with.
    question_sets.question_set_add_pairs(
        pairs=[reviewed(thumbs_down(manual, 3), reviewer)],
        user=reviewer,
        question_set=saved_version.question_set,
    )
    run.refresh_from_db()
    assert len(run.questions) == 2


def test_a_run_takes_one_question_source_only(trainer, manual, saved_version):
    assistant = chat_services.assistant_create(name="RAG under test", manuals=[manual])

    with pytest.raises(ValidationError) as refusal:
        evaluation.evaluation_run_create(
            user=trainer,
            question_set_version=saved_version,
            questions_jsonl='{"question": "Why?"}',
            assistants=[assistant],
            enqueue=False,
        )

    assert "Choose one question set" in refusal.value.message_dict["questions"][0]


def test_the_launch_form_offers_saved_set_versions(client, trainer, manual, saved_version):
    assistant = chat_services.assistant_create(name="RAG under test", manuals=[manual])
    client.force_login(trainer)

    page = client.get(reverse("training:evaluation_launch"))
    assert "Owner regressions v1 (2 questions)" in page.content.decode()
    response = client.post(
        reverse("training:evaluation_launch"),
        {"question_set_version": saved_version.pk, "assistants": [assistant.pk]},
    )

    run = EvaluationRun.objects.get()
    assert response.status_code == 302
    assert run.question_set_version == saved_version
    assert run.questions == question_sets.question_set_version_questions(saved_version)


def test_the_command_evaluates_a_saved_set_by_slug_and_version(manual, reviewer, saved_version):
    chat_services.assistant_create(name="RAG under test", manuals=[manual])
    question_sets.question_set_add_pairs(
        pairs=[reviewed(thumbs_down(manual, 3), reviewer)],
        user=reviewer,
        question_set=saved_version.question_set,
    )

    call_command(
        "evaluate", "--question-set", "owner-regressions:1", "--assistant", "RAG under test",
        "--queue",
    )  # fmt: skip
    call_command(
        "evaluate", "--question-set", "owner-regressions", "--assistant", "RAG under test",
        "--queue",
    )  # fmt: skip

    first, newest = EvaluationRun.objects.order_by("id")
    assert (first.question_set_version.version, len(first.questions)) == (1, 2)
    assert (newest.question_set_version.version, len(newest.questions)) == (2, 3)
