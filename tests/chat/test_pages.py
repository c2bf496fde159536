"""The chat pages: asking, streaming, what the page shows of an answer, privacy, limits,
feedback and compare mode, through Django's test client on the real database and Redis."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from chat import services
from chat.models import Assistant, Conversation, Feedback, Message, Preference
from chat.owners import Owner, session_digest
from curation import services as curation_services
from curation.models import QAPair
from curation.services import CleanDocument
from manualqa.rendering import render_markdown
from tests.chat.support import make_assistant, openai_endpoint, tiny_manual
from tests.conftest import BASE_DIR, database_url, wait_for
from tests.fakeopenai import FakeOpenAI

pytestmark = pytest.mark.django_db

QUESTION = "What pressure should the tires have?"
ANSWER = "Inflate the tires to **42 PSI** when they are cold [1]."
# One sentence the tiny manual supports, so it reaches the owner with its markup.
HOSTILE_ANSWER = (
    "Inflate the tires to **42 PSI** (290 kPa) when they are cold [1]. "
    '<script>alert("owned")</script> Check the pressure once a month with an accurate '
    '[gauge](javascript:alert()) <img src="x" onerror="alert()">.'
)
HOSTILE_QUOTE = (
    "| Tire | Pressure |\n| --- | --- |\n| Front | 42 PSI |\n\n"
    "<iframe src='http://127.0.0.1/'></iframe><img src=x onerror=alert(1)>"
)
# The first sentence is in the tiny manual; the other two are not.
PARTLY_SUPPORTED = (
    "Inflate the tires to 42 PSI when they are cold [1]. The spare tire needs 60 PSI. "
    "Rotate the tires every week at the dealer."
)
# Three sentences the tiny manual supports: three tokens.
THREE_SENTENCES = (
    "Inflate the tires to 42 PSI when they are cold [1]. Check the pressure once a month with "
    "an accurate gauge [1]. Use an accurate gauge to check the pressure once a month."
)
# The tiny manual's tire passage, as the quote from the manual gives it.
TIRE_QUOTE = (
    "Inflate the tires to 42 PSI (290 kPa) when they are cold. Check the pressure once a month "
    "with an accurate gauge."
)


@pytest.fixture
def manual():
    return tiny_manual()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(lambda messages: ANSWER) as server:
        yield server


@pytest.fixture
def assistant(manual, fake):
    """An assistant whose answers are the model's (verified sentence by sentence)."""
    return make_assistant(
        manual,
        name="Tire helper",
        slug="tire-helper",
        endpoint=openai_endpoint(fake.base_url),
        answer_style="generated",
        is_default=True,
    )


def stream(client: Client, question: str = QUESTION, **fields):
    return client.post(reverse("chat:stream"), {"question": question, **fields})


def parse_sse(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def sse_events(response) -> list[tuple[str, dict]]:
    return parse_sse(b"".join(response.streaming_content).decode())


def ask(client: Client, question: str = QUESTION, **fields) -> dict:
    """Ask through the stream, as the page's script does; the ``done`` event's data."""
    response = stream(client, question, **fields)
    assert response.status_code == 200, response.content
    name, done = sse_events(response)[-1]
    assert name == "done", done
    return done


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def answer_html(html: str, message_id: int) -> str:
    """The ``<article>`` of one answer on a page."""
    start = html.index(f'id="answer-{message_id}"')
    return html[start : html.index("</article>", start)]


# --------------------------------------------------------------------------------------------
# The page


def test_the_chat_page_offers_the_active_assistants_with_the_default_selected(manual, assistant):
    make_assistant(manual, name="Quoting assistant", slug="quoting", endpoint=None)
    make_assistant(manual, name="Retired assistant", slug="retired", is_active=False)

    response = Client().get(reverse("chat:home"))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="tire-helper" data-name="Tire helper" selected>Tire helper (default)<' in html
    assert (
        '<option value="quoting" data-name="Quoting assistant">Quoting assistant</option>' in html
    )
    assert "Retired assistant" not in html
    assert f'action="{reverse("chat:ask")}"' in html and 'name="csrfmiddlewaretoken"' in html
    assert 'id="chat-clear"' in html and reverse("chat:compare") in html
    assert "sessionid" not in response.cookies  # a visit alone stores nothing


def test_picking_an_assistant_starts_a_conversation_with_it(manual, assistant):
    make_assistant(manual, name="Quoting assistant", slug="quoting", endpoint=None)

    html = page(Client(), reverse("chat:home") + "?assistant=quoting")

    assert '<option value="quoting" data-name="Quoting assistant" selected>' in html
    assert '<input type="hidden" name="assistant" value="quoting">' in html


def test_the_page_is_laid_out_for_phones():
    html = page(Client(), reverse("chat:home"))
    css = Path(finders.find("css/site.css")).read_text(encoding="utf-8")
    script = Path(finders.find("js/chat.js")).read_text(encoding="utf-8")

    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    phone_rules = css.split("@media (max-width: 640px)", 1)[1].split("\n}\n", 1)[0]
    assert ".chat-layout { grid-template-columns: minmax(0, 1fr)" in phone_rules
    assert ".compare-pickers, .compare-columns { grid-template-columns: minmax(0, 1fr)" in (
        phone_rules
    )
    assert "js/chat.js" in html
    # The script reads the stream with fetch and never puts model or manual text in innerHTML.
    assert "getReader()" in script and "createTextNode(data.text)" in script
    assert 'name === "quote"' in script and "quoteText.textContent = quote.text" in script
    assert script.count("innerHTML") == 1 and "template.innerHTML = html" in script


def test_without_an_assistant_the_page_says_so(db):
    html = page(Client(), reverse("chat:home"))

    assert "No assistant yet" in html and 'id="chat-form"' not in html


# --------------------------------------------------------------------------------------------
# Answers on the page


def test_an_answer_shows_as_markdown_with_its_citations_timings_and_thumbs(assistant):
    client = Client()

    response = client.post(reverse("chat:ask"), {"question": QUESTION})

    conversation = Conversation.objects.get()
    answer = Message.objects.get(role="assistant")
    assert response.status_code == 302
    assert response["Location"] == f"/chat/c/{conversation.pk}/#answer-{answer.pk}"
    html = page(client, response["Location"])
    assert f'<div class="chat-question-text">{QUESTION}</div>' in html
    assert "Inflate the tires to <strong>42 PSI</strong> when they are cold [1]." in html
    citation = answer.citations[0]
    assert citation["source_name"] == "tires.md"
    document_url = reverse(
        "curation:document", args=[citation["manual_id"], citation["document_id"]]
    )
    assert (
        f'href="{document_url}?chunk={citation["chunk_id"]}#chunk-{citation["chunk_id"]}"' in html
    )
    assert f"First text in {answer.ttft_ms:,} ms" in html
    assert f"Complete in {answer.latency_ms:,} ms" in html
    assert reverse("chat:feedback", args=[answer.pk]) in html
    assert 'value="up"' in html and 'value="down"' in html and 'name="comment"' in html
    assert f'<a href="{response["Location"].split("#")[0]}" aria-current="page">' in html


def test_the_cited_chunk_is_highlighted_on_the_document_page(assistant):
    client = Client()
    done = ask(client)
    citation = done["citations"][0]

    html = page(client, citation["url"])

    assert f'id="chunk-{citation["chunk_id"]}" class="chunk highlighted"' in html
    assert "42 PSI (290 kPa)" in html


def test_html_and_script_from_a_model_never_reach_the_page(assistant, fake):
    fake.responder = lambda messages: HOSTILE_ANSWER
    client = Client()

    done = ask(client)
    url = reverse("chat:conversation", args=[done["conversation"]])
    streamed = page(client, url)
    # Stored text is data, whatever verification let through: an answer and a quote (as a
    # manual could hold) both full of markup.
    Message.objects.filter(pk=done["message"]).update(
        content=HOSTILE_ANSWER,
        extractive=False,
        quote={"text": HOSTILE_QUOTE, "numbers": [1], "shown": True},
    )
    stored = page(client, url)

    for rendered in (done["html"], streamed, stored):
        assert 'alert("owned")' not in rendered and "<script>alert" not in rendered
        assert "onerror" not in rendered and "<img" not in rendered
        assert "javascript:" not in rendered and "<iframe" not in rendered
    assert "<strong>42 PSI</strong>" in stored and "From the manual" in stored
    assert "accurate <a" in stored and ">gauge</a>" in stored  # a link's text stays
    assert "<td>42 PSI</td>" in stored  # a quote's table stays a table


@pytest.mark.parametrize("style", ["generated", "quoted"])
def test_a_stored_citation_link_cannot_become_a_script(assistant, style):
    Assistant.objects.filter(pk=assistant.pk).update(answer_style=style)
    client = Client()
    done = ask(client)
    Message.objects.filter(pk=done["message"]).update(
        citations=[{"n": 1, "url": "javascript:alert(1)", "title": "<b>Tires</b>"}]
    )

    html = page(client, reverse("chat:conversation", args=[done["conversation"]]))

    assert "javascript:" not in html and "<b>Tires</b>" not in html
    assert "&lt;b&gt;Tires&lt;/b&gt;" in html


def test_a_quoted_answer_is_the_manuals_own_words_with_a_link_to_them(manual, fake):
    # A fresh install's style: the quote from the manual, and no model call at all.
    make_assistant(manual, name="Quoter", slug="quoter", endpoint=openai_endpoint(fake.base_url))
    client = Client()

    done = ask(client, assistant="quoter")
    html = answer_html(
        page(client, reverse("chat:conversation", args=[done["conversation"]])), done["message"]
    )

    message = Message.objects.get(pk=done["message"])
    assert message.answer_style == "quoted" and not fake.requests
    assert message.extractive and message.content == message.quote_text == TIRE_QUOTE
    assert "Quoted from the manual" in html
    block = html.split('<figure class="chat-quote">', 1)[1].split("</figure>", 1)[0]
    assert "From the manual" in block and TIRE_QUOTE in block
    assert html.count(TIRE_QUOTE) == 1  # the quote is the answer, shown once
    citation = message.citations[0]
    assert message.quote["numbers"] == [citation["n"]]
    assert f'href="{citation["url"]}"' in block and escape(citation["heading_path"]) in block
    assert 'class="chat-sources"' not in html  # the quote carries its own source
    document = page(client, citation["url"])
    assert f'id="chunk-{citation["chunk_id"]}" class="chunk highlighted"' in document
    assert "42 PSI (290 kPa)" in document


def test_a_grounded_answer_gives_the_verified_answer_then_the_quote(assistant, fake):
    Assistant.objects.filter(pk=assistant.pk).update(answer_style="grounded")
    client = Client()

    events = sse_events(stream(client))

    names = [name for name, _ in events]
    assert names[:3] == ["started", "citations", "quote"] and names[-1] == "done"
    assert events[2][1]["quote"]["text"] == TIRE_QUOTE
    done = events[-1][1]
    html = answer_html(
        page(client, reverse("chat:conversation", args=[done["conversation"]])), done["message"]
    )
    answer_at = html.index("Inflate the tires to <strong>42 PSI</strong> when they are cold [1].")
    quote_at = html.index('<figure class="chat-quote">')
    assert answer_at < quote_at and TIRE_QUOTE in html[quote_at:]
    assert "Quoted from the manual" not in html
    # The quote links its passage; the passage is not listed a second time under it.
    (citation,) = Message.objects.get(pk=done["message"]).citations
    assert html.count(f'href="{citation["url"]}"') == 1
    assert 'class="chat-quote-source" href="' in html and 'class="chat-sources"' not in html


def test_a_streamed_quote_comes_rendered_so_a_table_is_a_table_from_the_start(manual, fake):
    # While a model writes the rest (seconds on a CPU), the quote is what the owner reads: its
    # table must not show as pipes and dashes until the answer is complete.
    table = (
        "# Wheels\n\n## Cold Tire Pressures\n\n|Wheel|Front|Rear|\n|---|---|---|\n"
        "|18 inch Aero|42 PSI|42 PSI|\n|19 inch Sport|42 PSI|45 PSI|\n"
    )
    curation_services.document_upsert(
        manual=manual, clean=CleanDocument("wheels.md", "", "Wheels", table, len(table.split()))
    )
    curation_services.chunks_embed_pending(manual=manual)
    make_assistant(
        manual,
        name="Grounded",
        slug="grounded",
        endpoint=openai_endpoint(fake.base_url),
        answer_style="grounded",
    )

    events = sse_events(
        stream(
            Client(), "cold tire pressure for the rear 19 inch sport wheels", assistant="grounded"
        )
    )

    quote = dict(events)["quote"]["quote"]
    assert "|19 inch Sport|42 PSI|45 PSI|" in quote["text"]
    assert quote["html"] == render_markdown(quote["text"])
    assert "<table>" in quote["html"] and "<td>45 PSI</td>" in quote["html"]
    assert "|" not in quote["html"]


def test_a_declined_answer_lists_the_nearest_passages(assistant, fake):
    client = Client()

    done = ask(client, "What is the resale value of this car after five years?")
    html = answer_html(
        page(client, reverse("chat:conversation", args=[done["conversation"]])), done["message"]
    )

    assert done["declined"] and done["answer"].startswith("The manual does not say.")
    assert not fake.requests  # declined before any model call
    assert "Not in the manual" in html and "The manual does not say." in html
    assert "Nearest passages in the manual" in html and "Sources" not in html
    assert done["citations"] and all(not c["in_prompt"] for c in done["citations"])
    for citation in done["citations"]:
        assert f'href="{citation["url"]}"' in html
    assert "From the manual" not in html


def test_cut_sentences_are_noted_but_never_shown(assistant, fake):
    fake.responder = lambda messages: PARTLY_SUPPORTED
    client = Client()

    events = sse_events(stream(client))

    done = events[-1][1]
    streamed = "".join(data["text"] for name, data in events if name == "token")
    message = Message.objects.get(pk=done["message"])
    assert message.raw_content == PARTLY_SUPPORTED  # kept for reviewers
    assert [v["supported"] for v in message.verification] == [True, False, False]
    assert done["answer"] == "Inflate the tires to 42 PSI when they are cold [1]."
    assert done["dropped_sentences"] == 2
    conversation = page(client, reverse("chat:conversation", args=[done["conversation"]]))
    for shown in (streamed, done["html"], conversation):
        assert "Inflate the tires to 42 PSI when they are cold [1]." in shown
        assert "60 PSI" not in shown and "every week" not in shown
        assert PARTLY_SUPPORTED not in shown
    for rendered in (done["html"], conversation):
        assert (
            "2 sentences of the model's answer were left out because the manual's passages do "
            "not support them." in rendered
        )


# --------------------------------------------------------------------------------------------
# Streaming


def test_the_stream_sends_tokens_before_the_answer_is_complete(assistant, fake):
    fake.responder = lambda messages: THREE_SENTENCES
    client = Client()

    response = stream(client)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    names = []
    tokens_before_done = []
    for chunk in response.streaming_content:
        ((name, data),) = parse_sse(chunk.decode())
        names.append(name)
        if name == "token":
            # The answer row is written when the answer is complete: none exists yet.
            tokens_before_done.append(data["text"])
            assert not Message.objects.filter(role="assistant").exists()
        if name == "done":
            done = data
    assert names[:2] == ["started", "citations"] and names[-1] == "done"
    # Each verified sentence is sent as soon as it is complete and checked.
    assert len(tokens_before_done) == 3 and set(names[2:-1]) == {"token"}
    assert "".join(tokens_before_done).split() == done["answer"].split()
    assert 'data-state="done"' in done["html"] and f'id="answer-{done["message"]}"' in done["html"]
    assert "First text in" in done["html"] and done["ttft_ms"] is not None


def test_a_follow_up_continues_the_conversation(assistant):
    client = Client()
    first = ask(client)

    second = ask(client, "And the spare tire?", conversation=first["conversation"])

    assert second["conversation"] == first["conversation"]
    assert Conversation.objects.count() == 1 and Message.objects.count() == 4


def test_a_failed_answer_shows_the_reason(assistant, fake):
    fake.fail_next(1, status=401)
    client = Client()

    name, failed = sse_events(stream(client))[-1]

    assert name == "failed" and failed["error"].startswith("The model could not answer (ref")
    assert 'data-state="failed"' in failed["html"] and "could not answer" in failed["html"]
    assert "HTTP 401" not in failed["html"]  # the upstream detail is for staff only
    assert 'name="rating"' not in failed["html"]  # nothing to rate
    assert "From the manual" not in failed["html"] and "Sources" not in failed["html"]


def test_an_answer_the_owner_left_says_it_was_interrupted(assistant):
    client = Client()
    client.get(reverse("chat:compare"))  # the browser's session
    owner = Owner.for_session(session_digest(client.session.session_key), client_ip="127.0.0.1")
    events = services.answer_stream(assistant=assistant, question=QUESTION, owner=owner)
    next(events)  # "started"

    events.close()  # the owner closed the page

    answer = Message.objects.get(role="assistant")
    html = answer_html(
        page(client, reverse("chat:conversation", args=[answer.conversation_id])), answer.pk
    )
    assert 'data-state="failed"' in html
    assert "The answer was interrupted before it was complete." in html
    assert 'name="rating"' not in html


# --------------------------------------------------------------------------------------------
# Privacy


def test_another_session_cannot_see_or_touch_this_sessions_conversation(assistant):
    mine, theirs = Client(), Client()
    done = ask(mine)
    url = reverse("chat:conversation", args=[done["conversation"]])

    assert QUESTION in page(mine, reverse("chat:home"))  # listed in my history
    assert theirs.get(url).status_code == 404
    assert QUESTION not in page(theirs, reverse("chat:home"))
    assert stream(theirs, conversation=done["conversation"]).status_code == 404
    feedback = theirs.post(reverse("chat:feedback", args=[done["message"]]), {"rating": "down"})
    assert feedback.status_code == 404
    assert not Feedback.objects.exists() and Message.objects.count() == 2


def test_a_signed_in_owners_conversations_are_theirs_on_every_browser(assistant):
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    laptop, phone, other = Client(), Client(), Client()
    laptop.force_login(alice)
    phone.force_login(alice)
    other.force_login(bob)
    done = ask(laptop)
    url = reverse("chat:conversation", args=[done["conversation"]])

    assert Conversation.objects.get().owner == alice
    html = page(phone, url)
    assert QUESTION in html and "signed in as alice" in html
    assert other.get(url).status_code == 404
    assert Client().get(url).status_code == 404
    assert QUESTION not in page(other, reverse("chat:home"))


def test_a_form_on_another_site_cannot_ask_or_rate_as_the_owner(assistant):
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("chat:home"))

    assert stream(client).status_code == 403
    assert client.post(reverse("chat:ask"), {"question": QUESTION}).status_code == 403
    assert not Message.objects.exists()


# --------------------------------------------------------------------------------------------
# Limits


def test_a_too_long_question_is_a_clear_error(assistant, settings):
    settings.CHAT_MAX_QUESTION_CHARS = 50
    message = (
        "The question is too long: 51 characters, and the limit is 50. Shorten it and ask again."
    )

    streamed = stream(Client(), "x" * 51)
    posted = Client().post(reverse("chat:ask"), {"question": "x" * 51})

    assert streamed.status_code == 400
    assert streamed.json() == {"error": message, "code": "question_too_long", "field": "question"}
    assert posted.status_code == 400
    html = posted.content.decode()
    assert f'role="alert">{message}</div>' in html
    assert ">" + "x" * 51 + "</textarea>" in html  # the question is kept to shorten it
    assert "Up to 50 characters" in html
    assert not Message.objects.exists()


def test_over_the_rate_limit_the_page_says_when_to_try_again(assistant, settings):
    settings.CHAT_RATE_LIMIT = "1/day"
    client = Client()
    ask(client)

    streamed = stream(client)
    posted = client.post(reverse("chat:ask"), {"question": QUESTION})

    assert streamed.status_code == 429
    body = streamed.json()
    retry_after = int(streamed["Retry-After"])
    assert 1 <= retry_after <= 86400 and body["retry_after_s"] == retry_after
    assert body["code"] == "rate_limited"
    assert body["error"].startswith("Too many questions: the limit is 1 per day. Try again in")
    assert posted.status_code == 429 and posted["Retry-After"]
    assert "Too many questions: the limit is 1 per day" in posted.content.decode()
    assert Message.objects.filter(role="user").count() == 1


def test_an_assistant_that_is_no_longer_available_is_a_clear_error(manual, assistant):
    make_assistant(manual, name="Retired", slug="retired", is_active=False)

    response = stream(Client(), assistant="retired")

    assert response.status_code == 400
    assert response.json()["error"] == (
        "That assistant is not available any more. Pick another one and ask again."
    )


def test_an_empty_question_is_refused_with_a_reason(assistant):
    response = stream(Client(), "   ")

    assert response.status_code == 400
    assert response.json()["error"] == "Ask a question: the question is empty."


# --------------------------------------------------------------------------------------------
# Feedback, clear, compare


def test_thumbs_down_from_the_page_puts_the_answer_in_the_review_queue(assistant):
    client = Client()
    done = ask(client)

    response = client.post(
        reverse("chat:feedback", args=[done["message"]]),
        {"rating": "down", "comment": "The manual says 42 PSI cold, 45 PSI for the sport rims."},
        headers={"Accept": "application/json"},
    )

    assert response.status_code == 201
    assert response.json()["message"].startswith("Thanks! Your thumbs-down is recorded")
    pair = QAPair.objects.get()
    assert (pair.status, pair.origin) == ("pending", "chat_feedback")
    assert pair.question == QUESTION and pair.answer == done["answer"]
    feedback = Feedback.objects.get()
    assert feedback.rating == "down" and feedback.qa_pair == pair
    assert feedback.comment == "The manual says 42 PSI cold, 45 PSI for the sport rims."
    html = page(client, reverse("chat:conversation", args=[done["conversation"]]))
    assert "You rated this answer: thumbs down." in html


def test_thumbs_up_without_a_script_comes_back_to_the_answer_with_a_confirmation(assistant):
    client = Client()
    done = ask(client)

    response = client.post(reverse("chat:feedback", args=[done["message"]]), {"rating": "up"})

    url = reverse("chat:conversation", args=[done["conversation"]])
    assert response.status_code == 302 and response["Location"] == f"{url}#answer-{done['message']}"
    html = page(client, url)
    assert "Thanks! Your thumbs-up is recorded." in html
    assert 'value="up" class="btn btn-small chat-thumb" aria-pressed="true"' in html
    assert not QAPair.objects.exists()


def test_a_bad_rating_is_explained(assistant):
    client = Client()
    done = ask(client)

    response = client.post(
        reverse("chat:feedback", args=[done["message"]]),
        {"rating": "meh"},
        headers={"Accept": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "Unknown rating 'meh': use 'up' or 'down'."


def test_clear_starts_a_new_conversation_and_keeps_the_old_one(assistant):
    client = Client()
    first = ask(client)
    html = page(client, reverse("chat:conversation", args=[first["conversation"]]))
    assert f'id="chat-clear" href="{reverse("chat:home")}?assistant=tire-helper"' in html

    cleared = page(client, reverse("chat:home") + "?assistant=tire-helper")
    second = ask(client, "How do I replace the wiper blades?")

    assert 'id="chat-empty"' in cleared and 'name="conversation" value=""' in cleared
    assert QUESTION in cleared  # still in the history
    assert second["conversation"] != first["conversation"]
    assert Conversation.objects.count() == 2


def test_compare_mode_with_one_assistant_says_another_is_needed(assistant, admin_client):
    html = page(Client(), reverse("chat:compare"))

    # both sides are the one assistant: the page says why, and how to get a second
    assert 'id="compare-single"' in html and "Only one assistant is set up" in html
    assert html.count('value="tire-helper" data-name="Tire helper" selected>') == 2
    assert reverse("admin:chat_assistant_add") not in html
    assert reverse("admin:chat_assistant_add") in page(admin_client, reverse("chat:compare"))


def test_compare_mode_asks_two_assistants_and_stores_which_was_better(manual, assistant):
    quoting = make_assistant(manual, name="Quoting", slug="quoting", endpoint=None)
    client = Client()
    response = client.get(reverse("chat:compare"))
    assert 'id="compare-single"' not in response.content.decode()
    # The page makes no session (a bot's GETs would each add a row); its script asks for one
    # before its two questions race to make one.
    assert (
        "sessionid" not in response.cookies and 'data-has-session="0"' in response.content.decode()
    )
    assert client.post(reverse("chat:compare")).status_code == 204
    assert "sessionid" in client.cookies
    html = response.content.decode()
    assert (
        'value="tire-helper" data-name="Tire helper" selected>' in html.split('id="compare-b"')[0]
    )
    assert 'value="quoting" data-name="Quoting" selected>' in html.split('id="compare-b"')[1]

    answer_a = ask(client, assistant="tire-helper")
    answer_b = ask(client, assistant="quoting")
    response = client.post(
        reverse("chat:preference"),
        {"message_a": answer_a["message"], "message_b": answer_b["message"], "chosen": "b"},
    )

    assert response.status_code == 201
    assert response.json()["message"] == "Recorded: B was better. Thank you!"
    preference = Preference.objects.get()
    assert (preference.assistant_a, preference.assistant_b) == (assistant, quoting)
    assert preference.chosen == "b" and preference.question == QUESTION
    assert answer_a["conversation"] != answer_b["conversation"]


def test_nobody_records_a_preference_on_someone_elses_answers(manual, assistant):
    make_assistant(manual, name="Quoting", slug="quoting", endpoint=None)
    owner = Client()
    answer_a = ask(owner, assistant="tire-helper")
    answer_b = ask(owner, assistant="quoting")

    response = Client().post(
        reverse("chat:preference"),
        {"message_a": answer_a["message"], "message_b": answer_b["message"], "chosen": "a"},
    )

    assert response.status_code == 404 and not Preference.objects.exists()


def test_a_preference_needs_answers_to_the_same_question(manual, assistant):
    make_assistant(manual, name="Quoting", slug="quoting", endpoint=None)
    client = Client()
    answer_a = ask(client, assistant="tire-helper")
    answer_b = ask(client, "How do I replace the wiper blades?", assistant="quoting")

    response = client.post(
        reverse("chat:preference"),
        {"message_a": answer_a["message"], "message_b": answer_b["message"], "chosen": "a"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "The two answers must answer the same question."


# --------------------------------------------------------------------------------------------
# Query counts


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_history_and_a_conversation_cost_the_same_queries_however_long(assistant):
    client = Client()
    first = ask(client)
    conversation_url = reverse("chat:conversation", args=[first["conversation"]])
    home = queries_for(client, reverse("chat:home"))
    short = queries_for(client, conversation_url)

    done = ask(client, "And the spare tire?", conversation=first["conversation"])
    client.post(reverse("chat:feedback", args=[done["message"]]), {"rating": "up"})
    for question in ("How do I replace the wiper blades?", "Where is the charge port release?"):
        ask(client, question)

    assert queries_for(client, reverse("chat:home")) == home
    assert queries_for(client, conversation_url) == short


# --------------------------------------------------------------------------------------------
# Served as in production


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_passes_tokens_on_as_they_come(manual, fake, tmp_path):
    """``make run`` serves the site with gunicorn's threaded workers: each answer holds one
    thread while it streams, and every token reaches the browser when the model sends it."""
    fake.responder = lambda messages: THREE_SENTENCES
    fake.chunk_delay_s = 0.2
    make_assistant(
        manual,
        name="Tires",
        slug="tires",
        endpoint=openai_endpoint(fake.base_url),
        answer_style="generated",
    )
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "DATABASE_CONN_MAX_AGE": "0",
    }
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "manualqa.wsgi", "--bind", f"127.0.0.1:{port}",
            "--worker-class", "gthread", "--workers", "1", "--threads", "4",
        ],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        browser = requests.Session()
        deadline = time.monotonic() + 60
        while True:
            try:
                chat_page = browser.get(f"{base}/chat/", timeout=5)
                break
            # Refused before gunicorn listens; or accepted, and not read in time while its
            # worker still loads the site (over 5 s on a busy 2-core machine).
            except (requests.ConnectionError, requests.Timeout):
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(
                        f"gunicorn did not serve: {(tmp_path / 'gunicorn.log').read_text()}"
                    )
                time.sleep(0.25)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', chat_page.text)[1]

        arrivals = stream_over_http(browser, base, token)
        # An owner who closes the page mid-answer: the server notices when a write fails
        # (the second sentence after they left, once the first has drawn a reset).
        abandoned = stream_over_http(browser, base, token, leave_after_first_token=True)
        wait_for(
            lambda: Message.objects.filter(
                role="assistant", error__contains="interrupted"
            ).exists(),
            timeout=20,
            what="the abandoned answer to be recorded as interrupted",
        )
    finally:
        server.terminate()
        server.wait(20)
        log.close()

    assert [name for name, _ in abandoned] == ["started", "citations", "token"]
    names = [name for name, _ in arrivals]
    assert names[0] == "started" and names[-1] == "done" and names.count("token") == 3
    first_token = next(at for name, at in arrivals if name == "token")
    # Three sentences of about ten words, 0.2 s a word: the first sentence arrived once it was
    # verified, seconds before the answer was complete.
    assert arrivals[-1][1] - first_token > 2


def stream_over_http(
    session: requests.Session, base: str, csrf_token: str, *, leave_after_first_token=False
) -> list[tuple[str, float]]:
    """The names of the events of one answer over a real socket, with when each arrived."""
    arrivals: list[tuple[str, float]] = []
    with session.post(
        f"{base}/chat/stream/",
        data={"assistant": "tires", "question": QUESTION},
        headers={"X-CSRFToken": csrf_token},
        stream=True,
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "text/event-stream"
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                arrivals.append((line.removeprefix("event: "), time.monotonic()))
                if leave_after_first_token and arrivals[-1][0] == "token":
                    break
    return arrivals
