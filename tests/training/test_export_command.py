"""``manage.py export_dataset``: the files it writes, what it prints, and what it refuses."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from training import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshot(manual, trainer):
    return services.snapshot_create(manual=manual, user=trainer, name="Command cut")


def export(*args) -> str:
    out = io.StringIO()
    call_command("export_dataset", *[str(a) for a in args], stdout=out)
    return out.getvalue()


def test_writes_the_jsonl_files_and_prints_the_counts(snapshot, tmp_path):
    printed = export(snapshot.pk, "--format", "seed_inst", "--out", tmp_path)

    for split in ("train", "eval", "test"):
        lines = (tmp_path / f"{split}.jsonl").read_text().splitlines()
        frozen = snapshot.pairs.filter(split=split).order_by("id")
        assert [json.loads(line)["text"] for line in lines] == [
            f"<s>[INST] {p.question} [/INST] {p.answer} </s>" for p in frozen
        ]
        count = getattr(snapshot, f"{split}_count")
        assert f"{split:<5} {count:>7,} records  {tmp_path / f'{split}.jsonl'}" in printed
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert (metadata["snapshot_id"], metadata["format"]) == (snapshot.pk, "seed_inst")
    assert f"Exported 12 pairs to {tmp_path}." in printed
    assert not (tmp_path / "hf").exists()


def test_hf_flag_saves_a_dataset_dict_under_hf(snapshot, tmp_path):
    from datasets import load_from_disk

    printed = export(snapshot.pk, "--format", "alpaca", "--out", tmp_path, "--hf")

    loaded = load_from_disk(str(tmp_path / "hf"))
    assert {split: loaded[split].num_rows for split in loaded} == {
        "train": snapshot.train_count,
        "eval": snapshot.eval_count,
        "test": snapshot.test_count,
    }
    assert loaded["train"][0]["instruction"] == (
        snapshot.pairs.filter(split="train").order_by("id").first().question
    )
    assert f"Hugging Face DatasetDict  {tmp_path / 'hf'}" in printed


def test_the_snapshots_own_format_is_the_default(snapshot, tmp_path):
    export(snapshot.pk, "--out", tmp_path)
    first = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]


def test_an_unknown_snapshot_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match=r"No dataset snapshot #999\."):
        export(999, "--out", tmp_path)


def test_an_unknown_format_is_a_clear_error(snapshot, tmp_path):
    with pytest.raises(CommandError) as caught:
        export(snapshot.pk, "--format", "sharegpt", "--out", tmp_path)
    assert str(caught.value) == (
        "Unknown format 'sharegpt': use one of chat_template, seed_inst, alpaca."
    )
    assert not list(tmp_path.iterdir())


@override_settings(HF_TOKEN="")
def test_push_without_hf_token_names_the_missing_variable(snapshot, tmp_path):
    with pytest.raises(CommandError, match="HF_TOKEN"):
        export(snapshot.pk, "--out", tmp_path, "--push-to", "someone/model-x-qa")
    assert not list(tmp_path.iterdir())
