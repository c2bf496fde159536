"""Ingestion through a real Celery worker process (not eager mode)."""

from __future__ import annotations

import pytest
from django.db import transaction

from curation import services
from curation.models import DocumentChunk, IngestionRun
from curation.tasks import ingest_run
from tests.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_queued_run_is_ingested_and_embedded_by_the_worker(celery_worker, sample_start_url):
    manual = services.manual_get_or_create(name="Worker manual")
    with transaction.atomic():
        run = services.ingestion_run_create(
            manual=manual, source=sample_start_url, options={"min_delay_s": 0}
        )
    # The task was sent on commit; the worker process claims it and then queues the embedding
    # on the gpu queue, which the same worker consumes.
    wait_for(
        lambda: IngestionRun.objects.get(pk=run.pk).is_finished,
        timeout=180,
        what="the worker to finish the run",
    )
    run.refresh_from_db()
    assert run.status == IngestionRun.Status.SUCCEEDED, run.message or run.traceback
    assert run.celery_task_id
    chunks = DocumentChunk.objects.filter(document__manual=manual)
    assert chunks.count() == run.chunks_created == run.chunks_embedded > 0
    assert not chunks.filter(embedding__isnull=True).exists()


def test_a_redelivered_task_does_not_run_the_job_twice(celery_worker, sample_start_url):
    manual = services.manual_get_or_create(name="Redelivery")
    run = services.ingestion_run_create(
        manual=manual, source=sample_start_url, options={"min_delay_s": 0}, enqueue=False
    )
    assert services.ingestion_run_claim(run_id=run.pk)  # as if a first delivery is running

    result = ingest_run.delay(run.pk).get(timeout=60)

    assert result == "already claimed"
    run.refresh_from_db()
    assert run.status == IngestionRun.Status.RUNNING
    assert run.pages_done == 0
