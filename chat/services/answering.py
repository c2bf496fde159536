"""Answering an owner's question: the checks before it, then the answer path's stages in order
(retrieve, build the prompt, generate guarded, verify, compose, record)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from chat import answering, prompts, quote_vectors, reranking, selectors
from chat.asking import asks_for_procedure
from chat.declines import Decline
from chat.events import (
    ChatEvent,
    Citations,
    Done,
    Failed,
    Started,
    Token,
)
from chat.events import Quote as QuoteEvent
from chat.models import Assistant, Conversation, Message
from chat.owner_words import spelling_corrected, with_manual_names
from chat.owners import Owner
from chat.quoting import Quote, QuotePassage
from chat.retrieval import Passage, Retrieval, embed_texts, retrieve
from chat.services.checks import question_validate, rate_limit_check, releasing, stream_slot_take
from chat.services.citations import passage_citations, see_also
from chat.services.clients import _client_for, model_label, release_connection
from chat.services.errors import AssistantUnavailable, ConversationMismatch, owner_error
from chat.spelling import is_english
from curation.models import LLMEndpoint
from manualqa.lib import prompt_formats
from manualqa.lib.llm import LLMError

logger = logging.getLogger("chat.services")

#: Passages listed under a declined answer: the nearest the manual has.
NEAREST_PASSAGES = 3
#: Message shown for an answer abandoned by its owner (the stream was closed mid-answer).
INTERRUPTED = "The answer was interrupted before it was complete."


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
    if batch:
        return _answer_events(
            assistant=assistant, question=question, owner=owner, conversation=conversation
        )
    rate_limit_check(owner=owner)
    release = stream_slot_take(owner=owner)
    events = _answer_events(
        assistant=assistant, question=question, owner=owner, conversation=conversation
    )
    return releasing(events, release)


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
        error, detail = owner_error("The assistant failed", f"{type(exc).__name__}: {exc}")
        message = _answer_record(
            state, conversation, question_message, content="", error=error, checks=detail
        )
        yield Failed(error=error, message=message)


def answer_policy(assistant: Assistant) -> answering.AnswerPolicy:
    """The assistant's answering settings as the answer path reads them."""
    return answering.AnswerPolicy(
        style=assistant.answer_style,
        max_tokens=assistant.max_tokens,
        min_score=assistant.min_score,
        min_coverage=assistant.min_coverage,
        decline_below=assistant.reranker.decline_below if assistant.reranker else None,
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

    previous_question = _previous_question(conversation, question_message)
    vocabulary = selectors.manual_vocabulary(manual_ids=manual_ids)
    # The question as the manual would spell it ("recomended tire presure"): what it is
    # searched, checked and quoted by; the owner's own words go to a model's prompt.
    reading = spelling_corrected(question, vocabulary)
    read_as = {"read_as": reading} if reading != question else {}
    release_connection()  # embedding the question is CPU work: no connection held meanwhile
    reranker = assistant.reranker
    retrieval = retrieve(
        question=reading,
        embedded_as=with_manual_names(reading, vocabulary),
        manual_ids=manual_ids,
        k=reranking.candidates_for(assistant.top_k, reranker),
        method=assistant.retrieval,
        match_questions=assistant.match_questions,
        previous_question=previous_question,
        wants_steps=asks_for_procedure(reading),
    )
    if reranker is not None:
        release_connection()  # the cross-encoder reads every candidate: CPU work
        retrieval = reranking.rerank(retrieval, reading, reranker, assistant.top_k)
    passages = _quote_passages(retrieval.passages)
    embed_units = quote_vectors.embedder(
        quote_vectors.stored_vectors((p.body, p.heading_path) for p in passages)
    )
    release_connection()  # and none while the quote is composed
    decline = answering.decide(
        reading,
        passages,
        confidence=retrieval.confidence,
        vocabulary=vocabulary,
        policy=policy,
        embed=embed_texts,
        answerability=retrieval.answerability,
    )
    quote = None
    if decline is None:
        quote = answering.quote(reading, passages, embed=embed_units, vocabulary=vocabulary)
        if quote is None:  # passages without a sentence to quote (a page of figures only)
            decline = Decline(reason="no_text", message="The passages found hold no text.")
        else:
            decline = answering.quote_declines(reading, quote)
            asked = answering.quote_asked(
                reading, passages, decline, embed=embed_units, vocabulary=vocabulary, whole=quote
            )
            if asked is not None:  # what the question asks, after the owner's situation
                quote, decline = asked, None
    if decline is not None:
        text = prompts.decline_text([manual.name for manual in manuals], reason=decline.message)
        nearest = passage_citations(retrieval.passages[:NEAREST_PASSAGES], in_prompt=False)
        yield Citations(nearest)
        state.shown()
        yield Token(text)
        message = record(
            content=text,
            citations=nearest,
            retrieval=retrieval,
            declined=True,
            checks={"decline": {"reason": decline.reason, **decline.detail}, **read_as},
        )
        yield Done(message)
        return

    quote_record = _quote_record(quote)
    endpoint = assistant.endpoint
    if policy.style == Assistant.AnswerStyle.QUOTED or endpoint is None or not endpoint.is_active:
        citations = passage_citations(retrieval.passages, in_prompt=True, only=quote.numbers)
        # The quote alone cites only its own passages: the other close ones are listed under it.
        quote_record["see_also"] = see_also(
            retrieval.passages, quoted=quote.numbers, min_score=policy.min_score
        )
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
            checks={"coverage": quote.coverage, **read_as},
        )
        yield Done(message)
        return

    rag = assistant.mode == Assistant.Mode.RAG
    rendered, in_prompt = _prompt_for(
        assistant, endpoint, conversation, question, policy, retrieval.passages
    )
    checked_against = retrieval.passages[:in_prompt] if rag else retrieval.passages
    citations = passage_citations(retrieval.passages if not rag else checked_against, in_prompt=rag)
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
    release_connection()
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
        error, detail = owner_error("The model could not answer", exc.message)
        message = record(
            content="",
            error=error,
            checks=detail,
            citations=citations,
            retrieval=retrieval,
            quote={**quote_record, "shown": False},
            raw_content=generation.raw if generation else "",
            model=model_label(endpoint.model or endpoint.name),
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
    checks: dict[str, Any] = {"coverage": quote.coverage, **read_as}
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
        model=model_label(
            (completion.model if completion else "") or endpoint.model or endpoint.name
        ),
        prompt_tokens=completion.tokens_in if completion else None,
        completion_tokens=completion.tokens_out if completion else None,
    )
    yield Done(message)


def answering_warm_up() -> None:
    """Load what the default assistant's first answer needs (the embedding model, its
    manuals' vocabulary, the English word list, and the local model when its answers use
    one), so that a web worker's first owner does not wait for it. Failures are logged, never
    raised: the first answer then loads what it needs itself."""
    try:
        assistant = selectors.assistant_default()
        embed_texts(["warm up"])
        if assistant is None:
            return
        manual_ids = list(assistant.manuals.values_list("pk", flat=True))
        selectors.manual_vocabulary(manual_ids=manual_ids)
        is_english("warm")  # the English word list (chat.spelling)
        if assistant.reranker is not None:
            from manualqa.lib.reranking import load_scorer

            load_scorer(assistant.reranker.path)
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


#: What ``Message.quote`` keeps of a composed quote.
_QUOTE_RECORD = ("text", "numbers", "words", "coverage", "score", "parts")


def _quote_record(quote: Quote) -> dict[str, Any]:
    return {field: getattr(quote, field) for field in _QUOTE_RECORD}


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
    if retrieval is not None and retrieval.answerability is not None:
        checks = {**(checks or {}), "answerability": retrieval.answerability}
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
