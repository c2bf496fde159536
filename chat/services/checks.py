"""The checks a question passes before it is answered: its length, and the owner's rate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from django.conf import settings

from chat.owners import Owner
from chat.services.errors import (
    QuestionInvalid,
    QuestionTooLong,
    RateLimited,
)
from manualqa.lib import ratelimit

T = TypeVar("T")


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
    _limit(owner, settings.CHAT_RATE_LIMIT, "question", "Too many questions")


def feedback_limit_check(*, owner: Owner) -> None:
    """Count one rating for the owner; ``RateLimited`` over ``CHAT_FEEDBACK_RATE_LIMIT``."""
    _limit(owner, settings.CHAT_FEEDBACK_RATE_LIMIT, "feedback", "Too many ratings")


def feedback_pair_allowed(*, owner: Owner) -> bool:
    """Whether this thumbs-down may raise a QA pair for reviewers: always for a signed-in
    owner, and within ``CHAT_FEEDBACK_PAIRS_ANONYMOUS`` (per IP) for anonymous ones, so a
    script cannot fill the review queue (security review M4)."""
    if owner.is_user:
        return True
    return _hit(owner, settings.CHAT_FEEDBACK_PAIRS_ANONYMOUS, "feedback-pairs")[1].allowed


def _hit(
    owner: Owner, rate_setting: str, counter: str
) -> tuple[ratelimit.Rate, ratelimit.Decision]:
    rate = ratelimit.parse_rate(rate_setting)
    decision = ratelimit.hit(
        key=owner.rate_key,
        rate=rate,
        redis_url=settings.REDIS_URL,
        prefix=f"{settings.CHAT_RATE_LIMIT_PREFIX}{counter}:",
    )
    return rate, decision


def _limit(owner: Owner, rate_setting: str, counter: str, refusal: str) -> None:
    rate, decision = _hit(owner, rate_setting, counter)
    if not decision.allowed:
        raise RateLimited(
            f"{refusal}: the limit is {rate}. Try again in {decision.retry_after_s} seconds.",
            retry_after_s=decision.retry_after_s,
        )


def stream_slot_take(*, owner: Owner) -> Callable[[], None]:
    """Take one of the owner's ``CHAT_MAX_STREAMS_PER_OWNER`` concurrent answers, or refuse
    with ``RateLimited``; returns the function that gives it back. An owner who opens answers
    and stops reading them holds model slots and workers, so one owner (one IP when anonymous)
    may only have a few at a time (security review H2)."""
    limit = settings.CHAT_MAX_STREAMS_PER_OWNER
    prefix = f"{settings.CHAT_RATE_LIMIT_PREFIX}streams:"
    slot = {"key": owner.rate_key, "redis_url": settings.REDIS_URL, "prefix": prefix}
    if not ratelimit.take_slot(limit=limit, ttl_s=settings.CHAT_STREAM_SLOT_TTL_S, **slot):
        raise RateLimited(
            f"You already have {limit} answers on their way; wait for them to finish, then ask "
            "again.",
            retry_after_s=5,
        )
    released = []

    def release() -> None:
        if not released:
            released.append(True)
            ratelimit.release_slot(**slot)

    return release


def releasing(events: Iterator[T], release: Callable[[], None]) -> Iterator[T]:
    """``events``, calling ``release`` once they end or are closed."""
    try:
        yield from events
    finally:
        release()
