"""``python manage.py store_sentence_vectors``: store the quotable units' vectors of manuals."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from chat import quote_vectors
from curation.models import Manual


class Command(BaseCommand):
    help = (
        "Embed and store the sentences, steps, list items and table rows of manuals (all, or "
        "those named), so that answers embed only the question and its candidate quotes. "
        "Ingestion does this itself once a manual is embedded; this is for manuals embedded "
        "before, or after a change of EMBEDDING_MODEL. Only what is not stored yet is embedded."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--manual", action="append", default=[], help="Manual name (repeat)")

    def handle(self, *args, **options) -> None:
        manuals = Manual.objects.order_by("name")
        if options["manual"]:
            manuals = manuals.filter(name__in=options["manual"])
            missing = set(options["manual"]) - set(manuals.values_list("name", flat=True))
            if missing:
                raise CommandError(f"No manual named {', '.join(sorted(missing))}.")
        for manual in manuals:

            def progress(done: int, total: int, manual=manual) -> None:
                self.stdout.write(f"  {manual.name}: {done}/{total}")

            stored = quote_vectors.sentence_vectors_store(manual_ids=[manual.pk], on_batch=progress)
            self.stdout.write(f"{manual.name}: {stored} sentence vectors stored.")
