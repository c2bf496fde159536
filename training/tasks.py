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


@shared_task(name="training.export_model", bind=True)
def export_model(self, job_id: int, quant: str) -> str:
    """Export a job's merged model to GGUF and register it; the job's log tells how it ended.
    Idempotent: a redelivery writes the same file again (renamed into place) and updates the
    same endpoint."""
    from training.exports import model_export
    from training.models import TrainingJob

    job = TrainingJob.objects.select_related("snapshot").get(pk=job_id)
    try:
        export = model_export(job=job, quant=quant)
    except Exception as exc:  # the request was checked; record what went wrong for the page
        jobs.job_log_append(job_id, f"GGUF export ({quant}) failed: {type(exc).__name__}: {exc}")
        return "failed"
    jobs.job_log_append(
        job_id,
        f"GGUF export ({quant}) written to {export.gguf_path} "
        f"({export.size_bytes / 2**20:.1f} MiB) with {export.modelfile_path.name}; registered "
        f"as the endpoint {export.endpoint.name}."
        + "".join(f" Warning: {warning}." for warning in export.warnings),
    )
    return "succeeded"


@shared_task(name="training.run_retrieval_job", bind=True)
def run_retrieval_job(self, job_id: int) -> str:
    """Train one retriever or reranker and register it. A crash is recorded, never retried."""
    from training import retrieval_jobs

    if not queues.claimed_by(self, retrieval_jobs.retrieval_job_claim, job_id=job_id):
        return "already claimed"
    return retrieval_jobs.retrieval_job_execute(job_id=job_id).status
