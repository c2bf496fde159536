"""Creating, claiming and cancelling evaluation runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from manualqa import roles
from manualqa.jobs import lifecycle, queues
from training.evaluation.questions import questions_from_snapshot, questions_parse_jsonl
from training.evaluation.scoring import DEFAULT_JUDGE_PROMPT
from training.models import DatasetSnapshot, EvaluationRun, QuestionSetVersion

# --------------------------------------------------------------------------------------------
# Creating, claiming and cancelling runs


def _require_launcher(user) -> None:
    roles.require(
        user, "training.launch_trainingjob", "Running evaluations needs the Trainer role."
    )


def _manual_label(manual) -> str:
    return f"{manual.name} (default retrieval)"


@transaction.atomic
def evaluation_run_create(
    *,
    user,
    questions_jsonl: str | bytes | None = None,
    questions_name: str = "",
    snapshot: DatasetSnapshot | None = None,
    question_set_version: QuestionSetVersion | None = None,
    assistants: Iterable = (),
    manual=None,
    retrieval_only: bool = False,
    judge_endpoint=None,
    judge_prompt: str = "",
    name: str = "",
    training_job=None,
    max_questions: int | None = None,
    enqueue: bool = True,
) -> EvaluationRun:
    """Validate an evaluation and queue it (on the ``default`` queue); refusals name the field.

    The questions come from ``questions_jsonl`` (the text of a JSONL file, see
    :func:`questions_parse_jsonl`), from the test split of ``snapshot`` or from a saved
    ``question_set_version`` (``training.question_sets``), and are frozen on the run;
    ``max_questions`` keeps the first N. Subjects are ``assistants``, and in a
    ``retrieval_only`` run also ``manual``'s default retrieval. A judge grades answers, so a
    retrieval-only run cannot have one; its prompt must have an ``{answer}`` placeholder.
    """
    from curation.models import DocumentChunk

    _require_launcher(user)
    assistants = list(assistants)
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    questions: list[dict[str, Any]] = []
    sources = (questions_jsonl, snapshot, question_set_version)
    if sum(source is not None for source in sources) != 1:
        refuse(
            "questions",
            "Choose one question set: the test split of a dataset snapshot, a saved question "
            "set, or a JSONL file.",
        )
    elif question_set_version is not None:
        # A version's file is immutable and was validated when written; read it as any file.
        questions = questions_parse_jsonl(question_set_version.jsonl)
        questions_name = questions_name or (
            f"{question_set_version} ({question_set_version.filename})"
        )
    elif snapshot is not None:
        questions = questions_from_snapshot(snapshot)
        questions_name = questions_name or f"{snapshot} (test split)"
        if not questions:
            refuse("snapshot", f"The snapshot {snapshot} has no pairs in its test split.")
    else:
        try:
            questions = questions_parse_jsonl(questions_jsonl)
        except ValidationError as exc:
            for message in exc.messages:
                refuse("questions", message)
    if max_questions is not None:
        if max_questions < 1:
            refuse("max_questions", "Evaluate at least one question.")
        questions = questions[:max_questions]

    if manual is not None and not retrieval_only:
        refuse(
            "manual",
            "A manual alone has no generator: measure its retrieval with retrieval only, or "
            "choose assistants.",
        )
    if manual is not None and not (
        DocumentChunk.objects.filter(document__manual=manual, embedding__isnull=False).exists()
    ):
        refuse("manual", f"The manual {manual.name} has no embedded chunks: ingest it first.")
    if not assistants and manual is None:
        refuse("assistants", "Choose at least one assistant, or a manual for retrieval only.")
    if retrieval_only:
        for assistant in assistants:
            if not assistant.manuals.exists():
                refuse(
                    "assistants",
                    f"The assistant {assistant.name} has no manuals, so it has no retrieval.",
                )
    if judge_endpoint is not None:
        if retrieval_only:
            refuse("judge_endpoint", "A judge grades answers; a retrieval-only run has none.")
        judge_prompt = judge_prompt.strip() or DEFAULT_JUDGE_PROMPT
        if "{answer}" not in judge_prompt:
            refuse("judge_prompt", "The judge prompt needs an {answer} placeholder.")
    else:
        judge_prompt = ""
    if errors:
        raise ValidationError(errors)

    subjects = len(assistants) + (1 if manual is not None else 0)
    run = EvaluationRun.objects.create(
        name=(name.strip() or _default_name(assistants, manual, retrieval_only, questions_name))[
            :200
        ],
        question_source=(
            EvaluationRun.QuestionSource.SNAPSHOT
            if snapshot is not None
            else EvaluationRun.QuestionSource.SAVED_SET
            if question_set_version is not None
            else EvaluationRun.QuestionSource.UPLOAD
        ),
        snapshot=snapshot,
        question_set_version=question_set_version,
        questions_name=questions_name[:300],
        questions=questions,
        manual=manual,
        retrieval_only=retrieval_only,
        training_job=training_job,
        judge_endpoint=judge_endpoint,
        judge_prompt=judge_prompt,
        judge_model=_endpoint_model(judge_endpoint) if judge_endpoint is not None else "",
        total=len(questions) * subjects,
        created_by=roles.recorded_user(user),
    )
    run.assistants.set(assistants)
    if enqueue:
        from training.tasks import run_evaluation

        queues.enqueue(run_evaluation, run.pk)
    return run


def _default_name(assistants, manual, retrieval_only: bool, questions_name: str) -> str:
    names = [assistant.name for assistant in assistants]
    if manual is not None:
        names.append(_manual_label(manual))
    what = "Retrieval" if retrieval_only else "Evaluation"
    on = f" on {questions_name}" if questions_name else ""
    return f"{what}: {', '.join(names)}{on}"


def _endpoint_model(endpoint) -> str:
    if endpoint.model:
        return endpoint.model
    if endpoint.kind == "local":
        return "SmolLM2-135M-Instruct (bundled)"
    return endpoint.name


def evaluation_run_claim(*, run_id: int, task_id: str = "", redelivered: bool = False) -> bool:
    """Take a queued run, or a running one whose worker stopped beating. False: someone has it.

    A reclaimed run continues where it stopped: answers already stored are not asked again.
    """
    return lifecycle.claim(EvaluationRun, run_id, task_id=task_id, redelivered=redelivered)


def evaluation_runs_fail_stale() -> int:
    """Mark failed every running evaluation whose worker stopped beating; return how many.

    ``EVALUATION_STALE_AFTER_S`` of silence counts as dead; the periodic
    ``manualqa.reap_stale_jobs`` task calls this.
    Each update is conditional on the heartbeat it read, so a worker that beats in between
    keeps its run.
    """

    return lifecycle.fail_silent(
        EvaluationRun,
        progress=lambda run: f"after {run.done} of {run.total} answers",
    )


@transaction.atomic
def evaluation_run_cancel(*, run: EvaluationRun, user) -> EvaluationRun:
    """Cancel a queued run now, or ask a running one to stop after its current answer."""
    _require_launcher(user)
    run = EvaluationRun.objects.select_for_update().get(pk=run.pk)
    if run.is_finished:
        raise ValidationError(f"The evaluation is already {run.get_status_display().lower()}.")
    if run.status == EvaluationRun.Status.QUEUED:
        return lifecycle.finish(
            run, EvaluationRun.Status.CANCELLED, message="Cancelled before it started."
        )
    EvaluationRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    run.refresh_from_db()
    return run
