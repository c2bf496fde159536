"""Writes for QA-generation runs: create, claim, execute, cancel, resume, retry failed chunks.

The LLM work itself is ``curation.qa_pool.run_generation`` (plain, no Django); this module
turns its per-chunk outcomes into rows, one transaction per chunk, and keeps the run's row up to
date as its progress report.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from curation import qa
from curation.models import (
    ChunkGeneration,
    DocumentChunk,
    GenerationRun,
    LLMEndpoint,
    Manual,
    ManualDocument,
    QAPair,
)
from curation.qa_pool import ChunkJob, ChunkOutcome, Prompts, run_generation
from curation.services.qa_pairs import qa_pair_build
from manualqa import roles
from manualqa.jobs import lifecycle, queues, runner
from manualqa.lib.llm import LLMConfigError, make_client

logger = logging.getLogger("curation.generation")

__all__ = [
    "generation_run_cancel",
    "generation_run_claim",
    "generation_run_create",
    "generation_run_execute",
    "generation_run_resume",
    "generation_run_retry_failed",
    "generation_run_score",
    "generation_run_is_stale",
    "generation_runs_fail_stale",
]

_PROMPT_FIELDS = {
    "questions_system_prompt": (qa.DEFAULT_QUESTIONS_SYSTEM_PROMPT, set()),
    "questions_user_template": (
        qa.DEFAULT_QUESTIONS_USER_TEMPLATE,
        {"title", "heading_path", "text", "count"},
    ),
    "answer_system_prompt": (qa.DEFAULT_ANSWER_SYSTEM_PROMPT, set()),
    "answer_user_template": (
        qa.DEFAULT_ANSWER_USER_TEMPLATE,
        {"title", "heading_path", "text", "question"},
    ),
}


def _validated_prompts(prompts: dict[str, str] | None) -> dict[str, str]:
    prompts = dict(prompts or {})
    unknown = set(prompts) - set(_PROMPT_FIELDS)
    if unknown:
        raise ValidationError({"prompts": f"unknown prompt fields: {', '.join(sorted(unknown))}"})
    values = {}
    for field, (default, required) in _PROMPT_FIELDS.items():
        value = (prompts.get(field) or "").strip() or default
        if required:
            try:
                qa.validate_template(value, required)
            except ValueError as exc:
                raise ValidationError({field: str(exc)}) from None
        values[field] = value
    return values


def _enqueue(run: GenerationRun) -> None:
    from curation.tasks import generate_local_qa, generate_qa

    local = run.endpoint.kind == LLMEndpoint.Kind.LOCAL
    queues.enqueue(generate_local_qa if local else generate_qa, run.pk, gpu=local)


@transaction.atomic
def generation_run_create(
    *,
    manual: Manual,
    endpoint: LLMEndpoint,
    documents: list[ManualDocument] | None = None,
    questions_per_chunk: int = 5,
    prompts: dict[str, str] | None = None,
    user=None,
    enqueue: bool = True,
) -> GenerationRun:
    """Record a run over the manual's (or the given documents') chunks and queue it on commit."""
    roles.require(user, "curation.add_generationrun", "Starting generation needs the Trainer role.")
    if not endpoint.is_active:
        raise ValidationError({"endpoint": f"The endpoint {endpoint.name} is switched off."})
    if not 1 <= questions_per_chunk <= 50:
        raise ValidationError({"questions_per_chunk": "Ask for between 1 and 50 questions."})
    documents = list(documents or [])
    foreign = [doc for doc in documents if doc.manual_id != manual.pk]
    if foreign:
        raise ValidationError(
            {"documents": f"{foreign[0].source_name} does not belong to {manual.name}."}
        )
    chunks = DocumentChunk.objects.current().filter(document__manual=manual)
    if documents:
        chunks = chunks.filter(document__in=documents)
    chunk_ids = list(
        chunks.order_by("document__source_name", "position").values_list("id", flat=True)
    )
    if not chunk_ids:
        raise ValidationError({"documents": f"{manual.name} has no chunks to generate from."})
    run = GenerationRun.objects.create(
        manual=manual,
        endpoint=endpoint,
        questions_per_chunk=questions_per_chunk,
        chunks_total=len(chunk_ids),
        created_by=roles.recorded_user(user),
        **_validated_prompts(prompts),
    )
    if documents:
        run.documents.set(documents)
    ChunkGeneration.objects.bulk_create(
        [ChunkGeneration(run=run, chunk_id=chunk_id) for chunk_id in chunk_ids], batch_size=1000
    )
    if enqueue:
        _enqueue(run)
    return run


def generation_run_is_stale(run: GenerationRun) -> bool:
    """A running run whose worker stopped writing heartbeats (it was killed or lost)."""
    return lifecycle.is_stale(run)


def generation_runs_fail_stale() -> int:
    """Mark failed every running run whose worker stopped beating; return how many.

    Called by the periodic ``manualqa.reap_stale_jobs`` task. A failed run keeps its pending
    chunks, so Resume generates only those.
    """

    return lifecycle.fail_silent(
        GenerationRun,
        progress=lambda run: f"after {run.chunks_done} of {run.chunks_total} chunks",
        then="Resume generates the chunks left.",
    )


def generation_run_claim(*, run_id: int, task_id: str = "", redelivered: bool = False) -> bool:
    """Atomically take a queued run, or a running one whose worker's heartbeat went stale.

    False means another live worker has it, so a redelivered task does nothing.
    """
    return lifecycle.claim(
        GenerationRun, run_id, task_id=task_id, keep_started_at=True, redelivered=redelivered
    )


def _jobs(run: GenerationRun) -> list[ChunkJob]:
    _supersede_replaced(run)
    pending = (
        ChunkGeneration.objects.filter(run=run, status=ChunkGeneration.Status.PENDING)
        .select_related("chunk__document")
        .order_by("id")
    )
    return [
        ChunkJob(
            key=result.pk,
            title=result.chunk.document.title,
            heading_path=result.chunk.heading_path,
            text=result.chunk.body,
            count=run.questions_per_chunk,
        )
        for result in pending
    ]


def _supersede_replaced(run: GenerationRun) -> None:
    """Pending chunks that a re-ingest replaced since the run began: nothing to ask about."""
    gone = ChunkGeneration.objects.filter(
        run=run, status=ChunkGeneration.Status.PENDING, chunk__isnull=True
    ).update(status=ChunkGeneration.Status.SUPERSEDED, error=_SUPERSEDED)
    if gone:
        GenerationRun.objects.filter(pk=run.pk).update(chunks_done=F("chunks_done") + gone)


_SUPERSEDED = "its page changed during the run; generate from the new text in another run"


@transaction.atomic
def _store_outcome(run: GenerationRun, outcome: ChunkOutcome, price: bool) -> None:
    """Write one chunk's pairs and its result row together: all of it, or none of it."""
    result = (
        ChunkGeneration.objects.select_for_update(of=("self",))
        .select_related("chunk__document")
        .get(pk=outcome.key)
    )
    if result.status != ChunkGeneration.Status.PENDING:
        return  # another worker stored it first
    run_update: dict = {
        "llm_calls": F("llm_calls") + outcome.llm_calls,
        "tokens_in": F("tokens_in") + outcome.tokens_in,
        "tokens_out": F("tokens_out") + outcome.tokens_out,
        "heartbeat_at": timezone.now(),
    }
    if price:
        run_update["estimated_cost"] = Coalesce(F("estimated_cost"), Value(Decimal(0))) + Decimal(
            str(round(outcome.cost, 6))
        )
    result.llm_calls = outcome.llm_calls
    result.tokens_in = outcome.tokens_in
    result.tokens_out = outcome.tokens_out
    if result.chunk is None:
        # Re-ingested while the model answered: the text it asked about is gone.
        result.status = ChunkGeneration.Status.SUPERSEDED
        result.error = _SUPERSEDED
        run_update["chunks_done"] = F("chunks_done") + 1
    elif outcome.error is not None:
        result.status = ChunkGeneration.Status.FAILED
        result.error = outcome.error
        run_update["chunks_failed"] = F("chunks_failed") + 1
    else:
        chunk = result.chunk
        pairs = _new_pairs(run, chunk, outcome)
        QAPair.objects.bulk_create(pairs, ignore_conflicts=True)
        result.status = ChunkGeneration.Status.DONE
        result.error = ""
        result.pairs_created = len(pairs)
        run_update["chunks_done"] = F("chunks_done") + 1
        run_update["pairs_created"] = F("pairs_created") + len(pairs)
    result.save()
    GenerationRun.objects.filter(pk=run.pk).update(**run_update)


def _new_pairs(run: GenerationRun, chunk: DocumentChunk, outcome: ChunkOutcome) -> list[QAPair]:
    seen = set(
        QAPair.objects.filter(chunk=chunk).values_list("question_hash", flat=True)
    )  # pairs a previous (interrupted or repeated) run already stored
    pairs = []
    for generated in outcome.pairs:
        digest = qa.question_hash(generated.question)
        if digest in seen:
            continue
        seen.add(digest)
        pairs.append(
            qa_pair_build(
                manual_id=run.manual_id,
                chunk=chunk,
                question=generated.question,
                answer=generated.answer,
                origin=QAPair.Origin.GENERATED,
                generation_run=run,
                lexical_grounding=qa.lexical_grounding(generated.answer, generated.source_text),
            )
        )
    return pairs


def _finish(run: GenerationRun, status: str, *, message: str = "", trace: str = "") -> None:
    lifecycle.finish(run, status, message=message, trace=trace)


def generation_run_execute(*, run_id: int, heartbeat_s: float = 1.0) -> GenerationRun:
    """Generate pairs for a claimed run's pending chunks. Ends in ``scoring`` (or a final state).

    LLM failures fail single chunks; a run fails only when its endpoint is unusable or every
    chunk failed. A bug marks the run errored with its traceback.
    """
    run = GenerationRun.objects.select_related("endpoint", "manual").get(pk=run_id)
    endpoint = run.endpoint
    try:
        client = make_client(endpoint.config())
    except LLMConfigError as exc:
        _finish(run, GenerationRun.Status.FAILED, message=str(exc))
        return run
    prompts = Prompts(
        questions_system=run.questions_system_prompt,
        questions_user=run.questions_user_template,
        answer_system=run.answer_system_prompt,
        answer_user=run.answer_user_template,
    )
    price = endpoint.price_in_per_1k is not None or endpoint.price_out_per_1k is not None
    last_beat = 0.0
    cancelled = False

    def should_stop() -> bool:
        # Reads the cancel flag and writes the heartbeat at most once per heartbeat_s.
        nonlocal last_beat, cancelled
        now = time.monotonic()
        if now - last_beat < heartbeat_s:
            return cancelled
        last_beat = now
        GenerationRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
        cancelled = GenerationRun.objects.filter(pk=run.pk, cancel_requested=True).exists()
        return cancelled

    try:
        run_generation(
            _jobs(run),
            client=client,
            prompts=prompts,
            concurrency=endpoint.max_concurrency,
            on_outcome=lambda outcome: _store_outcome(run, outcome, price),
            should_stop=should_stop,
        )
    except Exception as exc:
        runner.errored(run, exc)
        return run
    run.refresh_from_db()
    if run.cancel_requested:
        _finish(run, GenerationRun.Status.CANCELLED, message="Cancelled by a user.")
    elif run.chunks_done == 0 and run.chunks_failed > 0:
        first = run.chunk_results.filter(status=ChunkGeneration.Status.FAILED).first()
        _finish(
            run,
            GenerationRun.Status.FAILED,
            message=f"every chunk failed; the first: {first.error if first else '?'}",
        )
    else:
        GenerationRun.objects.filter(pk=run.pk).update(status=GenerationRun.Status.SCORING)
        run.refresh_from_db()
    return run


def generation_run_score(*, run_id: int) -> GenerationRun:
    """Compute grounding and near-duplicates for the run's new pairs, then finish it."""
    from curation.services.qa_pairs import qa_pairs_score

    run = GenerationRun.objects.get(pk=run_id)
    if run.status != GenerationRun.Status.SCORING:
        return run

    def progress(count: int) -> None:
        GenerationRun.objects.filter(pk=run.pk).update(
            pairs_scored=F("pairs_scored") + count, heartbeat_at=timezone.now()
        )

    try:
        qa_pairs_score(
            pairs=QAPair.objects.filter(generation_run=run, scored_at__isnull=True),
            on_batch=progress,
        )
    except Exception as exc:
        runner.errored(run, exc, doing="scoring failed: ")
        return run
    run.refresh_from_db()
    message = ""
    if run.chunks_failed:
        message = f"{run.chunks_failed} chunk(s) failed; use Retry failed chunks."
    _finish(run, GenerationRun.Status.SUCCEEDED, message=message)
    return run


def _require_steer(user) -> None:
    roles.require(
        user,
        "curation.change_generationrun",
        "Cancelling, resuming or retrying a generation run needs the Trainer role.",
    )


@transaction.atomic
def generation_run_cancel(*, run: GenerationRun, user=None) -> GenerationRun:
    """Cancel a queued run at once, or ask a running one to stop after its calls in flight."""
    _require_steer(user)
    run = GenerationRun.objects.select_for_update().get(pk=run.pk)
    if run.status == GenerationRun.Status.QUEUED:
        return lifecycle.cancel_now(run, message="Cancelled before it started.")
    if run.status in (GenerationRun.Status.RUNNING, GenerationRun.Status.SCORING):
        if generation_run_is_stale(run):
            return lifecycle.cancel_now(
                run, message="Cancelled; its worker had stopped responding."
            )
        return lifecycle.request_cancel(run)
    raise ValidationError(f"Run #{run.pk} is {run.get_status_display().lower()}; too late.")


@transaction.atomic
def generation_run_resume(*, run: GenerationRun, user=None) -> GenerationRun:
    """Queue a stopped, failed or stale run again; only its pending chunks are generated."""
    _require_steer(user)
    run = GenerationRun.objects.select_for_update().select_related("endpoint").get(pk=run.pk)
    lifecycle.require_resumable(run, stale=generation_run_is_stale(run), noun="run")
    if not run.chunk_results.filter(status=ChunkGeneration.Status.PENDING).exists():
        raise ValidationError(f"Run #{run.pk} has no pending chunks to resume.")
    lifecycle.requeue(run)
    _enqueue(run)
    return run


@transaction.atomic
def generation_run_retry_failed(*, run: GenerationRun, user=None) -> GenerationRun:
    """Re-run only the chunks that failed, in the same run."""
    _require_steer(user)
    run = GenerationRun.objects.select_for_update().select_related("endpoint").get(pk=run.pk)
    if not run.is_finished:
        raise ValidationError(f"Run #{run.pk} is still {run.get_status_display().lower()}.")
    failed = run.chunk_results.filter(status=ChunkGeneration.Status.FAILED)
    count = failed.update(status=ChunkGeneration.Status.PENDING, error="")
    if not count:
        raise ValidationError(f"Run #{run.pk} has no failed chunks.")
    run.chunks_failed = F("chunks_failed") - count
    run.status = GenerationRun.Status.QUEUED
    run.cancel_requested = False
    run.message = ""
    run.finished_at = None
    run.save(
        update_fields=["chunks_failed", "status", "cancel_requested", "message", "finished_at"]
    )
    run.refresh_from_db()
    _enqueue(run)
    return run
