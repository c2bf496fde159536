"""The crawler's guard against server-side request forgery: a host is resolved once, its
address checked (no loopback, private, link-local, shared or reserved network unless allowed),
and the connection pinned to that address, so a second lookup cannot answer differently."""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Final
from urllib.parse import urlsplit

import requests

from curation.sources.pages import (
    SourceError,
)

logger = logging.getLogger("manualqa.sources")

_DEFAULT_PORTS = {"http": 80, "https": 443}


def public_address(url: str, *, allow_private: bool = False) -> str:
    """The address to connect to for ``url``'s host, resolved once and checked.

    Raises :class:`SourceError` when the host resolves to a loopback, private, link-local,
    shared (CGNAT), multicast or otherwise reserved address, unless ``allow_private``: a crawl
    must not reach the server's own services or its cloud's metadata endpoint, and whatever it
    fetches is published. The caller
    connects to the returned address, so a second lookup cannot answer differently (DNS
    rebinding). Raises ``socket.gaierror`` when the name cannot be resolved.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise socket.gaierror(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            mapped = getattr(ip, "ipv4_mapped", None) or ip
            if not mapped.is_global or mapped.is_multicast:
                raise SourceError(
                    f"refused to crawl {host}: it resolves to {address}, "
                    f"{_address_kind(mapped)}, which a crawl may not reach (set "
                    "CRAWL_ALLOW_PRIVATE_NETWORKS=1 to allow private networks)"
                )
    return addresses[0]


_SHARED_NETWORK: Final = ipaddress.ip_network("100.64.0.0/10")


def _address_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for kind, test in (
        ("a loopback address", ip.is_loopback),
        ("a link-local address", ip.is_link_local),
        ("a multicast address", ip.is_multicast),
        ("an unspecified address", ip.is_unspecified),
        ("a shared (carrier-grade NAT) address", ip in _SHARED_NETWORK),
        ("a private address", ip.is_private),
    ):
        if test:
            return kind
    return "a reserved address"


class _PinnedAdapter(requests.adapters.HTTPAdapter):
    """Connects to the address :func:`public_address` checked for the host, not to whatever
    a second DNS lookup says, while the request keeps the host's name (``Host`` header, TLS
    server name and certificate check)."""

    def __init__(self) -> None:
        super().__init__()
        self.pins: dict[str, str] = {}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host = host_params["host"]
        pinned = self.pins.get(host)
        if pinned is not None:
            host_params["host"] = pinned
            if host_params["scheme"] == "https":
                pool_kwargs["server_hostname"] = host
                pool_kwargs["assert_hostname"] = host
        return host_params, pool_kwargs

    def send(self, request, **kwargs):
        netloc = urlsplit(request.url).netloc
        request.headers.setdefault("Host", netloc.rsplit("@", 1)[-1])
        return super().send(request, **kwargs)
