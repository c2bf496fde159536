"""Signal receivers of the chat app (connected in ``ChatConfig.ready``)."""

from __future__ import annotations

from chat import services
from chat.owners import ANONYMOUS_SESSION_FIELD, is_session_digest, session_digest


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
