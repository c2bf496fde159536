"""A limit on failed sign-ins per client address (security review L4).

Every failed sign-in (Django's ``user_login_failed`` signal, which the admin's login form and
every other ``authenticate`` path send) counts against the client's address; once an address
is over ``LOGIN_FAILURE_LIMIT``, :class:`LoginThrottleMiddleware` answers its sign-in POSTs
with 429 and ``Retry-After`` until the window ends, without checking the password at all.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from manualqa.clients import client_ip
from manualqa.lib import ratelimit

_PREFIX = "manualqa:login-failures:"


def _key(request: HttpRequest) -> str:
    return f"ip:{client_ip(request) or 'unknown'}"


@receiver(user_login_failed, dispatch_uid="manualqa.login_throttle.count")
def count_failure(sender, credentials, request=None, **kwargs) -> None:
    if request is None:
        return
    ratelimit.hit(
        key=_key(request),
        rate=ratelimit.parse_rate(settings.LOGIN_FAILURE_LIMIT),
        redis_url=settings.REDIS_URL,
        prefix=_PREFIX,
    )


class LoginThrottleMiddleware:
    """Refuses sign-in POSTs from an address over its failures, before the password is read."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in _login_paths():
            rate = ratelimit.parse_rate(settings.LOGIN_FAILURE_LIMIT)
            state = ratelimit.peek(
                key=_key(request), rate=rate, redis_url=settings.REDIS_URL, prefix=_PREFIX
            )
            if not state.allowed:
                response = HttpResponse(
                    f"Too many failed sign-ins from your address: the limit is {rate}. Try "
                    f"again in {state.retry_after_s} seconds.",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(state.retry_after_s)
                return response
        return self.get_response(request)


def _login_paths() -> set[str]:
    from django.urls import reverse

    return {reverse("admin:login")}
