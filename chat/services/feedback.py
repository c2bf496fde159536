"""Owners' feedback on answers (a thumbs-down with a correction becomes a pending QA pair),
compare-mode preferences, their export, and claiming a session's conversations at login."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, TextIO

from django.db import transaction

from chat import selectors
from chat.models import Conversation, Feedback, Message, Preference
from chat.owners import Owner
from chat.services.checks import feedback_limit_check, feedback_pair_allowed
from chat.services.errors import ChatError, FeedbackInvalid, PreferenceInvalid
from curation import qa
from curation.models import DocumentChunk, Manual, QAPair
from curation.services.feedback import qa_pair_from_chat_feedback

logger = logging.getLogger("chat.services")

MAX_COMMENT_CHARS = 2000


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
    feedback_limit_check(owner=owner)
    feedback = Feedback.objects.select_for_update().filter(message=message).first()
    if feedback is None:
        feedback = Feedback(
            message=message,
            user_id=owner.user_id,
            session_key="" if owner.is_user else owner.session_key,
        )
    feedback.rating = rating
    feedback.comment = comment
    if (
        rating == Feedback.Rating.DOWN
        and feedback.qa_pair_id is None
        and feedback_pair_allowed(owner=owner)
    ):
        feedback.qa_pair = _qa_pair_from_feedback(message=message, comment=comment, owner=owner)
    feedback.save()
    return feedback


def _qa_pair_from_feedback(*, message: Message, comment: str, owner: Owner) -> QAPair | None:
    """A pending pair for reviewers: the owner's question, the model's answer, the passage."""
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
    return qa_pair_from_chat_feedback(
        manual=manual,
        chunk=chunk,
        question=question,
        answer=message.content,
        comment=comment,
        assistant_name=message.assistant.name if message.assistant else "",
        chat_message_id=message.pk,
        user_id=owner.user_id,
    )


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
