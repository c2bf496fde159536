"""RAFT records and training: the chat's grounded prompt over retrieved passages, with the source
passage kept with probability P and cited, else only distractors and the decline."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from chat import answering, prompts
from chat.services import answering as chat_answering
from curation import services as curation_services
from curation.models import DocumentChunk
from manualqa.lib import prompt_formats
from tests.chat.support import make_assistant, session_owner
from tests.training.conftest import add_pairs, build_manual
from training import jobs
from training.models import TrainingJob
from training.raft import DECLINE_ANSWER, RaftOptions, cite, raft_records
from training.services import snapshot_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def job_outputs(settings, tmp_path):
    settings.TRAINING_OUTPUT_DIR = tmp_path / "jobs"


def embedded_manual():
    """Four pages of three sections, embedded, one approved pair per section."""
    manual = build_manual("RAFT manual", pages=4, sections=3)
    curation_services.chunks_embed_pending(manual=manual)
    add_pairs(manual, per_chunk=1)
    return manual


def snapshot_in(manual, trainer, prompt_format="chat_template"):
    return snapshot_create(
        manual=manual,
        user=trainer,
        prompt_format=prompt_format,
        train_fraction=0.8,
        eval_fraction=0.1,
        test_fraction=0.1,
    )


def served_prompt(question: str, chunk_ids: list[int], prompt_format: str):
    """What the chat sends a RAG assistant's model for ``question`` over these chunks, in this
    order: the chat's own prompt builder, as an assistant in the ``generated`` style uses it."""
    chunks = DocumentChunk.objects.in_bulk(chunk_ids)
    passages = [
        prompts.PromptPassage(
            number=number, heading_path=chunks[pk].heading_path, text=chunks[pk].body
        )
        for number, pk in enumerate(chunk_ids, start=1)
    ]
    policy = answering.AnswerPolicy(
        style="generated", max_tokens=160, min_score=0.0, min_coverage=0.0
    )
    rendered, fitted = answering.build_prompt(
        question,
        passages,
        mode="rag",
        prompt_format=prompt_formats.chat_format(prompt_format),
        policy=policy,
        context_window=8192,
    )
    assert fitted == len(chunk_ids)
    return rendered.messages if rendered.messages is not None else rendered.prompt


@pytest.mark.parametrize("prompt_format", prompt_formats.FORMATS)
def test_a_raft_records_prompt_is_byte_for_byte_the_chats_grounded_prompt(trainer, prompt_format):
    manual = embedded_manual()
    snapshot = snapshot_in(manual, trainer, prompt_format)
    built = raft_records(snapshot, split="train", options=RaftOptions(oracle_p=0.5, passages=3))

    assert built.records and not built.skipped_pair_ids
    assert 0 < built.with_oracle < len(built.records)  # both kinds, at P=0.5
    pairs = {pair.pk: pair for pair in snapshot.pairs.all()}
    for index, record in enumerate(built.records):
        meta = record["raft"]
        example = prompt_formats.parse_training_record(
            record, prompt_format=prompt_format, index=index
        )
        question = pairs[meta["pair_id"]].question
        assert example.prompt == served_prompt(question, meta["chunk_ids"], prompt_format)
        assert len(meta["chunk_ids"]) == 3


def test_the_source_passage_is_cited_when_kept_and_the_answer_declines_when_not(trainer):
    manual = embedded_manual()
    snapshot = snapshot_in(manual, trainer)
    pairs = {pair.pk: pair for pair in snapshot.pairs.select_related("qa_pair__chunk")}

    kept = raft_records(snapshot, split="train", options=RaftOptions(oracle_p=1.0, passages=4))
    for record in kept.records:
        meta = record["raft"]
        source = pairs[meta["pair_id"]].qa_pair.chunk
        assert meta["chunk_ids"][meta["oracle"] - 1] == source.pk
        answer = record["messages"][-1]["content"]
        assert prompts.cited_numbers(answer) == [meta["oracle"]]
        # Distractors never come from the source's page, which may answer the question too.
        others = DocumentChunk.objects.filter(pk__in=meta["chunk_ids"]).exclude(pk=source.pk)
        assert others.count() == 3
        assert not others.filter(document_id=source.document_id).exists()

    left_out = raft_records(snapshot, split="train", options=RaftOptions(oracle_p=0.0))
    for record in left_out.records:
        meta = record["raft"]
        source = pairs[meta["pair_id"]].qa_pair.chunk
        assert meta["oracle"] is None and source.pk not in meta["chunk_ids"]
        assert record["messages"][-1]["content"] == DECLINE_ANSWER
        assert prompts.is_decline(DECLINE_ANSWER)


def test_records_are_the_same_every_time_and_random_distractors_come_from_other_pages(trainer):
    manual = embedded_manual()
    snapshot = snapshot_in(manual, trainer)
    options = RaftOptions(oracle_p=0.5, passages=2, distractors="random")

    first = raft_records(snapshot, split="train", options=options).records
    again = raft_records(snapshot, split="train", options=options).records

    assert first == again
    by_pair = {pair.pk: pair.qa_pair.chunk for pair in snapshot.pairs.select_related("qa_pair")}
    for record in first:
        source = by_pair[record["raft"]["pair_id"]]
        distractors = [pk for pk in record["raft"]["chunk_ids"] if pk != source.pk]
        assert not DocumentChunk.objects.filter(
            pk__in=distractors, document_id=source.document_id
        ).exists()


def test_pairs_without_a_known_source_chunk_are_left_out_and_named(trainer):
    manual = embedded_manual()
    snapshot = snapshot_in(manual, trainer)
    orphan = snapshot.pairs.filter(split="train").first()
    orphan.qa_pair.chunk = None
    orphan.qa_pair.save(update_fields=["chunk"])

    built = raft_records(snapshot, split="train", options=RaftOptions())

    assert built.skipped_pair_ids == [orphan.pk]
    assert orphan.pk not in {record["raft"]["pair_id"] for record in built.records}


def test_cite_marks_every_sentence_and_step_with_its_passage():
    assert cite("Inflate to 42 PSI. Check it monthly.", 2) == (
        "Inflate to 42 PSI [2]. Check it monthly [2]."
    )
    assert cite("1. Open the trunk.\n2. Pull the cable", 3) == (
        "1. Open the trunk [3].\n2. Pull the cable [3]"
    )


def test_bad_raft_options_are_refused_at_launch_naming_them(trainer):
    snapshot = snapshot_in(embedded_manual(), trainer)
    with pytest.raises(ValidationError) as refused:
        jobs.training_job_create(
            snapshot=snapshot,
            user=trainer,
            preset="cpu_raft",
            overrides={"raft_oracle_p": 1.5, "raft_distractors": "nearby"},
            enqueue=False,
        )
    text = " ".join(refused.value.messages)
    assert "raft_oracle_p must be between 0 and 1" in text
    assert "raft_distractors must be one of retrieved, random" in text
    assert not TrainingJob.objects.exists()


def test_raft_is_refused_when_no_pair_knows_its_source_passage(trainer):
    manual = embedded_manual()
    snapshot = snapshot_in(manual, trainer)
    manual.qa_pairs.update(chunk=None)
    with pytest.raises(ValidationError, match="RAFT needs to know each pair's source passage"):
        jobs.training_job_create(snapshot=snapshot, user=trainer, preset="cpu_raft", enqueue=False)


def test_the_export_command_writes_raft_records_and_says_so(trainer, tmp_path):
    snapshot = snapshot_in(embedded_manual(), trainer, "alpaca")
    out = tmp_path / "raft"

    call_command(
        "export_dataset", str(snapshot.pk), "--raft", "--raft-p", "1", "--raft-k", "2",
        "--out", str(out),
    )  # fmt: skip

    lines = (out / "train.jsonl").read_text().splitlines()
    assert len(lines) == snapshot.train_count
    record = json.loads(lines[0])
    assert record["system"] == prompts.GROUNDED_SYSTEM_PROMPT
    assert record["instruction"].startswith("Passages from the manual:")
    assert len(record["raft"]["chunk_ids"]) == 2 and record["raft"]["oracle"] in (1, 2)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["raft"] == {"oracle_p": 1.0, "passages": 2, "distractors": "retrieved"}


@pytest.mark.slow
def test_a_raft_job_trains_registers_and_its_rag_answers_are_verified(trainer):
    manual = embedded_manual()
    snapshot = snapshot_in(manual, trainer)
    job = jobs.training_job_create(
        snapshot=snapshot,
        user=trainer,
        preset="cpu_raft",
        overrides={"max_steps": 2, "max_length": 512, "save_steps": 0},
        enqueue=False,
    )
    assert job.hyperparameters["dataset_format"] == "raft"

    assert jobs.training_job_claim(job_id=job.pk)
    job = jobs.training_job_execute(job_id=job.pk)

    assert job.status == TrainingJob.Status.SUCCEEDED, job.message or job.traceback
    assert "RAFT train records:" in job.log_tail
    endpoint = job.registered_endpoint
    assert "RAFT" in endpoint.description
    assistant = make_assistant(
        manual,
        endpoint=endpoint,
        mode="rag",
        answer_style="generated",
        max_tokens=24,
        temperature=0.0,
        min_score=0.0,
        min_coverage=0.0,
    )
    message = chat_answering.answer(
        assistant=assistant,
        question="What does the manual say about Page 1 > Topic 1-2?",
        owner=session_owner(),
    )

    assert not message.error, message.error
    assert message.raw_content.strip() and message.completion_tokens <= 24
    # Verified like any answer: a verdict per sentence is stored, and the owner reads only
    # supported sentences, or the quote when too little survived, or an honest decline.
    if message.declined:
        assert prompts.is_decline(message.content)
    elif message.extractive:
        assert message.content == message.quote_text
    else:
        assert message.verification
        supported = [v["text"] for v in message.verification if v["supported"]]
        assert supported and all(sentence in message.content for sentence in supported)


def test_the_admin_export_downloads_raft_records_in_a_zip(trainer, client, tmp_path):
    snapshot = snapshot_in(embedded_manual(), trainer)
    client.force_login(trainer)
    url = reverse("admin:training_datasetsnapshot_export", args=[snapshot.pk])
    assert "RAFT records" in client.get(url).content.decode()

    response = client.post(
        url,
        {
            "format": "chat_template",
            "raft": "on",
            "raft_oracle_p": "1",
            "raft_passages": "3",
            "raft_distractors": "random",
        },
    )
    assert response.status_code == 200
    assert "-raft-chat_template.zip" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    train = [json.loads(line) for line in archive.read("train.jsonl").decode().splitlines()]
    assert len(train) == snapshot.train_count
    assert all(len(r["raft"]["chunk_ids"]) == 3 and r["raft"]["oracle"] for r in train)
    assert json.loads(archive.read("metadata.json"))["raft"]["distractors"] == "random"
    assert f"Records: train {snapshot.train_count}," in archive.read("README.md").decode()


def test_the_admin_export_names_why_raft_records_cannot_be_built(trainer, client):
    manual = embedded_manual()
    snapshot = snapshot_in(manual, trainer)
    DocumentChunk.objects.filter(document__manual=manual).update(embedding=None)
    client.force_login(trainer)
    url = reverse("admin:training_datasetsnapshot_export", args=[snapshot.pk])

    response = client.post(url, {"format": "chat_template", "raft": "on"})

    assert response.status_code == 200
    assert "its chunks are not embedded yet. Embed the manual first." in response.content.decode()


def test_the_launch_page_trains_on_raft_records_when_asked(trainer, client):
    snapshot = snapshot_in(embedded_manual(), trainer)
    client.force_login(trainer)
    page = client.get(reverse("training:launch")).content.decode()
    assert 'name="dataset_format"' in page and 'name="raft_passages"' in page

    response = client.post(
        reverse("training:launch"),
        {
            "snapshot": snapshot.pk,
            "preset": "cpu_quick",
            "max_steps": 2,
            "dataset_format": "raft",
            "raft_passages": 3,
            "raft_distractors": "random",
        },
    )

    job = TrainingJob.objects.get()
    assert response.status_code == 302
    hp = job.hyperparameters
    assert (hp["dataset_format"], hp["raft_passages"], hp["raft_distractors"]) == (
        "raft",
        3,
        "random",
    )
    assert hp["raft_oracle_p"] == RaftOptions.oracle_p
    detail = client.get(response.url).content.decode()
    assert 'id="job-raft"' in detail and "RAFT: 3 passages" in detail
