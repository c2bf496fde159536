"""``python manage.py import_qa FILE --manual NAME``: import existing QA pairs."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from curation import services
from curation.models import Manual
from manualqa.commands import get_or_fail


class Command(BaseCommand):
    help = (
        "Import QA pairs from question_extractor JSON ([{source, question, answer}]) or from "
        'JSONL lines {"text": "<s>[INST] q [/INST] a </s>"}. Bad lines are reported by line '
        "number and the rest still import; importing the same file twice adds nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--manual", required=True)
        parser.add_argument(
            "--format", default="auto", choices=["auto", "question_extractor", "inst_jsonl"]
        )

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No file at {path}.")
        manual = get_or_fail(
            Manual, f"No manual named {options['manual']!r}.", name=options["manual"]
        )
        try:
            report = services.qa_pairs_import(
                manual=manual, raw=path.read_bytes(), fmt=options["format"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for problem in report.problems:
            self.stderr.write(f"  {problem.message}")
        self.stdout.write(self.style.SUCCESS(f"{path.name}: {report.summary}."))
