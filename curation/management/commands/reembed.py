"""``python manage.py reembed MANUAL --embedder ID|default [--queue]``.

Builds the manual's vectors under the embedder beside the ones chat uses, then switches to them
in one transaction (``curation.services.embedders``). ``default`` goes back to the configured
``EMBEDDING_MODEL``; the vectors of the model switched away from are kept, so switching back
embeds nothing again. Runs here unless ``--queue`` hands it to a gpu worker.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from curation.models import Manual, RetrievalModel
from curation.services import embedders
from manualqa.commands import fail_unless_succeeded, service_errors


class Command(BaseCommand):
    help = "Re-embed a manual with a tuned embedder (or the default model) and switch to it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("manual", help="Manual id or name")
        parser.add_argument(
            "--embedder", required=True, help="A retrieval model id (an embedder), or 'default'"
        )
        parser.add_argument("--queue", action="store_true", help="Hand it to a gpu worker")

    def handle(self, *args, **options) -> None:
        key = options["manual"]
        manual = Manual.objects.filter(
            **({"pk": int(key)} if key.isdigit() else {"name": key})
        ).first()
        if manual is None:
            raise CommandError(f"No manual {key!r} (give its id or exact name).")
        embedder = None
        if options["embedder"] != "default":
            if not options["embedder"].isdigit():
                raise CommandError(
                    f"--embedder {options['embedder']!r}: give a retrieval model id or 'default'."
                )
            embedder = RetrievalModel.objects.filter(pk=int(options["embedder"])).first()
            if embedder is None:
                raise CommandError(f"No retrieval model #{options['embedder']}.")
        with service_errors():
            run = embedders.reembed_run_create(
                manual=manual, embedder=embedder, user=None, enqueue=options["queue"]
            )
        if options["queue"]:
            self.stdout.write(f"Queued re-embed #{run.pk} of {manual}.")
            return
        embedders.reembed_run_claim(run_id=run.pk)
        run = embedders.reembed_run_execute(run_id=run.pk)
        fail_unless_succeeded(run, f"Re-embed #{run.pk}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{manual} now uses {embedder or 'the default embedding model'} "
                f"({run.done} chunks)."
            )
        )
