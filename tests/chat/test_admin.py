"""Chat admin pages: they load, their lists cost the same queries for 1 row or many, and a
reviewer sees what the model wrote and what was cut from it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import services
from chat.models import Message
from tests.chat.support import make_assistant, openai_endpoint, session_owner, tiny_manual
from tests.fakeopenai import FakeOpenAI

pytestmark = pytest.mark.django_db

MODELS = ["assistant", "conversation", "message", "feedback", "preference"]


def chat_activity(manual, count: int) -> None:
    """``count`` owners, each comparing two assistants and rating both answers down."""
    first = make_assistant(manual, endpoint=None)
    second = make_assistant(manual, endpoint=None)
    for index in range(count):
        owner = session_owner(f"owner-{index}-{first.pk}")
        a = services.answer(assistant=first, question="Tire pressure?", owner=owner)
        b = services.answer(assistant=second, question="Tire pressure?", owner=owner)
        services.feedback_submit(owner=owner, message=a, rating="down", comment="too long")
        services.feedback_submit(owner=owner, message=b, rating="up")
        services.preference_record(owner=owner, message_a=a, message_b=b, chosen="b")


# The first sentence is in the tiny manual; the second is not.
PARTLY_SUPPORTED = (
    "Inflate the tires to 42 PSI when they are cold [1]. Rotate the tires every week at the dealer."
)


def generated_answer(manual, text: str = PARTLY_SUPPORTED) -> Message:
    """An answer of the ``generated`` style from a loopback model that writes ``text``."""
    with FakeOpenAI(lambda messages: text) as fake:
        assistant = make_assistant(
            manual, endpoint=openai_endpoint(fake.base_url), answer_style="generated"
        )
        return services.answer(
            assistant=assistant, question="Tire pressure?", owner=session_owner()
        )


def list_queries(admin_client, model: str, query: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(f"admin:chat_{model}_changelist"), query or {})
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("model", MODELS)
def test_list_pages_cost_the_same_queries_for_one_row_or_many(admin_client, model, settings):
    settings.CHAT_RATE_LIMIT = settings.CHAT_FEEDBACK_RATE_LIMIT = "0/min"
    manual = tiny_manual()
    chat_activity(manual, 1)
    few = list_queries(admin_client, model)
    chat_activity(manual, 3)

    assert list_queries(admin_client, model) == few


@pytest.mark.parametrize("query", [{"cut": "yes"}, {"looped__exact": "0"}])
def test_filtered_message_lists_cost_the_same_queries_for_one_row_or_many(admin_client, query):
    manual = tiny_manual()
    generated_answer(manual)
    few = list_queries(admin_client, "message", query)
    for _ in range(3):
        generated_answer(manual)

    assert list_queries(admin_client, "message", query) == few


def test_a_reviewer_sees_the_raw_output_and_the_verdict_on_each_sentence(admin_client):
    answer = generated_answer(tiny_manual())
    assert answer.content == "Inflate the tires to 42 PSI when they are cold [1]."

    page = admin_client.get(reverse("admin:chat_message_change", args=[answer.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "Raw model output" in html and PARTLY_SUPPORTED in html
    table = html.split('<table class="chat-verification">', 1)[1].split("</table>", 1)[0]
    rows = table.split("<tr>")[2:]  # after the header row
    assert len(rows) == 2
    assert "Inflate the tires to 42 PSI" in rows[0] and "<td>kept</td><td>supported</td>" in rows[0]
    assert "Rotate the tires every week" in rows[1] and "<td>cut</td><td>weak</td>" in rows[1]
    assert "grounding" in rows[1]  # the detail says why
    for label in ("Answer style", "Looped", "Checks", "Quote from the manual"):
        assert label in html
    assert "Generated: the model" in html  # the style, by its label
    assert answer.quote_text in html and "not shown" in html
    assert "&quot;coverage&quot;" in html  # the checks, as JSON


def test_the_message_list_filters_answers_with_sentences_cut(admin_client):
    manual = tiny_manual()
    cut = generated_answer(manual)
    whole = generated_answer(manual, "Inflate the tires to 42 PSI when they are cold [1].")
    url = reverse("admin:chat_message_changelist")

    with_cuts = admin_client.get(url, {"cut": "yes"}).content.decode()
    without = admin_client.get(url, {"cut": "no"}).content.decode()
    not_looped = admin_client.get(url, {"looped__exact": "0", "role__exact": "assistant"})

    change = reverse("admin:chat_message_change", args=[cut.pk])
    change_whole = reverse("admin:chat_message_change", args=[whole.pk])
    assert change in with_cuts and change_whole not in with_cuts
    assert change_whole in without and change not in without
    assert change in not_looped.content.decode() and change_whole in not_looped.content.decode()


def test_the_assistant_page_edits_the_answer_settings(admin_client):
    assistant = make_assistant(tiny_manual(), endpoint=None)

    page = admin_client.get(reverse("admin:chat_assistant_change", args=[assistant.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="answer_style"' in html and '<option value="quoted" selected>' in html
    assert 'name="max_tokens"' in html and "Answer token budget" in html
    assert 'name="min_coverage"' in html and 'value="0.45"' in html


def test_feedback_page_links_the_pair_raised_for_review(admin_client):
    manual = tiny_manual()
    chat_activity(manual, 1)

    page = admin_client.get(reverse("admin:chat_feedback_changelist"), {"rating__exact": "down"})

    assert page.status_code == 200
    assert "/admin/curation/qapair/" in page.content.decode() and "pending" in page.content.decode()


def test_conversation_page_shows_its_messages(admin_client):
    manual = tiny_manual()
    assistant = make_assistant(manual, endpoint=None)
    message = services.answer(assistant=assistant, question="Tire pressure?", owner=session_owner())

    page = admin_client.get(
        reverse("admin:chat_conversation_change", args=[message.conversation_id])
    )

    assert page.status_code == 200 and "Tire pressure?" in page.content.decode()
