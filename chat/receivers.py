"""Signal receivers of the chat app (connected in ``ChatConfig.ready``)."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from chat import quote_vectors, services
from chat.owners import ANONYMOUS_SESSION_FIELD, is_session_digest, session_digest

logger = logging.getLogger("manualqa.chat")


def claim_anonymous_conversations(sender, request, user, **kwargs) -> None:
    """At sign-in, the conversations this browser had as an anonymous owner become the user's.

    Django gives the session a new key at sign-in but keeps its data, where
    ``owner_from_request`` noted the anonymous key.
    """
    session = getattr(request, "session", None)
    if session is None:
        return
    session_key = session.pop(ANONYMOUS_SESSION_FIELD, None)
    if session_key:
        # A session begun before keys were digested holds the raw key.
        if not is_session_digest(session_key):
            session_key = session_digest(session_key)
        services.conversations_claim(user=user, session_key=session_key)


def store_sentence_vectors(sender, manual, **kwargs) -> None:
    """Once ``manual`` is embedded, store its quotable units' vectors (``chat.quote_vectors``),
    unless ``QUOTE_VECTORS_ON_INGEST`` is off."""
    if not settings.QUOTE_VECTORS_ON_INGEST:
        return
    started = time.perf_counter()
    stored = quote_vectors.sentence_vectors_store(manual_ids=[manual.pk])
    logger.info(
        "stored %s sentence vectors of %s in %.0f s", stored, manual, time.perf_counter() - started
    )
