"""Celery tasks for training (``gpu`` queue). Thin: primary keys in, services called."""

from __future__ import annotations

from celery import shared_task

from training import jobs


@shared_task(name="training.run_job", bind=True)
def run_job(self, job_id: int) -> str:
    """Train, merge and register one job. Never retried blindly: a crash is recorded."""
    if not jobs.training_job_claim(job_id=job_id, task_id=self.request.id or ""):
        return "already claimed"
    return jobs.training_job_execute(job_id=job_id).status
