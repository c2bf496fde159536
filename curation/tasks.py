"""Celery tasks for ingestion. Thin: they take primary keys and call services."""

from __future__ import annotations

from celery import shared_task

from curation import services
from curation.models import IngestionRun


@shared_task(name="curation.ingest_run", bind=True)
def ingest_run(self, run_id: int) -> str:
    """Fetch, clean and chunk a run's pages (``default`` queue), then queue the embedding."""
    if not services.ingestion_run_claim(run_id=run_id, task_id=self.request.id or ""):
        return "already claimed"
    run = services.ingestion_run_process_pages(run_id=run_id)
    if run.status == IngestionRun.Status.EMBEDDING:
        embed_run_chunks.delay(run_id)
    return run.status


@shared_task(name="curation.embed_run_chunks")
def embed_run_chunks(run_id: int) -> str:
    """Embed the chunks a run left pending, in batches (``gpu`` queue)."""
    return services.ingestion_run_embed(run_id=run_id).status
