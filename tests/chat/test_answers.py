"""Answering owners' questions over the sample manual, through real loopback model servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chat import services
from chat.events import Citations, Done, Failed, Quote, Started, Token
from chat.models import Assistant, Conversation, Message
from curation.models import DocumentChunk, LLMEndpoint
from tests.chat.conftest import sample_question
from tests.chat.fakesagemaker import FakeSageMaker
from tests.chat.support import (
    FakeOpenAIWithCompletions,
    make_assistant,
    numbered_passage_containing,
    openai_endpoint,
    session_owner,
)
from tests.fakeopenai import FakeOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake() -> Iterator[FakeOpenAIWithCompletions]:
    with FakeOpenAIWithCompletions() as server:
        yield server


def last_user_content(fake: FakeOpenAI) -> str:
    return fake.chat_requests()[-1]["body"]["messages"][-1]["content"]


def test_rag_answer_cites_the_chunk_that_holds_the_answer(sample_manual, fake):
    question = sample_question("q02")  # tire pressure, 18 inch wheels -> tires.html

    def cite_the_pressure_passage(messages):
        prompt = messages[-1]["content"]
        n = numbered_passage_containing(prompt, "42 PSI")
        return f"Inflate them to 42 PSI (290 kPa) when cold [{n}]."

    fake.responder = cite_the_pressure_passage
    assistant = make_assistant(
        sample_manual, endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )

    events = list(
        services.answer_stream(
            assistant=assistant, question=question.question, owner=session_owner()
        )
    )

    assert isinstance(events[0], Started) and isinstance(events[1], Citations)
    assert isinstance(events[-1], Done)
    message = events[-1].message
    assert "".join(e.text for e in events if isinstance(e, Token)).strip() == message.content
    assert message.content.startswith("Inflate them to 42 PSI")
    assert not message.declined and not message.extractive and not message.error
    assert [v["supported"] for v in message.verification] == [True]
    # The answer cites one passage: it is the one stored, and it is the right chunk.
    (citation,) = message.citations
    chunk = DocumentChunk.objects.select_related("document").get(pk=citation["chunk_id"])
    assert chunk.document.source_name in question.sources
    assert "42 PSI" in chunk.text
    assert citation["source_name"] == "tires.html" and citation["in_prompt"] is True
    assert citation["url"].endswith(f"?chunk={chunk.pk}#chunk-{chunk.pk}")
    # The prompt carried the numbered passages; the Citations event listed all of them.
    assert len(events[1].citations) == assistant.top_k
    assert "Question: " + question.question in last_user_content(fake)
    assert message.prompt_tokens and message.completion_tokens and message.latency_ms >= 0
    assert message.ttft_ms is not None and message.ttft_ms <= message.latency_ms
    question_message = Message.objects.get(pk=events[0].message_id)
    assert question_message.role == Message.Role.USER
    assert message.reply_to_id == question_message.pk


def test_a_model_answer_quoting_the_manual_is_kept_and_cites_the_passage_it_rests_on(
    sample_manual, fake
):
    # The fake's default responder quotes the passage sentence closest to the question.
    assistant = make_assistant(
        sample_manual, endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )

    message = services.answer(
        assistant=assistant,
        question=sample_question("q05").question,  # 12 V battery location
        owner=session_owner(),
    )

    assert message.content.startswith("According to the manual")
    assert "12 V battery" in message.content
    assert all(v["supported"] for v in message.verification)
    assert "maintenance.html" in {c["source_name"] for c in message.citations}


def test_an_out_of_manual_question_is_declined_without_calling_the_model(sample_manual, fake):
    assistant = make_assistant(
        sample_manual, endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )

    events = list(
        services.answer_stream(
            assistant=assistant,
            question="Who won the 2022 football world cup?",
            owner=session_owner(),
        )
    )

    message = events[-1].message
    assert message.declined and message.content.startswith("The manual does not say.")
    assert sample_manual.name in message.content
    assert message.checks["decline"]["reason"] == "similarity"
    assert message.retrieval_score < assistant.min_score
    # The nearest passages are still listed, marked as not what an answer rests on.
    assert message.citations and events[1].citations == message.citations
    assert all(c["in_prompt"] is False for c in message.citations)
    assert fake.requests == []  # no model was asked


@pytest.mark.parametrize(
    "question",
    [
        "How much does it cost to insure a 2025 Aster in Ontario?",  # the sample set's q26
        "Can I charge the Aster at a Tesla Supercharger in Norway?",
        "How much does a replacement key fob cost at a Corvan dealer?",
        "How many watts is the Aster's sound system?",
        "whats the aster's 0-60 time",  # the quote found talks of driving, with no time in it
        "whats the screen size on the aster's main display",  # the quote: the dimensions table
    ],
)
def test_an_on_topic_question_the_manual_does_not_answer_is_declined(sample_manual, fake, question):
    assistant = make_assistant(
        sample_manual, endpoint=openai_endpoint(fake.base_url), answer_style="grounded"
    )

    message = services.answer(assistant=assistant, question=question, owner=session_owner())

    # Retrieval alone would answer: the question is about the car, close to its passages.
    assert message.retrieval_score >= assistant.min_score
    assert message.declined and message.content.startswith("The manual does not say.")
    reasons = {
        "coverage": "The manual never mentions",
        "product": "The manual never mentions",  # another make ("Tesla")
        "price": "The manual gives no prices.",
        "unit": "The manual gives no figure in watts.",
        "amount": "The passage that comes closest gives no such figure.",
        "off_point": "The passage that comes closest speaks of something else.",
    }
    assert reasons[message.checks["decline"]["reason"]] in message.content
    assert message.citations and all(c["in_prompt"] is False for c in message.citations)
    assert fake.requests == []


def test_a_misspelt_question_is_answered_as_the_manual_would_spell_it(sample_manual):
    # "recomended" and "presure" are words the manual never uses: read as written, they carried
    # the question's weight to a decline ("The manual never mentions 'recomended', 'presure'").
    assistant = make_assistant(sample_manual, endpoint=None)  # quoted
    spelt = services.answer(
        assistant=assistant, question="whats the recommended tire pressure", owner=session_owner()
    )

    message = services.answer(
        assistant=assistant, question="whats the recomended tire presure", owner=session_owner()
    )

    assert not message.declined
    assert message.checks["read_as"] == "whats the recommended tire pressure"
    assert message.content == spelt.content and message.citations == spelt.citations
    assert "read_as" not in spelt.checks
    # The owner's words are what is stored as the question.
    assert message.reply_to.content == "whats the recomended tire presure"


def test_the_recommended_tire_pressure_is_answered_by_the_table(sample_manual):
    # A table's span is embedded after its section's title, as its rows are: as bare cells it
    # read less like the question than the Note on temperature beside it, which was quoted.
    assistant = make_assistant(sample_manual, endpoint=None)  # quoted

    message = services.answer(
        assistant=assistant, question="whats the recommended tire pressure", owner=session_owner()
    )

    assert not message.declined
    assert message.content.startswith("| Wheel | Tire size | Front (cold) | Rear (cold) |")
    assert "| 18-inch Aero wheel | 235/50 R18 101V | 290 kPa (42 PSI) |" in message.content
    assert "Note:" not in message.content


def test_a_quoted_answer_is_the_smallest_span_that_answers_with_its_citation(sample_manual):
    assistant = make_assistant(sample_manual, endpoint=None)  # no generator: quoted

    message = services.answer(
        assistant=assistant,
        question=sample_question("q01").question,  # manual charge port release
        owner=session_owner(),
    )

    assert message.extractive and not message.declined and message.answer_style == "quoted"
    assert message.content == message.quote_text
    # The whole numbered procedure, not a passage dump: every step, in order.
    steps = [line[:2] for line in message.content.splitlines() if line[:1].isdigit()]
    assert steps == ["1.", "2.", "3.", "4.", "5."]
    assert "release cable" in message.content and "left side of the trunk" in message.content
    assert len(message.content.split()) < 200
    assert message.quote["numbers"] == [c["n"] for c in message.citations]
    assert message.citations[0]["source_name"] == "charging.html"
    assert message.prompt_tokens is None and message.completion_tokens is None
    assert message.raw_content == "" and message.verification == []


def test_a_grounded_answer_streams_the_quote_first_then_only_verified_sentences(
    sample_manual, fake
):
    def answer_with_an_invented_number(messages):
        n = numbered_passage_containing(messages[-1]["content"], "42 PSI")
        return (
            f"Inflate the tires to 42 PSI (290 kPa) when they are cold [{n}]. "
            "For the best range, inflate them to 50 PSI."
        )

    fake.responder = answer_with_an_invented_number
    assistant = make_assistant(
        sample_manual, endpoint=openai_endpoint(fake.base_url), answer_style="grounded"
    )

    events = list(
        services.answer_stream(
            assistant=assistant, question=sample_question("q02").question, owner=session_owner()
        )
    )

    kinds = [type(event).__name__ for event in events]
    assert kinds[:3] == ["Started", "Citations", "Quote"] and kinds[-1] == "Done"
    message = events[-1].message
    streamed = "".join(e.text for e in events if isinstance(e, Token))
    assert "50 PSI" not in streamed and "50 PSI" not in message.content
    assert message.content.startswith("Inflate the tires to 42 PSI")
    assert "42 PSI" in message.quote_text and message.shows_quote
    (dropped,) = message.dropped_verdicts
    assert dropped["reason"] == "number" and "50 psi" in dropped["detail"]
    assert "50 PSI" in message.raw_content  # kept for reviewers
    # A grounded answer is short: the model got 64 tokens, not the endpoint's 200.
    assert fake.chat_requests()[-1]["body"]["max_tokens"] == 64


def test_a_generated_answer_with_too_little_support_falls_back_to_the_quote(sample_manual, fake):
    fake.responder = lambda messages: "Ask your dealer about a new adapter kit for the car."
    assistant = make_assistant(
        sample_manual, endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )

    events = list(
        services.answer_stream(
            assistant=assistant, question=sample_question("q01").question, owner=session_owner()
        )
    )

    message = events[-1].message
    assert not any(isinstance(e, Token) for e in events)  # nothing unsupported was streamed
    assert any(isinstance(e, Quote) for e in events)
    assert message.extractive and message.content == message.quote_text
    assert "release cable" in message.content
    assert message.checks["fell_back"]
    assert message.raw_content.startswith("Ask your dealer")
    assert [v["supported"] for v in message.verification] == [False]


def test_a_looping_remote_stream_is_cut_and_the_part_before_the_loop_is_kept(sample_manual, fake):
    def loop(messages):
        n = numbered_passage_containing(messages[-1]["content"], "release cable")
        steps = [
            f"1. Open the trunk [{n}].",
            "2. Unclip the small rectangular cover in the trim panel.",
            *[f"{i}. Pull the release cable." for i in range(3, 40)],
        ]
        return "\n".join(steps)

    fake.responder = loop
    assistant = make_assistant(
        sample_manual,
        endpoint=openai_endpoint(fake.base_url, max_tokens=2000),
        answer_style="generated",
        max_tokens=2000,
    )

    message = services.answer(
        assistant=assistant, question=sample_question("q01").question, owner=session_owner()
    )

    assert message.looped
    steps = [line.split(". ", 1)[1] for line in message.content.splitlines()]
    assert len(steps) == len(set(steps)) and len(steps) <= 3
    assert message.raw_content.count("Pull the release cable.") >= 2
    assert message.content.count("Pull the release cable.") <= 1


def test_the_answer_token_budget_is_the_assistants_not_the_endpoints(sample_manual, fake):
    endpoint = openai_endpoint(fake.base_url, max_tokens=900)
    assistant = make_assistant(sample_manual, endpoint=endpoint, answer_style="generated")

    services.answer(
        assistant=assistant, question=sample_question("q02").question, owner=session_owner()
    )

    assert assistant.max_tokens == 160
    assert fake.chat_requests()[-1]["body"]["max_tokens"] == 160


def test_direct_mode_uses_the_inst_format_the_endpoints_model_was_trained_with(sample_manual, fake):
    fake.responder = lambda messages: "Pull the release cable in the trunk. </s>"
    endpoint = openai_endpoint(fake.base_url, name="Tuned on seed_inst")
    # What a training job writes onto the endpoint it registers (tests/training/test_jobs.py).
    endpoint.prompt_format = LLMEndpoint.PromptFormat.SEED_INST
    endpoint.system_prompt = "You answer from the Aster manual."
    endpoint.save()
    assistant = make_assistant(
        sample_manual, mode=Assistant.Mode.DIRECT, endpoint=endpoint, answer_style="generated"
    )
    question = sample_question("q01").question

    message = services.answer(assistant=assistant, question=question, owner=session_owner())

    # Checked against the manual's passages like any answer, although the model saw none.
    assert message.content == "Pull the release cable in the trunk."
    assert [v["supported"] for v in message.verification] == [True]
    (request,) = fake.completion_requests()
    assert fake.chat_requests() == []
    assert request["body"]["prompt"] == (
        f"<s>[INST] <<SYS>>\nYou answer from the Aster manual.\n<</SYS>>\n\n{question} [/INST]"
    )
    assert request["body"]["stop"] == ["</s>", "[INST]"]
    # Direct answers still carry the closest passages, marked as not given to the model.
    assert message.citations[0]["source_name"] == "charging.html"
    assert all(c["in_prompt"] is False for c in message.citations)


def test_direct_mode_with_an_explicit_inst_format_sends_just_the_question(sample_manual, fake):
    fake.responder = lambda messages: "42 PSI."
    assistant = make_assistant(
        sample_manual,
        mode=Assistant.Mode.DIRECT,
        endpoint=openai_endpoint(fake.base_url),
        prompt_format=Assistant.PromptFormat.INST,
        answer_style="generated",
    )
    question = sample_question("q02").question

    services.answer(assistant=assistant, question=question, owner=session_owner())

    assert fake.completion_requests()[0]["body"]["prompt"] == f"<s>[INST] {question} [/INST]"


def test_a_sagemaker_endpoint_answers_through_a_loopback_runtime(sample_manual, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    with FakeSageMaker(lambda inputs: "Inflate to 42 PSI when cold.") as sagemaker:
        endpoint = LLMEndpoint.objects.create(
            name="Seed TGI",
            kind=LLMEndpoint.Kind.SAGEMAKER,
            model="tgi-endpoint",
            base_url=sagemaker.endpoint_url,
            region="us-west-2",
            temperature=0.0,
        )
        assistant = make_assistant(
            sample_manual, mode=Assistant.Mode.DIRECT, endpoint=endpoint, answer_style="generated"
        )
        question = sample_question("q02").question

        events = list(
            services.answer_stream(assistant=assistant, question=question, owner=session_owner())
        )

    message = events[-1].message
    assert isinstance(events[-1], Done) and message.content == "Inflate to 42 PSI when cold."
    assert message.verification[0]["supported"]
    assert sum(isinstance(e, Token) for e in events) >= 1  # streamed as it was verified
    (request,) = sagemaker.requests
    assert request["operation"] == "invocations-response-stream"
    assert request["body"]["inputs"] == f"<s>[INST] {question} [/INST]"


def test_a_model_failure_stores_the_reason_and_no_answer_text(sample_manual, fake):
    fake.fail_next(1, status=400)
    assistant = make_assistant(
        sample_manual, endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )

    events = list(
        services.answer_stream(
            assistant=assistant, question=sample_question("q05").question, owner=session_owner()
        )
    )

    assert isinstance(events[-1], Failed)
    message = events[-1].message
    assert message.content == ""
    # The owner reads a reference; the upstream detail is kept for staff (security review L1).
    assert message.error.startswith("The model could not answer (reference ")
    assert "HTTP 400" not in message.error and "http" not in message.error
    assert "HTTP 400" in message.checks["error_detail"]
    assert message.checks["error_reference"] in message.error
    assert events[-1].error == message.error


def test_an_owner_leaving_mid_answer_leaves_an_interrupted_record(sample_manual, fake):
    fake.responder = lambda messages: (
        "The 12 V battery is under the front trunk floor. "
        "Open the front trunk to reach it. Lift the floor panel."
    )
    fake.chunk_delay_s = 0.05
    assistant = make_assistant(
        sample_manual, endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )
    events = services.answer_stream(
        assistant=assistant, question=sample_question("q05").question, owner=session_owner()
    )

    for event in events:
        if isinstance(event, Token):
            break
    events.close()

    answer = Message.objects.get(role=Message.Role.ASSISTANT)
    assert answer.content == "" and answer.error == services.INTERRUPTED


def test_a_follow_up_question_continues_the_conversation_with_its_history(sample_manual, fake):
    assistant = make_assistant(
        sample_manual, endpoint=openai_endpoint(fake.base_url), answer_style="generated"
    )
    owner = session_owner()
    first = services.answer(
        assistant=assistant, question=sample_question("q02").question, owner=owner
    )
    conversation = Conversation.objects.get(pk=first.conversation_id)

    second = services.answer(
        assistant=assistant,
        question="And the rear tires on 19 inch wheels?",
        owner=owner,
        conversation=conversation,
    )

    assert second.conversation_id == conversation.pk
    assert conversation.messages.count() == 4
    sent = fake.chat_requests()[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == sample_question("q02").question
    assert sent[2]["content"] == first.content


def test_a_follow_up_that_does_not_name_its_subject_is_retrieved_with_the_previous_question(
    sample_manual, settings
):
    assistant = make_assistant(sample_manual, endpoint=None)  # extractive: shows the passages
    owner = session_owner()
    first = services.answer(
        assistant=assistant,
        question="What does the yellow tire pressure warning light mean?",
        owner=owner,
    )
    conversation = Conversation.objects.get(pk=first.conversation_id)

    follow_up = services.answer(
        assistant=assistant,
        question="What should I do about it?",
        owner=owner,
        conversation=conversation,
    )
    # The same words in a new conversation say nothing about tires: declined.
    alone = services.answer(assistant=assistant, question="What should I do about it?", owner=owner)

    assert not follow_up.declined
    # about the tires, and what to do: the low-pressure alert's entry ("Check and inflate the
    # tires"), not the TPMS section's Warning that it is no substitute for checks
    assert "tire" in follow_up.citations[0]["heading_path"].lower()
    assert "inflate the tires" in follow_up.content
    assert alone.declined and alone.conversation_id != conversation.pk
    # Asked in the same conversation, a question that is not about the car is still declined.
    off_topic = services.answer(
        assistant=assistant,
        question="What is the capital of France?",
        owner=owner,
        conversation=conversation,
    )
    assert off_topic.declined
    settings.CHAT_RETRIEVAL_FOLLOWUPS = False
    without = services.answer(
        assistant=assistant,
        question="What should I do about it?",
        owner=owner,
        conversation=conversation,
    )
    assert without.declined


def test_question_limits_are_checked_before_anything_is_stored(sample_manual, settings):
    settings.CHAT_MAX_QUESTION_CHARS = 20
    assistant = make_assistant(sample_manual, endpoint=None)

    with pytest.raises(services.QuestionTooLong, match="21 characters, and the limit is 20"):
        services.answer_stream(assistant=assistant, question="x" * 21, owner=session_owner())
    with pytest.raises(services.QuestionInvalid, match="empty"):
        services.answer_stream(assistant=assistant, question="   ", owner=session_owner())
    assert not Message.objects.exists()


def test_an_inactive_assistant_refuses_questions(sample_manual):
    assistant = make_assistant(sample_manual, endpoint=None, is_active=False)

    with pytest.raises(services.AssistantUnavailable, match="not available"):
        services.answer_stream(assistant=assistant, question="Hi?", owner=session_owner())


def test_an_endpoint_that_cannot_work_fails_the_answer_with_its_reason(sample_manual, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    endpoint = LLMEndpoint.objects.create(name="Real OpenAI, no key", kind="openai", model="gpt")
    assistant = make_assistant(sample_manual, endpoint=endpoint, answer_style="generated")

    events = list(
        services.answer_stream(
            assistant=assistant, question=sample_question("q05").question, owner=session_owner()
        )
    )

    assert isinstance(events[-1], Failed)
    assert "the OpenAI API needs a key" in events[-1].message.checks["error_detail"]
    assert events[-1].message.content == ""
