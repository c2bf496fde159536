"""Site-wide pages: the home page and the health endpoint."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from curation.selectors import manuals_with_counts
from manualqa.health import health_report, site_ok


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"manuals": manuals_with_counts()})


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """``{"ok": ...}`` (200 or 503) for anyone; the full report for staff and for monitors
    that send ``Authorization: Bearer <HEALTHZ_TOKEN>``."""
    report = health_report() if _may_see_details(request) else {"ok": site_ok()}
    return JsonResponse(report, status=200 if report["ok"] else 503)


def _may_see_details(request: HttpRequest) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    token = settings.HEALTHZ_TOKEN
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(sent.encode(), token.encode())
