"""Who may drive jobs from the admin (security review H1): every admin action declares its
permissions, and the services refuse the same people when called from anywhere else."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.contrib.admin.sites import site
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.urls import reverse

from curation import services
from curation.models import ChunkGeneration, GenerationRun, IngestionRun, LLMEndpoint
from tests.curation.generation_support import make_manual
from tests.curation.review_support import reviewer, staff_user, trainer

pytestmark = pytest.mark.django_db

MANUALS = "admin:curation_manual_changelist"
RUNS = "admin:curation_generationrun_changelist"
RUN_ACTIONS = ("cancel_runs", "resume_runs", "retry_failed_chunks")


@pytest.fixture
def manual():
    manual = make_manual("Permissions manual")
    manual.source_url = "https://manual.example/model-3/"
    manual.save(update_fields=["source_url"])
    return manual


@pytest.fixture
def runs(manual) -> dict[str, GenerationRun]:
    """One run each action applies to: queued (cancel), cancelled with pending chunks
    (resume), and failed with a failed chunk (retry failed chunks)."""
    endpoint = LLMEndpoint.objects.create(name="Remote", kind="openai", model="m")
    made = {}
    for action, status in (
        ("cancel_runs", GenerationRun.Status.QUEUED),
        ("resume_runs", GenerationRun.Status.CANCELLED),
        ("retry_failed_chunks", GenerationRun.Status.FAILED),
    ):
        run = services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False)
        GenerationRun.objects.filter(pk=run.pk).update(status=status)
        if action == "retry_failed_chunks":
            run.chunk_results.filter(pk=run.chunk_results.first().pk).update(
                status=ChunkGeneration.Status.FAILED
            )
            GenerationRun.objects.filter(pk=run.pk).update(chunks_failed=1)
        made[action] = GenerationRun.objects.get(pk=run.pk)
    return made


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def offered_actions(client: Client, url_name: str) -> set[str]:
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    form = response.context["action_form"]  # None when no action is left to offer
    return set() if form is None else {name for name, _ in form.fields["action"].choices}


def post_action(client: Client, url_name: str, action: str, pk: int):
    return client.post(reverse(url_name), {"action": action, "_selected_action": [pk]})


def test_a_reviewer_cannot_reingest_or_drive_generation_runs_from_the_admin(manual, runs):
    rita = logged_in(reviewer("rita"))

    assert "reingest_from_source_url" not in offered_actions(rita, MANUALS)
    assert "generate_qa_pairs" not in offered_actions(rita, MANUALS)
    assert not offered_actions(rita, RUNS) & set(RUN_ACTIONS)

    post_action(rita, MANUALS, "reingest_from_source_url", manual.pk)
    for action, run in runs.items():
        post_action(rita, RUNS, action, run.pk)

    assert not IngestionRun.objects.exists()
    for run in runs.values():
        after = GenerationRun.objects.get(pk=run.pk)
        assert (after.status, after.cancel_requested) == (run.status, False)


def test_a_trainer_drives_generation_runs_but_cannot_reingest(manual, runs):
    tom = logged_in(trainer("tom"))

    assert set(RUN_ACTIONS) <= offered_actions(tom, RUNS)
    assert "generate_qa_pairs" in offered_actions(tom, MANUALS)
    assert "reingest_from_source_url" not in offered_actions(tom, MANUALS)

    for action, run in runs.items():
        post_action(tom, RUNS, action, run.pk)
    post_action(tom, MANUALS, "reingest_from_source_url", manual.pk)

    statuses = {a: GenerationRun.objects.get(pk=r.pk).status for a, r in runs.items()}
    assert statuses == {
        "cancel_runs": GenerationRun.Status.CANCELLED,
        "resume_runs": GenerationRun.Status.QUEUED,
        "retry_failed_chunks": GenerationRun.Status.QUEUED,
    }
    assert not IngestionRun.objects.exists()


def test_whoever_may_ingest_can_reingest_from_the_admin(manual):
    boss = staff_user("ingester")
    boss.is_superuser = True
    boss.save(update_fields=["is_superuser"])

    post_action(logged_in(boss), MANUALS, "reingest_from_source_url", manual.pk)

    run = IngestionRun.objects.get()
    assert (run.manual_id, run.source, run.created_by) == (manual.pk, manual.source_url, boss)


def test_the_services_refuse_the_same_people_outside_the_admin(manual, runs):
    rita = reviewer("rita")

    with pytest.raises(PermissionDenied, match="Trainer role"):
        services.generation_run_cancel(run=runs["cancel_runs"], user=rita)
    with pytest.raises(PermissionDenied, match="Trainer role"):
        services.generation_run_create(
            manual=manual, endpoint=runs["cancel_runs"].endpoint, user=rita, enqueue=False
        )
    with pytest.raises(PermissionDenied, match="ingest"):
        services.ingestion_run_create(
            manual=manual, source=manual.source_url, user=trainer("tom"), enqueue=False
        )
    # The system itself (commands, the bootstrap) passes no user.
    services.generation_run_cancel(run=runs["cancel_runs"])
    assert GenerationRun.objects.get(pk=runs["cancel_runs"].pk).status == "cancelled"


def test_the_generation_api_refuses_a_reviewer_the_same_way(runs):
    rita = logged_in(reviewer("rita"))

    response = rita.post(f"/api/generation-runs/{runs['cancel_runs'].pk}/cancel/")

    assert response.status_code == 403
    assert "Trainer role" in response.json()["detail"]
    assert GenerationRun.objects.get(pk=runs["cancel_runs"].pk).status == "queued"


def test_a_run_action_the_service_refuses_warns_instead_of_crashing(runs):
    """The admin offers the run actions only to whoever the services let steer runs, so the
    services' PermissionDenied is not reached from the changelist; should the two checks ever
    part, the refusal is a warning on the page (a PermissionDenied has no ``messages``)."""
    request = RequestFactory().post(reverse(RUNS))
    request.user = reviewer("rita")
    request.session = {}
    request._messages = FallbackStorage(request)
    run = runs["cancel_runs"]

    site._registry[GenerationRun].cancel_runs(request, GenerationRun.objects.filter(pk=run.pk))

    assert [(m.level, m.message) for m in get_messages(request)] == [
        (
            messages.WARNING,
            "Cancelling, resuming or retrying a generation run needs the Trainer role.",
        )
    ]
    assert GenerationRun.objects.get(pk=run.pk).status == GenerationRun.Status.QUEUED
