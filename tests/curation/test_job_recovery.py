"""Jobs recover from a dead worker (security review M5): a task the broker delivers again takes
back the run it left running, and a stalled ingestion can be run again from the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from curation import services
from curation.models import IngestionRun
from manualqa.jobs import lifecycle
from tests.conftest import SAMPLE_SITE

pytestmark = pytest.mark.django_db

FAST = {"min_delay_s": 0, "backoff_s": 0.01, "retries": 0}


def queued_run() -> IngestionRun:
    manual = services.manual_get_or_create(name="Recovery manual")
    return services.ingestion_run_create(
        manual=manual, source=str(SAMPLE_SITE / "manual"), options=FAST, enqueue=False
    )


def test_a_redelivered_ingest_task_takes_over_its_dead_run():
    run = queued_run()
    assert services.ingestion_run_claim(run_id=run.pk, task_id="task-T")
    # The worker dies mid-crawl: the row says running, with the counts it had reached.
    IngestionRun.objects.filter(pk=run.pk).update(pages_done=3, documents_created=3)

    another = services.ingestion_run_claim(run_id=run.pk, task_id="task-U", redelivered=True)
    plain_retry = services.ingestion_run_claim(run_id=run.pk, task_id="task-T")
    again = services.ingestion_run_claim(run_id=run.pk, task_id="task-T", redelivered=True)

    assert (another, plain_retry, again) == (False, False, True)
    run.refresh_from_db()
    assert (run.status, run.pages_done, run.documents_created) == ("running", 0, 0)
    run = services.ingestion_run_process_pages(run_id=run.pk)
    assert run.status == IngestionRun.Status.EMBEDDING
    assert run.pages_done > 3 and run.manual.documents.count() == run.pages_done


def test_the_one_claim_takes_back_its_own_redelivered_task_only():
    """Generation, training and evaluation claim through the same lifecycle.claim, with a
    stale-after: a redelivery comes within seconds, while the dead worker's heartbeat is still
    fresh, so without this it would be dropped and the run would wait for a person."""
    run = queued_run()
    assert lifecycle.claim(IngestionRun, run.pk, task_id="T")
    assert not lifecycle.claim(IngestionRun, run.pk, task_id="T")
    assert lifecycle.claim(IngestionRun, run.pk, task_id="T", redelivered=True)


def test_a_stale_ingestion_run_can_be_run_again_from_the_admin(admin_client, settings):
    run = queued_run()
    services.ingestion_run_claim(run_id=run.pk, task_id="dead-task")
    silence = timedelta(seconds=settings.INGESTION_STALE_AFTER_S + 60)
    IngestionRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - silence)

    response = admin_client.post(
        reverse("admin:curation_ingestionrun_changelist"),
        {"action": "ingest_again", "_selected_action": [run.pk]},
    )

    assert response.status_code == 302
    run.refresh_from_db()
    again = IngestionRun.objects.exclude(pk=run.pk).get()
    assert run.status == IngestionRun.Status.FAILED and "heartbeats" in run.message
    assert (again.status, again.source, again.manual_id) == ("queued", run.source, run.manual_id)
    assert again.options == run.options


def test_a_live_run_is_not_run_twice(admin_client):
    run = queued_run()
    services.ingestion_run_claim(run_id=run.pk, task_id="live-task")

    admin_client.post(
        reverse("admin:curation_ingestionrun_changelist"),
        {"action": "ingest_again", "_selected_action": [run.pk]},
    )

    assert IngestionRun.objects.count() == 1
