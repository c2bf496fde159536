"""``python manage.py export_model JOB [--quant q8_0|q4_k_m|f16]``."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from manualqa.lib.gguf_export import QUANTS
from training.exports import model_export
from training.models import TrainingJob


class Command(BaseCommand):
    help = (
        "Export a finished training job's merged model to GGUF (for llama.cpp and Ollama), "
        "with a chat template of the format it was trained in and an Ollama Modelfile, and "
        "register it as a local endpoint."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("job", type=int, help="Training job id")
        parser.add_argument("--quant", choices=QUANTS, default="q8_0")

    def handle(self, *args, **options) -> None:
        job = TrainingJob.objects.select_related("snapshot").filter(pk=options["job"]).first()
        if job is None:
            raise CommandError(f"No training job {options['job']}.")
        try:
            export = model_export(job=job, quant=options["quant"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except ImportError as exc:
            raise CommandError(str(exc)) from exc
        for warning in export.warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(
            f"Wrote {export.gguf_path} ({export.size_bytes / 2**20:.1f} MiB) and "
            f"{export.modelfile_path}; registered as the endpoint {export.endpoint.name!r}."
        )
