"""Exporting a finished job's model to GGUF, with its Modelfile and a local endpoint.

The job's merged model is the real SmolLM2-135M folder (the default model, converted once),
standing where a training run leaves its merged model: the export reads it as it would read a
fine-tuned one. llama.cpp answers with the export where ``llama-cpp-python`` is installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from curation.models import LLMEndpoint
from manualqa.lib import prompt_formats
from manualqa.lib.llamacpp import llama_cpp_available
from manualqa.lib.local_models import Decoding, ensure_default_model, load_local
from tests.training.conftest import add_pairs, build_manual
from training.exports import model_export
from training.models import TrainingJob
from training.services import snapshot_create

pytestmark = pytest.mark.django_db


def finished_job(tmp_path: Path, trainer, prompt_format: str) -> TrainingJob:
    manual = build_manual("Export manual")
    add_pairs(manual)
    snapshot = snapshot_create(
        manual=manual,
        user=trainer,
        prompt_format=prompt_format,
        system_prompt="Answer from the Export manual.",
    )
    merged = tmp_path / "job" / "merged"
    merged.parent.mkdir()
    merged.symlink_to(ensure_default_model(Path(settings.MODELS_DIR)), target_is_directory=True)
    return TrainingJob.objects.create(
        name="Export job",
        snapshot=snapshot,
        status=TrainingJob.Status.SUCCEEDED,
        output_dir=str(tmp_path / "job"),
        merged_dir=str(merged),
    )


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """Ollama's Modelfile grammar: an instruction and its value per line, or a value in triple
    quotes over several lines; comments start with #."""
    instructions = []
    pattern = re.compile(r'^(\w+)\s+(?:"""(.*?)"""|(.*))$', re.MULTILINE | re.DOTALL)
    position = 0
    for line in re.finditer(r"^(?!#)\S.*?(?=^\w+\s|\Z)", text, re.MULTILINE | re.DOTALL):
        match = pattern.match(line.group(0).rstrip("\n"))
        assert match, f"not a Modelfile instruction: {line.group(0)!r}"
        value = match.group(2) if match.group(2) is not None else match.group(3)
        instructions.append((match.group(1).upper(), value))
        position = line.end()
    assert position == len(text)
    return instructions


def test_a_seed_format_job_exports_with_its_template_modelfile_and_endpoint(tmp_path, trainer):
    job = finished_job(tmp_path, trainer, "seed_inst")

    export = model_export(job=job, quant="f16", user=trainer)

    assert export.gguf_path == tmp_path / "job" / "gguf" / f"job-{job.pk}-f16.gguf"
    endpoint = LLMEndpoint.objects.get(pk=export.endpoint.pk)
    assert (endpoint.kind, endpoint.model) == ("local", str(export.gguf_path))
    assert (endpoint.prompt_format, endpoint.system_prompt) == (
        "seed_inst",
        "Answer from the Export manual.",
    )
    endpoint.full_clean()
    instructions = parse_modelfile(export.modelfile_path.read_text(encoding="utf-8"))
    values = {}
    for name, value in instructions:
        values.setdefault(name, []).append(value)
    assert values["FROM"] == [f"./{export.gguf_path.name}"]
    assert values["PARAMETER"][:2] == ['stop "</s>"', 'stop "[INST]"']
    assert values["SYSTEM"] == ["Answer from the Export manual."]
    # The Go template, filled in as Ollama fills it, is the training prompt.
    filled = (
        values["TEMPLATE"][0]
        .replace("{{ if .System }}", "")
        .split("{{ else }}")[0]
        .replace("{{ .System }}", "Answer from the Export manual.")
        .replace("{{ .Prompt }}", "Where is the VIN?")
    )
    chat = [
        {"role": "system", "content": "Answer from the Export manual."},
        {"role": "user", "content": "Where is the VIN?"},
    ]
    assert filled == prompt_formats.render_inst(chat)


def test_what_cannot_be_exported_is_refused_naming_it(tmp_path, trainer, reviewer):
    job = finished_job(tmp_path, trainer, "chat_template")
    with pytest.raises(Exception, match="Trainer role"):
        model_export(job=job, quant="f16", user=reviewer)
    with pytest.raises(Exception, match="Choose one of f16, q8_0, q4_k_m"):
        model_export(job=job, quant="q3")
    job.status = TrainingJob.Status.FAILED
    job.save()
    with pytest.raises(CommandError, match="no merged model to export: it is Failed"):
        call_command("export_model", str(job.pk), "--quant", "f16")
    assert not (tmp_path / "job" / "gguf").exists()
    assert not LLMEndpoint.objects.filter(name__contains="GGUF").exists()


@pytest.mark.skipif(not llama_cpp_available(), reason="`make install-llamacpp` builds llama.cpp")
def test_the_exported_endpoint_answers_through_llama_cpp(tmp_path, trainer, capsys):
    job = finished_job(tmp_path, trainer, "chat_template")

    call_command("export_model", str(job.pk), "--quant", "q8_0")

    assert "registered as the endpoint" in capsys.readouterr().out
    endpoint = LLMEndpoint.objects.get(name__startswith=f"Fine-tuned #{job.pk} GGUF q8_0")
    model = load_local(endpoint.model, Path(settings.MODELS_DIR))
    answer = model.generate(
        [{"role": "user", "content": "What is the capital of France?"}],
        Decoding(max_new_tokens=16, temperature=0.0),
    )
    assert answer.text.strip() and answer.tokens_out > 0
    modelfile = (tmp_path / "job" / "gguf" / f"job-{job.pk}-q8_0.Modelfile").read_text()
    assert "<|im_start|>assistant" in modelfile  # SmolLM2's ChatML, as Ollama writes it


def test_the_page_and_the_api_queue_an_export_that_the_worker_task_records(
    client, tmp_path, trainer, reviewer, django_capture_on_commit_callbacks
):
    from training.tasks import export_model

    job = finished_job(tmp_path, trainer, "alpaca")
    client.force_login(trainer)
    page = client.get(f"/training/jobs/{job.pk}/").content.decode()
    assert "No GGUF export yet" in page and 'id="export-button"' in page

    with django_capture_on_commit_callbacks() as queued:
        response = client.post(f"/training/jobs/{job.pk}/export/", {"quant": "f16"})
    assert response.status_code == 302 and len(queued) == 1
    assert "GGUF export (f16) queued." in TrainingJob.objects.get(pk=job.pk).log_tail

    # What the gpu worker runs for that message (tests/training/test_job_worker.py runs the
    # same kind of task through a real worker process).
    assert export_model(job.pk, "f16") == "succeeded"
    log = TrainingJob.objects.get(pk=job.pk).log_tail
    assert f"job-{job.pk}-f16.gguf" in log and "registered as the endpoint" in log
    page = client.get(f"/training/jobs/{job.pk}/").content.decode()
    assert f"Fine-tuned #{job.pk} GGUF f16" in page

    api = f"/api/training-jobs/{job.pk}/export/"
    bad = client.post(api, {"quant": "q3"}, content_type="application/json")
    assert bad.status_code == 400 and "quant" in bad.json()
    with django_capture_on_commit_callbacks() as queued:
        accepted = client.post(api, {"quant": "q8_0"}, content_type="application/json")
    assert accepted.status_code == 202 and accepted.json() == {"quant": "q8_0"}
    assert len(queued) == 1
    client.force_login(reviewer)
    assert client.post(api, {}, content_type="application/json").status_code == 403
