"""A real answer from the bundled SmolLM2-135M, streamed on the CPU (slow: loads the model)."""

from __future__ import annotations

import pytest

from chat import services
from chat.events import Done, Token
from curation.models import LLMEndpoint
from tests.chat.support import make_assistant, session_owner, tiny_manual

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_the_bundled_local_model_streams_a_short_grounded_answer():
    manual = tiny_manual()
    endpoint = LLMEndpoint.objects.get(name="Local SmolLM2-135M")  # created by a migration
    assistant = make_assistant(manual, endpoint=endpoint, max_tokens=8, temperature=0.0, top_k=1)

    events = list(
        services.answer_stream(
            assistant=assistant,
            question="What pressure should the tires have?",
            owner=session_owner(),
        )
    )

    assert isinstance(events[-1], Done), events[-1]
    message = events[-1].message
    tokens = [event.text for event in events if isinstance(event, Token)]
    assert tokens and "".join(tokens).strip() == message.content
    assert message.content and not message.error
    assert 0 < message.completion_tokens <= 8
    assert message.prompt_tokens > 50  # the grounded prompt with its passage
    assert message.citations[0]["source_name"] == "tires.md"
    assert message.ttft_ms <= message.latency_ms
