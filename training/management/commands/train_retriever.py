"""``python manage.py train_retriever SNAPSHOT_ID [--kind retriever|reranker] [--max-steps N]
[--wait | --here]``.

Queues a retrieval job for a gpu worker and prints its id; ``--wait`` then follows its progress
until it ends; ``--here`` trains it in this process instead (no worker needed).
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand

from manualqa.commands import (
    add_set_argument,
    fail_unless_succeeded,
    get_or_fail,
    overrides_from,
    service_errors,
)
from training import retrieval_jobs
from training.models import DatasetSnapshot, RetrievalJob


class Command(BaseCommand):
    help = (
        "Train a retriever (embedding model) or a reranker on a dataset snapshot's reviewed "
        "pairs and register it as a retrieval model."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("snapshot", type=int, help="Dataset snapshot id")
        parser.add_argument("--kind", default="retriever", choices=RetrievalJob.Kind.values)
        parser.add_argument("--name", default="")
        parser.add_argument("--base-model", default="", help="Local model folder")
        parser.add_argument("--max-steps", type=int, default=None)
        add_set_argument(
            parser,
            help="Override a hyperparameter, e.g. --set batch_size=32 --set hard_negatives=2",
        )
        how = parser.add_mutually_exclusive_group()
        how.add_argument("--wait", action="store_true", help="Follow the queued job to its end")
        how.add_argument("--here", action="store_true", help="Train in this process")

    def handle(self, *args, **options) -> None:
        snapshot = get_or_fail(
            DatasetSnapshot, f"No dataset snapshot #{options['snapshot']}.", pk=options["snapshot"]
        )
        overrides = {}
        if options["max_steps"] is not None:
            overrides["max_steps"] = options["max_steps"]
        overrides.update(overrides_from(options["set"], json_only=True))
        with service_errors():
            job = retrieval_jobs.retrieval_job_create(
                snapshot=snapshot,
                user=None,
                kind=options["kind"],
                name=options["name"],
                base_model=options["base_model"],
                hyperparameters=overrides,
                enqueue=not options["here"],
            )
        self.stdout.write(f"Retrieval job #{job.pk}: {job.name}")
        if options["here"]:
            retrieval_jobs.retrieval_job_claim(job_id=job.pk)
            job = retrieval_jobs.retrieval_job_execute(job_id=job.pk)
        elif options["wait"]:
            job = self._follow(job)
        else:
            self.stdout.write("Queued for a gpu worker.")
            return
        fail_unless_succeeded(job, f"Retrieval job #{job.pk}")
        self.stdout.write(self.style.SUCCESS(f"Registered {job.registered_model}."))
        self.stdout.write(json.dumps(job.metrics, sort_keys=True))

    def _follow(self, job: RetrievalJob) -> RetrievalJob:
        shown = None
        while True:
            job.refresh_from_db()
            state = (job.status, job.step)
            if state != shown:
                loss = f", loss {job.loss:.4f}" if job.loss is not None else ""
                self.stdout.write(f"  {job.status}: step {job.step}/{job.total_steps}{loss}")
                shown = state
            if job.is_finished:
                return job
            time.sleep(2)
