"""Sending work to the workers: one helper, so every job is routed and timed the same way.

Model-heavy work (embedding, local generation, training) goes to the ``gpu`` queue, served by
workers that own a GPU or enough memory; everything else to ``default``. A task is sent only once
the transaction that created its rows commits (pretix's ``TransactionAwareTask`` idea), so a
worker never looks for a row that is not there yet, and a rolled-back request sends nothing.
"""

from __future__ import annotations

from typing import Any, Final

from django.db import transaction

__all__ = ["DEFAULT_QUEUE", "GPU_QUEUE", "enqueue"]

DEFAULT_QUEUE: Final = "default"
GPU_QUEUE: Final = "gpu"


def enqueue(task: Any, *args: Any, gpu: bool = False) -> None:
    """Send ``task(*args)`` to the ``gpu`` or ``default`` queue once the current transaction
    commits (at once outside a transaction, as in a worker)."""
    queue = GPU_QUEUE if gpu else DEFAULT_QUEUE
    transaction.on_commit(lambda: task.apply_async(args, queue=queue))


def redelivered(task: Any) -> bool:
    """Whether the broker delivered this (bound) task again after its worker died."""
    return bool((getattr(task.request, "delivery_info", None) or {}).get("redelivered"))


def claimed_by(task: Any, claim: Any, **ids: int) -> bool:
    """Whether ``task`` (bound) may run its row: ``claim(**ids, task_id=..., redelivered=...)``
    with the task's id and whether the broker delivered it again."""
    return bool(claim(task_id=task.request.id or "", redelivered=redelivered(task), **ids))
