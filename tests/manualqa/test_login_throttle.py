"""Failed sign-ins are limited per client address (security review L4)."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_failures_counted():
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    keys = list(client.scan_iter(match="manualqa:login-failures:*"))
    if keys:
        client.delete(*keys)


def sign_in(client: Client, password: str):
    return client.post(
        reverse("admin:login"), {"username": "boss", "password": password, "next": "/admin/"}
    )


def test_login_is_throttled_after_n_failures(settings):
    settings.LOGIN_FAILURE_LIMIT = "3/hour"
    User.objects.create_superuser("boss", "boss@example.com", "the-right-password")
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    elsewhere = Client(REMOTE_ADDR="198.51.100.8")

    tries = [sign_in(attacker, f"guess-{n}").status_code for n in range(3)]
    refused = sign_in(attacker, "the-right-password")

    assert tries == [200, 200, 200]  # the form again, with its error
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 3600
    assert "Too many failed sign-ins" in refused.content.decode()
    # The password was never checked, so even the right one does not get in; another address
    # is not held up.
    assert "_auth_user_id" not in attacker.session
    assert sign_in(elsewhere, "the-right-password").status_code == 302
