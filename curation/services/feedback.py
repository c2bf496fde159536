"""Pairs that owners send: an answer an owner marked wrong becomes a pending pair for reviewers.

Chat calls this with plain values (it reads its own messages); curation never imports chat.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from curation.models import DocumentChunk, Manual, QAPair, QAPairRevision
from curation.services.qa_pairs import qa_pair_build, qa_pairs_score_later

__all__ = ["qa_pair_from_chat_feedback"]

#: The flag that marks a pair an owner sent, for the review filters.
CHAT_FEEDBACK_FLAG = "chat_feedback"


def qa_pair_from_chat_feedback(
    *,
    manual: Manual,
    chunk: DocumentChunk | None,
    question: str,
    answer: str,
    comment: str,
    assistant_name: str,
    chat_message_id: int,
    user_id: int | None,
) -> QAPair:
    """A pending pair for reviewers: the owner's question, the answer they marked wrong, and
    the passage it cited (if any), with a revision saying where it came from; a worker scores
    it once the transaction commits."""
    pair = qa_pair_build(
        manual_id=manual.pk,
        chunk=chunk,
        question=question,
        answer=answer,
        origin=QAPair.Origin.CHAT_FEEDBACK,
        flags=(CHAT_FEEDBACK_FLAG,),
        status=QAPair.Status.PENDING,
    )
    try:
        with transaction.atomic():
            pair.save()
    except IntegrityError:
        # The passage already has a pair asking this question (generated, or an earlier
        # owner's thumbs-down): keep this one apart from the passage rather than lose it; its
        # document and source text still show reviewers where it comes from.
        pair.pk = None
        pair.chunk = None
        pair.save()
    changes: dict[str, list] = {
        "origin": [None, QAPair.Origin.CHAT_FEEDBACK],
        "rating": [None, "thumbs down"],
        "assistant": [None, assistant_name],
        "chat_message": [None, chat_message_id],
    }
    if comment:
        changes["owner_comment"] = [None, comment]
    QAPairRevision.objects.create(
        pair=pair, action=QAPairRevision.Action.CREATE, changes=changes, user_id=user_id
    )
    # Scored by a worker once this commits, not in the owner's request (security review M4).
    qa_pairs_score_later([pair.pk])
    return pair
