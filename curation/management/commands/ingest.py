"""``python manage.py ingest SOURCE --manual NAME``: ingest a URL, a folder or a zip."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from curation import services
from curation.models import IngestionRun
from manualqa.commands import fail_unless_succeeded, service_errors


class Command(BaseCommand):
    help = (
        "Ingest a manual from a start URL (pages under its path are crawled, and PDFs it links "
        "to), a folder of HTML pages, markdown files or PDFs, a .zip of HTML pages or PDFs, or "
        "a PDF file. Runs here and prints progress; --queue hands it to the Celery workers "
        "instead."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", help="URL, folder, .zip or .pdf")
        parser.add_argument("--manual", required=True, help="Manual name (created if new)")
        parser.add_argument("--make", default="", help="Vehicle make, for a new manual")
        parser.add_argument("--model", default="", help="Vehicle model, for a new manual")
        parser.add_argument("--year", type=int, default=None, help="Vehicle year")
        parser.add_argument("--max-pages", type=int, default=None, help="Crawl page limit")
        parser.add_argument(
            "--min-delay", type=float, default=None, help="Seconds between two requests"
        )
        parser.add_argument(
            "--queue", action="store_true", help="Queue the run for the Celery workers"
        )

    def handle(self, *args, **options) -> None:
        source = options["source"]
        run_options = {}
        if options["max_pages"] is not None:
            run_options["max_pages"] = options["max_pages"]
        if options["min_delay"] is not None:
            run_options["min_delay_s"] = options["min_delay"]
        with service_errors():
            manual = services.manual_get_or_create(
                name=options["manual"],
                vehicle_make=options["make"],
                vehicle_model=options["model"],
                vehicle_year=options["year"],
                source_url=source if source.startswith(("http://", "https://")) else "",
            )
            run = services.ingestion_run_create(
                manual=manual, source=source, options=run_options, enqueue=options["queue"]
            )
        if options["queue"]:
            self.stdout.write(f"Queued ingestion run #{run.pk} for {manual.name}.")
            return

        def on_page(progress: IngestionRun) -> None:
            total = progress.pages_total if progress.pages_total is not None else "?"
            self.stdout.write(f"\r  pages {progress.pages_done}/{total}", ending="")
            self.stdout.flush()

        embedded = 0

        def on_embedded(count: int) -> None:
            nonlocal embedded
            embedded += count
            self.stdout.write(f"\r  embedded {embedded} chunks", ending="")
            self.stdout.flush()

        self.stdout.write(f"Ingesting {run.source} into {manual.name} (run #{run.pk})")
        run = services.ingestion_run_execute(
            run_id=run.pk, on_progress=on_page, on_embedded=on_embedded
        )
        self.stdout.write("")
        for error in run.errors:
            if "error" in error:
                self.stderr.write(f"  skipped {error['page']}: {error['error']}")
            else:  # a note: the page was kept, something in it was not (an image)
                self.stderr.write(f"  note on {error['page']}: {error.get('note', '')}")
        summary = (
            f"{run.pages_done} pages: {run.documents_created} new, {run.documents_updated} "
            f"updated, {run.documents_unchanged} unchanged, {run.pages_failed} failed; "
            f"{run.chunks_created} chunks created, {run.chunks_embedded} embedded."
        )
        fail_unless_succeeded(run, "Ingestion", detail=summary)
        self.stdout.write(self.style.SUCCESS(f"Done. {summary}"))
