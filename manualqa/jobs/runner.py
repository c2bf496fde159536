"""What runs beside a job's work: the heartbeat thread, the check for a stop, and the crash
branch.

NetBox's ``JobRunner.handle`` ends a job that raised an unexpected exception as ERRORED with its
traceback; :func:`errored` is that branch, so every kind of job reports a crash the same way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator

from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

from manualqa.jobs import lifecycle

__all__ = ["Heartbeat", "beating", "errored", "stop_check", "unregistered"]

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


def unregistered(row: models.Model, exc: BaseException, *, saved_in: str, **extra) -> models.Model:
    """End ``row`` as ERRORED when its work made a model but registering it raised ``exc``: the
    user reads where the model is (``saved_in``), so nothing is lost, a developer the traceback.
    Call it from the ``except`` block, where the traceback is."""
    return lifecycle.finish(
        row,
        type(row).Status.ERRORED,
        message=f"Training finished and {saved_in}, but registering it failed: "
        f"{type(exc).__name__}: {exc}",
        trace=traceback.format_exc(),
        **extra,
    )


def stop_check(
    model: type[models.Model],
    pk: int,
    every_s: float,
    *,
    fence: str | None = None,
    on_superseded: Callable[[], None] | None = None,
) -> Callable[[], bool]:
    """A job's ``should_stop``: whether a user asked the row to stop (or it is gone), read from
    the row at most every ``every_s`` seconds. With ``fence`` (the task id that claimed the
    row), also whether another task claimed it since (it was reported dead and taken over):
    this worker then stops and writes nothing more, after calling ``on_superseded``."""
    fields = ("cancel_requested",) if fence is None else ("cancel_requested", "celery_task_id")
    last_check = 0.0
    stop = False

    def should_stop() -> bool:
        nonlocal last_check, stop
        now = time.monotonic()
        if now - last_check >= every_s:
            last_check = now
            state = model.objects.filter(pk=pk).values(*fields).first() or {
                "cancel_requested": True,
                "celery_task_id": None,
            }
            superseded = fence is not None and state["celery_task_id"] != fence
            if superseded and on_superseded is not None:
                on_superseded()
            stop = state["cancel_requested"] or superseded
        return stop

    return should_stop


class Heartbeat(threading.Thread):
    """Writes a running row's heartbeat every ``interval`` seconds while the worker lives.

    A thread of its own, so the row keeps beating through model loading, a slow answer or a
    merge, where the work itself cannot report. Each beat waits at most two seconds for a
    locked row (the next beat will do). After any database error (a blip, a failover) the
    thread drops its connection and tries again at the next beat with a new one, so a live
    job is not reported dead (security review M6). With ``fence`` (the task id that claimed
    the row), it beats only while the row is still that task's.
    """

    def __init__(
        self, model: type[models.Model], pk: int, interval: float, *, fence: str | None = None
    ) -> None:
        super().__init__(name=f"heartbeat-{model._meta.model_name}-{pk}", daemon=True)
        self.model = model
        self.pk = pk
        self.interval = interval
        self.fence = fence
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    self.beat()
                except DatabaseError as exc:  # locked for a moment, or the connection broke
                    logger.warning(
                        "heartbeat for %s %s missed: %s", self.model.__name__, self.pk, exc
                    )
                    connection.close()  # the next beat opens a new one
        except Exception:
            logger.exception("heartbeat for %s %s stopped", self.model.__name__, self.pk)
        finally:
            connection.close()  # this thread's own connection

    def beat(self) -> None:
        rows = self.model.objects.filter(pk=self.pk, status=self.model.Status.RUNNING)
        if self.fence is not None:
            rows = rows.filter(celery_task_id=self.fence)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            rows.update(heartbeat_at=timezone.now())

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


@contextlib.contextmanager
def beating(row: models.Model, interval: float, *, fence: str | None = None) -> Iterator[Heartbeat]:
    """A :class:`Heartbeat` for ``row`` while the ``with`` block runs."""
    heartbeat = Heartbeat(type(row), row.pk, interval, fence=fence)
    heartbeat.start()
    try:
        yield heartbeat
    finally:
        heartbeat.stop()
