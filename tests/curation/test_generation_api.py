"""The generation-run API and admin pages: permissions, validation, and transitions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from curation import services
from curation.models import GenerationRun, LLMEndpoint
from tests.curation.generation_support import make_manual

pytestmark = pytest.mark.django_db


@pytest.fixture
def manual():
    return make_manual()


@pytest.fixture
def endpoint():
    return LLMEndpoint.objects.create(
        name="Loopback", kind=LLMEndpoint.Kind.OPENAI, model="m", base_url="http://127.0.0.1:9/v1"
    )


def user_with(*codenames: str) -> User:
    user = User.objects.create_user(f"user-{'-'.join(codenames) or 'plain'}", password="x-12345")
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_a_token_user_with_permission_creates_a_run(
    manual, endpoint, django_capture_on_commit_callbacks
):
    client = token_client(user_with("add_generationrun", "view_generationrun"))
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/api/generation-runs/",
            {"manual": manual.pk, "endpoint": endpoint.pk, "questions_per_chunk": 2},
            format="json",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["questions_per_chunk"], body["chunks_total"]) == ("queued", 2, 4)
    assert len(callbacks) == 1  # the task goes out once the transaction commits
    assert client.get(f"/api/generation-runs/{body['id']}/").json()["id"] == body["id"]


def test_invalid_input_returns_field_errors(manual, endpoint):
    client = token_client(user_with("add_generationrun"))
    response = client.post(
        "/api/generation-runs/",
        {"manual": manual.pk, "endpoint": endpoint.pk, "questions_per_chunk": 0},
        format="json",
    )
    assert response.status_code == 400
    assert "questions_per_chunk" in response.json()
    response = client.post(
        "/api/generation-runs/",
        {
            "manual": manual.pk,
            "endpoint": endpoint.pk,
            "prompts": {"answer_user_template": "no placeholders at all"},
        },
        format="json",
    )
    assert response.status_code == 400
    assert "answer_user_template" in response.json()
    assert not GenerationRun.objects.exists()


def test_anonymous_requests_get_401_and_users_without_permission_403(manual, endpoint):
    assert APIClient().get("/api/generation-runs/").status_code == 401
    plain = token_client(user_with())
    assert plain.get("/api/generation-runs/").status_code == 403
    response = plain.post(
        "/api/generation-runs/", {"manual": manual.pk, "endpoint": endpoint.pk}, format="json"
    )
    assert response.status_code == 403


def test_cancel_through_the_api(manual, endpoint):
    run = services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False)
    viewer = token_client(user_with("view_generationrun"))
    assert viewer.post(f"/api/generation-runs/{run.pk}/cancel/").status_code == 403

    editor = token_client(user_with("view_generationrun", "change_generationrun"))
    response = editor.post(f"/api/generation-runs/{run.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = editor.post(f"/api/generation-runs/{run.pk}/cancel/")
    assert again.status_code == 400
    assert "too late" in again.json()["non_field_errors"][0]


def test_openapi_schema_is_served_to_staff(admin_client):
    response = admin_client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/generation-runs/" in response.content


def test_admin_generate_page_starts_a_run_for_selected_documents(admin_client, manual, endpoint):
    document = manual.documents.get(source_name="tires.md")
    url = (
        reverse("admin:curation_generationrun_start")
        + f"?manual={manual.pk}&documents={document.pk}"
    )
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "2 chunks" in page.content.decode()
    form = page.context["form"]
    data = {name: form[name].value() for name in form.fields}
    data.update(endpoint=endpoint.pk, questions_per_chunk=3)

    response = admin_client.post(url, data)

    run = GenerationRun.objects.get()
    assert response.status_code == 302
    assert run.chunks_total == 2 and run.questions_per_chunk == 3
    assert list(run.documents.all()) == [document]


def test_admin_lists_and_endpoint_page_never_show_a_key(admin_client, endpoint, monkeypatch):
    monkeypatch.setenv("LOOPBACK_KEY", "sk-secret-value")
    endpoint.api_key_env = "LOOPBACK_KEY"
    endpoint.save()
    page = admin_client.get(reverse("admin:curation_llmendpoint_change", args=[endpoint.pk]))
    html = page.content.decode()
    assert "$LOOPBACK_KEY is set" in html
    assert "sk-secret-value" not in html
    for model in ("llmendpoint", "generationrun", "qapair"):
        assert admin_client.get(reverse(f"admin:curation_{model}_changelist")).status_code == 200
