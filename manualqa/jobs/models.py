"""The abstract job rows: the fields every kind of job records the same way.

A job's row is its progress report, read by pages and the API long after the Celery result
has expired. The concrete models keep their own ``Status`` choices and add ``FINISHED`` (the
final statuses) and ``TRANSITIONS`` (for each status, the statuses it may move to, written from
the services that move it; ``manualqa.jobs.lifecycle`` checks moves against it).
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models


def progress_percent(row: models.Model, done: int, total: int) -> int:
    """A job row's progress in percent: 100 once it succeeded, else ``done`` of ``total``."""
    if row.status == row.Status.SUCCEEDED:
        return 100
    if not total:
        return 0
    return min(100, round(100 * done / total))


class JobStatus(models.TextChoices):
    """The statuses of a job that is queued, runs, then ends in one of four ways (training jobs
    and evaluation runs; ingestion and generation have steps of their own in between)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    ERRORED = "errored", "Errored"


#: The final statuses of a job whose statuses are :class:`JobStatus`.
JOB_FINISHED: tuple[str, ...] = (
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.ERRORED,
)
#: Its moves: a queued job runs or is cancelled; a running one ends in a final status, or runs
#: again (a takeover of a silent worker's job); a final status never moves.
JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({JobStatus.RUNNING, *JOB_FINISHED}),
    **{status: frozenset() for status in JOB_FINISHED},
}


class JobRow(models.Model):
    """What every job's row holds besides its own status and counters."""

    FINISHED: ClassVar[tuple[str, ...]] = ()
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {}
    #: When the job was made, began, last showed life and ended: the order pages list them.
    TIMES: ClassVar[tuple[str, ...]] = ("created_at", "started_at", "heartbeat_at", "finished_at")
    #: Every field of this abstract row, as the admin shows them (read only) after a job's own.
    LIFECYCLE: ClassVar[tuple[str, ...]] = (
        "message",
        "traceback",
        "celery_task_id",
        "created_by",
        *TIMES,
    )
    #: The setting that says how many seconds of worker silence mark a running job of this kind
    #: dead (its worker beats far more often than that); ``lifecycle`` reads it through
    #: :meth:`stale_after_s`, so a kind's threshold is named once, on its own model (each
    #: concrete model sets it: a new kind cannot silently borrow another's).
    STALE_AFTER_SETTING: ClassVar[str]

    message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def stale_after_s(cls) -> int:
        """Seconds of worker silence after which a running job of this kind counts as dead."""
        return getattr(settings, cls.STALE_AFTER_SETTING)

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    def status_payload(self) -> dict:
        """What a page polls about any job: its status, progress and message, as JSON."""
        return {
            "status": self.status,
            "status_display": self.get_status_display(),
            "finished": self.is_finished,
            "progress_percent": self.progress_percent,
            "message": self.message,
        }


class CancellableJobRow(JobRow):
    """A job a user can ask to stop: its worker checks ``cancel_requested`` as it goes."""

    cancel_requested = models.BooleanField(default=False)

    class Meta:
        abstract = True
