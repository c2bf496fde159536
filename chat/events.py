"""What ``chat.services.answer_stream`` yields while it answers, and how events go on the wire.

Events come in this order: one :class:`Started`, one :class:`Citations`, at most one
:class:`Quote` (the passage of the manual that answers, shown first when the model's answer
follows it), any number of :class:`Token` (only text that passed verification), then exactly
one of :class:`Done` or :class:`Failed`. :func:`event_to_sse`
writes any of them as a server-sent event (``event: <name>`` and a JSON ``data:`` line), so
the API and the chat page stream the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chat.models import Message

__all__ = [
    "ChatEvent",
    "Citations",
    "Done",
    "Failed",
    "Quote",
    "Started",
    "Token",
    "answer_payload",
    "event_to_sse",
]


class _Fields:
    """An event whose payload is its fields, by name."""

    def payload(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass(frozen=True)
class Started:
    """The question is stored: ``message_id`` is the owner's question message in
    ``conversation_id`` (a new conversation when none was given)."""

    conversation_id: int
    message_id: int

    name = "started"

    def payload(self) -> dict[str, Any]:
        return {"conversation": self.conversation_id, "question_message": self.message_id}


@dataclass(frozen=True)
class Citations(_Fields):
    """The passages the answer rests on, numbered as the prompt numbers them (``n``), each a
    dict as stored in ``Message.citations``. Empty when the assistant declines. In ``direct``
    mode they are the manual's passages closest to the question (``in_prompt`` false): the
    model did not see them, but an owner can check its answer against them."""

    citations: list[dict[str, Any]]

    name = "citations"


@dataclass(frozen=True)
class Quote(_Fields):
    """The quote from the manual (``{"text", "numbers", "words", ...}`` as stored in
    ``Message.quote``), sent before the model's answer so that the owner reads the manual's
    own words first."""

    quote: dict[str, Any]

    name = "quote"


@dataclass(frozen=True)
class Token(_Fields):
    """A piece of the answer's text, in order; joined they are the answer."""

    text: str

    name = "token"


@dataclass(frozen=True)
class Done:
    """The answer is complete and stored: ``message`` is its ``chat.models.Message``."""

    message: Message

    name = "done"

    def payload(self) -> dict[str, Any]:
        return answer_payload(self.message)


@dataclass(frozen=True)
class Failed:
    """The answer could not be made. ``error`` says why, for the owner; ``message`` is the
    stored answer row (empty content, ``error`` set), or None when nothing was stored."""

    error: str
    message: Message | None = None

    name = "failed"

    def payload(self) -> dict[str, Any]:
        payload = answer_payload(self.message) if self.message is not None else {}
        return {**payload, "error": self.error}


ChatEvent = Started | Citations | Quote | Token | Done | Failed


def answer_payload(message: Message) -> dict[str, Any]:
    """An answer as the API and the ``done`` event show it."""
    return {
        "conversation": message.conversation_id,
        "message": message.pk,
        "question_message": message.reply_to_id,
        "assistant": message.assistant_id,
        "answer": message.content,
        "citations": message.citations,
        "declined": message.declined,
        "extractive": message.extractive,
        "answer_style": message.answer_style,
        "quote": message.quote if message.shows_quote else None,
        "looped": message.looped,
        "dropped_sentences": len(message.dropped_verdicts),
        "error": message.error,
        "model": message.model,
        "retrieval_score": message.retrieval_score,
        "latency_ms": message.latency_ms,
        "ttft_ms": message.ttft_ms,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "created_at": message.created_at.isoformat() if message.created_at else None,
    }


def event_to_sse(event: ChatEvent, payload: dict[str, Any] | None = None) -> str:
    """One event as a server-sent event: ``event: token\\ndata: {"text": "..."}\\n\\n``;
    with ``payload`` sent instead of the event's own (the chat page adds rendered HTML)."""
    data = json.dumps(event.payload() if payload is None else payload, ensure_ascii=False)
    return f"event: {event.name}\ndata: {data}\n\n"
