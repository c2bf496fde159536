"""Who is asking: a signed-in user or, for owners without an account, a browser session.

Conversations, feedback and preferences belong to an :class:`Owner`; every read of them goes
through ``chat.selectors`` with the owner, so nobody reads another owner's conversations.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.http import HttpRequest

#: Session data field holding the key under which this browser asked anonymously.
ANONYMOUS_SESSION_FIELD = "chat_anonymous_session"


@dataclass(frozen=True)
class Owner:
    """A signed-in user (``user_id``) or an anonymous browser session (``session_key``).

    ``client_ip`` is where the request came from; rate limits count per user when signed in
    and per IP otherwise (a new session is free to get, an IP is not).
    """

    user_id: int | None = None
    session_key: str = ""
    client_ip: str = ""

    def __post_init__(self) -> None:
        if self.user_id is None and not self.session_key:
            raise ValueError("an owner is a user or a session")

    @classmethod
    def for_user(cls, user, *, client_ip: str = "") -> Owner:
        return cls(user_id=user.pk, client_ip=client_ip)

    @classmethod
    def for_session(cls, session_key: str, *, client_ip: str = "") -> Owner:
        return cls(session_key=session_key, client_ip=client_ip)

    @property
    def is_user(self) -> bool:
        return self.user_id is not None

    @property
    def rate_key(self) -> str:
        """What a rate limit counts: the user, else the client's IP, else the session."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return f"ip:{self.client_ip}" if self.client_ip else f"session:{self.session_key}"

    def conversations_q(self, prefix: str = "") -> Q:
        """The filter that matches this owner's conversations (through ``prefix``)."""
        if self.user_id is not None:
            return Q(**{f"{prefix}owner_id": self.user_id})
        return Q(**{f"{prefix}owner__isnull": True, f"{prefix}session_key": self.session_key})


def owner_from_request(request: HttpRequest) -> Owner:
    """The request's owner; an anonymous visitor gets a session (saved now) to own things by.

    The client IP is ``REMOTE_ADDR``: ManualQA's gunicorn serves clients directly. Behind a
    proxy, have the proxy set ``REMOTE_ADDR`` (e.g. gunicorn's ``--forwarded-allow-ips``), as
    trusting ``X-Forwarded-For`` blindly would let anyone pick their own rate-limit bucket.
    """
    client_ip = request.META.get("REMOTE_ADDR", "")
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Owner.for_user(user, client_ip=client_ip)
    if not request.session.session_key:
        request.session.save()
    session_key = request.session.session_key
    # Kept inside the session's data, which survives the new key Django gives a session at
    # sign-in, so the conversations begun anonymously can follow the owner into the account
    # (chat.receivers).
    if request.session.get(ANONYMOUS_SESSION_FIELD) != session_key:
        request.session[ANONYMOUS_SESSION_FIELD] = session_key
    return Owner.for_session(session_key, client_ip=client_ip)
