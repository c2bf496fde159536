"""``python manage.py export_preferences``: compare-mode preferences as chosen/rejected JSONL."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from chat import services


class Command(BaseCommand):
    help = (
        "Write the owners' compare-mode preferences as JSON Lines of "
        '{"prompt", "chosen", "rejected", ...} (the form trl\'s DPO trainer reads); ties are '
        "left out. To --out FILE, or to standard output."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--out", type=Path, help="File to write (default: standard output)")

    def handle(self, *args, **options) -> None:
        out_path: Path | None = options["out"]
        if out_path is None:
            count = services.preferences_export_jsonl(out=sys.stdout)
            self.stderr.write(f"{count} preference pairs exported.")
            return
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with out_path.open("w", encoding="utf-8") as out:
            count = services.preferences_export_jsonl(out=out)
        self.stdout.write(self.style.SUCCESS(f"{count} preference pairs written to {out_path}."))
