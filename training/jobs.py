"""Writes for training jobs: create (validated), claim, execute, cancel, resume, register.

The training itself is ``training.trainer.train`` (plain, no Django). This module validates a
launch before anything is queued, turns the trainer's progress events into updates of the job's
row, and registers the merged model as a ``local`` LLM endpoint when the job succeeds.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from curation.models import LLMEndpoint
from manualqa import roles
from manualqa.jobs import lifecycle, queues, runner
from training.models import DatasetSnapshot, SavedPreset, SnapshotPair, TrainingJob
from training.raft import raft_problems

logger = logging.getLogger("training.jobs")

LOG_TAIL_CHARS = 8000


def _require_launcher(user) -> None:
    roles.require(user, "training.launch_trainingjob", "Launching training needs the Trainer role.")


def _config_for(preset: str, overrides: dict | None):
    """The preset (built-in, or one a user saved) and the config with ``overrides`` applied."""
    from training.presets import PRESETS, Preset, TrainingConfig

    if preset in PRESETS:
        base = PRESETS[preset]
    else:
        saved = SavedPreset.objects.filter(key=preset).first()
        if saved is None:
            known = [*PRESETS, *SavedPreset.objects.values_list("key", flat=True)]
            raise ValidationError({"preset": f"Unknown preset {preset!r}: use {', '.join(known)}."})
        parent = PRESETS[saved.base_preset]
        base = Preset(
            name=saved.key,
            label=saved.label,
            base_model=saved.base_model,
            config=TrainingConfig.from_dict({**parent.config.to_dict(), **saved.overrides}),
            description=saved.description,
        )
    try:
        config = TrainingConfig.from_dict({**base.config.to_dict(), **(overrides or {})})
    except (TypeError, ValueError) as exc:
        raise ValidationError({"hyperparameters": str(exc)}) from None
    return base, config


def saved_preset_create(
    *,
    user,
    label: str,
    base_preset: str,
    base_model: str = "",
    overrides: dict | None = None,
    description: str = "",
) -> SavedPreset:
    """Keep a recipe under a name of its own, so it can be launched again from the form or API.

    The overrides are checked now (unknown keys, wrong types, bad values), not at launch.
    """
    from django.utils.text import slugify

    from training.presets import PRESETS, validate_config

    _require_launcher(user)
    parent = SavedPreset.objects.filter(key=base_preset).first()
    if parent is not None:  # saving a variant of a saved preset: flatten onto its built-in one
        base_preset = parent.base_preset
        overrides = {**parent.overrides, **(overrides or {})}
        base_model = base_model or parent.base_model
    if base_preset not in PRESETS:
        raise ValidationError(
            {"base_preset": f"Unknown preset {base_preset!r}: use {', '.join(PRESETS)}."}
        )
    key = slugify(label)[:60]
    if not key:
        raise ValidationError({"label": "A saved preset needs a name with letters or digits."})
    if key.replace("-", "_") in PRESETS or SavedPreset.objects.filter(key=key).exists():
        raise ValidationError({"label": f"A preset named {key!r} already exists."})
    _, config = _config_for(base_preset, overrides)
    problems = validate_config(
        config, cuda_available=True, bnb_cpu_4bit_ok=True, model_context=None
    )
    if problems:
        raise ValidationError({"overrides": problems})
    return SavedPreset.objects.create(
        key=key,
        label=label.strip(),
        description=description.strip(),
        base_preset=base_preset,
        base_model=base_model.strip(),
        overrides=dict(overrides or {}),
        created_by=roles.recorded_user(user),
    )


def _tracking_environ() -> dict[str, str]:
    """The tracking variables (W&B, MLflow) as the settings read them from the environment."""
    from training.tracking import TRACKING_VARIABLES

    return {name: getattr(settings, name) for name in TRACKING_VARIABLES}


def _requested_trackers(config) -> str | tuple[str, ...]:
    """What ``config.report_to`` asks for; its default, "auto", defers to TRAINING_REPORT_TO."""
    return settings.TRAINING_REPORT_TO if config.report_to == "auto" else config.report_to


def training_job_validate(*, snapshot: DatasetSnapshot, base_model: str, config) -> list[str]:
    """Every reason this launch cannot run, as messages naming the problem."""
    from training.capabilities import training_capabilities
    from training.presets import validate_config
    from training.tracking import tracker_problems
    from training.trainer import model_context_length, model_has_chat_template, resolve_base_model

    problems = []
    if snapshot.train_count < settings.TRAINING_MIN_TRAIN_PAIRS:
        problems.append(
            f"The snapshot has {snapshot.train_count} train pairs; training needs at least "
            f"{settings.TRAINING_MIN_TRAIN_PAIRS}."
        )
    context = None
    resolved = None
    try:
        resolved = resolve_base_model(base_model, models_dir=settings.MODELS_DIR)
        context = model_context_length(resolved)
    except (FileNotFoundError, OSError, ValueError) as exc:
        problems.append(f"The base model cannot be found: {exc}")
    verdict = training_capabilities(needs_bnb_probe=config.method == "qlora")
    found = validate_config(
        config,
        cuda_available=verdict.cuda,
        bnb_cpu_4bit_ok=verdict.bnb_cpu_4bit,
        model_context=context,
    )
    if found and verdict.source == "workers":
        found.append("(Checked against the gpu workers that are running now.)")
    problems += found
    problems += tracker_problems(_requested_trackers(config), environ=_tracking_environ())
    if (
        snapshot.prompt_format == "chat_template"
        and resolved is not None
        and model_has_chat_template(resolved) is False
    ):
        problems.append(
            f"The base model {base_model or 'SmolLM2-135M-Instruct'} has no chat template, so "
            "it cannot train on a chat_template snapshot; build the snapshot in the seed_inst "
            "or alpaca format."
        )
    if config.dataset_format == "raft":
        problems += raft_problems(snapshot)
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
    """Validate a launch and queue it; every refusal names its problem.

    The job stores the experiment trackers it will log to, resolved now (``report_to`` "auto"
    becomes the list of those installed and configured), so its row says where its logs are.
    """
    from training.tracking import resolve_report_to

    _require_launcher(user)
    preset_obj, config = _config_for(preset, overrides)
    if not base_model:
        base_model = preset_obj.base_model
    problems = training_job_validate(snapshot=snapshot, base_model=base_model, config=config)
    if problems:
        raise ValidationError(problems)
    trackers = resolve_report_to(_requested_trackers(config), environ=_tracking_environ())
    config = dataclasses.replace(config, report_to=trackers)
    job = TrainingJob.objects.create(
        name=name.strip() or f"{snapshot.name} v{snapshot.version} ({preset})",
        snapshot=snapshot,
        base_model=base_model,
        preset=preset,
        method=config.method,
        hyperparameters=config.to_dict(),
        created_by=roles.recorded_user(user),
    )
    # A random suffix: a job must never resume another job's checkpoints, even when ids start
    # again (a rebuilt database) and the old output folders are still on the shared store.
    job.output_dir = str(settings.TRAINING_OUTPUT_DIR / f"job-{job.pk}-{secrets.token_hex(4)}")
    job.save(update_fields=["output_dir"])
    if enqueue:
        _enqueue(job)
    return job


def _job_hyperparameters(job: TrainingJob) -> dict:
    """The job's stored hyperparameters; a job launched before runs could log to trackers has
    no ``report_to`` and logs to none, also when it is resumed."""
    return {"report_to": "none", **(job.hyperparameters or {})}


def training_job_tracking(job: TrainingJob) -> dict:
    """Where the job's run is logged, for its page and the API: ``report_to`` (the trackers, as
    the launch resolved them), ``tensorboard_dir`` (its event files, for ``tensorboard
    --logdir``; "" without TensorBoard) and ``run_name`` (the run's name in W&B and MLflow)."""
    from training.tracking import TENSORBOARD_DIR_NAME

    report_to = _job_hyperparameters(job)["report_to"]
    if isinstance(report_to, str):
        report_to = [] if report_to in ("auto", "none") else [report_to]
    output_dir = Path(job.output_dir) if job.output_dir else None
    return {
        "report_to": list(report_to),
        "tensorboard_dir": str(output_dir / TENSORBOARD_DIR_NAME)
        if output_dir is not None and "tensorboard" in report_to
        else "",
        "run_name": output_dir.name if output_dir is not None else "",
    }


def _enqueue(job: TrainingJob) -> None:
    from training.tasks import run_job

    queues.enqueue(run_job, job.pk, gpu=True)


def training_job_claim(*, job_id: int, task_id: str = "", redelivered: bool = False) -> bool:
    """Take a queued job, or a running one whose worker stopped beating (or, redelivered, the
    one this task left). False: someone has it."""
    return lifecycle.claim(TrainingJob, job_id, task_id=task_id, redelivered=redelivered)


def training_job_is_stale(job: TrainingJob) -> bool:
    return lifecycle.is_stale(job)


def training_jobs_fail_stale() -> int:
    """Mark failed every running job whose worker stopped beating; return how many.

    A worker beats every ``TRAINING_HEARTBEAT_S`` from a thread of its own, through model
    loading, training and merging alike, so silence longer than ``TRAINING_STALE_AFTER_S``
    means the process is gone (killed, out of memory, machine lost). The periodic
    ``manualqa.reap_stale_jobs`` task calls this. Each update is conditional on the heartbeat
    it read, so a worker that beats in between keeps its job.
    """

    def message(job: TrainingJob, quiet: float) -> str:
        beat = timezone.localtime(job.heartbeat_at)
        return (
            f"The worker stopped sending heartbeats at {beat:%H:%M:%S} "
            f"({quiet:.0f} s of silence, more than the {TrainingJob.stale_after_s()} s "
            f"allowed) at step {job.step}: it was probably killed or lost its machine. Resume "
            "continues from the last checkpoint."
        )

    return lifecycle.fail_stale(
        TrainingJob,
        message=message,
        on_failed=lambda job, text: job_log_append(job.pk, text),
    )


def _records(snapshot: DatasetSnapshot, split: str, config, log=None) -> list[dict]:
    """The records a run trains (``train``) or evaluates (``eval``) on: the snapshot's pairs in
    its format, or RAFT records built from them (``config.dataset_format``). ``log``, where
    given, is told what a RAFT split holds."""
    if config.dataset_format == "raft":
        from training.raft import raft_records

        built = raft_records(snapshot, split=split, options=config.raft_options())
        if log is not None:
            skipped = len(built.skipped_pair_ids)
            log(
                f"RAFT {split} records: {len(built.records)} ({built.with_oracle} with their "
                f"source passage, {len(built.records) - built.with_oracle} answered with the "
                f"decline), {config.raft_passages} passages each, {config.raft_distractors} "
                "distractors"
                + (f"; {skipped} pairs without a known source chunk left out" if skipped else "")
                + "."
            )
        return built.records
    from training.services import snapshot_records

    return list(snapshot_records(snapshot, split=split))


def _finish(job: TrainingJob, status: str, *, message: str = "", trace: str = "") -> TrainingJob:
    # Fenced by the task that claimed the job: a superseded worker writes no outcome.
    return lifecycle.finish(
        job, status, message=message, trace=trace, fence=job.celery_task_id, eta_s=None
    )


def job_log_append(job_id: int, line: str) -> None:
    job = TrainingJob.objects.only("log_tail").get(pk=job_id)
    tail = (job.log_tail + line.rstrip() + "\n")[-LOG_TAIL_CHARS:]
    TrainingJob.objects.filter(pk=job_id).update(log_tail=tail)


def training_job_execute(*, job_id: int, heartbeat_s: float = 2.0) -> TrainingJob:
    """Train a claimed job to the end (or to a cancel), then merge and register the model.

    ``heartbeat_s``: how often the step callback looks for a cancel request. The liveness
    heartbeat is a thread of its own (``TRAINING_HEARTBEAT_S``).
    """
    from training.presets import TrainingConfig
    from training.trainer import latest_complete_checkpoint

    job = TrainingJob.objects.select_related("snapshot").get(pk=job_id)
    config = TrainingConfig.from_dict(_job_hyperparameters(job))
    output_dir = Path(job.output_dir)
    # A worker killed while saving leaves a half-written checkpoint: only complete ones count.
    resume = latest_complete_checkpoint(output_dir / "checkpoints") is not None
    should_stop = runner.stop_check(
        TrainingJob,
        job.pk,
        heartbeat_s,
        fence=job.celery_task_id,
        on_superseded=lambda: logger.warning(
            "training job %s was claimed by another task; stopping", job.pk
        ),
    )

    def on_progress(event) -> None:
        point = {
            "step": event.step,
            "loss": event.loss,
            "eval_loss": event.eval_loss,
            "learning_rate": event.learning_rate,
            "tokens_per_s": event.tokens_per_s,
        }
        current = TrainingJob.objects.only("metrics").get(pk=job.pk).metrics
        TrainingJob.objects.filter(pk=job.pk, celery_task_id=job.celery_task_id).update(
            step=event.step,
            total_steps=event.total_steps,
            epoch=event.epoch,
            eta_s=event.eta_s,
            metrics=[*current, point]
            if (event.loss is not None or event.eval_loss is not None)
            else current,
            heartbeat_at=timezone.now(),
        )

    if not is_main_rank():
        # Another rank of an ``accelerate launch`` run: train alongside rank 0, write nothing.
        _train(job, config, output_dir, resume)
        return TrainingJob.objects.get(pk=job.pk)
    job_log_append(job.pk, f"{'Resuming' if resume else 'Starting'} {job.name} on {job.snapshot}")
    with runner.beating(job, settings.TRAINING_HEARTBEAT_S, fence=job.celery_task_id):
        return _run(job, config, output_dir, resume, on_progress, should_stop)


def is_main_rank() -> bool:
    """True unless this process is a non-zero rank of a multi-process (``accelerate``) run."""
    return int(os.environ.get("RANK", "0")) == 0


def _train(job, config, output_dir, resume, **callbacks):
    """``training.trainer.train`` on the job's snapshot, as the job's row describes it."""
    from training.trainer import train

    log = (lambda line: job_log_append(job.pk, line)) if is_main_rank() else None
    return train(
        base_model=job.base_model,
        train_records=_records(job.snapshot, SnapshotPair.Split.TRAIN, config, log),
        eval_records=_records(job.snapshot, SnapshotPair.Split.EVAL, config, log),
        prompt_format=job.snapshot.prompt_format,
        system_prompt=job.snapshot.system_prompt,
        config=config,
        output_dir=output_dir,
        models_dir=settings.MODELS_DIR,
        resume_from_checkpoint=True if resume else None,
        **callbacks,
    )


def _push_to_hub(job: TrainingJob, merged_dir: Path) -> str:
    """Upload the merged model to ``TRAINING_HUB_NAMESPACE/<job folder>`` (private) when
    ``HF_TOKEN`` and the namespace are set; return the repo id, or "" when not configured.
    A failed upload is the caller's to log: the model on disk and the job's success stand."""
    namespace = settings.TRAINING_HUB_NAMESPACE
    if not (settings.HF_TOKEN and namespace):
        return ""
    from huggingface_hub import HfApi

    repo_id = f"{namespace}/manualqa-{Path(job.output_dir).name}"
    api = HfApi(token=settings.HF_TOKEN, endpoint=os.environ.get("HF_ENDPOINT") or None)
    api.create_repo(repo_id, private=True, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(merged_dir))
    return repo_id


def _run(job, config, output_dir, resume, on_progress, should_stop) -> TrainingJob:
    from training.trainer import TrainingCancelled

    try:
        result = _train(
            job,
            config,
            output_dir,
            resume,
            on_progress=on_progress,
            should_stop=should_stop,
            on_log=lambda line: job_log_append(job.pk, line),
        )
    except TrainingCancelled:
        job_log_append(job.pk, "Cancelled; the last checkpoint is kept for Resume.")
        return _finish(job, TrainingJob.Status.CANCELLED, message="Cancelled by a user.")
    except (FileNotFoundError, ValueError) as exc:
        return _finish(job, TrainingJob.Status.FAILED, message=str(exc))
    except Exception as exc:
        job_log_append(job.pk, f"Crashed: {type(exc).__name__}: {exc}")
        return runner.errored(job, exc, eta_s=None)
    try:
        with transaction.atomic():
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
    except Exception as exc:  # the model is on disk; say where, so nothing is lost
        logger.exception("training job %s could not register its model", job.pk)
        saved_in = f"the merged model is in {result.merged_dir}"
        return runner.unregistered(
            job, exc, saved_in=saved_in, fence=job.celery_task_id, eta_s=None
        )
    job_log_append(job.pk, f"Merged model saved to {result.merged_dir}; registered as {endpoint}.")
    try:
        repo_id = _push_to_hub(job, Path(result.merged_dir))
    except Exception as exc:  # the Hub is optional: say so, keep the local model and success
        logger.warning("training job %s: push to the Hub failed: %s", job.pk, exc)
        job_log_append(job.pk, f"Push to the Hugging Face Hub failed: {type(exc).__name__}: {exc}")
    else:
        if repo_id:
            job_log_append(job.pk, f"Pushed the merged model to the Hub as {repo_id} (private).")
    return _finish(job, TrainingJob.Status.SUCCEEDED)


def _register(job: TrainingJob, merged_dir: Path) -> LLMEndpoint:
    endpoint, _ = LLMEndpoint.objects.update_or_create(
        name=f"Fine-tuned #{job.pk}: {job.name}"[:100],
        defaults={
            "kind": LLMEndpoint.Kind.LOCAL,
            "model": str(merged_dir),
            "description": f"Merged LoRA model from training job #{job.pk} on {job.snapshot}"
            + (
                " (RAFT: trained to answer from retrieved passages; serve it in a RAG assistant)"
                if job.hyperparameters.get("dataset_format") == "raft"
                else ""
            ),
            "max_concurrency": 1,
            "max_tokens": 256,
            "temperature": 0.2,
            "context_window": 2048,
            "timeout_s": 600,
            # How chat must prompt it: the format and system prompt it was trained with.
            "prompt_format": job.snapshot.prompt_format,
            "system_prompt": job.snapshot.system_prompt,
        },
    )
    return endpoint


@transaction.atomic
def training_job_cancel(*, job: TrainingJob, user) -> TrainingJob:
    """Cancel a queued job now; ask a running one to stop at its next step (checkpoint kept)."""
    _require_launcher(user)
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status == TrainingJob.Status.QUEUED or training_job_is_stale(job):
        message = "Cancelled before it ran." if not job.started_at else "Cancelled."
        return lifecycle.cancel_now(job, message=message)
    if job.status == TrainingJob.Status.RUNNING:
        return lifecycle.request_cancel(job)
    raise ValidationError(f"Job #{job.pk} is {job.get_status_display().lower()}; too late.")


@transaction.atomic
def training_job_resume(*, job: TrainingJob, user) -> TrainingJob:
    """Queue a cancelled, failed or stalled job again; it continues from its last checkpoint."""
    _require_launcher(user)
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    lifecycle.require_resumable(job, stale=training_job_is_stale(job), noun="job")
    lifecycle.requeue(job)
    _enqueue(job)
    return job
