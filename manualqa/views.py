"""Site-wide pages: the home page and the health endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from curation.selectors import manuals_with_counts
from manualqa.health import health_report


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"manuals": manuals_with_counts()})


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)
