"""What runs beside a job's work: the heartbeat thread, and the crash branch.

NetBox's ``JobRunner.handle`` ends a job that raised an unexpected exception as ERRORED with its
traceback; :func:`errored` is that branch, so every kind of job reports a crash the same way.
"""

from __future__ import annotations

import logging
import threading
import traceback

from django.db import OperationalError, connection, models, transaction
from django.utils import timezone

from manualqa.jobs import lifecycle

__all__ = ["Heartbeat", "errored"]

logger = logging.getLogger(__name__)


def errored(row: models.Model, exc: BaseException, *, doing: str = "", **extra) -> models.Model:
    """End ``row`` as ERRORED after ``exc``: the user reads ``{doing}{Type}: {exc}``, a
    developer the traceback. Call it from the ``except`` block, where the traceback is."""
    logger.exception("%s %s crashed", type(row).__name__, row.pk)
    return lifecycle.finish(
        row,
        type(row).Status.ERRORED,
        message=f"{doing}{type(exc).__name__}: {exc}",
        trace=traceback.format_exc(),
        **extra,
    )


class Heartbeat(threading.Thread):
    """Writes a running row's heartbeat every ``interval`` seconds while the worker lives.

    A thread of its own, so the row keeps beating through model loading, a slow answer or a
    merge, where the work itself cannot report. Each beat waits at most two seconds for a
    locked row (the next beat will do). A lost database shows up as a stale row, which the
    reaper reports; the thread then only logs.
    """

    def __init__(self, model: type[models.Model], pk: int, interval: float) -> None:
        super().__init__(name=f"heartbeat-{model._meta.model_name}-{pk}", daemon=True)
        self.model = model
        self.pk = pk
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    self.beat()
                except OperationalError:  # row locked for a moment: the next beat will do
                    continue
        except Exception:
            logger.exception("heartbeat for %s %s stopped", self.model.__name__, self.pk)
        finally:
            connection.close()  # this thread's own connection

    def beat(self) -> None:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            self.model.objects.filter(pk=self.pk, status=self.model.Status.RUNNING).update(
                heartbeat_at=timezone.now()
            )

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
