"""Writes for training jobs: create (validated), claim, execute, cancel, resume, register.

The training itself is ``training.trainer.train`` (plain, no Django). This module validates a
launch before anything is queued, turns the trainer's progress events into updates of the job's
row, and registers the merged model as a ``local`` LLM endpoint when the job succeeds.
"""

from __future__ import annotations

import logging
import secrets
import time
import traceback
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from curation.models import LLMEndpoint
from manualqa.jobrows import finish_job_row, heartbeat_is_stale
from training.models import DatasetSnapshot, SnapshotPair, TrainingJob

logger = logging.getLogger("training.jobs")

LOG_TAIL_CHARS = 8000


def _require_launcher(user) -> None:
    if user is not None and not user.has_perm("training.launch_trainingjob"):
        raise PermissionDenied("Launching training needs the Trainer role.")


def _config_for(preset: str, overrides: dict | None):
    from training.presets import PRESETS, TrainingConfig

    if preset not in PRESETS:
        raise ValidationError({"preset": f"Unknown preset {preset!r}: use {', '.join(PRESETS)}."})
    base = PRESETS[preset]
    try:
        config = TrainingConfig.from_dict({**base.config.to_dict(), **(overrides or {})})
    except (TypeError, ValueError) as exc:
        raise ValidationError({"hyperparameters": str(exc)}) from None
    return base, config


def training_job_validate(*, snapshot: DatasetSnapshot, base_model: str, config) -> list[str]:
    """Every reason this launch cannot run, as messages naming the problem."""
    import torch

    from training.presets import validate_config
    from training.trainer import bnb_cpu_4bit_available, model_context_length, resolve_base_model

    problems = []
    if snapshot.train_count < settings.TRAINING_MIN_TRAIN_PAIRS:
        problems.append(
            f"The snapshot has {snapshot.train_count} train pairs; training needs at least "
            f"{settings.TRAINING_MIN_TRAIN_PAIRS}."
        )
    context = None
    try:
        resolved = resolve_base_model(base_model, models_dir=settings.MODELS_DIR)
        context = model_context_length(resolved)
    except (FileNotFoundError, OSError, ValueError) as exc:
        problems.append(f"The base model cannot be found: {exc}")
    cuda = torch.cuda.is_available()
    problems += validate_config(
        config,
        cuda_available=cuda,
        bnb_cpu_4bit_ok=(not cuda) and config.method == "qlora" and bnb_cpu_4bit_available(),
        model_context=context,
    )
    return problems


@transaction.atomic
def training_job_create(
    *,
    snapshot: DatasetSnapshot,
    user,
    name: str = "",
    base_model: str = "",
    preset: str = "cpu_quick",
    overrides: dict | None = None,
    enqueue: bool = True,
) -> TrainingJob:
    """Validate a launch and queue it; every refusal names its problem."""
    _require_launcher(user)
    preset_obj, config = _config_for(preset, overrides)
    if not base_model and preset != "cpu_quick":
        base_model = preset_obj.base_model
    problems = training_job_validate(snapshot=snapshot, base_model=base_model, config=config)
    if problems:
        raise ValidationError(problems)
    job = TrainingJob.objects.create(
        name=name.strip() or f"{snapshot.name} v{snapshot.version} ({preset})",
        snapshot=snapshot,
        base_model=base_model,
        preset=preset,
        method=config.method,
        hyperparameters=config.to_dict(),
        created_by=user if user is not None and user.is_authenticated else None,
    )
    # A random suffix: a job must never resume another job's checkpoints, even when ids start
    # again (a rebuilt database) and the old output folders are still on the shared store.
    job.output_dir = str(settings.TRAINING_OUTPUT_DIR / f"job-{job.pk}-{secrets.token_hex(4)}")
    job.save(update_fields=["output_dir"])
    if enqueue:
        _enqueue(job)
    return job


def _enqueue(job: TrainingJob) -> None:
    from training.tasks import run_job

    transaction.on_commit(lambda: run_job.delay(job.pk))


def training_job_claim(*, job_id: int, task_id: str = "") -> bool:
    """Take a queued job, or a running one whose worker stopped beating. False: someone has it."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.TRAINING_STALE_AFTER_S)
    return bool(
        TrainingJob.objects.filter(pk=job_id)
        .filter(
            Q(status=TrainingJob.Status.QUEUED)
            | Q(status=TrainingJob.Status.RUNNING, heartbeat_at__lt=stale)
        )
        .update(
            status=TrainingJob.Status.RUNNING,
            started_at=now,
            heartbeat_at=now,
            celery_task_id=task_id,
            message="",
            finished_at=None,
        )
    )


def training_job_is_stale(job: TrainingJob) -> bool:
    return heartbeat_is_stale(
        job, running=TrainingJob.Status.RUNNING, stale_after_s=settings.TRAINING_STALE_AFTER_S
    )


def _records(snapshot: DatasetSnapshot, split: str) -> list[dict]:
    from training.services import snapshot_records

    return list(snapshot_records(snapshot, split=split))


def _finish(job: TrainingJob, status: str, *, message: str = "", trace: str = "") -> TrainingJob:
    return finish_job_row(job, status, message=message, trace=trace, eta_s=None)


def _append_log(job_id: int, line: str) -> None:
    job = TrainingJob.objects.only("log_tail").get(pk=job_id)
    tail = (job.log_tail + line.rstrip() + "\n")[-LOG_TAIL_CHARS:]
    TrainingJob.objects.filter(pk=job_id).update(log_tail=tail)


def training_job_execute(*, job_id: int, heartbeat_s: float = 2.0) -> TrainingJob:
    """Train a claimed job to the end (or to a cancel), then merge and register the model."""
    from training.presets import TrainingConfig
    from training.trainer import TrainingCancelled, train

    job = TrainingJob.objects.select_related("snapshot").get(pk=job_id)
    config = TrainingConfig.from_dict(job.hyperparameters)
    output_dir = Path(job.output_dir)
    checkpoints = output_dir / "checkpoints"
    resume = checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
    last_check = 0.0
    cancelled = False

    def should_stop() -> bool:
        nonlocal last_check, cancelled
        now = time.monotonic()
        if now - last_check >= heartbeat_s:
            last_check = now
            TrainingJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
            cancelled = TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists()
        return cancelled

    def on_progress(event) -> None:
        point = {
            "step": event.step,
            "loss": event.loss,
            "eval_loss": event.eval_loss,
            "learning_rate": event.learning_rate,
            "tokens_per_s": event.tokens_per_s,
        }
        current = TrainingJob.objects.only("metrics").get(pk=job.pk).metrics
        TrainingJob.objects.filter(pk=job.pk).update(
            step=event.step,
            total_steps=event.total_steps,
            epoch=event.epoch,
            eta_s=event.eta_s,
            metrics=[*current, point]
            if (event.loss is not None or event.eval_loss is not None)
            else current,
            heartbeat_at=timezone.now(),
        )

    _append_log(job.pk, f"{'Resuming' if resume else 'Starting'} {job.name} on {job.snapshot}")
    try:
        result = train(
            base_model=job.base_model,
            train_records=_records(job.snapshot, SnapshotPair.Split.TRAIN),
            eval_records=_records(job.snapshot, SnapshotPair.Split.EVAL),
            prompt_format=job.snapshot.prompt_format,
            system_prompt=job.snapshot.system_prompt,
            config=config,
            output_dir=output_dir,
            models_dir=settings.MODELS_DIR,
            on_progress=on_progress,
            should_stop=should_stop,
            resume_from_checkpoint=True if resume else None,
            on_log=lambda line: _append_log(job.pk, line),
        )
    except TrainingCancelled:
        _append_log(job.pk, "Cancelled; the last checkpoint is kept for Resume.")
        return _finish(job, TrainingJob.Status.CANCELLED, message="Cancelled by a user.")
    except (FileNotFoundError, ValueError) as exc:
        return _finish(job, TrainingJob.Status.FAILED, message=str(exc))
    except Exception as exc:
        logger.exception("training job %s crashed", job.pk)
        _append_log(job.pk, f"Crashed: {type(exc).__name__}: {exc}")
        return _finish(
            job,
            TrainingJob.Status.ERRORED,
            message=f"{type(exc).__name__}: {exc}",
            trace=traceback.format_exc(),
        )
    endpoint = _register(job, Path(result.merged_dir))
    TrainingJob.objects.filter(pk=job.pk).update(
        adapter_dir=str(result.adapter_dir),
        merged_dir=str(result.merged_dir),
        final_train_loss=result.final_train_loss,
        eval_loss=result.eval_loss,
        tokens_per_s=result.tokens_per_s,
        samples=result.samples,
        device=result.device,
        step=F("total_steps"),
        registered_endpoint=endpoint,
    )
    _append_log(job.pk, f"Merged model saved to {result.merged_dir}; registered as {endpoint}.")
    return _finish(job, TrainingJob.Status.SUCCEEDED)


def _register(job: TrainingJob, merged_dir: Path) -> LLMEndpoint:
    endpoint, _ = LLMEndpoint.objects.update_or_create(
        name=f"Fine-tuned #{job.pk}: {job.name}"[:100],
        defaults={
            "kind": LLMEndpoint.Kind.LOCAL,
            "model": str(merged_dir),
            "description": f"Merged LoRA model from training job #{job.pk} on {job.snapshot}",
            "max_concurrency": 1,
            "max_tokens": 256,
            "temperature": 0.2,
            "context_window": 2048,
            "timeout_s": 600,
        },
    )
    return endpoint


@transaction.atomic
def training_job_cancel(*, job: TrainingJob, user) -> TrainingJob:
    """Cancel a queued job now; ask a running one to stop at its next step (checkpoint kept)."""
    _require_launcher(user)
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status == TrainingJob.Status.QUEUED or training_job_is_stale(job):
        job.status = TrainingJob.Status.CANCELLED
        job.message = "Cancelled before it ran." if not job.started_at else "Cancelled."
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "message", "finished_at"])
    elif job.status == TrainingJob.Status.RUNNING:
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
    else:
        raise ValidationError(f"Job #{job.pk} is {job.get_status_display().lower()}; too late.")
    return job


@transaction.atomic
def training_job_resume(*, job: TrainingJob, user) -> TrainingJob:
    """Queue a cancelled, failed or stalled job again; it continues from its last checkpoint."""
    _require_launcher(user)
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    resumable = job.status in (
        TrainingJob.Status.CANCELLED,
        TrainingJob.Status.FAILED,
        TrainingJob.Status.ERRORED,
    ) or training_job_is_stale(job)
    if not resumable:
        raise ValidationError(
            f"Job #{job.pk} is {job.get_status_display().lower()}; only a cancelled, failed or "
            "stalled job can be resumed."
        )
    job.status = TrainingJob.Status.QUEUED
    job.cancel_requested = False
    job.message = ""
    job.traceback = ""
    job.finished_at = None
    job.save(update_fields=["status", "cancel_requested", "message", "traceback", "finished_at"])
    _enqueue(job)
    return job
