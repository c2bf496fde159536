"""What every job's page polls: the row's status as JSON, with what its kind adds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.db import models
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

__all__ = ["job_status_view"]


def job_status_view(
    model: type[models.Model],
    pk_argument: str,
    *,
    permission: str,
    extra: Callable[[Any], dict[str, Any]],
) -> Callable[..., JsonResponse]:
    """A GET view, for users with ``permission``, that answers with the ``model`` row's
    ``status_payload()`` followed by ``extra(row)``; the URL names the row's primary key
    ``pk_argument`` (``job_id``, ``run_id``)."""

    @login_required
    @permission_required(permission, raise_exception=True)
    @require_GET
    def status(request: HttpRequest, **arguments: int) -> JsonResponse:
        row = get_object_or_404(model, pk=arguments[pk_argument])
        return JsonResponse({**row.status_payload(), **extra(row)})

    return status
