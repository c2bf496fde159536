"""The crawler's SSRF guard (security review M3): hosts that resolve to loopback, private,
link-local, shared or reserved addresses are refused before any request is sent, on every
request including redirects, and the crawl connects to the address it checked.

Name resolution is the one thing replaced here (``socket.getaddrinfo``): a test cannot make a
real DNS server answer "169.254.169.254" or change its answer between two lookups.
"""

from __future__ import annotations

import io
import socket

import pytest
import requests

from curation import services
from curation.models import IngestionRun
from curation.sources import CrawlOptions, SourceError, crawl
from tests.httpserver import LocalHTTPServer, Response

HTML = {"Content-Type": "text/html; charset=utf-8"}
GUARDED = CrawlOptions(min_delay_s=0.0, retries=0, timeout_s=2.0)
real_getaddrinfo = socket.getaddrinfo


class NoNetwork(requests.adapters.BaseAdapter):
    """A transport that fails the test if the crawler ever sends a request through it."""

    def send(self, request, **kwargs):
        raise AssertionError(f"a request was sent to {request.url}")

    def close(self) -> None:
        pass


def no_network_session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", NoNetwork())
    session.mount("https://", NoNetwork())
    return session


def resolving(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Make ``getaddrinfo`` answer each name in ``answers`` with its next address in turn
    (IP literals resolve as usual); returns the names looked up, in order."""
    looked_up: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            looked_up.append(host)
            address = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:9/manual/", "loopback"),
        ("http://10.1.2.3/manual/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:8000/manual/", "loopback"),
        ("http://100.64.0.7/manual/", "carrier-grade NAT"),
        ("http://0.0.0.0/manual/", "unspecified"),
        ("http://internal.example/manual/", "loopback"),
    ],
)
def test_crawl_refuses_private_and_metadata_addresses(monkeypatch, url, kind):
    resolving(monkeypatch, {"internal.example": ["127.0.0.1"]})

    with pytest.raises(SourceError, match=f"refused to crawl .*{kind}") as refused:
        list(crawl(url, GUARDED, session=no_network_session()))

    assert "CRAWL_ALLOW_PRIVATE_NETWORKS" in str(refused.value)


def test_a_host_that_turns_private_between_requests_is_refused(monkeypatch):
    """DNS rebinding: the first lookup is public, a later one private."""
    served: list[str] = []

    class OnePage(requests.adapters.BaseAdapter):
        def send(self, request, **kwargs):
            served.append(request.url)
            response = requests.Response()
            response.status_code = 404 if request.url.endswith("robots.txt") else 200
            response.headers["Content-Type"] = "text/html"
            response.raw = io.BytesIO(
                b'<html><body><h1>Manual</h1><a href="page.html">next</a></body></html>'
            )
            response.url = request.url
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("http://", OnePage())
    resolving(monkeypatch, {"manual.example": ["93.184.216.34", "93.184.216.34", "10.0.0.5"]})

    with pytest.raises(SourceError, match="resolves to 10.0.0.5"):
        list(crawl("http://manual.example/manual/index.html", GUARDED, session=session))

    assert served == ["http://manual.example/robots.txt", "http://manual.example/manual/index.html"]


def test_the_crawl_connects_to_the_address_it_checked(monkeypatch):
    """The name is looked up once per request, by the guard; the connection goes to that
    address, so a second lookup (which would fail here) never happens."""
    with LocalHTTPServer() as server:
        server.script("/manual/index.html", Response(headers=HTML, body=b"<h1>Pinned</h1>"))
        port = server.port
        looked_up = resolving(monkeypatch, {"manual.test": ["127.0.0.1"]})
        options = CrawlOptions(min_delay_s=0.0, retries=0, allow_private_networks=True)

        pages = list(crawl(f"http://manual.test:{port}/manual/index.html", options))

    assert [page.error for page in pages] == [None]
    assert b"Pinned" in pages[0].content
    # robots.txt and the page: one lookup each, both by the guard.
    assert looked_up == ["manual.test", "manual.test"]


@pytest.mark.django_db
def test_an_ingestion_of_a_loopback_url_fails_naming_why(settings):
    settings.CRAWL_ALLOW_PRIVATE_NETWORKS = False
    manual = services.manual_get_or_create(name="Internal")
    run = services.ingestion_run_create(
        manual=manual, source="http://127.0.0.1:9/manual/", options={"retries": 0}, enqueue=False
    )

    run = services.ingestion_run_execute(run_id=run.pk)

    assert run.status == IngestionRun.Status.FAILED
    assert "refused to crawl 127.0.0.1" in run.message
    assert "loopback" in run.message
    assert not manual.documents.exists()
