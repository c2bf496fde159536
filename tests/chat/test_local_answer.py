"""A real answer from the bundled SmolLM2-135M, streamed on the CPU (slow: loads the model)."""

from __future__ import annotations

import pytest

from chat import services
from chat.events import Done, Token
from curation.models import LLMEndpoint
from tests.chat.support import make_assistant, session_owner, tiny_manual

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_the_bundled_local_model_answers_and_only_verified_text_reaches_the_owner():
    manual = tiny_manual()
    endpoint = LLMEndpoint.objects.get(name="Local SmolLM2-135M")  # created by a migration
    assistant = make_assistant(
        manual,
        endpoint=endpoint,
        answer_style="generated",
        max_tokens=24,
        temperature=0.0,
        top_k=1,
    )

    events = list(
        services.answer_stream(
            assistant=assistant,
            question="What pressure should the tires have?",
            owner=session_owner(),
        )
    )

    assert isinstance(events[-1], Done), events[-1]
    message = events[-1].message
    assert message.content and not message.error
    # The model ran within the answer's budget, on the grounded prompt with its passage...
    assert message.raw_content.strip()
    assert 0 < message.completion_tokens <= 24
    assert message.prompt_tokens > 50
    assert message.citations[0]["source_name"] == "tires.md"
    # ...and the owner read only what the passage supports: its verified sentences, or the
    # quote from the manual when too little of the model's text was supported.
    tokens = "".join(event.text for event in events if isinstance(event, Token)).strip()
    supported = [v["text"] for v in message.verification if v["supported"]]
    if message.extractive:
        assert message.content == message.quote_text and "42 PSI" in message.content
    else:
        assert tokens == message.content
        assert all(sentence in message.content for sentence in supported)
    assert message.ttft_ms <= message.latency_ms
