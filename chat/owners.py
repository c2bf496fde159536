"""Who is asking: a signed-in user or, for owners without an account, a browser session.

Conversations, feedback and preferences belong to an :class:`Owner`; every read of them goes
through ``chat.selectors`` with the owner, so nobody reads another owner's conversations.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest

from manualqa.clients import client_ip

#: Session data field holding the key (digested) under which this browser asked anonymously.
ANONYMOUS_SESSION_FIELD = "chat_anonymous_session"


def session_digest(session_key: str) -> str:
    """What chat rows store for an anonymous owner's session: an HMAC of its key, never the key
    (security review L6). Whoever reads the rows (staff, a database backup) cannot take over
    the owner's browser session with it; the server recomputes it from the cookie."""
    return hmac.new(settings.SECRET_KEY.encode(), session_key.encode(), hashlib.sha256).hexdigest()


def is_session_digest(value: str) -> bool:
    return len(value) == 64 and all(character in "0123456789abcdef" for character in value)


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
        """What a rate limit counts: the user, else the client's IP (an IPv6 client by its
        /64, which one host gets whole). Never the session: a new one is free for the asking,
        so anonymous owners with no known IP share one bucket instead."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        if not self.client_ip:
            return "ip:unknown"
        address = ipaddress.ip_address(self.client_ip)
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return f"ip:{address.ipv4_mapped}"
            return f"ip:{ipaddress.ip_network(f'{address}/64', strict=False)}"
        return f"ip:{address}"

    def conversations_q(self, prefix: str = "") -> Q:
        """The filter that matches this owner's conversations (through ``prefix``)."""
        if self.user_id is not None:
            return Q(**{f"{prefix}owner_id": self.user_id})
        return Q(**{f"{prefix}owner__isnull": True, f"{prefix}session_key": self.session_key})


def owner_from_request(request: HttpRequest) -> Owner:
    """The request's owner; an anonymous visitor gets a session (saved now) to own things by.

    Rate limits count per user, else per :func:`client_ip`.
    """
    address = client_ip(request)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Owner.for_user(user, client_ip=address)
    if not request.session.session_key:
        request.session.save()
    session_key = session_digest(request.session.session_key)
    # Kept inside the session's data, which survives the new key Django gives a session at
    # sign-in, so the conversations begun anonymously can follow the owner into the account
    # (chat.receivers).
    if request.session.get(ANONYMOUS_SESSION_FIELD) != session_key:
        request.session[ANONYMOUS_SESSION_FIELD] = session_key
    return Owner.for_session(session_key, client_ip=address)


def existing_owner(request: HttpRequest) -> Owner | None:
    """The request's owner, or None for a visitor who has no session yet: reads never make a
    session (a bot fetching in a loop would add a row each time)."""
    user = getattr(request, "user", None)
    if (user is not None and user.is_authenticated) or request.session.session_key:
        return owner_from_request(request)
    return None
