"""Reads for chat: assistants, an owner's conversations and messages, preferences to export.

Every read of conversations, messages and feedback takes the :class:`~chat.owners.Owner`, and
one that is not the owner's raises ``Http404``, exactly as if it did not exist: nobody learns
which conversation ids belong to others.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from django.db.models import Count, Max, Prefetch, Q, QuerySet
from django.http import Http404

from chat.lexical import TermIndex
from chat.models import Assistant, Conversation, Feedback, Message, Preference
from chat.owners import Owner
from chat.text_units import Vocabulary
from curation.models import DocumentChunk, Manual


def _first_or_404(rows: QuerySet, missing: str):
    """The first of ``rows``; ``Http404`` saying ``missing`` when there is none."""
    row = rows.first()
    if row is None:
        raise Http404(missing)
    return row


def assistants_available() -> QuerySet[Assistant]:
    """The active assistants an owner can choose, the default first, with what a list shows."""
    return (
        Assistant.objects.filter(is_active=True)
        .select_related("endpoint")
        .prefetch_related("manuals")
        .order_by("-is_default", "name")
    )


def assistant_default() -> Assistant | None:
    return assistants_available().filter(is_default=True).first()


def assistant_get(*, ref: int | str) -> Assistant:
    """An active assistant by id or slug; ``Http404`` when there is none."""
    assistants = assistants_available()
    lookup = Q(slug=str(ref))
    if isinstance(ref, int) or str(ref).isdigit():
        lookup |= Q(pk=int(ref))
    return _first_or_404(assistants.filter(lookup), f"No active assistant {ref!r}.")


def conversations_for(*, owner: Owner) -> QuerySet[Conversation]:
    """The owner's conversations, most recent first, with their message count."""
    return (
        Conversation.objects.filter(owner.conversations_q())
        .select_related("assistant")
        .annotate(message_count=Count("messages"), last_message_at=Max("messages__created_at"))
        .order_by("-updated_at", "-id")
    )


def conversation_get(*, owner: Owner, conversation_id: int) -> Conversation:
    """One of the owner's conversations; ``Http404`` for anyone else's or a missing one."""
    conversations = Conversation.objects.filter(owner.conversations_q(), pk=conversation_id)
    return _first_or_404(conversations.select_related("assistant"), "No such conversation.")


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    """A conversation's messages in order, each with its feedback (if any), in two queries."""
    return (
        conversation.messages.select_related("assistant")
        .prefetch_related(Prefetch("feedback", queryset=Feedback.objects.all()))
        .order_by("created_at", "id")
    )


def message_get(*, owner: Owner, message_id: int) -> Message:
    """One message of one of the owner's conversations; ``Http404`` otherwise."""
    messages = Message.objects.filter(owner.conversations_q("conversation__"), pk=message_id)
    return _first_or_404(
        messages.select_related("conversation", "assistant", "reply_to"), "No such message."
    )


def message_resting_texts(*, message: Message) -> list[str]:
    """The texts of the passages an answer cites (what it rests on), in citation order; a
    passage joined with its neighbours (``chat.continuation``) with theirs."""
    spans = [
        c.get("chunk_ids") or [c["chunk_id"]] for c in message.citations or [] if c.get("chunk_id")
    ]
    if not spans:
        return []
    texts = dict(
        DocumentChunk.objects.filter(pk__in=[pk for ids in spans for pk in ids]).values_list(
            "pk", "text"
        )
    )
    found = ["\n\n".join(texts[pk] for pk in ids if pk in texts) for ids in spans]
    return [text for text in found if text]


def feedback_for(*, owner: Owner) -> QuerySet[Feedback]:
    """The feedback the owner gave, newest first."""
    return (
        Feedback.objects.filter(owner.conversations_q("message__conversation__"))
        .select_related("message")
        .order_by("-created_at", "-id")
    )


def preferences_for(*, owner: Owner) -> QuerySet[Preference]:
    return Preference.objects.filter(owner.conversations_q("message_a__conversation__")).order_by(
        "-created_at", "-id"
    )


def preferences_for_export() -> QuerySet[Preference]:
    """Preferences with a winner (ties say nothing about which answer is better), oldest first,
    with both answers and the question, for chosen/rejected export."""
    return (
        Preference.objects.exclude(chosen=Preference.Choice.TIE)
        .select_related("message_a", "message_b", "assistant_a", "assistant_b")
        .order_by("created_at", "id")
    )


# A manual's vocabulary and term index change only when it is (re-)ingested or re-embedded;
# the chunk counts and the newest chunk id tell when that happened.
_BUILT: OrderedDict[tuple, Any] = OrderedDict()
_BUILT_LOCK = threading.Lock()


def _built(
    kind: str,
    manual_ids: Sequence[int],
    chunks: QuerySet,
    build: Callable[[], Any],
    *,
    also: tuple = (),
):
    """What ``build`` makes of ``chunks`` (of ``manual_ids``), once per state of them (and of
    ``also``) per process (the last 16 kept)."""
    state = chunks.aggregate(
        count=Count("id"), newest=Max("id"), served=Count("id", filter=Q(embedding__isnull=False))
    )
    key = (kind, tuple(sorted(manual_ids)), state["count"], state["newest"], state["served"], also)
    with _BUILT_LOCK:
        found = _BUILT.get(key)
        if found is not None:
            _BUILT.move_to_end(key)
            return found
    found = build()
    with _BUILT_LOCK:
        _BUILT[key] = found
        while len(_BUILT) > 16:
            _BUILT.popitem(last=False)
    return found


def manual_vocabulary(*, manual_ids: Sequence[int]) -> Vocabulary:
    """How many chunks of ``manual_ids`` hold each stemmed term (``chat.text_units``), for the
    IDF weights of quoting and declining; built once per state of the manuals per process."""
    chunks = DocumentChunk.objects.filter(document__manual_id__in=list(manual_ids))
    return _built(
        "vocabulary",
        manual_ids,
        chunks,
        lambda: Vocabulary.from_texts(chunks.values_list("text", flat=True).iterator(2000)),
    )


def manual_term_index(*, manual_ids: Sequence[int]) -> TermIndex:
    """The BM25 index (``chat.lexical``) of the chunks of ``manual_ids`` that retrieval serves:
    those with a vector of their manual's embedder (``DocumentChunk.embedder``; None: the
    configured model), so a chunk left from before a switch of embedders is never found."""
    chunks = DocumentChunk.objects.filter(document__manual_id__in=list(manual_ids))
    served = chunks.served()
    # A manual that switches embedders serves other chunks without any chunk changing.
    embedders = tuple(
        Manual.objects.filter(pk__in=list(manual_ids)).order_by("pk").values_list("pk", "embedder")
    )
    return _built(
        "terms",
        manual_ids,
        chunks,
        lambda: TermIndex.from_texts(served.values_list("id", "text").iterator(2000)),
        also=embedders,
    )
