"""Shared lifecycle helpers for job rows (ingestion runs, generation runs, training jobs).

Each job's row is its progress report; these are the parts every kind of job writes the same way.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
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
