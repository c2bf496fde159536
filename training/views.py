"""Training pages for the Trainer role."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@staff_member_required
@require_GET
def training_home(request: HttpRequest) -> HttpResponse:
    # Training jobs arrive with Stage 4; until then the page says so plainly.
    return render(request, "training/unavailable.html")
