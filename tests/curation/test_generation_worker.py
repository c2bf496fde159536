"""Generation through real Celery worker processes: cancel, and a worker killed mid-run."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import transaction

from curation import services
from curation.models import ChunkGeneration, GenerationRun, QAPair
from tests.conftest import wait_for
from tests.curation.generation_support import make_manual, openai_endpoint, scripted_responder
from tests.fakeopenai import FakeOpenAI

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTIONS = 2


@pytest.fixture
def slow_llm():
    # Slow enough that a run is caught in the middle, fast enough to finish in seconds.
    with FakeOpenAI(responder=scripted_responder, latency_s=0.4) as server:
        yield server


def start_run(manual, endpoint) -> GenerationRun:
    with transaction.atomic():
        return services.generation_run_create(
            manual=manual, endpoint=endpoint, questions_per_chunk=QUESTIONS
        )


def refreshed(run: GenerationRun) -> GenerationRun:
    return GenerationRun.objects.get(pk=run.pk)


def assert_only_complete_chunks_have_pairs(run: GenerationRun) -> None:
    per_chunk = Counter(QAPair.objects.filter(generation_run=run).values_list("chunk", flat=True))
    for result in ChunkGeneration.objects.filter(run=run):
        expected = QUESTIONS if result.status == ChunkGeneration.Status.DONE else 0
        assert per_chunk.get(result.chunk_id, 0) == expected, result


def test_cancel_stops_a_running_generation_and_resume_finishes_it(celery_worker, slow_llm):
    manual = make_manual()
    endpoint = openai_endpoint(slow_llm.base_url, max_concurrency=1)
    run = start_run(manual, endpoint)
    wait_for(lambda: refreshed(run).chunks_done >= 1, timeout=60, what="a first chunk")

    services.generation_run_cancel(run=refreshed(run))
    wait_for(lambda: refreshed(run).status == "cancelled", timeout=60, what="the cancel")

    run = refreshed(run)
    assert run.chunks_done < run.chunks_total
    assert_only_complete_chunks_have_pairs(run)
    services.generation_run_resume(run=run)
    wait_for(lambda: refreshed(run).status == "succeeded", timeout=120, what="the resumed run")
    run = refreshed(run)
    assert run.chunks_done == run.chunks_total
    assert QAPair.objects.filter(generation_run=run).count() == QUESTIONS * run.chunks_total


def test_a_worker_killed_mid_run_leaves_complete_pairs_and_resume_adds_no_duplicates(
    celery_worker, slow_llm, settings
):
    manual = make_manual()
    endpoint = openai_endpoint(slow_llm.base_url, max_concurrency=1)
    run = start_run(manual, endpoint)
    wait_for(lambda: refreshed(run).chunks_done >= 1, timeout=60, what="a first chunk")

    celery_worker.kill()
    try:
        run = refreshed(run)
        assert run.status == GenerationRun.Status.RUNNING
        assert run.chunks_done < run.chunks_total
        assert_only_complete_chunks_have_pairs(run)
        settings.GENERATION_STALE_AFTER_S = 1
        wait_for(lambda: services.generation_run_is_stale(refreshed(run)), timeout=10)
        services.generation_run_resume(run=refreshed(run))
    finally:
        celery_worker.start()

    wait_for(lambda: refreshed(run).status == "succeeded", timeout=120, what="the resumed run")
    run = refreshed(run)
    assert run.chunks_done == run.chunks_total
    pairs = QAPair.objects.filter(generation_run=run)
    assert pairs.count() == QUESTIONS * run.chunks_total
    keys = list(pairs.values_list("chunk", "question_hash"))
    assert len(keys) == len(set(keys))
