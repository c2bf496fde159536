"""The assistants behind the OpenAI API (``/v1``), driven by the real openai SDK over HTTP.

The site is pytest-django's ``live_server`` (a thread in this process, on the test database);
the assistants answer from a tiny embedded manual, quoting it or through a loopback
OpenAI-compatible fake that stands in for a remote model.
"""

from __future__ import annotations

import openai
import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from chat.models import Assistant, Message
from tests.chat.support import make_assistant, openai_endpoint, tiny_manual
from tests.fakeopenai import FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What tire pressure should I use?"
MODEL_ANSWER = "Inflate the tires to 42 PSI (290 kPa) when they are cold."


@pytest.fixture
def owner_token() -> str:
    user = User.objects.create_user("api-owner", password="pw-123456")
    return Token.objects.create(user=user).key


@pytest.fixture
def sdk(live_server):
    """Makes openai SDK clients of the live server, and closes them after the test: an open
    keep-alive socket holds a server thread, and its database connection, after the test."""
    clients = []

    def make(key: str) -> openai.OpenAI:
        clients.append(openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def test_the_sdk_lists_the_assistants_and_gets_the_same_answer_streamed_or_not(sdk, owner_token):
    manual = tiny_manual()
    quoting = make_assistant(manual, slug="tiny-quotes", answer_style="quoted")
    make_assistant(manual, slug="not-offered", is_active=False)
    client = sdk(owner_token)

    assert [model.id for model in client.models.list()] == ["tiny-quotes"]

    whole = client.chat.completions.create(
        model="tiny-quotes", messages=[{"role": "user", "content": QUESTION}]
    )
    content = whole.choices[0].message.content
    assert "42 PSI" in content and whole.choices[0].finish_reason == "stop"
    extra = whole.model_extra
    assert extra["citations"] and extra["citations"][0]["title"] == "Tires"
    assert extra["manualqa"]["declined"] is False

    stream = client.chat.completions.create(
        model="tiny-quotes", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    chunks = list(stream)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert streamed == content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"] == extra["citations"]

    # Both answers are stored for the token's user, as the chat page would store them.
    answers = Message.objects.filter(
        role=Message.Role.ASSISTANT, conversation__owner__username="api-owner"
    )
    assert answers.count() == 2 and {m.assistant_id for m in answers} == {quoting.pk}


def test_a_model_answer_streams_as_it_is_verified_and_a_follow_up_continues(sdk, owner_token):
    manual = tiny_manual()
    with FakeOpenAI(responder=lambda messages: MODEL_ANSWER) as fake:
        make_assistant(
            manual,
            slug="tiny-model",
            endpoint=openai_endpoint(fake.base_url),
            answer_style=Assistant.AnswerStyle.GENERATED,
        )
        client = sdk(owner_token)
        chunks = list(
            client.chat.completions.create(
                model="tiny-model", messages=[{"role": "user", "content": QUESTION}], stream=True
            )
        )
        conversation = chunks[-1].model_extra["manualqa"]["conversation"]
        follow_up = client.chat.completions.create(
            model="tiny-model",
            messages=[{"role": "user", "content": "and how often should I check it?"}],
            extra_body={"conversation": conversation},
        )

    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices[0].delta.content]
    assert len(pieces) > 1  # the model's verified text came in pieces, not in one block
    assert "".join(pieces).startswith(MODEL_ANSWER)
    assert follow_up.model_extra["manualqa"]["conversation"] == conversation
    assert Message.objects.filter(conversation_id=conversation).count() == 4


def test_errors_come_in_the_openai_shape_the_sdk_raises(sdk, owner_token, settings):
    make_assistant(tiny_manual(), slug="tiny-quotes", answer_style="quoted")
    ask = {"model": "tiny-quotes", "messages": [{"role": "user", "content": QUESTION}]}

    with pytest.raises(openai.AuthenticationError):
        sdk("not-a-token").chat.completions.create(**ask)
    client = sdk(owner_token)
    with pytest.raises(openai.NotFoundError, match="GET /v1/models lists") as info:
        client.chat.completions.create(**{**ask, "model": "no-such-assistant"})
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="last message must be the user"):
        client.chat.completions.create(
            model="tiny-quotes", messages=[{"role": "assistant", "content": "Hello"}]
        )
    with pytest.raises(openai.BadRequestError, match="question is empty"):
        client.chat.completions.create(
            model="tiny-quotes", messages=[{"role": "user", "content": "  "}]
        )
    settings.CHAT_RATE_LIMIT = "1/day"
    client.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(**ask)
    assert int(info.value.response.headers["Retry-After"]) > 0
    assert Message.objects.filter(role=Message.Role.ASSISTANT).count() == 1
