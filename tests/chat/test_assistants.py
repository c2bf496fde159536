"""Assistants: the default one a fresh install gets, and how they are made."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from chat import services
from chat.models import Assistant
from curation.models import LLMEndpoint
from manualqa.management.commands.bootstrap import DEFAULT_ENDPOINT_NAME, Command
from tests.chat.support import make_assistant, tiny_manual

pytestmark = pytest.mark.django_db


def test_a_fresh_install_gets_a_default_rag_assistant_with_the_local_model(settings):
    manual = tiny_manual(name=settings.SAMPLE_MANUAL_NAME)

    Command()._default_assistant()

    assistant = Assistant.objects.get(is_default=True)
    assert assistant.name == services.DEFAULT_ASSISTANT_NAME
    assert assistant.mode == Assistant.Mode.RAG and assistant.is_active
    assert assistant.endpoint == LLMEndpoint.objects.get(name=DEFAULT_ENDPOINT_NAME)
    assert assistant.endpoint.kind == LLMEndpoint.Kind.LOCAL
    assert list(assistant.manuals.all()) == [manual]


def test_ensuring_the_default_again_leaves_an_admins_choice_alone():
    manual = tiny_manual()
    chosen = make_assistant(manual, name="Chosen", endpoint=None, is_default=True)

    assistant = services.assistant_ensure_default(manual=manual, endpoint=None)

    assert assistant == chosen and Assistant.objects.count() == 1


def test_a_new_default_takes_over_from_the_old_one():
    manual = tiny_manual()
    old = make_assistant(manual, name="Old", endpoint=None, is_default=True)

    new = make_assistant(manual, name="New", endpoint=None, is_default=True)

    old.refresh_from_db()
    assert new.is_default and not old.is_default


def test_assistant_settings_are_validated():
    manual = tiny_manual()

    with pytest.raises(ValidationError) as caught:
        make_assistant(manual, name="Bad", endpoint=None, min_score=1.5, top_k=0)

    assert set(caught.value.message_dict) == {"min_score", "top_k"}
