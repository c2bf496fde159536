"""``python manage.py train SNAPSHOT_ID [--preset cpu_quick] [--max-steps N] [--queue]``."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training import jobs
from training.models import DatasetSnapshot, TrainingJob


class Command(BaseCommand):
    help = (
        "Fine-tune a model with LoRA/QLoRA on a dataset snapshot, merge it and register it as a "
        "local LLM endpoint. Runs here and prints progress; --queue hands it to a gpu worker."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("snapshot", type=int, help="Dataset snapshot id")
        parser.add_argument("--preset", default="cpu_quick")
        parser.add_argument("--base-model", default="", help="Local folder or Hub id")
        parser.add_argument("--name", default="")
        parser.add_argument("--max-steps", type=int, default=None)
        parser.add_argument("--epochs", type=float, default=None)
        parser.add_argument("--max-length", type=int, default=None)
        parser.add_argument(
            "--set", action="append", default=[], metavar="KEY=JSON",
            help="Override any hyperparameter, e.g. --set lora_r=16 --set packing=true",
        )  # fmt: skip
        parser.add_argument("--queue", action="store_true")

    def handle(self, *args, **options) -> None:
        try:
            snapshot = DatasetSnapshot.objects.get(pk=options["snapshot"])
        except DatasetSnapshot.DoesNotExist:
            raise CommandError(f"No dataset snapshot #{options['snapshot']}.") from None
        overrides = {}
        for key, flag in (("max_steps", "max_steps"), ("num_train_epochs", "epochs")):
            if options[flag] is not None:
                overrides[key] = options[flag]
        if options["max_length"] is not None:
            overrides["max_length"] = options["max_length"]
        for item in options["set"]:
            key, _, raw = item.partition("=")
            try:
                overrides[key.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                overrides[key.strip()] = raw
        try:
            job = jobs.training_job_create(
                snapshot=snapshot,
                user=None,
                name=options["name"],
                base_model=options["base_model"],
                preset=options["preset"],
                overrides=overrides,
                enqueue=options["queue"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        if options["queue"]:
            self.stdout.write(f"Queued training job #{job.pk}.")
            return
        self.stdout.write(f"Training job #{job.pk}: {job.name}")
        jobs.training_job_claim(job_id=job.pk)
        job = jobs.training_job_execute(job_id=job.pk)
        if job.status != TrainingJob.Status.SUCCEEDED:
            raise CommandError(f"Training {job.status}: {job.message}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: train loss {job.final_train_loss:.4f}, eval loss "
                f"{job.eval_loss if job.eval_loss is not None else '-'}; merged model in "
                f"{job.merged_dir}; endpoint {job.registered_endpoint}."
            )
        )
