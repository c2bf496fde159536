"""Project-wide periodic tasks."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


@shared_task(name="manualqa.reap_stale_jobs")
def reap_stale_jobs() -> dict[str, int]:
    """Mark failed the running jobs of every kind whose worker went silent (Celery beat runs
    this every ``JOBS_REAP_EVERY_S``; pages and the API only read). Returns how many per
    reaper; one reaper's failure does not stop the others."""
    marked: dict[str, int] = {}
    for path in settings.JOB_REAPERS:
        try:
            marked[path] = import_string(path)()
        except Exception:
            logger.exception("reaper %s failed", path)
            marked[path] = -1
    if any(count > 0 for count in marked.values()):
        logger.warning("marked silent jobs failed: %s", marked)
    return marked


@shared_task(name="manualqa.clear_sessions")
def clear_sessions() -> int:
    """Delete expired sessions (Django's ``clearsessions``); returns how many rows went."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted
