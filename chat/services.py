"""Writes for chat: answering owners' questions, feedback, compare-mode preferences, exports.

This is the API the chat page, its SSE view and the REST API are built on. Every function
takes keyword arguments only. Reads (assistants, an owner's conversations and messages) are in
``chat.selectors``; identity is a ``chat.owners.Owner`` (``owner_from_request(request)``).

Answering
---------
``answer_stream(*, assistant, question, owner, conversation=None) -> Iterator[ChatEvent]``
    Checks everything *before* returning the iterator, so a view can still answer with an
    error status: the question (empty -> ``QuestionInvalid``; longer than
    ``CHAT_MAX_QUESTION_CHARS`` -> ``QuestionTooLong``), the assistant (inactive ->
    ``AssistantUnavailable``), the conversation (another owner's -> ``Http404``; another
    assistant's -> ``ConversationMismatch``) and the owner's rate (``CHAT_RATE_LIMIT`` per user,
    or per IP without an account -> ``RateLimited`` with ``retry_after_s``). All are
    ``ChatError``s with a ``message`` for people, a ``field`` and an HTTP ``status``.

    Iterating then yields ``chat.events``: ``Started(conversation_id, message_id)`` once the
    question is stored (``message_id`` is the question's row; a new conversation is made when
    none was given), ``Citations(citations)``, at most one ``Quote(quote)`` (the manual's own
    words, first), ``Token(text)`` pieces (only sentences that passed verification), and
    finally ``Done(message)`` with the stored answer, or ``Failed(error, message)``. The answer
    row is written once, at the end: a failure stores empty ``content`` and the reason in
    ``error`` (never a placeholder text); an owner who goes away mid-answer leaves an answer
    row whose ``error`` says it was interrupted, and the model stops generating.
    ``chat.events.event_to_sse(event)`` renders any event as a server-sent event;
    ``answer_payload(message)`` is the JSON of a finished answer.

``answer(*, assistant, question, owner, conversation=None) -> Message``
    The same, consumed: the stored answer (check ``message.error`` for a failure).

How an answer is made (``_answer_body``; every stage but the first and last is a plain
function of ``chat.answering``)
    1. **retrieve** (``chat.retrieval``): the assistant's manuals, its ``retrieval`` method and
       ``top_k``; in a conversation the previous question is read with the current one, so a
       follow-up that does not name its subject still finds it;
    2. **decide**: decline, without calling a model, when nothing retrieved is close enough
       (``min_score``), or when the question hinges on words the manual never uses
       (``min_coverage``), asks for a price, or asks for a figure in a unit the passages do not
       have (``chat.declines``). A decline says so plainly ("The manual does not say. ..."),
       says why, and lists the nearest passages (``declined=True``);
    3. **quote** (``chat.quoting``): the smallest span of the best passages that answers;
    4. by the assistant's ``answer_style``: ``quoted`` (and any assistant without an active
       endpoint) answers with the quote alone (``extractive=True``). ``grounded`` streams the
       quote, then asks the model for a sentence or two (64 tokens at most); ``generated``
       asks for the whole answer (the assistant's ``max_tokens``, 160 by default, not the
       endpoint's). The prompt (**build the prompt**): ``rag`` numbers the passages [1]..[k]
       and asks for citations, with up to ``CHAT_HISTORY_TURNS`` earlier exchanges;
       ``direct`` sends the question alone in the format the endpoint's model was trained
       with (``prompt_format=auto``: the format of the dataset snapshot of the Stage 4 job
       that registered the endpoint, ``inst`` for SageMaker, else chat), and its answer is
       checked against the retrieved passages all the same (cited with ``in_prompt: false``).
       Formats ``inst`` and ``alpaca`` are sent as raw prompts (``complete_prompt``/
       ``stream_prompt``, ``/v1/completions`` on OpenAI-compatible servers), ``chat`` as
       messages;
    5. **generate, guarded**: any endpoint's stream is read through a loop guard that stops
       it at the first repetition and keeps what came before;
    6. **verify**: each sentence as it completes is checked against the passages
       (``chat.verification``); only supported ones are streamed;
    7. **compose**: the verified text (``grounded``: with the quote under it); a ``generated``
       answer with too little support falls back to the quote;
    8. **record**: the answer, the quote, the model's raw output, a verdict per sentence,
       whether it looped, and why it declined or fell back.

Feedback and preferences
    ``feedback_submit(*, owner, message, rating, comment="") -> Feedback``: thumbs up or down
    on an answer of the owner's; giving it again changes it. A thumbs-down raises a pending
    ``QAPair`` (origin ``chat_feedback``, flag ``chat_feedback``) with the question, the
    model's answer and the first cited passage, scored like any pair and with a "created"
    revision that carries the owner's comment, so reviewers see it in the review queue and the
    pair's history, and correct the answer there.
    ``preference_record(*, owner, message_a, message_b, chosen) -> Preference`` stores which of
    two answers to the same question was better (compare mode: ask two assistants with two
    ``answer_stream`` calls, each in its own conversation).
    ``preferences_export_records()`` / ``preferences_export_jsonl(*, out)``: chosen/rejected
    pairs (``{"prompt", "chosen", "rejected", ...}``, the form trl's DPO trainer reads); ties
    are left out. ``python manage.py export_preferences`` writes them.

Assistants
    ``assistant_create(...)`` and ``assistant_ensure_default(*, manual, endpoint)`` (the
    bootstrap command's "Manual assistant (RAG)").
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.text import slugify

from chat import answering, prompts, ratelimit, selectors
from chat.declines import Decline
from chat.events import (
    ChatEvent,
    Citations,
    Done,
    Failed,
    Started,
    Token,
    answer_payload,
    event_to_sse,
)
from chat.events import Quote as QuoteEvent
from chat.models import Assistant, Conversation, Feedback, Message, Preference
from chat.owners import Owner
from chat.quoting import Quote, QuotePassage
from chat.retrieval import Passage, Retrieval, embed_texts, retrieve
from curation import qa
from curation.models import DocumentChunk, LLMEndpoint, Manual, QAPair, QAPairRevision
from manualqa.lib import prompt_formats
from manualqa.lib.llm import LLMClient, LLMError, make_client

logger = logging.getLogger("chat.services")

__all__ = [
    "DEFAULT_ASSISTANT_NAME",
    "AssistantUnavailable",
    "ChatError",
    "ChatEvent",
    "Citations",
    "ConversationMismatch",
    "Done",
    "Failed",
    "QuoteEvent",
    "FeedbackInvalid",
    "PreferenceInvalid",
    "QuestionInvalid",
    "QuestionTooLong",
    "RateLimited",
    "Started",
    "Token",
    "answer",
    "answer_payload",
    "answer_policy",
    "answer_stream",
    "answering_warm_up",
    "assistant_create",
    "assistant_ensure_default",
    "event_to_sse",
    "feedback_submit",
    "preference_record",
    "preferences_export_jsonl",
    "preferences_export_records",
    "question_validate",
    "rate_limit_check",
]

DEFAULT_ASSISTANT_NAME = "Manual assistant (RAG)"
DEFAULT_ASSISTANT_SLUG = "manual-assistant"
MAX_COMMENT_CHARS = 2000
#: Passages listed under a declined answer: the nearest the manual has.
NEAREST_PASSAGES = 3
#: Characters of a passage kept in a citation's excerpt.
EXCERPT_CHARS = 300
#: Message shown for an answer abandoned by its owner (the stream was closed mid-answer).
INTERRUPTED = "The answer was interrupted before it was complete."


# --------------------------------------------------------------------------------------------
# Errors


class ChatError(Exception):
    """A request the chat refuses, with a ``message`` for people, the ``field`` at fault and
    the HTTP ``status`` an API answers with."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str = "non_field_errors") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class QuestionInvalid(ChatError):
    code = "question_invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="question")


class QuestionTooLong(QuestionInvalid):
    code = "question_too_long"


class AssistantUnavailable(ChatError):
    code = "assistant_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="assistant")


class ConversationMismatch(ChatError):
    code = "conversation_mismatch"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="conversation")


class RateLimited(ChatError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FeedbackInvalid(ChatError):
    code = "feedback_invalid"


class PreferenceInvalid(ChatError):
    code = "preference_invalid"


# --------------------------------------------------------------------------------------------
# Limits


def question_validate(question: str) -> str:
    """The question, stripped; refuses an empty one and one over ``CHAT_MAX_QUESTION_CHARS``."""
    question = (question or "").strip()
    if not question:
        raise QuestionInvalid("Ask a question: the question is empty.")
    limit = settings.CHAT_MAX_QUESTION_CHARS
    if len(question) > limit:
        raise QuestionTooLong(
            f"The question is too long: {len(question):,} characters, and the limit is "
            f"{limit:,}. Shorten it and ask again."
        )
    return question


def rate_limit_check(*, owner: Owner) -> None:
    """Count one question for the owner; ``RateLimited`` when over ``CHAT_RATE_LIMIT``."""
    rate = ratelimit.parse_rate(settings.CHAT_RATE_LIMIT)
    decision = ratelimit.hit(
        key=owner.rate_key,
        rate=rate,
        redis_url=settings.REDIS_URL,
        prefix=settings.CHAT_RATE_LIMIT_PREFIX,
    )
    if not decision.allowed:
        raise RateLimited(
            f"Too many questions: the limit is {rate}. Try again in "
            f"{decision.retry_after_s} seconds.",
            retry_after_s=decision.retry_after_s,
        )


# --------------------------------------------------------------------------------------------
# Answering


def answer_stream(
    *,
    assistant: Assistant,
    question: str,
    owner: Owner,
    conversation: Conversation | None = None,
    batch: bool = False,
) -> Iterator[ChatEvent]:
    """Check the request now, then return the events of the answer (see the module docstring).

    ``batch=True`` is for machine callers such as evaluation runs, not for people: no per-owner
    rate limit, and an inactive assistant (one not offered to owners yet) may answer too.
    """
    question = question_validate(question)
    if not assistant.is_active and not batch:
        raise AssistantUnavailable(f"The assistant {assistant.name!r} is not available.")
    if conversation is not None:
        if not Conversation.objects.filter(owner.conversations_q(), pk=conversation.pk).exists():
            raise Http404("No such conversation.")
        if conversation.assistant_id != assistant.pk:
            raise ConversationMismatch(
                "This conversation is with another assistant; start a new conversation to ask "
                f"{assistant.name}."
            )
    if not batch:
        rate_limit_check(owner=owner)
    return _answer_events(
        assistant=assistant, question=question, owner=owner, conversation=conversation
    )


def answer(
    *,
    assistant: Assistant,
    question: str,
    owner: Owner,
    conversation: Conversation | None = None,
    batch: bool = False,
) -> Message:
    """Answer without streaming: the stored answer (``error`` set when it failed)."""
    result: Message | None = None
    failure = ""
    for event in answer_stream(
        assistant=assistant,
        question=question,
        owner=owner,
        conversation=conversation,
        batch=batch,
    ):
        if isinstance(event, Done):
            result = event.message
        elif isinstance(event, Failed):
            result, failure = event.message, event.error
    if result is None:  # a failure before anything could be stored
        raise LLMError(failure or "the answer failed")
    return result


class _AnswerState:
    """What an answer in progress has so far, for the row written at the end."""

    def __init__(self, assistant: Assistant) -> None:
        self.started = time.monotonic()
        self.first_visible_at: float | None = None
        self.assistant = assistant
        self.recorded = False

    def elapsed_ms(self, at: float | None = None) -> int:
        return round(1000 * ((at or time.monotonic()) - self.started))

    def shown(self) -> None:
        """The owner sees the first text of the answer now."""
        if self.first_visible_at is None:
            self.first_visible_at = time.monotonic()

    @property
    def ttft_ms(self) -> int | None:
        return self.elapsed_ms(self.first_visible_at) if self.first_visible_at else None


def _answer_events(
    *,
    assistant: Assistant,
    question: str,
    owner: Owner,
    conversation: Conversation | None,
) -> Iterator[ChatEvent]:
    state = _AnswerState(assistant)
    conversation, question_message = _question_record(
        assistant=assistant, question=question, owner=owner, conversation=conversation
    )
    try:
        yield Started(conversation_id=conversation.pk, message_id=question_message.pk)
        yield from _answer_body(state, conversation, question_message, question)
    except GeneratorExit:
        # The owner went away (the stream was closed before the end): say so on the record,
        # unless the answer was already stored, then let the close proceed.
        if not state.recorded:
            _answer_record(state, conversation, question_message, content="", error=INTERRUPTED)
        raise
    except Exception as exc:
        # Logged with its traceback for developers; the owner gets the reason, and the answer
        # row records it instead of any made-up content.
        logger.exception("chat answer to message %s failed", question_message.pk)
        if state.recorded:
            raise
        error = f"The assistant failed: {type(exc).__name__}: {exc}"
        message = _answer_record(state, conversation, question_message, content="", error=error)
        yield Failed(error=error, message=message)


def answer_policy(assistant: Assistant) -> answering.AnswerPolicy:
    """The assistant's answering settings as the answer path reads them."""
    return answering.AnswerPolicy(
        style=assistant.answer_style,
        max_tokens=assistant.max_tokens,
        min_score=assistant.min_score,
        min_coverage=assistant.min_coverage,
    )


def _answer_body(
    state: _AnswerState,
    conversation: Conversation,
    question_message: Message,
    question: str,
) -> Iterator[ChatEvent]:
    """The answer path: retrieve, decide, quote, then (with a model) build the prompt,
    generate guarded, verify and compose; record. Each stage is in ``chat.answering``."""
    assistant = state.assistant
    policy = answer_policy(assistant)
    manuals = list(assistant.manuals.order_by("name"))
    manual_ids = [manual.pk for manual in manuals]
    record = functools.partial(
        _answer_record, state, conversation, question_message, style=policy.style
    )

    retrieval = retrieve(
        question=question,
        manual_ids=manual_ids,
        k=assistant.top_k,
        method=assistant.retrieval,
        match_questions=assistant.match_questions,
        previous_question=_previous_question(conversation, question_message),
    )
    passages = _quote_passages(retrieval.passages)
    vocabulary = selectors.manual_vocabulary(manual_ids=manual_ids)
    decline = answering.decide(
        question,
        passages,
        confidence=retrieval.confidence,
        vocabulary=vocabulary,
        policy=policy,
        embed=embed_texts,
    )
    quote = None
    if decline is None:
        quote = answering.quote(question, passages, embed=embed_texts, vocabulary=vocabulary)
        if quote is None:  # passages without a sentence to quote (a page of figures only)
            decline = Decline(reason="no_text", message="The passages found hold no text.")
    if decline is not None:
        text = prompts.decline_text([manual.name for manual in manuals], reason=decline.message)
        nearest = _citations(retrieval.passages[:NEAREST_PASSAGES], in_prompt=False)
        yield Citations(nearest)
        state.shown()
        yield Token(text)
        message = record(
            content=text,
            citations=nearest,
            retrieval=retrieval,
            declined=True,
            checks={"decline": {"reason": decline.reason, **decline.detail}},
        )
        yield Done(message)
        return

    quote_record = _quote_record(quote)
    endpoint = assistant.endpoint
    if policy.style == Assistant.AnswerStyle.QUOTED or endpoint is None or not endpoint.is_active:
        citations = _citations(retrieval.passages, in_prompt=True, only=quote.numbers)
        yield Citations(citations)
        state.shown()
        yield QuoteEvent(quote_record)
        message = record(
            content=quote.text,
            citations=citations,
            retrieval=retrieval,
            extractive=True,
            quote=quote_record,
            style=Assistant.AnswerStyle.QUOTED,
            checks={"coverage": quote.coverage},
        )
        yield Done(message)
        return

    rag = assistant.mode == Assistant.Mode.RAG
    rendered, in_prompt = _prompt_for(
        assistant, endpoint, conversation, question, policy, retrieval.passages
    )
    checked_against = retrieval.passages[:in_prompt] if rag else retrieval.passages
    citations = _citations(retrieval.passages if not rag else checked_against, in_prompt=rag)
    yield Citations(citations)
    if policy.style == Assistant.AnswerStyle.GROUNDED:
        state.shown()
        yield QuoteEvent(quote_record)

    verifier = answering.StreamingVerifier(
        [(number, p.text) for number, p in enumerate(checked_against, start=1)],
        embed=embed_texts,
    )
    options: dict[str, Any] = {
        "temperature": assistant.temperature,
        "max_tokens": policy.generation_tokens,
        "stop": rendered.stop or None,
    }
    generation = None
    try:
        client = _client_for(endpoint)
        if rendered.prompt is not None:
            stream = client.stream_prompt(rendered.prompt, **options)
        else:
            stream = client.stream(rendered.messages or [], **options)
        generation = answering.GuardedStream(stream)
        for piece in generation:
            for verdict in verifier.feed(piece):
                if verdict.supported:
                    state.shown()
                    yield Token(_token_text(verdict.text))
        for verdict in verifier.finish(cut_short=generation.cut_short):
            if verdict.supported:
                state.shown()
                yield Token(_token_text(verdict.text))
    except LLMError as exc:
        error = f"The model could not answer: {exc.message}"
        message = record(
            content="",
            error=error,
            citations=citations,
            retrieval=retrieval,
            quote={**quote_record, "shown": False},
            raw_content=generation.raw if generation else "",
            model=endpoint.model or endpoint.name,
        )
        yield Failed(error=error, message=message)
        return

    verification = verifier.verification()
    composed = answering.compose(policy.style, quote=quote, verified=verification)
    if composed.fell_back and policy.style == Assistant.AnswerStyle.GENERATED:
        state.shown()
        yield QuoteEvent(quote_record)
    # Cite what the answer rests on: the passages of its supported sentences and of the quote.
    cited = set(quote.numbers) if composed.show_quote else set()
    if not composed.fell_back:
        cited |= {v.passage for v in verification.verdicts if v.supported}
        cited |= set(prompts.cited_numbers(composed.content))
    citations = [c for c in citations if c["n"] in cited] or citations
    completion = generation.completion if generation else None
    checks: dict[str, Any] = {"coverage": quote.coverage}
    if composed.fell_back:
        checks["fell_back"] = "too little of the model's answer was supported"
    message = record(
        content=composed.content,
        citations=citations,
        retrieval=retrieval,
        extractive=composed.fell_back,
        quote={**quote_record, "shown": composed.show_quote},
        raw_content=generation.raw if generation else "",
        verification=[verdict.as_dict() for verdict in verification.verdicts],
        looped=bool(generation and generation.looped),
        checks=checks,
        model=(completion.model if completion else "") or endpoint.model or endpoint.name,
        prompt_tokens=completion.tokens_in if completion else None,
        completion_tokens=completion.tokens_out if completion else None,
    )
    yield Done(message)


def answering_warm_up() -> None:
    """Load what the default assistant's first answer needs (the embedding model, its
    manuals' vocabulary, and the local model when its answers use one), so that a web
    worker's first owner does not wait for it. Failures are logged, never raised: the first
    answer then loads what it needs itself."""
    try:
        assistant = selectors.assistant_default()
        embed_texts(["warm up"])
        if assistant is None:
            return
        manual_ids = list(assistant.manuals.values_list("pk", flat=True))
        selectors.manual_vocabulary(manual_ids=manual_ids)
        endpoint = assistant.endpoint
        uses_model = assistant.answer_style != Assistant.AnswerStyle.QUOTED
        if uses_model and endpoint is not None and endpoint.kind == LLMEndpoint.Kind.LOCAL:
            from manualqa.lib.local_models import load_local

            load_local(endpoint.model, Path(settings.MODELS_DIR))
        logger.info("Chat warmed up for %s.", assistant.name)
    except Exception:
        logger.exception("chat warm-up failed; the first answer will load what it needs")


def _token_text(sentence: str) -> str:
    """A verified sentence as streamed: a list line ends its line, prose a sentence."""
    stripped = sentence.lstrip()
    if stripped[:1] in "-*|" or stripped[:3].rstrip(".)").isdigit():
        return sentence + "\n"
    return sentence + " "


def _quote_passages(passages: Sequence[Passage]) -> list[QuotePassage]:
    return [
        QuotePassage(
            number=number, heading_path=p.heading_path, body=p.body, similarity=p.similarity
        )
        for number, p in enumerate(passages, start=1)
    ]


def _quote_record(quote: Quote) -> dict[str, Any]:
    return {
        "text": quote.text,
        "numbers": quote.numbers,
        "words": quote.words,
        "coverage": quote.coverage,
        "score": quote.score,
        "parts": quote.parts,
    }


@transaction.atomic
def _question_record(
    *,
    assistant: Assistant,
    question: str,
    owner: Owner,
    conversation: Conversation | None,
) -> tuple[Conversation, Message]:
    if conversation is None:
        conversation = Conversation.objects.create(
            owner_id=owner.user_id,
            session_key="" if owner.is_user else owner.session_key,
            assistant=assistant,
            title=_title(question),
        )
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=question
    )
    return conversation, message


def _answer_record(
    state: _AnswerState,
    conversation: Conversation,
    question_message: Message,
    *,
    content: str,
    citations: list[dict[str, Any]] | None = None,
    error: str = "",
    retrieval: Retrieval | None = None,
    declined: bool = False,
    extractive: bool = False,
    style: str = "",
    quote: dict[str, Any] | None = None,
    raw_content: str = "",
    verification: list[dict[str, Any]] | None = None,
    looped: bool = False,
    checks: dict[str, Any] | None = None,
    model: str = "",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> Message:
    """Store the answer, once, at the end (record stage)."""
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            assistant=state.assistant,
            reply_to=question_message,
            content=content,
            citations=citations or [],
            retrieval_score=retrieval.confidence if retrieval else None,
            model=model[:500],
            latency_ms=state.elapsed_ms(),
            ttft_ms=state.ttft_ms if not error else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            declined=declined,
            extractive=extractive,
            answer_style=style,
            quote=quote,
            raw_content=raw_content,
            verification=verification or [],
            looped=looped,
            checks=checks or {},
            error=error,
        )
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    state.recorded = True
    return message


def _title(question: str) -> str:
    first_line = question.splitlines()[0].strip()
    return first_line if len(first_line) <= 80 else first_line[:79].rstrip() + "…"


def _prompt_passages(passages: Sequence[Passage]) -> list[prompts.PromptPassage]:
    return [
        prompts.PromptPassage(number=index, heading_path=p.heading_path, text=p.body)
        for index, p in enumerate(passages, start=1)
    ]


def _plain_excerpt(body: str) -> str:
    """A passage as one line of plain words: table rules dropped, cells separated by dots."""
    text = re.sub(r"\|?\s*:?-{3,}:?\s*(?=\||$)", " ", body, flags=re.MULTILINE)
    text = re.sub(r"\s*\|\s*", " · ", text)
    text = " ".join(text.split())
    return re.sub(r"(?:\s*·\s*){2,}", " · ", text).strip(" ·")


def _citations(
    passages: Sequence[Passage], *, in_prompt: bool, only: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """Passages as stored in ``Message.citations``, numbered as in the prompt (``only``: just
    those numbers)."""
    from django.urls import reverse

    wanted = set(only) if only is not None else None
    citations = []
    for index, passage in enumerate(passages, start=1):
        if wanted is not None and index not in wanted:
            continue
        url = reverse("curation:document", args=[passage.manual_id, passage.document_id])
        excerpt = _plain_excerpt(passage.body)
        citations.append(
            {
                "n": index,
                "chunk_id": passage.chunk_id,
                "document_id": passage.document_id,
                "manual_id": passage.manual_id,
                "source_name": passage.source_name,
                "source_url": passage.source_url,
                "title": passage.title,
                "heading_path": passage.heading_path,
                "score": passage.similarity,
                "url": f"{url}?chunk={passage.chunk_id}#chunk-{passage.chunk_id}",
                "excerpt": excerpt[:EXCERPT_CHARS] + ("…" if len(excerpt) > EXCERPT_CHARS else ""),
                "in_prompt": in_prompt,
            }
        )
    return citations


def _prompt_for(
    assistant: Assistant,
    endpoint: LLMEndpoint,
    conversation: Conversation,
    question: str,
    policy: answering.AnswerPolicy,
    passages: Sequence[Passage],
) -> tuple[prompts.RenderedPrompt, int]:
    """The prompt to send (build-the-prompt stage) and how many retrieved passages it holds;
    the prompt format is the one the endpoint's model was trained with, when known (a training
    job writes it onto the endpoint it registers)."""
    if assistant.prompt_format != Assistant.PromptFormat.AUTO:
        prompt_format = assistant.prompt_format
    elif endpoint.prompt_format:
        prompt_format = prompt_formats.chat_format(endpoint.prompt_format)
    elif endpoint.kind == LLMEndpoint.Kind.SAGEMAKER:
        prompt_format = "inst"
    else:
        prompt_format = "chat"
    direct = assistant.mode == Assistant.Mode.DIRECT
    system_prompt = assistant.system_prompt
    if direct and not system_prompt:
        system_prompt = endpoint.system_prompt
    return answering.build_prompt(
        question,
        _prompt_passages(passages),
        mode=assistant.mode,
        prompt_format=prompt_format,
        policy=policy,
        context_window=endpoint.context_window,
        system_prompt=system_prompt,
        history=_history(conversation) if not direct else (),
    )


def _previous_question(conversation: Conversation, question_message: Message) -> str:
    """The owner's question before this one in the conversation, for retrieving a follow-up
    (empty when there is none or ``CHAT_RETRIEVAL_FOLLOWUPS`` is off)."""
    if not settings.CHAT_RETRIEVAL_FOLLOWUPS:
        return ""
    earlier = (
        Message.objects.filter(
            conversation=conversation, role=Message.Role.USER, pk__lt=question_message.pk
        )
        .order_by("-pk")
        .values_list("content", flat=True)
        .first()
    )
    return earlier or ""


def _history(conversation: Conversation) -> list[dict[str, str]]:
    """The last ``CHAT_HISTORY_TURNS`` answered exchanges before the current question."""
    turns = settings.CHAT_HISTORY_TURNS
    if not turns:
        return []
    answers = list(
        Message.objects.filter(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            error="",
            reply_to__isnull=False,
        )
        .exclude(content="")
        .select_related("reply_to")
        .order_by("-created_at", "-id")[:turns]
    )
    history: list[dict[str, str]] = []
    for message in reversed(answers):
        history.append({"role": "user", "content": message.reply_to.content})
        history.append({"role": "assistant", "content": message.content})
    return history


# One client per endpoint version, shared by requests: HTTP connection pools, the boto3
# client and the endpoint's requests-per-minute limit then hold across requests. Bounded,
# because each client may hold connections (local models are cached separately).
_CLIENTS: OrderedDict[tuple[int, str], LLMClient] = OrderedDict()
_CLIENTS_LOCK = threading.Lock()
_CLIENTS_MAX = 8


def _client_for(endpoint: LLMEndpoint) -> LLMClient:
    key = (endpoint.pk, endpoint.updated_at.isoformat() if endpoint.updated_at else "")
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is not None:
            _CLIENTS.move_to_end(key)
            return client
    client = make_client(endpoint.config())
    with _CLIENTS_LOCK:
        _CLIENTS[key] = client
        while len(_CLIENTS) > _CLIENTS_MAX:
            _CLIENTS.popitem(last=False)
    return client


# --------------------------------------------------------------------------------------------
# Feedback and preferences


def conversations_claim(*, user, session_key: str) -> int:
    """Give ``user`` what an anonymous browser session owned: its conversations, and the
    feedback and preferences it left. Called when that browser signs in. Returns how many
    conversations moved; nothing another user owns is touched."""
    if not session_key or user is None or not user.is_authenticated:
        return 0
    with transaction.atomic():
        moved = Conversation.objects.filter(owner__isnull=True, session_key=session_key).update(
            owner=user
        )
        Feedback.objects.filter(user__isnull=True, session_key=session_key).update(user=user)
        Preference.objects.filter(user__isnull=True, session_key=session_key).update(user=user)
    if moved:
        logger.info("Moved %d anonymous conversation(s) to user %s at sign-in.", moved, user.pk)
    return moved


def _answer_of_owner(owner: Owner, message: Message, error_class: type[ChatError]) -> Message:
    message = selectors.message_get(owner=owner, message_id=message.pk)
    if message.role != Message.Role.ASSISTANT:
        raise error_class("Only an answer can be rated: this message is a question.")
    if message.error or not message.content:
        raise error_class("This answer failed, so there is nothing to rate.")
    return message


@transaction.atomic
def feedback_submit(*, owner: Owner, message: Message, rating: str, comment: str = "") -> Feedback:
    """Thumbs up or down (``rating``) on one of the owner's answers, with an optional comment.

    A thumbs-down raises a pending QA pair for reviewers (once per answer, see the module
    docstring). Giving feedback again changes the rating and comment.
    """
    if rating not in Feedback.Rating.values:
        raise FeedbackInvalid(f"Unknown rating {rating!r}: use 'up' or 'down'.", field="rating")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise FeedbackInvalid(
            f"The comment is too long: {len(comment):,} characters, and the limit is "
            f"{MAX_COMMENT_CHARS:,}.",
            field="comment",
        )
    message = _answer_of_owner(owner, message, FeedbackInvalid)
    feedback = Feedback.objects.select_for_update().filter(message=message).first()
    if feedback is None:
        feedback = Feedback(
            message=message,
            user_id=owner.user_id,
            session_key="" if owner.is_user else owner.session_key,
        )
    feedback.rating = rating
    feedback.comment = comment
    if rating == Feedback.Rating.DOWN and feedback.qa_pair_id is None:
        feedback.qa_pair = _qa_pair_from_feedback(message=message, comment=comment, owner=owner)
    feedback.save()
    return feedback


def _qa_pair_from_feedback(*, message: Message, comment: str, owner: Owner) -> QAPair | None:
    """A pending pair for reviewers: the owner's question, the model's answer, the passage."""
    from curation.services import qa_pairs_score

    question = message.reply_to.content if message.reply_to_id else ""
    if not question:
        return None
    citation = message.citations[0] if message.citations else None
    chunk = None
    if citation:
        chunk = (
            DocumentChunk.objects.filter(pk=citation.get("chunk_id"))
            .select_related("document__manual")
            .first()
        )
    manual = chunk.document.manual if chunk else _first_manual(message)
    if manual is None:
        return None
    document = chunk.document if chunk else None
    fields = {
        "manual": manual,
        "document": document,
        "document_version": document.version if document else None,
        "source_text": chunk.text if chunk else "",
        "question": question,
        "answer": message.content,
        "question_hash": qa.question_hash(question),
        "original_question": question,
        "original_answer": message.content,
        "status": QAPair.Status.PENDING,
        "origin": QAPair.Origin.CHAT_FEEDBACK,
        "flags": ["chat_feedback", *qa.question_flags(question), *qa.answer_flags(message.content)],
    }
    try:
        with transaction.atomic():
            pair = QAPair.objects.create(chunk=chunk, **fields)
    except IntegrityError:
        # The passage already has a pair asking this question (generated, or an earlier
        # owner's thumbs-down): keep this one apart from the passage rather than lose it; its
        # document and source text still show reviewers where it comes from.
        pair = QAPair.objects.create(chunk=None, **fields)
    changes: dict[str, list] = {
        "origin": [None, QAPair.Origin.CHAT_FEEDBACK],
        "rating": [None, "thumbs down"],
        "assistant": [None, message.assistant.name if message.assistant else ""],
        "chat_message": [None, message.pk],
    }
    if comment:
        changes["owner_comment"] = [None, comment]
    QAPairRevision.objects.create(
        pair=pair,
        action=QAPairRevision.Action.CREATE,
        changes=changes,
        user_id=owner.user_id,
    )
    qa_pairs_score(pairs=QAPair.objects.filter(pk=pair.pk))
    pair.refresh_from_db()
    return pair


def _first_manual(message: Message) -> Manual | None:
    assistant = message.assistant
    return assistant.manuals.order_by("name").first() if assistant else None


@transaction.atomic
def preference_record(
    *, owner: Owner, message_a: Message, message_b: Message, chosen: str
) -> Preference:
    """Store which of two of the owner's answers to the same question was better (or a tie);
    recording it again for the same two answers changes it."""
    if chosen not in Preference.Choice.values:
        raise PreferenceInvalid(
            f"Unknown choice {chosen!r}: use 'a', 'b' or 'tie'.", field="chosen"
        )
    if message_a.pk == message_b.pk:
        raise PreferenceInvalid("Compare two different answers.", field="message_b")
    message_a = _answer_of_owner(owner, message_a, PreferenceInvalid)
    message_b = _answer_of_owner(owner, message_b, PreferenceInvalid)
    question_a = message_a.reply_to.content.strip() if message_a.reply_to_id else ""
    question_b = message_b.reply_to.content.strip() if message_b.reply_to_id else ""
    if not question_a or qa.question_hash(question_a) != qa.question_hash(question_b):
        raise PreferenceInvalid("The two answers must answer the same question.", field="message_b")
    if message_a.assistant_id is None or message_b.assistant_id is None:
        raise PreferenceInvalid("Both answers must come from an assistant.")
    preference, _ = Preference.objects.update_or_create(
        message_a=message_a,
        message_b=message_b,
        defaults={
            "question": question_a,
            "assistant_a_id": message_a.assistant_id,
            "assistant_b_id": message_b.assistant_id,
            "chosen": chosen,
            "user_id": owner.user_id,
            "session_key": "" if owner.is_user else owner.session_key,
        },
    )
    return preference


def preferences_export_records() -> Iterator[dict[str, Any]]:
    """Chosen/rejected records, oldest first: ``{"prompt", "chosen", "rejected",
    "chosen_assistant", "rejected_assistant", "preference_id", "created_at"}``."""
    for preference in selectors.preferences_for_export().iterator(chunk_size=500):
        a_wins = preference.chosen == Preference.Choice.A
        chosen, rejected = (
            (preference.message_a, preference.message_b)
            if a_wins
            else (preference.message_b, preference.message_a)
        )
        chosen_assistant, rejected_assistant = (
            (preference.assistant_a, preference.assistant_b)
            if a_wins
            else (preference.assistant_b, preference.assistant_a)
        )
        yield {
            "prompt": preference.question,
            "chosen": chosen.content,
            "rejected": rejected.content,
            "chosen_assistant": chosen_assistant.name,
            "rejected_assistant": rejected_assistant.name,
            "preference_id": preference.pk,
            "created_at": preference.created_at.isoformat(),
        }


def preferences_export_jsonl(*, out: TextIO) -> int:
    """Write :func:`preferences_export_records` as JSON Lines to ``out``; return the count."""
    count = 0
    for record in preferences_export_records():
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


# --------------------------------------------------------------------------------------------
# Assistants


@transaction.atomic
def assistant_create(
    *,
    name: str,
    manuals: Iterable[Manual],
    mode: str = Assistant.Mode.RAG,
    endpoint: LLMEndpoint | None = None,
    slug: str = "",
    is_default: bool = False,
    **options: Any,
) -> Assistant:
    """A new assistant over ``manuals``; ``options`` are the other ``Assistant`` fields.

    Making it the default takes that from the previous default.
    """
    assistant = Assistant(
        name=name,
        slug=slug or slugify(name)[:100],
        mode=mode,
        endpoint=endpoint,
        is_default=is_default,
        **options,
    )
    if is_default:  # before validation, which checks that there is one default at most
        Assistant.objects.filter(is_default=True).update(is_default=False)
    assistant.full_clean(exclude=["manuals"])
    assistant.save()
    assistant.manuals.set(list(manuals))
    return assistant


@transaction.atomic
def assistant_ensure_default(*, manual: Manual, endpoint: LLMEndpoint | None) -> Assistant:
    """The default assistant of a fresh install: RAG over ``manual`` with ``endpoint`` (the
    bundled local model; None makes it extractive). Leaves an existing default alone."""
    existing = Assistant.objects.filter(is_default=True).first()
    if existing is not None:
        return existing
    existing = Assistant.objects.filter(slug=DEFAULT_ASSISTANT_SLUG).first()
    if existing is not None:
        Assistant.objects.filter(pk=existing.pk).update(is_default=True)
        existing.refresh_from_db()
        return existing
    try:
        return assistant_create(
            name=DEFAULT_ASSISTANT_NAME,
            slug=DEFAULT_ASSISTANT_SLUG,
            manuals=[manual],
            mode=Assistant.Mode.RAG,
            endpoint=endpoint,
            is_default=True,
            description=(
                f"Answers from the {manual.name} owner's manual, citing the passages it uses, "
                "and says so when the manual does not cover a question."
            ),
        )
    except ValidationError as exc:  # a name taken by an assistant the admin renamed
        raise ValidationError(f"Cannot create the default assistant: {exc}") from exc
