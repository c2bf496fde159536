"""``python manage.py evaluate --questions FILE (--assistant NAME ... | --manual NAME)``."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from training import evaluation
from training.models import DatasetSnapshot, EvaluationItem


class Command(BaseCommand):
    help = (
        "Evaluate assistants on a question set (a JSONL file, or the test split of a dataset "
        "snapshot): every assistant answers every question, and the summary table is printed. "
        "--retrieval-only measures retrieval alone (no generator); with --manual it needs no "
        "assistant either. Runs here; --queue hands it to the Celery workers instead."
    )

    def add_arguments(self, parser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--questions", help="JSONL question file")
        source.add_argument("--snapshot", type=int, help="Dataset snapshot id (its test split)")
        parser.add_argument(
            "--assistant",
            action="append",
            default=[],
            help="Assistant name or slug (repeat for several)",
        )
        parser.add_argument(
            "--manual", help="Manual name: its default retrieval (with --retrieval-only)"
        )
        parser.add_argument("--retrieval-only", action="store_true", help="No generator")
        parser.add_argument("--judge", help="LLM endpoint name for the LLM judge")
        parser.add_argument("--judge-prompt", help="File with the judge prompt template")
        parser.add_argument("--limit", type=int, help="Evaluate only the first N questions")
        parser.add_argument("--name", default="", help="Run name")
        parser.add_argument("--json", dest="json_out", help="Write the results as JSON here")
        parser.add_argument("--queue", action="store_true", help="Queue the run for the workers")

    def handle(self, *args, **options) -> None:
        from chat.models import Assistant
        from curation.models import LLMEndpoint, Manual

        assistants = []
        for ref in options["assistant"]:
            assistant = Assistant.objects.filter(Q(name=ref) | Q(slug=ref)).first()
            if assistant is None:
                known = ", ".join(Assistant.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"No assistant named {ref!r} (assistants: {known}).")
            assistants.append(assistant)
        manual = None
        if options["manual"]:
            manual = Manual.objects.filter(name=options["manual"]).first()
            if manual is None:
                raise CommandError(f"No manual named {options['manual']!r}.")
        judge = None
        if options["judge"]:
            judge = LLMEndpoint.objects.filter(name=options["judge"]).first()
            if judge is None:
                raise CommandError(f"No LLM endpoint named {options['judge']!r}.")
        judge_prompt = ""
        if options["judge_prompt"]:
            judge_prompt = Path(options["judge_prompt"]).read_text(encoding="utf-8")
        snapshot = None
        questions_raw = None
        questions_name = ""
        if options["snapshot"] is not None:
            snapshot = DatasetSnapshot.objects.filter(pk=options["snapshot"]).first()
            if snapshot is None:
                raise CommandError(f"No dataset snapshot {options['snapshot']}.")
        else:
            path = Path(options["questions"])
            if not path.is_file():
                raise CommandError(f"No question file at {path}.")
            questions_raw = path.read_bytes()
            questions_name = path.name
        try:
            run = evaluation.evaluation_run_create(
                user=None,
                name=options["name"],
                questions_jsonl=questions_raw,
                questions_name=questions_name,
                snapshot=snapshot,
                assistants=assistants,
                manual=manual,
                retrieval_only=options["retrieval_only"],
                judge_endpoint=judge,
                judge_prompt=judge_prompt,
                max_questions=options["limit"],
                enqueue=options["queue"],
            )
        except ValidationError as exc:
            raise CommandError("\n".join(_messages(exc))) from None
        if options["queue"]:
            self.stdout.write(f"Queued evaluation run #{run.pk}.")
            return

        self.stdout.write(f"Evaluation run #{run.pk}: {run.name} ({run.total} answers)")
        evaluation.evaluation_run_claim(run_id=run.pk)

        def on_item(item: EvaluationItem) -> None:
            done = item.run.items.count()
            self.stdout.write(f"\r  {done}/{run.total} answers", ending="")
            self.stdout.flush()

        run = evaluation.evaluation_run_execute(run_id=run.pk, on_item=on_item)
        self.stdout.write("")
        self.stdout.write(evaluation.summary_table(run.summary))
        if run.judge_model:
            cost = f", cost {run.judge_cost:.4f}" if run.judge_cost is not None else ""
            self.stdout.write(
                f"Judge {run.judge_model}: {run.judge_prompt_tokens} prompt + "
                f"{run.judge_completion_tokens} completion tokens{cost}"
            )
        if options["json_out"]:
            Path(options["json_out"]).write_text(
                json.dumps(evaluation.evaluation_run_export(run), indent=2, ensure_ascii=False)
                + "\n",
                encoding="utf-8",
            )
            self.stdout.write(f"Wrote {options['json_out']}")
        if run.status != run.Status.SUCCEEDED:
            raise CommandError(f"Evaluation {run.get_status_display().lower()}: {run.message}")
        if run.message:
            self.stderr.write(run.message)


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [
            f"{field}: {message}" if field != "__all__" else message
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    return list(exc.messages)
