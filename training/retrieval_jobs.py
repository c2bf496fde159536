"""Writes for retrieval jobs (issue 18): create (validated), claim, execute, cancel, register.

A retrieval job trains an embedder (``kind`` retriever, :mod:`training.retrievers.embedder`)
or a reranker (:mod:`training.retrievers.reranker`) on a snapshot's train split, on the ``gpu``
queue, and registers the model it made as a ``curation.RetrievalModel``. Like a training job,
its row is its live report: step of total steps, loss, time left, heartbeat.
"""

from __future__ import annotations

import importlib
import logging
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from curation.models import RetrievalModel
from manualqa import roles
from manualqa.jobs import lifecycle, queues, runner
from training.models import DatasetSnapshot, RetrievalJob
from training.retrievers import Stopped

__all__ = [
    "retrieval_job_cancel",
    "retrieval_job_claim",
    "retrieval_job_create",
    "retrieval_job_execute",
    "retrieval_jobs_fail_stale",
]

logger = logging.getLogger("training.retrieval_jobs")

#: The trainer module of each kind (``train(snapshot, ...)``, see ``training.retrievers``).
TRAINERS = {
    RetrievalJob.Kind.RETRIEVER: "training.retrievers.embedder",
    RetrievalJob.Kind.RERANKER: "training.retrievers.reranker",
}


def _require_launcher(user) -> None:
    roles.require(user, "training.add_retrievaljob", "Training a retriever needs the Trainer role.")


def _trainer(kind: str):
    """The kind's trainer module, imported now; ``ValueError`` when it is not installed."""
    name = TRAINERS[kind]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise ValueError(
            f"No {RetrievalJob.Kind(kind).label.lower()} trainer is installed ({name} is missing)."
        ) from None


def _hyperparameters(kind: str, values: dict | None) -> dict:
    """The kind's defaults with ``values`` applied (each trainer checks its own)."""
    if kind == RetrievalJob.Kind.RETRIEVER:
        from training.retrievers.embedder import hyperparameters_check

        return hyperparameters_check(values)
    try:
        trainer = _trainer(kind)
    except ValueError:  # not installed here: the job fails with that message when it runs
        return dict(values or {})
    check = getattr(trainer, "hyperparameters_check", None)
    return check(values) if check is not None else dict(values or {})


def retrieval_job_validate(*, snapshot: DatasetSnapshot, kind: str) -> list[str]:
    """Every reason this launch cannot run, as messages naming the problem."""
    problems = []
    if kind not in RetrievalJob.Kind.values:
        return [f"Unknown kind {kind!r}: use {' or '.join(RetrievalJob.Kind.values)}."]
    usable = snapshot.pairs.filter(split="train", qa_pair__chunk__isnull=False).count()
    if not usable:
        problems.append(
            f"The snapshot {snapshot} has no approved train pairs with a source chunk; a "
            "retrieval model learns questions against the passages they were approved on."
        )
    return problems


@transaction.atomic
def retrieval_job_create(
    *,
    snapshot: DatasetSnapshot,
    user,
    kind: str = RetrievalJob.Kind.RETRIEVER,
    name: str = "",
    base_model: str = "",
    hyperparameters: dict | None = None,
    enqueue: bool = True,
) -> RetrievalJob:
    """Validate a launch and queue it; every refusal names its problem."""
    _require_launcher(user)
    problems = retrieval_job_validate(snapshot=snapshot, kind=kind)
    if problems:
        raise ValidationError(problems)
    try:
        config = _hyperparameters(kind, hyperparameters)
    except ValueError as exc:
        raise ValidationError({"hyperparameters": str(exc)}) from None
    base_model = base_model.strip()
    if base_model and not Path(base_model).is_dir():
        raise ValidationError({"base_model": f"The base model folder {base_model} is not there."})
    job = RetrievalJob.objects.create(
        name=name.strip() or f"{snapshot.name} v{snapshot.version} ({kind})",
        kind=kind,
        snapshot=snapshot,
        base_model=base_model,
        hyperparameters=config,
        created_by=roles.recorded_user(user),
    )
    # A random suffix: a job never writes into another job's folder, even when ids restart.
    job.output_dir = str(
        settings.TRAINING_OUTPUT_DIR / f"retrieval-{job.pk}-{secrets.token_hex(4)}"
    )
    job.save(update_fields=["output_dir"])
    if enqueue:
        from training.tasks import run_retrieval_job

        queues.enqueue(run_retrieval_job, job.pk, gpu=True)
    return job


def retrieval_job_claim(*, job_id: int, task_id: str = "", redelivered: bool = False) -> bool:
    """Take a queued job, or a running one whose worker stopped beating."""
    return lifecycle.claim(RetrievalJob, job_id, task_id=task_id, redelivered=redelivered)


def retrieval_jobs_fail_stale() -> int:
    """Mark failed every running retrieval job whose worker stopped beating."""
    return lifecycle.fail_stale(
        RetrievalJob,
        message=lambda job, quiet: (
            f"The worker stopped sending heartbeats ({quiet:.0f} s of silence) at step "
            f"{job.step}: it was probably killed or lost its machine. Launch it again."
        ),
    )


def _finish(job: RetrievalJob, status: str, *, message: str = "", trace: str = ""):
    return lifecycle.finish(
        job, status, message=message, trace=trace, fence=job.celery_task_id, eta_s=None
    )


def retrieval_job_execute(*, job_id: int, check_every_s: float = 1.0) -> RetrievalJob:
    """Train a claimed job to the end (or a cancel), then register its model."""
    job = RetrievalJob.objects.select_related("snapshot", "snapshot__manual").get(pk=job_id)
    started = time.monotonic()
    should_stop = runner.stop_check(RetrievalJob, job.pk, check_every_s, fence=job.celery_task_id)

    def progress(step: int, total: int, loss: float | None) -> None:
        elapsed = time.monotonic() - started
        eta = elapsed / step * (total - step) if step else None
        RetrievalJob.objects.filter(pk=job.pk, celery_task_id=job.celery_task_id).update(
            step=step,
            total_steps=total,
            loss=loss,
            eta_s=eta,
            heartbeat_at=timezone.now(),
        )

    with runner.beating(job, settings.TRAINING_HEARTBEAT_S, fence=job.celery_task_id):
        try:
            trainer = _trainer(job.kind)
            result = trainer.train(
                job.snapshot,
                base_model=job.base_model,
                hyperparameters=job.hyperparameters,
                output_dir=Path(job.output_dir),
                progress=progress,
                should_stop=should_stop,
            )
        except Stopped:
            return _finish(job, RetrievalJob.Status.CANCELLED, message="Cancelled by a user.")
        except (FileNotFoundError, ValueError) as exc:
            return _finish(job, RetrievalJob.Status.FAILED, message=str(exc))
        except Exception as exc:
            return runner.errored(job, exc, doing="Training failed: ", eta_s=None)
        try:
            with transaction.atomic():
                model = _register(job, result)
                RetrievalJob.objects.filter(pk=job.pk).update(
                    registered_model=model,
                    metrics=result.metrics,
                    train_examples=result.train_examples,
                    # The sampler may run out of batches before max_steps: the steps it ran.
                    step=result.steps,
                    total_steps=result.steps,
                )
        except Exception as exc:  # the model is on disk; say where, so nothing is lost
            logger.exception("retrieval job %s could not register its model", job.pk)
            saved_in = f"the model is in {result.path}"
            return runner.unregistered(
                job, exc, saved_in=saved_in, fence=job.celery_task_id, eta_s=None
            )
        return _finish(job, RetrievalJob.Status.SUCCEEDED)


def _register(job: RetrievalJob, result) -> RetrievalModel:
    kind = (
        RetrievalModel.Kind.EMBEDDER
        if job.kind == RetrievalJob.Kind.RETRIEVER
        else RetrievalModel.Kind.RERANKER
    )
    model, _ = RetrievalModel.objects.update_or_create(
        name=f"{kind.label.split(' ')[0]} #{job.pk}: {job.name}"[:200],
        defaults={
            "kind": kind,
            "path": str(result.path),
            "base_model": result.base_model,
            "dimensions": result.dimensions,
            "decline_below": result.decline_below,
            "metrics": result.metrics,
        },
    )
    return model


@transaction.atomic
def retrieval_job_cancel(*, job: RetrievalJob, user) -> RetrievalJob:
    """Cancel a queued job now; ask a running one to stop at its next step."""
    _require_launcher(user)
    job = RetrievalJob.objects.select_for_update().get(pk=job.pk)
    stale = lifecycle.is_stale(job)
    if job.status == RetrievalJob.Status.QUEUED or stale:
        return lifecycle.finish(
            job,
            RetrievalJob.Status.CANCELLED,
            message="Cancelled before it ran." if not job.started_at else "Cancelled.",
        )
    if job.status != RetrievalJob.Status.RUNNING:
        status = job.get_status_display().lower()
        raise ValidationError(f"Job #{job.pk} is {status}; too late.")
    job.cancel_requested = True
    job.save(update_fields=["cancel_requested"])
    return job
