"""Admin pages for ingestion: they load, search and filter, and start runs through the service."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from curation import services
from curation.models import DocumentChunk, IngestionRun, ManualDocument
from tests.conftest import SAMPLE_SITE

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingested():
    manual = services.manual_get_or_create(name="Admin manual")
    run = services.ingestion_run_create(
        manual=manual, source=str(SAMPLE_SITE / "manual"), enqueue=False
    )
    services.ingestion_run_claim(run_id=run.pk)
    services.ingestion_run_process_pages(run_id=run.pk)
    return manual


@pytest.mark.parametrize("model", ["manual", "manualdocument", "documentchunk", "ingestionrun"])
def test_admin_lists_search_and_filter(admin_client, ingested, model):
    url = reverse(f"admin:curation_{model}_changelist")
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url, {"q": "charge"}).status_code == 200


def test_document_and_run_pages_show_content_and_progress(admin_client, ingested):
    document = ManualDocument.objects.get(source_name="charging.html")
    response = admin_client.get(reverse("admin:curation_manualdocument_change", args=[document.pk]))
    assert response.status_code == 200
    assert document.title in response.content.decode()
    run = IngestionRun.objects.get()
    page = admin_client.get(reverse("admin:curation_ingestionrun_change", args=[run.pk]))
    assert page.status_code == 200
    assert f"{run.pages_done}/{run.pages_done} pages" in page.content.decode()


def test_chunk_filter_separates_waiting_from_embedded(admin_client, ingested):
    url = reverse("admin:curation_documentchunk_changelist")
    waiting = admin_client.get(url, {"embedded": "no"})
    assert waiting.context["cl"].result_count == DocumentChunk.objects.count()
    assert admin_client.get(url, {"embedded": "yes"}).context["cl"].result_count == 0


def test_ingest_page_queues_a_run(admin_client, django_capture_on_commit_callbacks, settings):
    settings.INGEST_ROOTS = [str(SAMPLE_SITE)]
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            reverse("admin:curation_ingestionrun_ingest"),
            {
                "new_manual_name": "Form manual",
                "source": str(SAMPLE_SITE / "manual"),
                "max_pages": 50,
            },
        )
    run = IngestionRun.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:curation_ingestionrun_change", args=[run.pk])
    assert (run.manual.name, run.status, run.options["max_pages"]) == ("Form manual", "queued", 50)
    assert len(callbacks) == 1  # the task is sent only once the transaction commits


def test_a_folder_is_read_by_the_run_not_by_the_ingest_page(admin_client, tmp_path, settings):
    """Security review M2: the page only checks that the folder is under a root; the run's task
    walks it, and an empty folder fails the run with a message that says so."""
    settings.INGEST_ROOTS = [str(tmp_path)]
    (tmp_path / "empty").mkdir()
    response = admin_client.post(
        reverse("admin:curation_ingestionrun_ingest"),
        {"new_manual_name": "Form manual", "source": str(tmp_path / "empty"), "max_pages": 5},
    )
    run = IngestionRun.objects.get()
    assert response.status_code == 302
    assert run.source_kind == IngestionRun.SourceKind.FOLDER

    assert services.ingestion_run_claim(run_id=run.pk)
    run = services.ingestion_run_process_pages(run_id=run.pk)

    assert run.status == IngestionRun.Status.FAILED
    assert run.message == f"{tmp_path / 'empty'} holds no .html, .md or .pdf files"
    page = admin_client.get(reverse("admin:curation_ingestionrun_change", args=[run.pk]))
    assert "holds no .html, .md or .pdf files" in page.content.decode()
    assert not run.manual.documents.exists()


@pytest.mark.parametrize("where", ["/etc", "/", "file:///etc", "missing", "link-out"])
def test_ingest_refuses_paths_outside_ingest_roots(admin_client, tmp_path, settings, where):
    """Security review M2: the same refusal whether the path exists or not, and a symlink
    inside a root that points outside it counts as outside."""
    root = tmp_path / "ingest"
    root.mkdir()
    (root / "link-out").symlink_to("/etc")
    settings.INGEST_ROOTS = [str(root)]
    source = str(root / where) if where in ("missing", "link-out") else where

    response = admin_client.post(
        reverse("admin:curation_ingestionrun_ingest"),
        {"new_manual_name": "Form manual", "source": source, "max_pages": 5},
    )

    assert response.status_code == 200
    assert f"a folder or zip file that exists under {root}" in response.content.decode()
    assert not IngestionRun.objects.exists()


def test_staff_without_permission_cannot_start_ingestion(client):
    user = User.objects.create_user("viewer", password="pw-123456", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_ingestionrun"))
    client.force_login(user)
    response = client.get(reverse("admin:curation_ingestionrun_ingest"))
    assert response.status_code == 403


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse("admin:curation_ingestionrun_ingest"))
    assert response.status_code == 302
    assert reverse("admin:login") in response.url
