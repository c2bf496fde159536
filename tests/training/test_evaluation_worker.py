"""An evaluation queued the way the pages queue it, run by a real Celery worker process."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from curation import services as curation_services
from curation.services import CleanDocument
from tests.conftest import wait_for
from training import evaluation
from training.models import EvaluationRun

PAGES = {
    "wipers.md": "# Wipers\n\n## Replacing the Wiper Blades\n\nLift the wiper arm away from the "
    "windshield, press the release tab and slide the old blade off the arm.\n",
    "tires.md": "# Tires\n\n## Tire Pressure\n\nInflate the tires to 42 PSI (290 kPa) when they "
    "are cold. Check the pressure once a month.\n",
    "charging.md": "# Charging\n\n## Charge Limit\n\nFor everyday driving, set the charge limit "
    "to 80% to keep the battery healthy.\n",
}
QUESTIONS = [
    {"id": "w1", "question": "How do I change the wiper blades?", "sources": ["wipers.md"]},
    {"id": "w2", "question": "What tire pressure should I use?", "sources": ["tires.md"]},
    {"id": "w3", "question": "Where can I buy a used Aster?", "kind": "unanswerable"},
]


def test_evaluation_runs_on_the_default_queue():
    from manualqa.celery import app

    route = app.amqp.router.route({"queue": "default"}, "evaluation.run_evaluation", (), {})

    assert route["queue"].name == "default"
    # The name stays outside the ``training.*`` route to the gpu queue even without the
    # explicit queue the service passes.
    assert app.amqp.router.route({}, "evaluation.run_evaluation", (), {})["queue"].name == (
        "default"
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_a_queued_retrieval_evaluation_to_the_end(celery_worker):
    manual = curation_services.manual_get_or_create(name="Worker evaluation manual")
    for source_name, markdown in PAGES.items():
        curation_services.document_upsert(
            manual=manual,
            clean=CleanDocument(
                source_name, "", source_name[:-3].title(), markdown, len(markdown.split())
            ),
        )
    curation_services.chunks_embed_pending(manual=manual)

    with transaction.atomic():
        run = evaluation.evaluation_run_create(
            user=None,
            questions_jsonl="".join(json.dumps(q) + "\n" for q in QUESTIONS),
            manual=manual,
            retrieval_only=True,
        )

    def finished() -> bool:
        run.refresh_from_db()
        return run.is_finished

    wait_for(finished, timeout=180, what=f"evaluation run {run.pk} to finish")
    assert run.status == EvaluationRun.Status.SUCCEEDED, (run.message, run.traceback)
    assert run.celery_task_id and run.done == run.total == 3
    summary = run.summary["Worker evaluation manual (default retrieval)"]
    assert summary["hit@1"] == 1.0  # three one-topic pages: the right one comes first
    assert summary["count"] == 3
