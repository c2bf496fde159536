"""Where a request comes from: the client's address, believing ``X-Forwarded-For`` only from
the reverse proxies named in ``TRUSTED_PROXIES`` (security review H3). Rate limits (the chat's,
sign-in failures) count per this address."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The address of the client behind the request, or "" when it cannot be known.

    The peer (``REMOTE_ADDR``) is the client, unless it is one of ``TRUSTED_PROXIES`` (addresses
    or networks; "unix" for a proxy on a unix socket, where the peer is empty). Then the
    client is the right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy:
    proxies append the address they saw, so hops left of the last untrusted one are whatever
    the client claimed, and believing them would let anyone pick their own rate-limit bucket.
    """
    trusted = _trusted_proxies()
    peer = request.META.get("REMOTE_ADDR", "").strip()
    if not _is_trusted(peer, trusted):
        return _valid_ip(peer)
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return _valid_ip(hop)
    return _valid_ip(hops[0]) if hops else _valid_ip(peer)


def _trusted_proxies() -> list:
    networks = []
    for entry in settings.TRUSTED_PROXIES:
        if entry == "unix":
            networks.append(entry)
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"TRUSTED_PROXIES: {entry!r} is not an address") from exc
    return networks


def _is_trusted(address: str, trusted: list) -> bool:
    if not address:
        return "unix" in trusted
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(not isinstance(net, str) and ip in net for net in trusted)


def _valid_ip(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return ""
