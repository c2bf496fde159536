"""The chat REST API: answers, streams, limits, and conversations nobody else can read."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat.models import Conversation, Feedback, Message
from chat.owners import session_digest
from curation.models import QAPair
from tests.chat.support import make_assistant, openai_endpoint, tiny_manual
from tests.fakeopenai import FakeOpenAI, fake_token_count

pytestmark = pytest.mark.django_db

ASK = "/api/chat/"
QUESTION = "What pressure should the tires have?"


@pytest.fixture
def manual():
    return tiny_manual()


@pytest.fixture
def assistant(manual):
    """No generator: answers are extractive, quick, and need no server."""
    return make_assistant(manual, name="Extractive", slug="extractive", endpoint=None)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(lambda messages: "Inflate the tires to 42 PSI when they are cold [1].") as f:
        yield f


def ask(client: APIClient, assistant, question: str = QUESTION, **extra):
    data = {"assistant": assistant.slug, "question": question, **extra}
    return client.post(ASK, data, format="json")


def token_client(user: User) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def sse_events(response) -> list[tuple[str, dict]]:
    body = b"".join(response.streaming_content).decode()
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_an_anonymous_owner_gets_an_answer_with_citations_and_timings(assistant):
    client = APIClient()

    response = ask(client, assistant)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["extractive"] is True and body["declined"] is False
    assert "42 PSI" in body["answer"]
    assert body["citations"][0]["source_name"] == "tires.md"
    assert body["latency_ms"] >= 0 and "prompt_tokens" in body and "completion_tokens" in body
    conversation = Conversation.objects.get(pk=body["conversation"])
    assert conversation.owner is None
    # The row keeps a digest of the session key, never the key (security review L6).
    assert conversation.session_key == session_digest(client.session.session_key)
    assert client.session.session_key not in conversation.session_key


def test_the_default_assistant_answers_when_none_is_named(manual):
    make_assistant(manual, name="Default", endpoint=None, is_default=True)

    response = APIClient().post(ASK, {"question": QUESTION}, format="json")

    assert response.status_code == 200 and response.json()["extractive"]


def test_generated_answers_report_model_tokens(manual, fake):
    assistant = make_assistant(
        manual, slug="gen", endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )

    body = ask(APIClient(), assistant).json()

    assert body["answer"] == "Inflate the tires to 42 PSI when they are cold [1]."
    # The server's usage report (the fake counts words and punctuation), not an estimate.
    assert body["prompt_tokens"] > 0
    assert body["completion_tokens"] == fake_token_count(body["answer"])
    assert body["ttft_ms"] is not None and body["model"] == "fake-model"


def test_a_stream_delivers_token_events_before_the_done_event(manual, fake):
    assistant = make_assistant(
        manual, slug="gen", endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )

    response = ask(APIClient(), assistant, stream=True)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "started" and names[1] == "citations" and names[-1] == "done"
    # Verified sentences stream as tokens; nothing else comes between.
    assert names.count("token") >= 1 and set(names[2:-1]) == {"token"}
    tokens = "".join(data["text"] for name, data in events if name == "token").strip()
    done = events[-1][1]
    assert tokens == done["answer"] and done["citations"][0]["source_name"] == "tires.md"
    assert Message.objects.get(pk=done["message"]).content == tokens


def test_a_failed_model_is_a_502_carrying_the_stored_error(manual, fake):
    fake.fail_next(1, status=401)
    assistant = make_assistant(
        manual, slug="gen", endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )

    response = ask(APIClient(), assistant)

    assert response.status_code == 502
    body = response.json()
    assert body["answer"] == "" and body["error"].startswith("The model could not answer")
    assert "HTTP 401" not in body["error"] and fake.base_url not in body["error"]


def test_a_too_long_question_is_a_400_naming_the_limit(assistant, settings):
    settings.CHAT_MAX_QUESTION_CHARS = 50

    response = ask(APIClient(), assistant, question="x" * 51)

    assert response.status_code == 400
    assert response.json() == {
        "question": [
            "The question is too long: 51 characters, and the limit is 50. Shorten it and ask "
            "again."
        ]
    }
    assert not Message.objects.exists()


def test_an_empty_question_and_an_unknown_assistant_are_refused(assistant):
    client = APIClient()

    assert ask(client, assistant, question="  ").json() == {
        "question": ["Ask a question: the question is empty."]
    }
    response = client.post(ASK, {"assistant": "nope", "question": QUESTION}, format="json")
    assert response.status_code == 404


def test_over_the_rate_limit_is_a_429_with_retry_after(assistant, settings):
    settings.CHAT_RATE_LIMIT = "2/day"
    client = APIClient()

    assert [ask(client, assistant).status_code for _ in range(2)] == [200, 200]
    response = ask(client, assistant)

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 86400
    assert response.json()["detail"].startswith("Too many questions: the limit is 2 per day.")
    assert Message.objects.filter(role=Message.Role.USER).count() == 2


def test_anonymous_owners_are_limited_per_ip_not_per_session(assistant, settings):
    settings.CHAT_RATE_LIMIT = "1/day"
    first, second = APIClient(REMOTE_ADDR="10.1.1.1"), APIClient(REMOTE_ADDR="10.1.1.1")
    elsewhere = APIClient(REMOTE_ADDR="10.2.2.2")

    assert ask(first, assistant).status_code == 200
    assert ask(second, assistant).status_code == 429  # a fresh session does not reset it
    assert ask(elsewhere, assistant).status_code == 200


def test_signed_in_owners_are_limited_per_user(assistant, settings):
    settings.CHAT_RATE_LIMIT = "1/day"
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")

    assert ask(token_client(ann), assistant).status_code == 200
    assert ask(token_client(ann), assistant).status_code == 429
    assert ask(token_client(bob), assistant).status_code == 200


def test_conversations_are_private_between_browser_sessions(assistant):
    alice, mallory = APIClient(), APIClient()
    answer = ask(alice, assistant).json()
    conversation_id, message_id = answer["conversation"], answer["message"]

    mine = alice.get("/api/chat/conversations/").json()
    assert [c["id"] for c in mine["results"]] == [conversation_id]
    detail = alice.get(f"/api/chat/conversations/{conversation_id}/").json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]

    assert mallory.get("/api/chat/conversations/").json()["results"] == []
    assert mallory.get(f"/api/chat/conversations/{conversation_id}/").status_code == 404
    continued = ask(mallory, assistant, conversation=conversation_id)
    assert continued.status_code == 404
    feedback = {"message": message_id, "rating": "down", "comment": "mine now"}
    assert mallory.post("/api/chat/feedback/", feedback, format="json").status_code == 404
    assert not Feedback.objects.exists()
    assert Conversation.objects.get(pk=conversation_id).messages.count() == 2


def test_conversations_are_private_between_users_and_from_anonymous_visitors(assistant):
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")
    ann_client, bob_client = APIClient(), token_client(bob)
    ann_client.force_login(ann)
    answer = ask(ann_client, assistant).json()
    conversation_id = answer["conversation"]

    assert Conversation.objects.get(pk=conversation_id).owner == ann
    assert len(ann_client.get("/api/chat/conversations/").json()["results"]) == 1
    for outsider in (bob_client, APIClient()):
        assert outsider.get("/api/chat/conversations/").json()["results"] == []
        assert outsider.get(f"/api/chat/conversations/{conversation_id}/").status_code == 404
        assert ask(outsider, assistant, conversation=conversation_id).status_code == 404
    # Ann's own token reaches her conversation too: it belongs to her, not to a browser.
    ann_token = token_client(ann)
    assert ann_token.get(f"/api/chat/conversations/{conversation_id}/").status_code == 200


def test_conversations_begun_anonymously_follow_the_owner_who_signs_in(assistant):
    browser, stranger = APIClient(), APIClient()
    answer = ask(browser, assistant).json()
    mine, message_id = answer["conversation"], answer["message"]
    feedback = {"message": message_id, "rating": "up", "comment": "clear"}
    assert browser.post("/api/chat/feedback/", feedback, format="json").status_code in (200, 201)
    theirs = ask(stranger, assistant).json()["conversation"]
    ann = User.objects.create_user("ann", password="a long enough password")

    # A real sign-in on this browser: Django gives the session a new key here.
    before = browser.session.session_key
    assert browser.login(username="ann", password="a long enough password")
    assert browser.session.session_key != before

    claimed = Conversation.objects.get(pk=mine)
    assert claimed.owner == ann
    assert Feedback.objects.get(message_id=message_id).user == ann
    listed = browser.get("/api/chat/conversations/").json()["results"]
    assert [c["id"] for c in listed] == [mine]
    assert token_client(ann).get(f"/api/chat/conversations/{mine}/").status_code == 200
    # The other browser's conversation stays that browser's.
    assert Conversation.objects.get(pk=theirs).owner is None
    assert [c["id"] for c in stranger.get("/api/chat/conversations/").json()["results"]] == [theirs]
    # Signed out, the browser asks anonymously again; that conversation goes to whoever signs
    # in next, and Ann's stays hers.
    browser.logout()
    later = ask(browser, assistant).json()["conversation"]
    bob = User.objects.create_user("bob", password="another long password")
    assert browser.login(username="bob", password="another long password")
    assert Conversation.objects.get(pk=mine).owner == ann
    assert Conversation.objects.get(pk=later).owner == bob
    assert [c["id"] for c in browser.get("/api/chat/conversations/").json()["results"]] == [later]


def test_a_conversation_continues_with_its_own_assistant_only(assistant, manual):
    other = make_assistant(manual, name="Other", slug="other", endpoint=None)
    client = APIClient()
    conversation_id = ask(client, assistant).json()["conversation"]

    again = ask(client, assistant, question="And the spare?", conversation=conversation_id)
    mixed = ask(client, other, conversation=conversation_id)

    assert again.status_code == 200 and again.json()["conversation"] == conversation_id
    assert mixed.status_code == 400 and "another assistant" in mixed.json()["conversation"][0]


def test_thumbs_down_through_the_api_reaches_the_review_queue(assistant):
    client = APIClient()
    message_id = ask(client, assistant).json()["message"]

    response = client.post(
        "/api/chat/feedback/",
        {"message": message_id, "rating": "down", "comment": "Show the cold pressure."},
        format="json",
    )

    assert response.status_code == 201, response.content
    pair = QAPair.objects.get(pk=response.json()["qa_pair"])
    assert pair.status == QAPair.Status.PENDING and pair.origin == QAPair.Origin.CHAT_FEEDBACK
    listed = client.get("/api/chat/feedback/").json()["results"]
    assert [f["message"] for f in listed] == [message_id]
    bad = client.post(
        "/api/chat/feedback/", {"message": message_id, "rating": "meh"}, format="json"
    )
    assert bad.status_code == 400 and "rating" in bad.json()


def test_preferences_through_the_api(assistant, manual):
    other = make_assistant(manual, name="Other", slug="other", endpoint=None)
    client = APIClient()
    a = ask(client, assistant).json()["message"]
    b = ask(client, other).json()["message"]

    response = client.post(
        "/api/chat/preferences/", {"message_a": a, "message_b": b, "chosen": "a"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["question"] == QUESTION
    assert [p["id"] for p in client.get("/api/chat/preferences/").json()["results"]] == [
        response.json()["id"]
    ]
    assert APIClient().get("/api/chat/preferences/").json()["results"] == []


def test_cookie_owners_need_a_csrf_token_to_ask_but_token_clients_do_not(assistant):
    browser = APIClient(enforce_csrf_checks=True)
    assert ask(browser, assistant).status_code == 403

    user = User.objects.create_user("ann")
    api_client = token_client(user)
    api_client.handler.enforce_csrf_checks = True
    assert ask(api_client, assistant).status_code == 200


def test_the_assistant_list_shows_active_assistants_default_first(assistant, manual):
    make_assistant(manual, name="Zed default", endpoint=None, is_default=True)
    make_assistant(manual, name="Retired", endpoint=None, is_active=False)

    names = [a["name"] for a in APIClient().get("/api/chat/assistants/").json()]

    assert names == ["Zed default", "Extractive"]


def test_answer_payload_never_contains_a_filesystem_path(assistant, manual):
    """Security review L1: a local ingest's file:// source and a local model's folder are the
    server's business, not the owner's."""
    from chat.services.clients import model_label

    manual.documents.update(source_url="file:///srv/private/manuals/tires.md")

    body = ask(APIClient(), assistant).json()

    assert body["citations"] and all(c["source_url"] == "" for c in body["citations"])
    assert "/srv/private" not in json.dumps(body)
    assert model_label("/srv/models/job-7/merged") == "merged"
    assert model_label("gpt-4o-mini") == "gpt-4o-mini"


def test_the_migration_digests_raw_session_keys_it_finds(assistant):
    """Rows stored before keys were digested get the digest; others are left alone."""
    from importlib import import_module

    from django.apps import apps

    migration = import_module("chat.migrations.0003_digest_session_keys")
    raw = "abcdefghij0123456789klmnopqrstuv"
    old = Conversation.objects.create(assistant=assistant, session_key=raw)
    evaluation = Conversation.objects.create(assistant=assistant, session_key="evaluation-run-7")

    migration.digest_session_keys(apps, None)

    old.refresh_from_db()
    evaluation.refresh_from_db()
    assert old.session_key == session_digest(raw)
    assert evaluation.session_key == "evaluation-run-7"


def test_anonymous_reads_do_not_create_sessions(assistant):
    """Security review L2: a bot fetching the read endpoints or the compare page in a loop must
    not add a session row per request."""
    from django.contrib.sessions.models import Session
    from django.test import Client

    before = Session.objects.count()
    bot = APIClient()
    for url in ("/api/chat/conversations/", "/api/chat/feedback/", "/api/chat/preferences/"):
        response = bot.get(url)
        assert response.status_code == 200 and response.json()["results"] == []
    assert bot.get("/api/chat/conversations/1/").status_code == 404
    assert Client().get("/chat/compare/").status_code == 200

    assert Session.objects.count() == before


def test_concurrent_streams_per_owner_are_capped(assistant, settings):
    """Security review H2: an owner who opens answers and stops reading them holds at most
    CHAT_MAX_STREAMS_PER_OWNER; the next one gets 429 until one ends."""
    settings.CHAT_MAX_STREAMS_PER_OWNER = 2
    settings.CHAT_RATE_LIMIT = "0/min"
    client = APIClient(REMOTE_ADDR="203.0.113.5")

    first, second = ask(client, assistant, stream=True), ask(client, assistant, stream=True)
    third = ask(client, assistant, stream=True)
    elsewhere = ask(APIClient(REMOTE_ADDR="203.0.113.6"), assistant, stream=True)

    assert (first.status_code, second.status_code, elsewhere.status_code) == (200, 200, 200)
    assert third.status_code == 429 and "answers on their way" in third.json()["detail"]
    b"".join(first.streaming_content)  # the first answer ends
    fourth = ask(client, assistant, stream=True)
    assert fourth.status_code == 200
    for response in (second, elsewhere, fourth):
        b"".join(response.streaming_content)
    assert ask(client, assistant).status_code == 200  # every slot was given back


def test_an_answer_the_owner_leaves_gives_its_slot_back(assistant, settings):
    from chat import services
    from chat.owners import Owner

    settings.CHAT_MAX_STREAMS_PER_OWNER = 1
    settings.CHAT_RATE_LIMIT = "0/min"
    owner = Owner.for_session("d" * 64, client_ip="203.0.113.7")
    left = services.answer_stream(assistant=assistant, question=QUESTION, owner=owner)
    next(left)  # started

    with pytest.raises(services.RateLimited):
        services.answer_stream(assistant=assistant, question=QUESTION, owner=owner)
    left.close()  # the owner closed the page

    assert services.answer(assistant=assistant, question=QUESTION, owner=owner).content
