"""The curation API: manuals, documents, chunks and QA-pair review, with their permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from curation import services
from curation.models import LLMEndpoint, ManualDocument, QAPair, QAPairRevision
from manualqa.roles import roles_ensure
from tests.curation.api_support import make_pairs, reviewer, token_client, user_with
from tests.curation.generation_support import make_manual

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def roles():
    roles_ensure()


@pytest.fixture
def manual():
    return make_manual()


@pytest.fixture
def pairs(manual):
    return make_pairs(manual)


@pytest.fixture
def client():
    return token_client(reviewer())


# --- Manuals, documents, chunks ------------------------------------------------------------------


def test_a_reviewer_reads_manuals_documents_and_chunks(client, manual):
    manuals = client.get("/api/manuals/")
    assert manuals.status_code == 200
    [row] = manuals.json()["results"]
    assert (row["name"], row["document_count"], row["chunk_count"], row["embedded_count"]) == (
        manual.name,
        2,
        4,
        4,
    )
    assert client.get(f"/api/manuals/{manual.pk}/").json()["id"] == manual.pk

    documents = client.get(f"/api/documents/?manual={manual.pk}").json()["results"]
    assert [d["source_name"] for d in documents] == ["charging.md", "tires.md"]
    assert "markdown" not in documents[0]
    tires = client.get(f"/api/documents/{documents[1]['id']}/").json()
    assert tires["markdown"].startswith("# Tires")
    assert tires["chunk_count"] == 2


def test_chunk_responses_never_include_the_embedding(client, manual):
    tires = manual.documents.get(source_name="tires.md")
    chunks = client.get(f"/api/chunks/?document={tires.pk}").json()["results"]
    assert [c["heading_path"] for c in chunks] == ["Tires > Tire Pressure", "Tires > Rotation"]
    assert all(c["is_embedded"] for c in chunks)
    detail = client.get(f"/api/chunks/{chunks[0]['id']}/")
    assert detail.status_code == 200
    assert "42 PSI" in detail.json()["text"]
    for body in [*chunks, detail.json()]:
        assert "embedding" not in body


def test_documents_of_another_manual_are_filtered_out(client, manual):
    other = make_manual("Other manual")
    documents = client.get(f"/api/documents/?manual={other.pk}").json()["results"]
    assert {d["manual"] for d in documents} == {other.pk}
    assert client.get("/api/documents/").json()["count"] == 4


def test_document_and_chunk_filters_must_be_ids(client):
    response = client.get("/api/documents/?manual=charging")
    assert response.status_code == 400
    assert "manual" in response.json()
    response = client.get("/api/chunks/?document=-1")
    assert response.status_code == 400
    assert "document" in response.json()


def test_manual_endpoints_need_login_and_the_view_permission(manual):
    anonymous = APIClient()
    plain = token_client(user_with())
    for url in ("/api/manuals/", "/api/documents/", "/api/chunks/"):
        assert anonymous.get(url).status_code == 401
        assert plain.get(url).status_code == 403
    documents_only = token_client(user_with("curation.view_manualdocument"))
    assert documents_only.get("/api/documents/").status_code == 200
    assert documents_only.get("/api/chunks/").status_code == 403


def test_manuals_documents_and_chunks_cannot_be_changed_through_the_api(manual):
    superuser = token_client(User.objects.create_superuser("root", password="x-12345"))
    document = manual.documents.first()
    assert superuser.post("/api/manuals/", {"name": "New"}).status_code == 405
    assert superuser.delete(f"/api/documents/{document.pk}/").status_code == 405
    assert superuser.patch(f"/api/documents/{document.pk}/", {"title": "x"}).status_code == 405


# --- QA pairs: reading ---------------------------------------------------------------------------


def questions(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["question"] for row in response.json()["results"]]


def test_qa_pairs_filter_by_status_document_flag_grounding_and_text(client, manual, pairs):
    QAPair.objects.filter(pk=pairs[0].pk).update(status=QAPair.Status.APPROVED)
    tires = manual.documents.get(source_name="tires.md")

    assert questions(client.get("/api/qa-pairs/?status=approved")) == [pairs[0].question]
    assert questions(client.get(f"/api/qa-pairs/?document={tires.pk}&ordering=created_at")) == [
        pairs[2].question,
        pairs[3].question,
    ]
    assert questions(client.get("/api/qa-pairs/?flag=low_grounding")) == [pairs[2].question]
    assert questions(client.get("/api/qa-pairs/?min_grounding=0.5&max_grounding=0.8")) == [
        pairs[1].question
    ]
    assert questions(client.get("/api/qa-pairs/?search=RELEASE cable")) == [pairs[1].question]
    assert questions(client.get("/api/qa-pairs/?search=rotate")) == [pairs[3].question]
    assert questions(client.get(f"/api/qa-pairs/?manual={manual.pk}&origin=imported")) == []
    assert len(questions(client.get(f"/api/qa-pairs/?manual={manual.pk}&origin=generated"))) == 4


def test_qa_pairs_filter_by_generation_run(client, manual, pairs):
    endpoint = LLMEndpoint.objects.create(name="Loopback", kind="openai", model="m")
    run = services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False)
    QAPair.objects.filter(pk__in=[pairs[1].pk, pairs[3].pk]).update(generation_run=run)
    found = questions(client.get(f"/api/qa-pairs/?generation_run={run.pk}&ordering=created_at"))
    assert found == [pairs[1].question, pairs[3].question]


def test_qa_pairs_order_by_grounding_with_unscored_pairs_last(client, pairs):
    expected = [pairs[2], pairs[1], pairs[0], pairs[3]]
    assert questions(client.get("/api/qa-pairs/?ordering=grounding_score")) == [
        p.question for p in expected
    ]
    assert questions(client.get("/api/qa-pairs/?ordering=-grounding_score")) == [
        p.question for p in [pairs[0], pairs[1], pairs[2], pairs[3]]
    ]
    assert questions(client.get("/api/qa-pairs/"))[0] == pairs[3].question  # newest first


def test_qa_pair_filters_reject_unknown_values_naming_the_parameter(client, pairs):
    for query, field in [
        ("status=maybe", "status"),
        ("origin=elsewhere", "origin"),
        ("min_grounding=high", "min_grounding"),
        ("ordering=question", "ordering"),
        ("manual=x", "manual"),
    ]:
        response = client.get(f"/api/qa-pairs/?{query}")
        assert response.status_code == 400, query
        assert field in response.json(), query


def test_qa_pair_list_costs_the_same_queries_for_more_pairs(client, manual):
    make_pairs(manual)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/qa-pairs/").status_code == 200
    make_pairs(make_manual("Second manual"))
    with CaptureQueriesContext(connection) as more:
        assert client.get("/api/qa-pairs/").json()["count"] == 8
    assert len(more) == len(few)


def test_qa_pair_detail_shows_origin_text_source_and_whether_it_changed(client, manual, pairs):
    pair = pairs[0]
    ManualDocument.objects.filter(pk=pair.document_id).update(version=2)
    body = client.get(f"/api/qa-pairs/{pair.pk}/").json()
    assert body["original_question"] == pair.question
    assert body["original_answer"] == pair.answer
    assert body["document_source_name"] == "charging.md"
    assert body["chunk_heading_path"] == "Charging > Opening the Charge Port"
    assert body["grounding_score"] == 0.9
    assert (body["flags"], body["duplicate_of"], body["source_changed"]) == ([], None, True)
    assert "question_embedding" not in body
    assert client.get(f"/api/qa-pairs/{pairs[2].pk}/").json()["source_changed"] is False


def test_qa_pairs_need_login_and_the_view_permission(pairs):
    assert APIClient().get("/api/qa-pairs/").status_code == 401
    assert APIClient().get(f"/api/qa-pairs/{pairs[0].pk}/history/").status_code == 401
    assert token_client(user_with()).get("/api/qa-pairs/").status_code == 403
    viewer = token_client(user_with("curation.view_qapair"))
    assert viewer.get("/api/qa-pairs/").json()["count"] == 4


# --- QA pairs: reviewing -------------------------------------------------------------------------


def test_a_reviewer_edits_a_pair_and_the_original_text_is_kept(client, pairs):
    pair = pairs[0]
    response = client.patch(
        f"/api/qa-pairs/{pair.pk}/",
        {"answer": "Press the button on the charge cable, or use the touchscreen."},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["answer"].endswith("use the touchscreen.")
    assert body["question"] == pair.question
    assert body["original_answer"] == "Press the button on the charge cable."
    assert body["reviewed_by"] == "reviewer"
    [revision] = client.get(f"/api/qa-pairs/{pair.pk}/history/").json()
    assert (revision["action"], revision["user"]) == ("edit", "reviewer")
    assert revision["changes"]["answer"][0] == "Press the button on the charge cable."


def test_editing_to_an_empty_answer_is_refused_naming_the_field(client, pairs):
    response = client.patch(f"/api/qa-pairs/{pairs[0].pk}/", {"answer": "  "}, format="json")
    assert response.status_code == 400
    assert "answer" in response.json()
    response = client.patch(f"/api/qa-pairs/{pairs[0].pk}/", {}, format="json")
    assert response.status_code == 400
    assert not QAPairRevision.objects.exists()


def test_editing_needs_the_review_permission(pairs):
    url = f"/api/qa-pairs/{pairs[0].pk}/"
    assert APIClient().patch(url, {"question": "Why?"}, format="json").status_code == 401
    viewer = token_client(user_with("curation.view_qapair", "curation.change_qapair"))
    assert viewer.patch(url, {"question": "Why?"}, format="json").status_code == 403
    assert QAPair.objects.get(pk=pairs[0].pk).question == pairs[0].question


def test_pairs_cannot_be_replaced_or_deleted_only_patched(client, pairs):
    url = f"/api/qa-pairs/{pairs[0].pk}/"
    assert client.put(url, {"question": "Q?", "answer": "A."}, format="json").status_code == 405
    assert client.delete(url).status_code == 405
    assert QAPair.objects.count() == 4


def test_approve_reject_and_reset_record_the_history(client, pairs):
    url = f"/api/qa-pairs/{pairs[0].pk}"
    approved = client.post(f"{url}/approve/")
    assert approved.status_code == 200
    assert (approved.json()["status"], approved.json()["reviewed_by"]) == ("approved", "reviewer")
    assert client.post(f"{url}/reject/").json()["status"] == "rejected"
    assert client.post(f"{url}/reset/").json()["status"] == "pending"

    history = client.get(f"{url}/history/").json()
    assert [r["action"] for r in history] == ["reset", "reject", "approve"]
    assert history[0]["changes"] == {"status": ["rejected", "pending"]}


def test_users_without_the_review_permission_cannot_approve(pairs):
    viewer = token_client(user_with("curation.view_qapair"))
    assert viewer.post(f"/api/qa-pairs/{pairs[0].pk}/approve/").status_code == 403
    assert (
        viewer.post("/api/qa-pairs/bulk/", {"ids": [pairs[0].pk], "action": "approve"}).status_code
        == 403
    )
    assert APIClient().post(f"/api/qa-pairs/{pairs[0].pk}/approve/").status_code == 401
    assert not QAPair.objects.filter(status=QAPair.Status.APPROVED).exists()


def test_bulk_approve_returns_how_many_pairs_changed(client, pairs):
    QAPair.objects.filter(pk=pairs[0].pk).update(status=QAPair.Status.APPROVED)
    ids = [p.pk for p in pairs[:3]]
    response = client.post("/api/qa-pairs/bulk/", {"ids": ids, "action": "approve"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"changed": 2}
    assert set(QAPair.objects.filter(status="approved").values_list("id", flat=True)) == set(ids)
    assert QAPairRevision.objects.filter(action="approve", user__username="reviewer").count() == 2

    response = client.post("/api/qa-pairs/bulk/", {"ids": ids, "action": "reset"}, format="json")
    assert response.json() == {"changed": 3}


def test_bulk_refuses_unknown_actions_empty_and_unknown_ids(client, pairs):
    for body, field in [
        ({"ids": [pairs[0].pk], "action": "delete"}, "action"),
        ({"ids": [], "action": "approve"}, "ids"),
        ({"ids": [pairs[0].pk, 999999], "action": "approve"}, "ids"),
        ({"action": "approve"}, "ids"),
    ]:
        response = client.post("/api/qa-pairs/bulk/", body, format="json")
        assert response.status_code == 400, body
        assert field in response.json(), body
    assert not QAPair.objects.filter(status=QAPair.Status.APPROVED).exists()


# --- Schema --------------------------------------------------------------------------------------


def test_openapi_schema_lists_every_endpoint_family(admin_user):
    assert APIClient().get("/api/schema/").status_code in (401, 403)  # staff only
    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = response.content.decode()
    for path in (
        "/api/manuals/",
        "/api/documents/{id}/",
        "/api/chunks/",
        "/api/qa-pairs/",
        "/api/qa-pairs/{id}/approve/",
        "/api/qa-pairs/bulk/",
        "/api/qa-pairs/{id}/history/",
        "/api/generation-runs/",
        "/api/snapshots/",
        "/api/snapshots/{id}/export/",
        "/api/snapshots/{id}/diff/",
        "/api/snapshots/{id}/pairs/",
    ):
        assert f"{path}:" in schema, path


def test_openapi_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any drf-spectacular warning (a view it cannot read) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    assert "/api/qa-pairs/bulk/" in (tmp_path / "s.yml").read_text()
