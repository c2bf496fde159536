"""Chat admin pages: they load, and their lists cost the same queries for 1 row or many."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import services
from tests.chat.support import make_assistant, session_owner, tiny_manual

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


def list_queries(admin_client, model: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(f"admin:chat_{model}_changelist"))
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("model", MODELS)
def test_list_pages_cost_the_same_queries_for_one_row_or_many(admin_client, model, settings):
    settings.CHAT_RATE_LIMIT = "0/min"
    manual = tiny_manual()
    chat_activity(manual, 1)
    few = list_queries(admin_client, model)
    chat_activity(manual, 3)

    assert list_queries(admin_client, model) == few


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
