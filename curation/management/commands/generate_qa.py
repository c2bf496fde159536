"""``python manage.py generate_qa --manual NAME --endpoint NAME``: generate QA pairs."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from curation import services
from curation.models import GenerationRun, LLMEndpoint, Manual
from manualqa.commands import fail_unless_succeeded, get_or_fail, service_errors


class Command(BaseCommand):
    help = (
        "Generate question/answer pairs from a manual's chunks (question_extractor's two "
        "stages). Runs here and prints progress; --queue hands it to the Celery workers."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--manual", required=True, help="Manual name")
        parser.add_argument(
            "--endpoint", default="Local SmolLM2-135M", help="LLM endpoint name (see the admin)"
        )
        parser.add_argument(
            "--document", action="append", default=[], help="Only this source name (repeatable)"
        )
        parser.add_argument("--questions", type=int, default=5, help="Questions per chunk")
        parser.add_argument("--queue", action="store_true", help="Queue it for the workers")

    def handle(self, *args, **options) -> None:
        manual = get_or_fail(
            Manual, f"No manual named {options['manual']!r}.", name=options["manual"]
        )
        try:
            endpoint = LLMEndpoint.objects.get(name=options["endpoint"])
        except LLMEndpoint.DoesNotExist:
            names = ", ".join(LLMEndpoint.objects.values_list("name", flat=True))
            raise CommandError(
                f"No endpoint named {options['endpoint']!r} (have: {names})."
            ) from None
        documents = list(manual.documents.filter(source_name__in=options["document"]))
        missing = set(options["document"]) - {doc.source_name for doc in documents}
        if missing:
            raise CommandError(f"No document named {', '.join(sorted(missing))} in {manual.name}.")
        with service_errors():
            run = services.generation_run_create(
                manual=manual,
                endpoint=endpoint,
                documents=documents,
                questions_per_chunk=options["questions"],
                enqueue=options["queue"],
            )
        if options["queue"]:
            self.stdout.write(f"Queued generation run #{run.pk} ({run.chunks_total} chunks).")
            return
        self.stdout.write(f"Generation run #{run.pk}: {run.chunks_total} chunks with {endpoint}.")
        services.generation_run_claim(run_id=run.pk)
        run = services.generation_run_execute(run_id=run.pk)
        if run.status == GenerationRun.Status.SCORING:
            run = services.generation_run_score(run_id=run.pk)
        for result in run.chunk_results.filter(status="failed").select_related("chunk")[:20]:
            self.stderr.write(f"  chunk {result.chunk.heading_path}: {result.error}")
        summary = (
            f"{run.pairs_created} pairs from {run.chunks_done} chunks, {run.chunks_failed} "
            f"failed; {run.llm_calls} calls, {run.tokens_in} tokens in, {run.tokens_out} out"
        )
        fail_unless_succeeded(run, "Generation", detail=summary)
        self.stdout.write(self.style.SUCCESS(f"Done. {summary}."))
