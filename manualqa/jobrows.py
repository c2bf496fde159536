"""Shared lifecycle helpers for job rows (ingestion runs, generation runs, training jobs).

Each job's row is its progress report; these are the parts every kind of job writes the same way.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone


def finish_job_row(
    row: models.Model, status: str, *, message: str = "", trace: str = "", **extra
) -> models.Model:
    """Move ``row`` to a final ``status`` with a user message and crash trace, then reload it."""
    type(row).objects.filter(pk=row.pk).update(
        status=status, message=message, traceback=trace, finished_at=timezone.now(), **extra
    )
    row.refresh_from_db()
    return row


def heartbeat_is_stale(row: models.Model, *, running: str, stale_after_s: float) -> bool:
    """Whether a running row's worker has stopped writing heartbeats (killed or lost)."""
    if row.status != running or row.heartbeat_at is None:
        return False
    return timezone.now() - row.heartbeat_at > timedelta(seconds=stale_after_s)


def claim_job_row(
    model: type[models.Model],
    pk: int,
    *,
    task_id: str,
    stale_after_s: float,
    keep_started_at: bool = False,
) -> bool:
    """Atomically take a queued row, or a running one whose worker stopped beating.

    One conditional UPDATE: False means another live worker has it, so a redelivered task does
    nothing. ``keep_started_at`` keeps the first start time of a row that is taken over.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=stale_after_s)
    Status = model.Status
    return bool(
        model.objects.filter(pk=pk)
        .filter(Q(status=Status.QUEUED) | Q(status=Status.RUNNING, heartbeat_at__lt=stale_before))
        .update(
            status=Status.RUNNING,
            started_at=Coalesce(F("started_at"), Value(now)) if keep_started_at else now,
            heartbeat_at=now,
            celery_task_id=task_id,
            message="",
            finished_at=None,
        )
    )


def progress_percent(row: models.Model, done: int, total: int) -> int:
    """A job row's progress in percent: 100 once it succeeded, else ``done`` of ``total``."""
    if row.status == row.Status.SUCCEEDED:
        return 100
    if not total:
        return 0
    return min(100, round(100 * done / total))
