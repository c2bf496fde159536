"""Celery tasks for training (``gpu`` queue). Thin: primary keys in, services called."""

from __future__ import annotations

from celery import shared_task

from manualqa.jobs import queues
from training import jobs


@shared_task(name="training.run_job", bind=True)
def run_job(self, job_id: int) -> str:
    """Train, merge and register one job. Never retried blindly: a crash is recorded."""
    if not queues.claimed_by(self, jobs.training_job_claim, job_id=job_id):
        return "already claimed"
    return jobs.training_job_execute(job_id=job_id).status


@shared_task(name="evaluation.run_evaluation", bind=True)
def run_evaluation(self, run_id: int) -> str:
    """Run one evaluation (``default`` queue: its name is outside the ``training.*`` route).

    Never retried blindly: a crash is recorded on the run; a redelivered task finds the run
    claimed and does nothing.
    """
    from training import evaluation

    if not queues.claimed_by(self, evaluation.evaluation_run_claim, run_id=run_id):
        return "already claimed"
    return evaluation.evaluation_run_execute(run_id=run_id).status
