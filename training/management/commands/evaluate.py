"""``python manage.py evaluate (--questions FILE | --snapshot ID | --question-set SLUG[:VERSION])
(--assistant NAME ... | --manual NAME)``."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from manualqa.commands import fail_unless_succeeded, service_errors
from training import evaluation, question_sets
from training.evaluation import judge_check
from training.models import (
    DatasetSnapshot,
    EvaluationItem,
    EvaluationRun,
    QuestionSet,
    QuestionSetVersion,
)


class Command(BaseCommand):
    help = (
        "Evaluate assistants on a question set (a JSONL file, the test split of a dataset "
        "snapshot, or a saved question set): every assistant answers every question, and the "
        "summary table is printed. --retrieval-only measures retrieval alone (no generator); "
        "with --manual it needs no assistant either. Runs here; --queue hands it to the Celery "
        "workers instead."
    )

    def add_arguments(self, parser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--questions", help="JSONL question file")
        source.add_argument("--snapshot", type=int, help="Dataset snapshot id (its test split)")
        source.add_argument(
            "--question-set",
            metavar="SLUG[:VERSION]",
            help="A saved question set, by slug: its newest version, or the version named",
        )
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
        parser.add_argument(
            "--gate",
            metavar="RUN_ID|baseline",
            help="After the run, compare it with this run (or each assistant's baseline) on "
            "the same questions; exit non-zero when a headline metric is significantly worse",
        )
        parser.add_argument(
            "--set-baseline",
            action="store_true",
            help="Make this run, if it succeeds, the baseline of the assistants it evaluated",
        )

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
        if options["json_out"] and not Path(options["json_out"]).resolve().parent.is_dir():
            raise CommandError(f"No folder for --json {options['json_out']} (create it first).")
        judge_prompt = ""
        if options["judge_prompt"]:
            judge_prompt = Path(options["judge_prompt"]).read_text(encoding="utf-8")
        snapshot = None
        question_set_version = None
        questions_raw = None
        questions_name = ""
        if options["question_set"]:
            question_set_version = _question_set_version(options["question_set"])
        elif options["snapshot"] is not None:
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
                question_set_version=question_set_version,
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
            if options["gate"] or options["set_baseline"]:
                self.stderr.write("--gate and --set-baseline need the run here, not queued.")
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
        fail_unless_succeeded(run, "Evaluation")
        if run.message:
            self.stderr.write(run.message)
        if run.judge_model:
            self.stdout.write(judge_check.describe(run.judge_check))
        if options["gate"]:
            self._gate(run, options["gate"])
        if options["set_baseline"]:
            with service_errors(separator=" "):
                baselines = evaluation.evaluation_baseline_set(run=run, user=None)
            names = ", ".join(baseline.assistant.name for baseline in baselines)
            self.stdout.write(f"Run #{run.pk} is now the baseline of {names}.")

    def _gate(self, run, reference: str) -> None:
        """Exit non-zero, naming the metric, when ``run`` is significantly worse."""
        baseline = None
        if reference != "baseline":
            if not reference.isdigit():
                raise CommandError(f"--gate takes a run id or 'baseline', not {reference!r}.")
            baseline = EvaluationRun.objects.filter(pk=int(reference)).first()
            if baseline is None:
                raise CommandError(f"No evaluation run #{reference} to gate against.")
        try:
            gates = evaluation.evaluation_gates(run, baseline)
        except evaluation.GateError as exc:
            raise CommandError(f"Gate: {exc}") from None
        for gate in gates:
            self.stdout.write(gate.describe())
        failed = [gate for gate in gates if not gate.passed]
        if failed:
            metrics = sorted({r["metric"] for gate in failed for r in gate.regressions})
            raise CommandError(f"Gate failed: significantly worse on {', '.join(metrics)}.")


def _question_set_version(reference: str) -> QuestionSetVersion:
    """``SLUG`` (the newest version) or ``SLUG:VERSION``, or a ``CommandError`` saying why not."""
    slug, _, number = reference.partition(":")
    if number and not number.isdigit():
        raise CommandError(f"Name a question set as SLUG or SLUG:VERSION, not {reference!r}.")
    version = question_sets.question_set_version_get(
        slug=slug, version=int(number) if number else None
    )
    if version is None:
        known = ", ".join(QuestionSet.objects.values_list("slug", flat=True)) or "none"
        what = f"version {number} of the question set" if number else "question set with versions"
        raise CommandError(f"No {what} {slug!r} (question sets: {known}).")
    return version


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [
            f"{field}: {message}" if field != "__all__" else message
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    return list(exc.messages)
