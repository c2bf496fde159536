"""The API and pages of retrieval jobs and re-embeds: who may launch, and refusals that name
the problem (issue 18)."""

from __future__ import annotations

import pytest
from django.test import Client

from curation.models import ReembedRun, RetrievalModel
from manualqa.roles import roles_ensure
from tests.curation.api_support import reviewer, token_client, trainer
from training.models import RetrievalJob

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def roles():
    roles_ensure()


def test_a_trainer_launches_and_cancels_a_retrieval_job(retriever_snapshot):
    client = token_client(trainer())
    response = client.post(
        "/api/retrieval-jobs/",
        {"snapshot": retriever_snapshot.pk, "hyperparameters": {"max_steps": 3}},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "retriever" and body["status"] == "queued"
    assert body["hyperparameters"]["max_steps"] == 3
    assert client.get(f"/api/retrieval-jobs/{body['id']}/").json()["id"] == body["id"]
    cancelled = client.post(f"/api/retrieval-jobs/{body['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_bad_launches_are_refused_with_the_reason(retriever_snapshot):
    client = token_client(trainer())
    response = client.post(
        "/api/retrieval-jobs/",
        {"snapshot": retriever_snapshot.pk, "hyperparameters": {"max_steps": "many"}},
        format="json",
    )
    assert response.status_code == 400
    assert "max_steps must be a number" in str(response.json())
    assert not RetrievalJob.objects.filter(status="queued").exists()


def test_a_reviewer_may_not_launch_or_reembed(retriever_snapshot):
    client = token_client(reviewer())
    response = client.post(
        "/api/retrieval-jobs/", {"snapshot": retriever_snapshot.pk}, format="json"
    )
    assert response.status_code == 403
    response = client.post(
        "/api/reembed-runs/",
        {"manual": retriever_snapshot.manual_id, "embedder": None},
        format="json",
    )
    assert response.status_code == 403


def test_reembed_refusals_name_the_problem(retriever_job, retriever_snapshot):
    client = token_client(trainer())
    manual = retriever_snapshot.manual_id
    response = client.post(
        "/api/reembed-runs/", {"manual": manual, "embedder": 999999}, format="json"
    )
    assert response.status_code == 400 and "999999" in str(response.json()["embedder"])
    wide = RetrievalModel.objects.create(
        name="wide", kind="embedder", path=retriever_job.registered_model.path, dimensions=768
    )
    response = client.post(
        "/api/reembed-runs/", {"manual": manual, "embedder": wide.pk}, format="json"
    )
    assert response.status_code == 400
    assert "768-dimensional" in str(response.json())
    response = client.post(
        "/api/reembed-runs/",
        {"manual": manual, "embedder": retriever_job.registered_model_id},
        format="json",
    )
    assert response.status_code == 201
    assert ReembedRun.objects.get(pk=response.json()["id"]).status == "queued"
    cancelled = client.post(f"/api/reembed-runs/{response.json()['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    models = client.get("/api/retrieval-models/").json()["results"]
    assert retriever_job.registered_model_id in [model["id"] for model in models]


def test_pages_launch_and_follow_a_job(retriever_snapshot, retriever_job):
    browser = Client()
    browser.force_login(trainer())
    page = browser.get("/training/retrievers/")
    assert page.status_code == 200
    assert (
        b"Re-embed and switch" in page.content and str(retriever_job.name).encode() in page.content
    )
    response = browser.post(
        "/training/retrievers/",
        {"snapshot": retriever_snapshot.pk, "kind": "retriever", "max_steps": 2},
    )
    job = RetrievalJob.objects.latest("pk")
    assert response.status_code == 302 and response["Location"].endswith(f"/{job.pk}/")
    status = browser.get(f"/training/retrievers/{job.pk}/status.json").json()
    assert status["status"] == "queued" and status["label"].startswith("0/")
    done = browser.get(f"/training/retrievers/{retriever_job.pk}/")
    assert b"hit@1" in done.content and b"job-metrics" in done.content


def test_pages_cancel_a_job_and_start_and_cancel_a_reembed_saying_how_it_went(
    retriever_snapshot, retriever_job
):
    browser = Client()
    browser.force_login(trainer())
    job = RetrievalJob.objects.create(name="queued", snapshot=retriever_snapshot)
    manual = retriever_snapshot.manual_id
    embedder = retriever_job.registered_model_id

    cancelled = browser.post(f"/training/retrievers/{job.pk}/cancel/", follow=True)
    again = browser.post(f"/training/retrievers/{job.pk}/cancel/", follow=True)
    started = browser.post("/training/reembed/", {"manual": manual, "embedder": embedder})
    run = ReembedRun.objects.get()
    refused = browser.post(
        "/training/reembed/", {"manual": manual, "embedder": embedder}, follow=True
    )
    stopped = browser.post(f"/training/reembed/{run.pk}/cancel/", follow=True)

    assert b"Cancel requested." in cancelled.content
    assert RetrievalJob.objects.get(pk=job.pk).status == "cancelled"
    assert f"Job #{job.pk} is cancelled; too late.".encode() in again.content
    assert started["Location"] == f"/training/reembed/{run.pk}/"
    assert refused.redirect_chain == [("/training/retrievers/", 302)]
    assert b"being re-embedded already" in refused.content
    assert b"Cancel requested." in stopped.content
    assert ReembedRun.objects.get(pk=run.pk).status == "cancelled"
