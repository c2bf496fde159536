"""Dataset snapshot admin: list, read-only pages, the build page, export and compare."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from curation import services as curation_services
from curation.models import QAPair
from tests.training.conftest import add_pairs, build_manual
from training import services
from training.models import DatasetSnapshot, SnapshotPair

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:training_datasetsnapshot_changelist"


@pytest.fixture
def trainer_client(client, trainer):
    client.force_login(trainer)
    return client


@pytest.fixture
def snapshot(manual, trainer) -> DatasetSnapshot:
    return services.snapshot_create(manual=manual, user=trainer, name="Model X QA")


def build_form(manual, **overrides) -> dict:
    return {
        "manual": manual.pk,
        "name": "From the form",
        "description": "",
        "prompt_format": "seed_inst",
        "system_prompt": "",
        "train_fraction": "0.8",
        "eval_fraction": "0.1",
        "test_fraction": "0.1",
        "seed": "42",
        **overrides,
    }


# -- list and read-only pages ------------------------------------------------------------------


def test_list_shows_each_snapshot_with_its_counts_and_short_hash(trainer_client, snapshot):
    response = trainer_client.get(reverse(CHANGELIST))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Model X QA" in page
    assert snapshot.content_hash[:12] in page
    assert snapshot.content_hash not in page
    row = response.context["cl"].result_list[0]
    assert (row.pair_count, row.train_count + row.eval_count + row.test_count) == (12, 12)
    assert "Build a dataset snapshot" in page

    found = trainer_client.get(reverse(CHANGELIST), {"q": "Model X"})
    assert found.context["cl"].result_count == 1
    assert trainer_client.get(reverse(CHANGELIST), {"q": "nothing"}).context["cl"].result_count == 0
    filtered = trainer_client.get(reverse(CHANGELIST), {"prompt_format__exact": "alpaca"})
    assert filtered.context["cl"].result_count == 0


def test_list_query_count_does_not_grow_with_snapshots(admin_client, manual, trainer, reviewer):
    services.snapshot_create(manual=manual, user=trainer)
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(reverse(CHANGELIST)).status_code == 200
    other = build_manual("Second manual", pages=1, sections=2)
    add_pairs(other)
    for _ in range(4):
        services.snapshot_create(manual=other, user=trainer)
        services.snapshot_create(manual=manual, user=None)
    with CaptureQueriesContext(connection) as nine:
        response = admin_client.get(reverse(CHANGELIST))
    assert response.context["cl"].result_count == 9
    assert len(nine) == len(one)


def test_snapshot_page_is_read_only_and_links_to_its_pairs(trainer_client, snapshot):
    url = reverse("admin:training_datasetsnapshot_change", args=[snapshot.pk])
    response = trainer_client.get(url)
    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="_save"' not in page
    assert f"?snapshot__id__exact={snapshot.pk}&amp;split__exact=train" in page
    assert snapshot.content_hash in page
    assert reverse("admin:training_datasetsnapshot_export", args=[snapshot.pk]) in page
    assert reverse("admin:training_datasetsnapshot_compare", args=[snapshot.pk]) in page
    # The pairs themselves are not inlined on the page.
    assert escape(snapshot.pairs.first().question) not in page

    assert trainer_client.post(url, {"name": "Renamed"}).status_code == 403
    snapshot.refresh_from_db()
    assert snapshot.name == "Model X QA"
    delete_url = reverse("admin:training_datasetsnapshot_delete", args=[snapshot.pk])
    assert trainer_client.get(delete_url).status_code == 403
    assert reverse("admin:training_datasetsnapshot_add") not in page


def test_a_superuser_can_delete_a_snapshot_with_a_summary_of_its_pairs(admin_client, snapshot):
    url = reverse("admin:training_datasetsnapshot_delete", args=[snapshot.pk])
    page = admin_client.get(url).content.decode()
    assert "Model X QA v1 (12 pairs)" in page
    assert escape(snapshot.pairs.first().question) not in page

    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not DatasetSnapshot.objects.exists()
    assert not SnapshotPair.objects.exists()


def test_snapshot_pairs_are_browsed_page_by_page(trainer_client, trainer, manual):
    long_manual = build_manual("Long manual", pages=3, sections=40)
    add_pairs(long_manual, per_chunk=2)
    snapshot = services.snapshot_create(manual=long_manual, user=trainer)
    other = services.snapshot_create(manual=manual, user=trainer)
    url = reverse("admin:training_snapshotpair_changelist")

    response = trainer_client.get(url, {"snapshot__id__exact": snapshot.pk})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 240
    shown = response.context["cl"].result_list
    assert len(shown) == 100
    assert [p.pk for p in shown] == [
        pk for (pk,) in snapshot.pairs.order_by("id").values_list("pk")[:100]
    ]
    last_page = trainer_client.get(url, {"snapshot__id__exact": snapshot.pk, "p": 3})
    assert len(last_page.context["cl"].result_list) == 40
    small = trainer_client.get(url, {"snapshot__id__exact": other.pk})
    assert small.context["cl"].result_count == other.pair_count == 12

    train = trainer_client.get(url, {"snapshot__id__exact": snapshot.pk, "split__exact": "train"})
    assert train.context["cl"].result_count == snapshot.train_count
    pair = snapshot.pairs.first()
    detail = trainer_client.get(reverse("admin:training_snapshotpair_change", args=[pair.pk]))
    assert escape(pair.answer) in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()


def test_snapshot_pairs_list_query_count_does_not_grow_with_pairs(admin_client, manual, trainer):
    url = reverse("admin:training_snapshotpair_changelist")
    small = services.snapshot_create(manual=manual, user=trainer)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url, {"snapshot__id__exact": small.pk})
    long_manual = build_manual("Long manual", pages=2, sections=30)
    add_pairs(long_manual, per_chunk=3)
    large = services.snapshot_create(manual=long_manual, user=trainer)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(url, {"snapshot__id__exact": large.pk})
    assert response.context["cl"].result_count == 180
    assert len(many) == len(few)


# -- build page --------------------------------------------------------------------------------


def test_build_page_shows_approved_pairs_per_manual(trainer_client, manual):
    add_pairs(manual, per_chunk=1, first=2, status=QAPair.Status.PENDING)
    response = trainer_client.get(reverse("admin:training_datasetsnapshot_build"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Dataset manual (12 approved pairs)" in page
    assert "<td>Dataset manual</td><td>12</td><td>12</td>" in page


def test_build_page_creates_a_snapshot_and_redirects_to_it(trainer_client, manual, trainer):
    response = trainer_client.post(
        reverse("admin:training_datasetsnapshot_build"),
        build_form(manual, system_prompt="Be brief.", exclude_flagged="on"),
    )
    snapshot = DatasetSnapshot.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:training_datasetsnapshot_change", args=[snapshot.pk])
    assert (snapshot.name, snapshot.prompt_format, snapshot.system_prompt) == (
        "From the form",
        "seed_inst",
        "Be brief.",
    )
    assert (snapshot.pair_count, snapshot.created_by, snapshot.filters["exclude_flagged"]) == (
        12,
        trainer,
        True,
    )
    page = trainer_client.get(response.url).content.decode()
    assert "Built From the form v1: 12 pairs" in page


def test_build_page_shows_the_services_errors_on_the_form(trainer_client, manual):
    url = reverse("admin:training_datasetsnapshot_build")
    response = trainer_client.post(url, build_form(manual, train_fraction="0.9"))
    assert response.status_code == 200
    assert "Split fractions must add up to 1 (got 1.1)." in response.content.decode()
    assert response.context["form"].errors["train_fraction"]

    empty = build_manual("Empty manual", pages=1, sections=1)
    response = trainer_client.post(url, build_form(empty))
    assert "Empty manual has no approved pairs to build a dataset from." in (
        response.content.decode()
    )
    assert not DatasetSnapshot.objects.exists()


def test_staff_without_the_dataset_permission_cannot_build(client, reviewer, manual):
    client.force_login(reviewer)
    url = reverse("admin:training_datasetsnapshot_build")
    assert client.get(url).status_code == 403
    assert client.post(url, build_form(manual)).status_code == 403
    assert not DatasetSnapshot.objects.exists()


# -- export ------------------------------------------------------------------------------------


def test_export_downloads_a_zip_of_the_splits_in_the_chosen_format(trainer_client, snapshot):
    url = reverse("admin:training_datasetsnapshot_export", args=[snapshot.pk])
    form = trainer_client.get(url)
    assert form.status_code == 200
    assert f"<code>train.jsonl</code> ({snapshot.train_count} records)" in form.content.decode()

    response = trainer_client.post(url, {"format": "seed_inst"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert 'filename="model-x-qa-v1-seed_inst.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    metadata = json.loads(archive.read("metadata.json"))
    assert (metadata["snapshot_id"], metadata["version"], metadata["format"]) == (
        snapshot.pk,
        1,
        "seed_inst",
    )
    assert metadata["content_hash"] == snapshot.content_hash
    train = archive.read("train.jsonl").decode().splitlines()
    first = snapshot.pairs.filter(split="train").order_by("id").first()
    assert len(train) == snapshot.train_count
    assert json.loads(train[0]) == {
        "text": f"<s>[INST] {first.question} [/INST] {first.answer} </s>"
    }


def test_export_action_opens_the_export_page_for_one_snapshot(trainer_client, snapshot, trainer):
    response = trainer_client.post(
        reverse(CHANGELIST), {"action": "export_snapshot", "_selected_action": [snapshot.pk]}
    )
    assert response.url == reverse("admin:training_datasetsnapshot_export", args=[snapshot.pk])

    second = services.snapshot_create(manual=snapshot.manual, user=trainer)
    response = trainer_client.post(
        reverse(CHANGELIST),
        {"action": "export_snapshot", "_selected_action": [snapshot.pk, second.pk]},
        follow=True,
    )
    assert "Choose one snapshot to export." in response.content.decode()


# -- compare -----------------------------------------------------------------------------------


def test_compare_shows_added_removed_and_edited_pairs(trainer_client, snapshot, trainer):
    pairs = list(QAPair.objects.order_by("id"))
    curation_services.qa_pair_edit(
        pair=pairs[0], reviewer=trainer, question=pairs[0].question, answer="Freshly corrected."
    )
    curation_services.qa_pair_set_status(
        pair=pairs[1], status=QAPair.Status.REJECTED, reviewer=trainer
    )
    newer = services.snapshot_create(manual=snapshot.manual, user=trainer)
    url = reverse("admin:training_datasetsnapshot_compare", args=[newer.pk])

    chooser = trainer_client.get(url).content.decode()
    assert f'<option value="{snapshot.pk}"' in chooser

    response = trainer_client.get(url, {"other": snapshot.pk})
    page = response.content.decode()
    assert response.status_code == 200
    assert "From Model X QA v1 to Dataset manual dataset v2" in page
    assert "0 added, 1 removed,\n  1 edited." in page
    assert escape(pairs[1].question) in page
    assert escape(pairs[0].answer) in page and "Freshly corrected." in page

    action = trainer_client.post(
        reverse(CHANGELIST),
        {"action": "compare_snapshots", "_selected_action": [snapshot.pk, newer.pk]},
    )
    assert action.url == f"{url}?other={snapshot.pk}"


def test_compare_only_offers_snapshots_of_the_same_manual(trainer_client, snapshot, trainer):
    other = build_manual("Other manual", pages=1, sections=1)
    add_pairs(other)
    foreign = services.snapshot_create(manual=other, user=trainer)
    url = reverse("admin:training_datasetsnapshot_compare", args=[snapshot.pk])

    response = trainer_client.get(url, {"other": foreign.pk}, follow=True)
    page = response.content.decode()
    assert "Dataset manual has no other snapshot to compare with." in page
    assert "Choose another snapshot of the same manual." in page
    assert response.context["diff"] is None
