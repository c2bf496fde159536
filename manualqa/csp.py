"""The Content-Security-Policy header on every response (security review L4).

Every page runs only scripts served from this site: no inline ``<script>`` and no inline event
handlers (the page scripts live in ``static/js/``; data reaches them through ``data-``
attributes), so a markup injection that slipped past the sanitiser still cannot run code.
Styles may be inline: Django's admin and the API docs use ``style`` attributes, and a style
cannot run code. The policy is ``settings.CONTENT_SECURITY_POLICY``; empty turns it off.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and HEADER not in response:
            response[HEADER] = policy
        return response
