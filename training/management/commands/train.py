"""``python manage.py train SNAPSHOT_ID [--preset cpu_quick] [--max-steps N] [--queue]``.

``python manage.py train --job ID`` runs a job that was created with ``--create-only`` (or from
the UI with no worker taking it): the way to train one job across several GPUs is
``accelerate launch --num_processes N manage.py train --job ID``. Rank 0 claims the job and
writes its progress; the other ranks wait for the claim and train alongside it.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from manualqa.commands import (
    add_set_argument,
    fail_unless_succeeded,
    get_or_fail,
    overrides_from,
    service_errors,
)
from training import jobs
from training.models import DatasetSnapshot, TrainingJob


class Command(BaseCommand):
    help = (
        "Fine-tune a model with LoRA/QLoRA on a dataset snapshot, merge it and register it as a "
        "local LLM endpoint. Runs here and prints progress; --queue hands it to a gpu worker."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("snapshot", type=int, nargs="?", help="Dataset snapshot id")
        parser.add_argument("--job", type=int, help="Run this existing queued job instead")
        parser.add_argument(
            "--create-only", action="store_true", help="Create the job, print its id, run nothing"
        )
        parser.add_argument("--preset", default="cpu_quick")
        parser.add_argument("--base-model", default="", help="Local folder or Hub id")
        parser.add_argument("--name", default="")
        parser.add_argument("--max-steps", type=int, default=None)
        parser.add_argument("--epochs", type=float, default=None)
        parser.add_argument("--max-length", type=int, default=None)
        add_set_argument(
            parser, help="Override any hyperparameter, e.g. --set lora_r=16 --set packing=true"
        )
        parser.add_argument("--queue", action="store_true")

    def handle(self, *args, **options) -> None:
        if options["job"] is not None:
            return self._run_existing(options["job"])
        if options["snapshot"] is None:
            raise CommandError("Give a dataset snapshot id, or --job ID to run an existing job.")
        snapshot = get_or_fail(
            DatasetSnapshot, f"No dataset snapshot #{options['snapshot']}.", pk=options["snapshot"]
        )
        overrides = {}
        for key, flag in (("max_steps", "max_steps"), ("num_train_epochs", "epochs")):
            if options[flag] is not None:
                overrides[key] = options[flag]
        if options["max_length"] is not None:
            overrides["max_length"] = options["max_length"]
        overrides.update(overrides_from(options["set"]))
        with service_errors():
            job = jobs.training_job_create(
                snapshot=snapshot,
                user=None,
                name=options["name"],
                base_model=options["base_model"],
                preset=options["preset"],
                overrides=overrides,
                enqueue=options["queue"] and not options["create_only"],
            )
        if options["create_only"]:
            self.stdout.write(f"Created training job #{job.pk} (not queued).")
            return
        if options["queue"]:
            self.stdout.write(f"Queued training job #{job.pk}.")
            return
        self.stdout.write(f"Training job #{job.pk}: {job.name}")
        jobs.training_job_claim(job_id=job.pk)
        self._execute(job.pk)

    def _run_existing(self, job_id: int) -> None:
        if not TrainingJob.objects.filter(pk=job_id).exists():
            raise CommandError(f"No training job #{job_id}.")
        if jobs.is_main_rank():
            if not jobs.training_job_claim(job_id=job_id):
                status = TrainingJob.objects.get(pk=job_id).status
                raise CommandError(f"Training job #{job_id} is {status}; it cannot be run now.")
        else:  # wait for rank 0 to claim it
            deadline = time.monotonic() + 600
            while not TrainingJob.objects.filter(pk=job_id, status="running").exists():
                if time.monotonic() > deadline:
                    raise CommandError(f"Rank 0 never claimed training job #{job_id}.")
                time.sleep(1)
        self._execute(job_id)

    def _execute(self, job_id: int) -> None:
        job = jobs.training_job_execute(job_id=job_id)
        if not jobs.is_main_rank():
            return
        fail_unless_succeeded(job, "Training")
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: train loss {job.final_train_loss:.4f}, eval loss "
                f"{job.eval_loss if job.eval_loss is not None else '-'}; merged model in "
                f"{job.merged_dir}; endpoint {job.registered_endpoint}."
            )
        )
