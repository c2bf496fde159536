"""A finished training job's merged model as a GGUF file, an Ollama Modelfile and an endpoint.

:func:`model_export` converts the job's merged model (``manualqa.lib.gguf_export``) with a chat
template that renders the snapshot's prompt format exactly as training saw it, writes an Ollama
``Modelfile`` beside it (:func:`modelfile`), and registers the file as a ``local`` endpoint
(llama.cpp runs it), so it can answer in chat and be evaluated next to the merged model.
Files go to ``<job output>/gguf/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError

from curation.models import LLMEndpoint
from manualqa import roles
from manualqa.jobs import queues
from manualqa.lib import prompt_formats
from manualqa.lib.gguf_export import QUANTS, export_gguf
from training import jobs
from training.models import TrainingJob

__all__ = ["ModelExport", "job_exports", "model_export", "model_export_queue", "modelfile"]


@dataclass(frozen=True)
class ModelExport:
    gguf_path: Path
    modelfile_path: Path
    endpoint: LLMEndpoint
    quant: str
    size_bytes: int
    warnings: list[str]


def _exportable(job: TrainingJob, quant: str, user) -> Path:
    """The job's merged model folder; refuses a user without the right, a quantization that
    does not exist and a job without a merged model, naming the problem."""
    roles.require(user, "training.launch_trainingjob", "Exporting a model needs the Trainer role.")
    if quant not in QUANTS:
        raise ValidationError({"quant": f"Choose one of {', '.join(QUANTS)}, not {quant!r}."})
    merged = Path(job.merged_dir) if job.merged_dir else None
    if job.status != TrainingJob.Status.SUCCEEDED or merged is None or not merged.is_dir():
        state = job.get_status_display()
        problem = f"Job #{job.pk} has no merged model to export: it is {state}."
        raise ValidationError({"job": problem})
    return merged


def model_export_queue(*, job: TrainingJob, quant: str = "q8_0", user=None) -> None:
    """Check the request now and export in a ``gpu`` worker (a 7B model takes minutes); the
    job's log says when it is queued and how it ended."""
    from training.tasks import export_model

    _exportable(job, quant, user)
    jobs.job_log_append(job.pk, f"GGUF export ({quant}) queued.")
    queues.enqueue(export_model, job.pk, quant, gpu=True)


def model_export(*, job: TrainingJob, quant: str = "q8_0", user=None) -> ModelExport:
    """Export ``job``'s merged model as ``quant`` (one of ``QUANTS``) and register it."""
    merged = _exportable(job, quant, user)
    snapshot = job.snapshot
    # None for chat_template: the export then writes the tokenizer's own template.
    template = prompt_formats.gguf_chat_template(snapshot.prompt_format, None)
    folder = _folder(job, merged)
    stem = f"job-{job.pk}-{quant}"
    result = export_gguf(
        merged, folder / f"{stem}.gguf", quant=quant, chat_template=template, name=job.name
    )
    modelfile_path = folder / f"{stem}.Modelfile"
    modelfile_path.write_text(
        modelfile(
            gguf_name=result.path.name,
            prompt_format=snapshot.prompt_format,
            system_prompt=snapshot.system_prompt,
            chat_template=result.chat_template or "",
        ),
        encoding="utf-8",
    )
    endpoint, _ = LLMEndpoint.objects.update_or_create(
        name=f"Fine-tuned #{job.pk} GGUF {quant}: {job.name}"[:100],
        defaults={
            "kind": LLMEndpoint.Kind.LOCAL,
            "model": str(result.path),
            "description": f"{quant} GGUF export of training job #{job.pk} (llama.cpp)",
            "max_concurrency": 1,
            "max_tokens": 256,
            "temperature": 0.2,
            "context_window": 2048,
            "timeout_s": 600,
            "prompt_format": snapshot.prompt_format,
            "system_prompt": snapshot.system_prompt,
        },
    )
    return ModelExport(
        result.path, modelfile_path, endpoint, quant, result.size_bytes, result.warnings
    )


def _folder(job: TrainingJob, merged: Path) -> Path:
    return Path(job.output_dir or merged.parent) / "gguf"


def job_exports(job: TrainingJob) -> list[LLMEndpoint]:
    """The endpoints registered for the job's GGUF exports, by the file they run."""
    if not job.merged_dir:
        return []
    folder = _folder(job, Path(job.merged_dir))
    endpoints = LLMEndpoint.objects.filter(
        kind=LLMEndpoint.Kind.LOCAL, model__startswith=f"{folder}/"
    )
    return list(endpoints.order_by("name"))


# Ollama's templates are Go templates over the system prompt and the last user message.
_INST_OLLAMA = (
    "{{ if .System }}<s>[INST] <<SYS>>\n{{ .System }}\n<</SYS>>\n\n{{ .Prompt }} [/INST]"
    "{{ else }}<s>[INST] {{ .Prompt }} [/INST]{{ end }}"
)
_ALPACA_OLLAMA = (
    "{{ if .System }}{{ .System }}{{ else }}"
    + prompt_formats.ALPACA_PREAMBLE
    + "{{ end }}\n\n### Instruction:\n{{ .Prompt }}\n\n### Response:\n"
)
_CHATML_OLLAMA = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n"
)


def modelfile(*, gguf_name: str, prompt_format: str, system_prompt: str, chat_template: str) -> str:
    """An Ollama Modelfile for the export: FROM, the TEMPLATE of the prompt format, its stop
    strings, and the snapshot's system prompt. ``ollama create NAME -f FILE`` makes the model."""
    fmt = prompt_formats.canonical(prompt_format)
    lines = [
        f"# Ollama: ollama create manualqa-model -f {gguf_name.removesuffix('.gguf')}.Modelfile",
        f"FROM ./{gguf_name}",
    ]
    if fmt == "seed_inst":
        template, stops = _INST_OLLAMA, list(prompt_formats.INST_STOP)
    elif fmt == "alpaca":
        template, stops = _ALPACA_OLLAMA, list(prompt_formats.ALPACA_STOP)
    elif "<|im_start|>" in chat_template:
        template, stops = _CHATML_OLLAMA, ["<|im_end|>", "<|im_start|>"]
    else:  # Ollama reads the tokenizer's own template from the GGUF file
        template, stops = "", []
    if template:
        lines.append(f'TEMPLATE """{template}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    lines.append("PARAMETER temperature 0.2")
    if system_prompt.strip():
        lines.append(f'SYSTEM """{system_prompt.strip()}"""')
    return "\n".join(lines) + "\n"
