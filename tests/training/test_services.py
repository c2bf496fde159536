"""Dataset snapshots: what gets frozen, how it is split, and what each export holds."""

from __future__ import annotations

import io
import json
import zipfile
from collections import defaultdict

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.test import override_settings

from curation import services as curation_services
from curation.models import DocumentChunk, QAPair
from curation.services import CleanDocument
from tests.training.conftest import add_pairs, build_manual
from training import services
from training.models import DatasetSnapshot, SnapshotPair

pytestmark = pytest.mark.django_db

SYSTEM_PROMPT = "You are the Model X owner's manual assistant. Answer from the manual only."


def splits_by_pair(snapshot: DatasetSnapshot) -> dict[int, str]:
    return dict(snapshot.pairs.values_list("qa_pair_id", "split"))


# -- freezing and versions ---------------------------------------------------------------------


def test_snapshot_freezes_the_approved_pairs_text(manual, trainer):
    pending = add_pairs(manual, per_chunk=1, first=2, status=QAPair.Status.PENDING)
    snapshot = services.snapshot_create(manual=manual, user=trainer, name="First cut")
    pair = QAPair.objects.filter(manual=manual, status=QAPair.Status.APPROVED).first()
    frozen_question, frozen_answer = pair.question, pair.answer

    curation_services.qa_pair_edit(
        pair=pair, reviewer=trainer, question="A rewritten question?", answer="A new answer."
    )

    frozen = snapshot.pairs.get(qa_pair=pair)
    assert (frozen.question, frozen.answer) == (frozen_question, frozen_answer)
    assert snapshot.pair_count == QAPair.objects.filter(status=QAPair.Status.APPROVED).count()
    assert not snapshot.pairs.filter(qa_pair__in=pending).exists()
    assert frozen.section == pair.chunk.heading_path
    assert frozen.source_name == pair.document.source_name
    assert snapshot.name == "First cut"


def test_owner_feedback_pairs_train_only_once_a_reviewer_edited_them(manual, trainer):
    """Security review M4: a thumbs-down pair holds the answer an owner marked wrong, in text
    anyone could write; approved as it is, it stays out of the dataset."""
    feedback = QAPair.objects.filter(manual=manual, status=QAPair.Status.APPROVED)[:2]
    unedited, edited = list(feedback)
    QAPair.objects.filter(pk__in=[unedited.pk, edited.pk]).update(
        origin=QAPair.Origin.CHAT_FEEDBACK
    )
    curation_services.qa_pair_edit(
        pair=edited,
        reviewer=trainer,
        question=edited.question,
        answer="The corrected answer from the manual.",
    )
    QAPair.objects.filter(pk=edited.pk).update(status=QAPair.Status.APPROVED)

    snapshot = services.snapshot_create(manual=manual, user=trainer)

    frozen = set(snapshot.pairs.values_list("qa_pair_id", flat=True))
    assert edited.pk in frozen and unedited.pk not in frozen
    approved = QAPair.objects.filter(manual=manual, status=QAPair.Status.APPROVED).count()
    assert snapshot.pair_count == approved - 1


def test_versions_count_up_per_manual(manual, trainer):
    other = build_manual("Other manual", pages=1, sections=2)
    add_pairs(other)

    first = services.snapshot_create(manual=manual, user=trainer)
    second = services.snapshot_create(manual=manual, user=trainer)
    other_first = services.snapshot_create(manual=other, user=trainer)

    assert (first.version, second.version, other_first.version) == (1, 2, 1)
    assert str(second) == "Dataset manual dataset v2"


def test_content_hash_is_stable_for_the_same_data_and_changes_with_a_pair(manual, trainer):
    first = services.snapshot_create(manual=manual, user=trainer)
    again = services.snapshot_create(manual=manual, user=trainer)
    assert len(first.content_hash) == 64
    assert again.content_hash == first.content_hash

    pair = QAPair.objects.filter(manual=manual, status=QAPair.Status.APPROVED).last()
    curation_services.qa_pair_edit(
        pair=pair, reviewer=trainer, question=pair.question, answer="A corrected answer."
    )
    edited = services.snapshot_create(manual=manual, user=trainer)
    assert edited.content_hash != first.content_hash


# -- the split ---------------------------------------------------------------------------------


@pytest.fixture
def many_sections(db):
    """200 sections (four pages of 50), one approved pair each."""
    manual = build_manual("Big manual", pages=4, sections=50)
    add_pairs(manual, per_chunk=1)
    assert DocumentChunk.objects.filter(document__manual=manual).count() == 200
    return manual


def test_the_same_seed_gives_the_same_split_and_another_seed_another(many_sections, trainer):
    first = services.snapshot_create(manual=many_sections, user=trainer, seed=7)
    again = services.snapshot_create(manual=many_sections, user=trainer, seed=7)
    other_seed = services.snapshot_create(manual=many_sections, user=trainer, seed=8)

    assert splits_by_pair(again) == splits_by_pair(first)
    assert splits_by_pair(other_seed) != splits_by_pair(first)
    assert other_seed.content_hash != first.content_hash


@pytest.mark.parametrize("seed", [1, 42, 2024])
@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2)])
def test_split_proportions_are_roughly_respected(many_sections, trainer, seed, fractions):
    train, eval_, test = fractions
    snapshot = services.snapshot_create(
        manual=many_sections,
        user=trainer,
        seed=seed,
        train_fraction=train,
        eval_fraction=eval_,
        test_fraction=test,
    )

    assert snapshot.pair_count == 200
    assert snapshot.train_count + snapshot.eval_count + snapshot.test_count == 200
    assert abs(snapshot.train_count / 200 - train) <= 0.08
    assert abs(snapshot.eval_count / 200 - eval_) <= 0.08
    assert abs(snapshot.test_count / 200 - test) <= 0.08
    counted = dict(snapshot.pairs.values_list("split").annotate(n=Count("id")))
    assert counted.get("train", 0) == snapshot.train_count
    assert counted.get("test", 0) == snapshot.test_count


def test_pairs_of_one_section_never_cross_splits(trainer):
    manual = build_manual("Sectioned manual", pages=3, sections=10)
    # A long section whose subsections become chunks of their own: still one section.
    long_part = " ".join(f"Step {n} of the procedure needs care." for n in range(40))
    markdown = (
        f"# Long page\n\n## Long topic\n\n### Part A\n\n{long_part}\n\n"
        f"### Part B\n\n{long_part}\n\n### Part C\n\n{long_part}\n"
    )
    curation_services.document_upsert(
        manual=manual,
        clean=CleanDocument("long.md", "", "Long page", markdown, len(markdown.split())),
    )
    long_paths = set(
        DocumentChunk.objects.filter(document__source_name="long.md").values_list(
            "heading_path", flat=True
        )
    )
    assert len(long_paths) >= 3  # the subsections really are separate chunks
    add_pairs(manual, per_chunk=3)

    for seed in range(5):
        snapshot = services.snapshot_create(manual=manual, user=trainer, seed=seed)
        splits = defaultdict(set)
        for source, section, split in snapshot.pairs.values_list("source_name", "section", "split"):
            splits[(source, section.split(" > ")[1])].add(split)
        assert len(splits) == 31
        assert all(len(found) == 1 for found in splits.values()), splits


def test_a_near_duplicate_lands_in_its_canonical_pairs_split(many_sections, trainer):
    before = services.snapshot_create(manual=many_sections, user=trainer, seed=3)
    by_split = defaultdict(list)
    for pair in before.pairs.order_by("id"):
        by_split[pair.split].append(pair)
    canonical = by_split["test"][0]
    duplicate = by_split["train"][-1]
    assert canonical.section != duplicate.section
    QAPair.objects.filter(pk=duplicate.qa_pair_id).update(duplicate_of=canonical.qa_pair_id)

    after = services.snapshot_create(manual=many_sections, user=trainer, seed=3)

    splits = splits_by_pair(after)
    assert splits[duplicate.qa_pair_id] == "test"
    assert splits[canonical.qa_pair_id] == "test"
    # Everyone else keeps their split.
    unchanged = {k: v for k, v in splits_by_pair(before).items() if k != duplicate.qa_pair_id}
    assert {k: v for k, v in splits.items() if k != duplicate.qa_pair_id} == unchanged


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ((0.8, 0.3, 0.1), "must add up to 1 (got 1.2)"),
        ((1.2, -0.1, -0.1), "cannot be negative"),
        ((0.0, 0.5, 0.5), "train split cannot be empty"),
        ((float("nan"), 0.1, 0.1), "must be numbers"),
    ],
)
def test_bad_fractions_are_refused_with_the_reason(manual, trainer, fractions, message):
    train, eval_, test = fractions
    with pytest.raises(ValidationError) as caught:
        services.snapshot_create(
            manual=manual,
            user=trainer,
            train_fraction=train,
            eval_fraction=eval_,
            test_fraction=test,
        )
    assert message in " ".join(caught.value.messages)
    assert not DatasetSnapshot.objects.exists()


def test_an_unknown_prompt_format_is_refused(manual, trainer):
    with pytest.raises(ValidationError) as caught:
        services.snapshot_create(manual=manual, user=trainer, prompt_format="sharegpt")
    assert caught.value.message_dict == {"prompt_format": ["Unknown prompt format 'sharegpt'."]}
    assert not DatasetSnapshot.objects.exists()


def test_a_manual_without_approved_pairs_is_refused(trainer):
    manual = build_manual("Unreviewed manual")
    add_pairs(manual, status=QAPair.Status.PENDING)
    with pytest.raises(ValidationError) as caught:
        services.snapshot_create(manual=manual, user=trainer)
    assert caught.value.messages == [
        "Unreviewed manual has no approved pairs to build a dataset from."
    ]
    assert not DatasetSnapshot.objects.exists()


def test_excluding_flagged_pairs_leaves_them_out_and_refuses_when_none_remain(trainer):
    manual = build_manual("Flagged manual", pages=1, sections=2)
    flagged = add_pairs(manual, per_chunk=1, flags=["low_grounding"])
    with pytest.raises(ValidationError) as caught:
        services.snapshot_create(manual=manual, user=trainer, exclude_flagged=True)
    assert "no approved pairs without flags" in caught.value.messages[0]

    clean = add_pairs(manual, per_chunk=1, first=1)
    snapshot = services.snapshot_create(manual=manual, user=trainer, exclude_flagged=True)
    frozen = set(snapshot.pairs.values_list("qa_pair_id", flat=True))
    assert frozen.isdisjoint(p.pk for p in flagged)
    assert {p.pk for p in clean} <= frozen
    assert snapshot.filters == {"document_ids": [], "exclude_flagged": True}


def test_a_user_without_the_dataset_permission_is_refused(manual, reviewer):
    with pytest.raises(PermissionDenied):
        services.snapshot_create(manual=manual, user=reviewer)
    assert not DatasetSnapshot.objects.exists()


# -- diff --------------------------------------------------------------------------------------


def test_diff_reports_added_removed_and_edited_pairs(manual, trainer):
    old = services.snapshot_create(manual=manual, user=trainer)
    approved = list(QAPair.objects.filter(manual=manual).order_by("id"))
    edited, rejected = approved[0], approved[1]
    curation_services.qa_pair_edit(
        pair=edited, reviewer=trainer, question=edited.question, answer="The corrected answer."
    )
    curation_services.qa_pair_set_status(
        pair=rejected, status=QAPair.Status.REJECTED, reviewer=trainer
    )
    newcomer = add_pairs(manual, per_chunk=1, first=2, status=QAPair.Status.PENDING)[0]
    curation_services.qa_pair_set_status(
        pair=newcomer, status=QAPair.Status.APPROVED, reviewer=trainer
    )
    new = services.snapshot_create(manual=manual, user=trainer)

    diff = services.snapshot_diff(old=old, new=new)

    assert [p.question for p in diff.added] == [newcomer.question]
    assert [p.question for p in diff.removed] == [rejected.question]
    assert [(before.answer, after.answer) for before, after in diff.edited] == [
        (edited.answer, "The corrected answer.")
    ]
    assert services.snapshot_diff(old=old, new=old) == services.SnapshotDiff([], [], [])


def test_diff_counts_a_deleted_pair_as_removed_and_refuses_another_manual(manual, trainer):
    old = services.snapshot_create(manual=manual, user=trainer)
    gone = QAPair.objects.filter(manual=manual).order_by("id").first()
    gone.delete()
    new = services.snapshot_create(manual=manual, user=trainer)

    # A pair deleted after both snapshots still matches itself by its frozen text.
    QAPair.objects.filter(manual=manual).order_by("id")[1:2].get().delete()

    diff = services.snapshot_diff(old=old, new=new)
    assert [p.question for p in diff.removed] == [gone.question]
    assert diff.added == diff.edited == []

    other = build_manual("Other manual", pages=1, sections=1)
    add_pairs(other)
    with pytest.raises(ValidationError, match="same manual"):
        services.snapshot_diff(old=old, new=services.snapshot_create(manual=other, user=trainer))


# -- exports -----------------------------------------------------------------------------------


def expected_record(pair: SnapshotPair, fmt: str, system_prompt: str) -> dict:
    """The record a trainer expects, written out independently of the service."""
    if fmt == "chat_template":
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return {
            "messages": [
                *system,
                {"role": "user", "content": pair.question},
                {"role": "assistant", "content": pair.answer},
            ]
        }
    if fmt == "seed_inst":
        prefix = f"<<SYS>>\n{system_prompt}\n<</SYS>>\n\n" if system_prompt else ""
        return {"text": f"<s>[INST] {prefix}{pair.question} [/INST] {pair.answer} </s>"}
    record = {"instruction": pair.question, "input": "", "output": pair.answer}
    return {**record, "system": system_prompt} if system_prompt else record


@pytest.mark.parametrize("system_prompt", ["", SYSTEM_PROMPT])
@pytest.mark.parametrize("fmt", ["chat_template", "seed_inst", "alpaca"])
def test_jsonl_export_writes_every_frozen_pair_in_the_format(
    many_sections, trainer, tmp_path, fmt, system_prompt
):
    snapshot = services.snapshot_create(
        manual=many_sections, user=trainer, prompt_format=fmt, system_prompt=system_prompt
    )
    # Later edits must not leak into the export.
    QAPair.objects.filter(manual=many_sections).update(answer="Changed after the snapshot.")

    paths = services.snapshot_export_jsonl(snapshot=snapshot, out_dir=tmp_path / "out")

    assert sorted(paths) == ["eval", "test", "train"]
    for split, path in paths.items():
        assert path == tmp_path / "out" / f"{split}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        frozen = list(snapshot.pairs.filter(split=split).order_by("id"))
        assert len(lines) == len(frozen) == getattr(snapshot, f"{split}_count")
        for line, pair in zip(lines, frozen, strict=True):
            assert json.loads(line) == expected_record(pair, fmt, system_prompt)
            assert "Changed after the snapshot." not in line


def test_export_format_can_differ_from_the_snapshots_and_unknown_ones_are_refused(
    manual, trainer, tmp_path
):
    snapshot = services.snapshot_create(manual=manual, user=trainer, prompt_format="alpaca")
    paths = services.snapshot_export_jsonl(snapshot=snapshot, out_dir=tmp_path, fmt="seed_inst")
    first = json.loads(paths["train"].read_text().splitlines()[0])
    assert first["text"].startswith("<s>[INST] What does the manual say about")

    with pytest.raises(ValidationError) as caught:
        services.snapshot_export_jsonl(snapshot=snapshot, out_dir=tmp_path, fmt="sharegpt")
    assert caught.value.message_dict == {
        "format": ["Unknown export format 'sharegpt': use chat_template, seed_inst, alpaca."]
    }


def test_prompt_format_markers_in_pairs_or_system_prompt_are_refused(manual, trainer, tmp_path):
    pair = QAPair.objects.filter(manual=manual).first()
    QAPair.objects.filter(pk=pair.pk).update(answer="Type [/INST] to finish.")
    with pytest.raises(ValidationError, match=rf"edit them first: #{pair.pk}"):
        services.snapshot_create(manual=manual, user=trainer)
    QAPair.objects.filter(pk=pair.pk).update(answer="Type done to finish.")

    with pytest.raises(ValidationError) as caught:
        services.snapshot_create(manual=manual, user=trainer, system_prompt="Answer [INST] q")
    assert caught.value.message_dict == {
        "system_prompt": ["The system prompt cannot contain the prompt marker '[INST]'."]
    }
    assert not DatasetSnapshot.objects.exists()


def test_zip_export_holds_the_splits_and_metadata(manual, trainer):
    snapshot = services.snapshot_create(
        manual=manual, user=trainer, name="Zip me", system_prompt=SYSTEM_PROMPT
    )
    buffer = io.BytesIO()
    services.snapshot_export_zip(snapshot=snapshot, target=buffer, fmt="alpaca")

    with zipfile.ZipFile(buffer) as archive:
        assert sorted(archive.namelist()) == [
            "README.md",
            "eval.jsonl",
            "metadata.json",
            "test.jsonl",
            "train.jsonl",
        ]
        metadata = json.loads(archive.read("metadata.json"))
        for split in ("train", "eval", "test"):
            lines = archive.read(f"{split}.jsonl").decode().splitlines()
            frozen = snapshot.pairs.filter(split=split).order_by("id")
            assert [json.loads(line) for line in lines] == [
                expected_record(pair, "alpaca", SYSTEM_PROMPT) for pair in frozen
            ]
        readme = archive.read("README.md").decode()
    assert metadata["snapshot_id"] == snapshot.pk
    assert metadata["version"] == 1
    assert metadata["content_hash"] == snapshot.content_hash
    assert metadata["format"] == "alpaca"
    assert metadata["counts"] == {
        "total": snapshot.pair_count,
        "train": snapshot.train_count,
        "eval": snapshot.eval_count,
        "test": snapshot.test_count,
    }
    assert f"Content hash: `{snapshot.content_hash}`" in readme


def test_hf_export_saves_a_dataset_dict_that_loads_back(many_sections, trainer, tmp_path):
    from datasets import load_from_disk

    snapshot = services.snapshot_create(
        manual=many_sections, user=trainer, prompt_format="chat_template", system_prompt="Hi."
    )
    out = services.snapshot_export_hf(snapshot=snapshot, out_dir=tmp_path / "hf")

    loaded = load_from_disk(str(out))
    assert {split: loaded[split].num_rows for split in loaded} == {
        "train": snapshot.train_count,
        "eval": snapshot.eval_count,
        "test": snapshot.test_count,
    }
    first = snapshot.pairs.filter(split="eval").order_by("id").first()
    assert loaded["eval"][0] == expected_record(first, "chat_template", "Hi.")


@override_settings(HF_TOKEN="")
def test_pushing_to_the_hub_without_a_token_is_refused_before_writing(manual, trainer, tmp_path):
    snapshot = services.snapshot_create(manual=manual, user=trainer)
    with pytest.raises(ValidationError, match="HF_TOKEN"):
        services.snapshot_export_hf(
            snapshot=snapshot, out_dir=tmp_path / "hf", push_to="someone/model-x-qa"
        )
    assert not (tmp_path / "hf").exists()
