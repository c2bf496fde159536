"""The checks a question passes before it is answered: its length, and the owner's rate."""

from __future__ import annotations

from django.conf import settings

from chat import ratelimit
from chat.owners import Owner
from chat.services.errors import (
    QuestionInvalid,
    QuestionTooLong,
    RateLimited,
)

#: Passages listed under a declined answer: the nearest the manual has.
NEAREST_PASSAGES = 3
#: Characters of a passage kept in a citation's excerpt.
EXCERPT_CHARS = 300
#: Message shown for an answer abandoned by its owner (the stream was closed mid-answer).
INTERRUPTED = "The answer was interrupted before it was complete."


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
