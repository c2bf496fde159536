"""Chat pages for car owners."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def chat_home(request: HttpRequest) -> HttpResponse:
    # The assistants arrive with Stage 5; until then the page says so plainly.
    return render(request, "chat/unavailable.html")
