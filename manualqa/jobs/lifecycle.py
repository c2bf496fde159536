"""The lifecycle every job row shares: claim, finish, staleness and the reaper.

Each function takes the job's model (or row) and works from its ``Status`` choices, its
``FINISHED`` statuses and its ``TRANSITIONS`` table, so the four kinds of job cannot drift
apart in how a worker takes a row, how a row ends, or how a silent worker is detected.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

__all__ = [
    "cancel_now",
    "claim",
    "fail_silent",
    "fail_stale",
    "finish",
    "is_stale",
    "may_move",
    "request_cancel",
    "require_resumable",
    "requeue",
    "silence_message",
]


def may_move(model: type[models.Model], old: str, new: str) -> bool:
    """Whether the model's ``TRANSITIONS`` table lets a row go from ``old`` to ``new``."""
    return new in model.TRANSITIONS.get(old, frozenset())


def finish(
    row: models.Model,
    status: str,
    *,
    message: str = "",
    trace: str = "",
    fence: str | None = None,
    **extra,
) -> models.Model:
    """Move ``row`` to a final ``status`` with a user message and crash trace, then reload it.

    Raises ``ValueError`` for a status that is not final: a row in progress is moved by the
    service that owns that step, never by "finishing" it. With ``fence`` (the task id that
    claimed the row), nothing is written once another task has claimed the row since: a
    superseded worker must not overwrite the new attempt's outcome (security review M6).
    """
    model = type(row)
    if status not in model.FINISHED:
        raise ValueError(f"{str(status)!r} is not a final status of {model.__name__}")
    rows = model.objects.filter(pk=row.pk)
    if fence is not None:
        rows = rows.filter(celery_task_id=fence)
    rows.update(
        status=status, message=message, traceback=trace, finished_at=timezone.now(), **extra
    )
    row.refresh_from_db()
    return row


def cancel_now(row: models.Model, *, message: str) -> models.Model:
    """Save ``row`` (locked by the caller) as cancelled with ``message``: for a row no worker
    has taken yet, or whose worker has gone silent."""
    row.status = row.Status.CANCELLED
    row.message = message
    row.finished_at = timezone.now()
    row.save(update_fields=["status", "message", "finished_at"])
    return row


def request_cancel(row: models.Model) -> models.Model:
    """Ask the worker running ``row`` (locked by the caller) to stop; it checks
    ``cancel_requested`` as it goes and ends the row itself."""
    row.cancel_requested = True
    row.save(update_fields=["cancel_requested"])
    return row


def require_resumable(row: models.Model, *, stale: bool, noun: str) -> None:
    """Refuse, naming its status, to resume a row that is not cancelled, failed, errored or
    ``stale`` (its worker went silent); ``noun`` ("run", "job") is what the user calls it."""
    Status = row.Status
    if row.status in (Status.CANCELLED, Status.FAILED, Status.ERRORED) or stale:
        return
    raise ValidationError(
        f"{noun.capitalize()} #{row.pk} is {row.get_status_display().lower()}; only a "
        f"cancelled, failed or stalled {noun} can be resumed."
    )


def requeue(row: models.Model) -> models.Model:
    """Put ``row`` (locked by the caller) back in the queue with its last outcome wiped: no
    cancel request, message, trace or end time."""
    row.status = row.Status.QUEUED
    row.cancel_requested = False
    row.message = ""
    row.traceback = ""
    row.finished_at = None
    row.save(update_fields=["status", "cancel_requested", "message", "traceback", "finished_at"])
    return row


def is_stale(row: models.Model) -> bool:
    """Whether a running row's worker has stopped writing heartbeats (killed or lost), for
    longer than its kind allows (:meth:`~manualqa.jobs.models.JobRow.stale_after_s`)."""
    if row.status != row.Status.RUNNING or row.heartbeat_at is None:
        return False
    return timezone.now() - row.heartbeat_at > timedelta(seconds=row.stale_after_s())


def claim(
    model: type[models.Model],
    pk: int,
    *,
    task_id: str,
    takeover: bool = True,
    keep_started_at: bool = False,
    redelivered: bool = False,
) -> bool:
    """Atomically take a queued row, or a running one whose worker stopped beating.

    One conditional UPDATE: False means another live worker has it, so a redelivered task does
    nothing. A worker is silent after its kind's
    :meth:`~manualqa.jobs.models.JobRow.stale_after_s`; ``takeover=False`` takes queued rows
    only (a kind whose work cannot be taken over halfway). ``keep_started_at`` keeps the first
    start time of a row that is taken over.
    ``redelivered`` (the broker delivered this task again: its first worker died before
    acknowledging it) also takes the row this very task left running, heartbeat fresh or not,
    instead of dropping the redelivery and leaving the row running for good (review M5).
    """
    Status = model.Status
    now = timezone.now()
    takeable = Q(status=Status.QUEUED)
    if takeover:
        stale_before = now - timedelta(seconds=model.stale_after_s())
        takeable |= Q(status=Status.RUNNING, heartbeat_at__lt=stale_before)
    if redelivered and task_id:
        takeable |= Q(status=Status.RUNNING, celery_task_id=task_id)
    return bool(
        model.objects.filter(pk=pk)
        .filter(takeable)
        .update(
            status=Status.RUNNING,
            started_at=Coalesce(F("started_at"), Value(now)) if keep_started_at else now,
            heartbeat_at=now,
            celery_task_id=task_id,
            message="",
            finished_at=None,
        )
    )


def fail_stale(
    model: type[models.Model],
    *,
    message: Callable[[models.Model, float], str],
    on_failed: Callable[[models.Model, str], None] | None = None,
) -> int:
    """Mark failed every running row whose worker stopped beating for longer than its kind
    allows; return how many.

    ``message(row, quiet_s)`` says why, for the user. Each update is conditional on the
    heartbeat it read, so a worker that beats in between keeps its row.
    """
    Status = model.Status
    cutoff = timezone.now() - timedelta(seconds=model.stale_after_s())
    failed = 0
    for row in model.objects.filter(status=Status.RUNNING, heartbeat_at__lt=cutoff):
        quiet = (timezone.now() - row.heartbeat_at).total_seconds()
        text = message(row, quiet)
        marked = model.objects.filter(
            pk=row.pk, status=Status.RUNNING, heartbeat_at=row.heartbeat_at
        ).update(status=Status.FAILED, message=text, finished_at=timezone.now())
        if marked:
            failed += 1
            if on_failed is not None:
                on_failed(row, text)
    return failed


def silence_message(quiet_s: float, *, stale_after_s: float, progress: str, then: str = "") -> str:
    """What the reaper tells the user about a row whose worker went silent: how long it was
    quiet, how far the job had got (``progress``, such as "after 3 of 9 chunks") and what to do
    next (``then``, a sentence, if any)."""
    text = (
        f"The worker stopped sending heartbeats ({quiet_s:.0f} s of silence, more than the "
        f"{stale_after_s} s allowed) {progress}: it was probably killed or lost its machine."
    )
    return f"{text} {then}" if then else text


def fail_silent(
    model: type[models.Model],
    *,
    progress: Callable[[models.Model], str],
    then: str = "",
) -> int:
    """:func:`fail_stale` with the :func:`silence_message` that names ``progress(row)`` (how far
    the row had got) and ``then`` (what the user can do next)."""
    stale_after_s = model.stale_after_s()

    def message(row: models.Model, quiet_s: float) -> str:
        return silence_message(
            quiet_s, stale_after_s=stale_after_s, progress=progress(row), then=then
        )

    return fail_stale(model, message=message)
