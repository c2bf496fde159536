"""The dataset-snapshot API: create, read, frozen pairs, JSONL export, diff and permissions."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from curation import services as curation_services
from curation.models import QAPair
from manualqa.roles import roles_ensure
from tests.curation.api_support import make_pairs, reviewer, token_client, trainer, user_with
from tests.curation.generation_support import make_manual
from training import services
from training.models import DatasetSnapshot, SnapshotPair

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def roles():
    roles_ensure()


@pytest.fixture
def manual():
    return make_manual()


@pytest.fixture
def pairs(manual):
    return make_pairs(manual, status=QAPair.Status.APPROVED)


@pytest.fixture
def trainer_user():
    return trainer()


@pytest.fixture
def client(trainer_user):
    return token_client(trainer_user)


def all_train(manual, user, **options) -> DatasetSnapshot:
    """A snapshot with every pair in the train split, so exports cover all of them."""
    return services.snapshot_create(
        manual=manual,
        user=user,
        train_fraction=1.0,
        eval_fraction=0.0,
        test_fraction=0.0,
        **options,
    )


def export_lines(client, snapshot, query: str) -> list[dict]:
    response = client.get(f"/api/snapshots/{snapshot.pk}/export/?{query}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-ndjson"
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in text.splitlines()]


def frozen(snapshot, split: str = "train") -> list[SnapshotPair]:
    return list(snapshot.pairs.filter(split=split).order_by("id"))


# --- Create and read -----------------------------------------------------------------------------


def test_a_trainer_creates_a_snapshot_of_the_approved_pairs(client, manual, pairs):
    response = client.post(
        "/api/snapshots/",
        {
            "manual": manual.pk,
            "name": "First cut",
            "prompt_format": "seed_inst",
            "train_fraction": 0.5,
            "eval_fraction": 0.25,
            "test_fraction": 0.25,
            "seed": 7,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["version"], body["prompt_format"], body["seed"]) == (
        "First cut",
        1,
        "seed_inst",
        7,
    )
    assert body["pair_count"] == 4
    assert body["train_count"] + body["eval_count"] + body["test_count"] == 4
    assert len(body["content_hash"]) == 64
    assert body["created_by"] == "trainer"
    assert (body["train_fraction"], body["eval_fraction"], body["test_fraction"]) == (
        0.5,
        0.25,
        0.25,
    )

    listed = client.get("/api/snapshots/").json()["results"]
    assert [s["id"] for s in listed] == [body["id"]]
    assert client.get(f"/api/snapshots/{body['id']}/").json() == body


def test_a_snapshot_can_be_limited_to_documents_and_unflagged_pairs(client, manual, pairs):
    tires = manual.documents.get(source_name="tires.md")
    response = client.post(
        "/api/snapshots/",
        {"manual": manual.pk, "document_ids": [tires.pk], "exclude_flagged": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    snapshot = DatasetSnapshot.objects.get(pk=response.json()["id"])
    assert [p.question for p in snapshot.pairs.all()] == [pairs[3].question]
    assert response.json()["filters"] == {"document_ids": [tires.pk], "exclude_flagged": True}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"train_fraction": 0.9, "eval_fraction": 0.2, "test_fraction": 0.1}, "train_fraction"),
        ({"train_fraction": "most"}, "train_fraction"),
        ({"prompt_format": "llama9"}, "prompt_format"),
        ({"seed": -1}, "seed"),
        ({"manual": 999999}, "manual"),
    ],
)
def test_invalid_snapshot_input_is_refused_naming_the_field(client, manual, pairs, body, field):
    response = client.post("/api/snapshots/", {"manual": manual.pk, **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not DatasetSnapshot.objects.exists()


def test_documents_of_another_manual_are_refused(client, manual, pairs):
    other = make_manual("Other manual")
    response = client.post(
        "/api/snapshots/",
        {"manual": manual.pk, "document_ids": [other.documents.first().pk]},
        format="json",
    )
    assert response.status_code == 400
    assert "document_ids" in response.json()


def test_a_manual_without_approved_pairs_gives_no_snapshot(client, manual):
    make_pairs(manual)  # all pending
    response = client.post("/api/snapshots/", {"manual": manual.pk}, format="json")
    assert response.status_code == 400
    assert "no approved pairs" in response.json()["non_field_errors"][0]


def test_a_reviewer_cannot_create_snapshots_but_a_trainer_can(manual, pairs):
    as_reviewer = token_client(reviewer())
    response = as_reviewer.post("/api/snapshots/", {"manual": manual.pk}, format="json")
    assert response.status_code == 403
    assert as_reviewer.get("/api/snapshots/").status_code == 403
    assert not DatasetSnapshot.objects.exists()

    as_trainer = token_client(trainer())
    response = as_trainer.post("/api/snapshots/", {"manual": manual.pk}, format="json")
    assert response.status_code == 201


def test_snapshots_need_login_and_permissions(manual, pairs, trainer_user):
    snapshot = all_train(manual, trainer_user)
    anonymous = APIClient()
    for url in (
        "/api/snapshots/",
        f"/api/snapshots/{snapshot.pk}/",
        f"/api/snapshots/{snapshot.pk}/pairs/",
        f"/api/snapshots/{snapshot.pk}/export/",
        f"/api/snapshots/{snapshot.pk}/diff/?against={snapshot.pk}",
    ):
        assert anonymous.get(url).status_code == 401, url
    plain = token_client(user_with())
    assert plain.get(f"/api/snapshots/{snapshot.pk}/export/").status_code == 403
    viewer = token_client(user_with("training.view_datasetsnapshot"))
    assert viewer.get(f"/api/snapshots/{snapshot.pk}/").status_code == 200
    assert viewer.post("/api/snapshots/", {"manual": manual.pk}).status_code == 403


def test_snapshots_are_immutable_through_the_api(client, manual, pairs, trainer_user):
    snapshot = all_train(manual, trainer_user)
    url = f"/api/snapshots/{snapshot.pk}/"
    assert client.put(url, {"name": "renamed"}, format="json").status_code == 405
    assert client.patch(url, {"name": "renamed"}, format="json").status_code == 405
    assert client.delete(url).status_code == 405
    assert DatasetSnapshot.objects.get().name == snapshot.name


# --- Frozen pairs and export ---------------------------------------------------------------------


def test_the_frozen_pairs_are_listed_per_split(client, manual, pairs, trainer_user):
    snapshot = all_train(manual, trainer_user)
    train = client.get(f"/api/snapshots/{snapshot.pk}/pairs/?split=train").json()
    assert train["count"] == 4
    assert [p["qa_pair"] for p in train["results"]] == [p.pk for p in pairs]
    assert train["results"][2]["section"] == "Tires > Tire Pressure"
    assert client.get(f"/api/snapshots/{snapshot.pk}/pairs/?split=eval").json()["count"] == 0
    response = client.get(f"/api/snapshots/{snapshot.pk}/pairs/?split=holdout")
    assert response.status_code == 400
    assert "split" in response.json()


def test_chat_template_export_matches_the_frozen_pairs(client, manual, pairs, trainer_user):
    snapshot = all_train(manual, trainer_user, system_prompt="Answer from the manual.")
    records = export_lines(client, snapshot, "format=chat_template&split=train")
    assert len(records) == 4
    for record, pair in zip(records, frozen(snapshot), strict=True):
        assert record == {
            "messages": [
                {"role": "system", "content": "Answer from the manual."},
                {"role": "user", "content": pair.question},
                {"role": "assistant", "content": pair.answer},
            ]
        }


def test_seed_inst_export_matches_the_frozen_pairs(client, manual, pairs, trainer_user):
    snapshot = all_train(manual, trainer_user)
    records = export_lines(client, snapshot, "format=seed_inst&split=train")
    assert len(records) == 4
    for record, pair in zip(records, frozen(snapshot), strict=True):
        assert record == {"text": f"<s>[INST] {pair.question} [/INST] {pair.answer} </s>"}


def test_alpaca_export_matches_the_frozen_pairs(client, manual, pairs, trainer_user):
    snapshot = all_train(manual, trainer_user)
    records = export_lines(client, snapshot, "format=alpaca&split=train")
    assert len(records) == 4
    for record, pair in zip(records, frozen(snapshot), strict=True):
        assert record == {"instruction": pair.question, "input": "", "output": pair.answer}


def test_export_defaults_to_the_snapshots_format_and_the_train_split(
    client, manual, pairs, trainer_user
):
    snapshot = all_train(manual, trainer_user, prompt_format="alpaca")
    records = export_lines(client, snapshot, "")
    assert [r["instruction"] for r in records] == [p.question for p in pairs]
    assert export_lines(client, snapshot, "split=test") == []


def test_export_refuses_unknown_formats_and_splits(client, manual, pairs, trainer_user):
    snapshot = all_train(manual, trainer_user)
    for query, field in [("format=csv", "format"), ("split=holdout", "split")]:
        response = client.get(f"/api/snapshots/{snapshot.pk}/export/?{query}")
        assert response.status_code == 400, query
        assert field in response.json(), query


def test_editing_a_pair_after_a_snapshot_does_not_change_its_export(
    client, manual, pairs, trainer_user
):
    snapshot = all_train(manual, trainer_user, prompt_format="seed_inst")
    before = export_lines(client, snapshot, "")
    edited = client.patch(
        f"/api/qa-pairs/{pairs[0].pk}/",
        {"answer": "Touch Controls > Charge Port."},
        format="json",
    )
    assert edited.status_code == 200, edited.content

    assert export_lines(client, snapshot, "") == before
    assert "Press the button on the charge cable." in before[0]["text"]
    later = client.post("/api/snapshots/", {"manual": manual.pk}, format="json").json()
    assert later["content_hash"] != snapshot.content_hash


# --- Diff ----------------------------------------------------------------------------------------


def test_diff_lists_pairs_added_removed_and_edited(client, manual, pairs, trainer_user):
    QAPair.objects.filter(pk=pairs[3].pk).update(status=QAPair.Status.PENDING)
    first = all_train(manual, trainer_user)
    curation_services.qa_pair_set_status(pair=pairs[3], status="approved", reviewer=trainer_user)
    curation_services.qa_pair_set_status(pair=pairs[1], status="rejected", reviewer=trainer_user)
    curation_services.qa_pair_edit(
        pair=pairs[0], reviewer=trainer_user, question="Where is the charge port button?",
        answer=pairs[0].answer,
    )  # fmt: skip
    second = all_train(manual, trainer_user)

    response = client.get(f"/api/snapshots/{second.pk}/diff/?against={first.pk}")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "snapshot": second.pk,
        "against": first.pk,
        "added": [{"qa_pair": pairs[3].pk, "question": pairs[3].question}],
        "removed": [{"qa_pair": pairs[1].pk, "question": pairs[1].question}],
        "edited": [
            {
                "qa_pair": pairs[0].pk,
                "question": "Where is the charge port button?",
                "previous_question": pairs[0].question,
                "answer_changed": False,
            }
        ],
    }


def test_diff_needs_an_existing_snapshot_to_compare_with(client, manual, pairs, trainer_user):
    snapshot = all_train(manual, trainer_user)
    for query in ("", "against=x", "against=999999"):
        response = client.get(f"/api/snapshots/{snapshot.pk}/diff/?{query}")
        assert response.status_code == 400, query
        assert "against" in response.json(), query
