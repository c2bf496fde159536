"""The chat rate limit behind a reverse proxy (security review H3): X-Forwarded-For is believed
only from TRUSTED_PROXIES, and an owner with no known address cannot reset the limit by
dropping the session cookie."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from chat.models import Message
from chat.owners import Owner
from manualqa.clients import client_ip
from tests.chat.support import make_assistant, tiny_manual
from tests.chat.test_api import ask

pytestmark = pytest.mark.django_db


@pytest.fixture
def assistant():
    """No generator: answers are extractive, quick, and need no server."""
    return make_assistant(tiny_manual(), name="Extractive", slug="extractive", endpoint=None)


def forwarded(peer: str, chain: str = "") -> str:
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=chain)
    return client_ip(request)


def test_rate_limit_uses_forwarded_for_only_from_trusted_proxies(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]

    assert forwarded("10.0.0.1", "1.1.1.1") == "1.1.1.1"
    assert forwarded("10.0.0.1", "2.2.2.2") == "2.2.2.2"
    # An untrusted peer is the client, whatever it says it forwards for.
    assert forwarded("3.3.3.3", "2.2.2.2") == "3.3.3.3"
    # The right-most hop not a trusted proxy: what the client put first is its own claim.
    assert forwarded("10.0.0.1", "6.6.6.6, 1.1.1.1") == "1.1.1.1"
    assert forwarded("10.0.0.1", "garbage") == ""


def test_proxies_may_be_networks_and_a_unix_socket(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "unix"]

    assert forwarded("10.9.9.9", "5.5.5.5, 10.0.0.3") == "5.5.5.5"
    assert forwarded("", "7.7.7.7") == "7.7.7.7"


def test_ipv6_clients_share_a_bucket_per_64():
    one = Owner.for_session("a", client_ip="2001:db8:1:2::10")
    other = Owner.for_session("b", client_ip="2001:db8:1:2:ffff::1")
    elsewhere = Owner.for_session("c", client_ip="2001:db8:1:3::10")

    assert one.rate_key == other.rate_key == "ip:2001:db8:1:2::/64"
    assert elsewhere.rate_key != one.rate_key


def test_an_owner_without_an_ip_cannot_reset_the_limit_with_new_sessions(assistant, settings):
    settings.CHAT_RATE_LIMIT = "2/day"
    settings.TRUSTED_PROXIES = []

    codes = [ask(APIClient(REMOTE_ADDR=""), assistant).status_code for _ in range(3)]

    assert codes == [200, 200, 429]
    assert Message.objects.filter(role=Message.Role.USER).count() == 2


def test_owners_behind_one_trusted_proxy_get_their_own_buckets(assistant, settings):
    settings.CHAT_RATE_LIMIT = "1/day"
    settings.TRUSTED_PROXIES = ["10.0.0.1"]

    def via_proxy(client_address: str):
        client = APIClient(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=client_address)
        return ask(client, assistant).status_code

    assert [via_proxy("1.1.1.1"), via_proxy("2.2.2.2"), via_proxy("1.1.1.1")] == [200, 200, 429]
