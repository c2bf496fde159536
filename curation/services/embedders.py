"""Which embedding model a manual's chunks carry, and switching it at once (issue 18).

A manual's chunks hold the vectors of one model at a time in ``DocumentChunk.embedding``: the
configured ``EMBEDDING_MODEL`` (``Manual.embedder`` empty) or a tuned embedder (a
``RetrievalModel`` of kind embedder). Re-embedding a manual with another model:

1. **build** (:func:`vectors_build`): every served chunk's vector under the new model goes into
   ``ChunkVector``, beside the vectors chat uses, which stay as they are meanwhile;
2. **switch** (:func:`embedder_switch`): one transaction keeps the vectors in use as the old
   model's ``ChunkVector`` rows, copies the new ones into the chunks (with ``embedder``, in the
   same UPDATE) and records the new model on the manual. Chat reads either all old or all new
   vectors, and asks for the manual's model's vectors only (``curation.selectors``).

Switching back is the same switch: the previous model's vectors were kept, so nothing is
embedded again (only chunks ingested since are). :class:`ReembedRun` does both steps as a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from curation.models import ChunkVector, DocumentChunk, Manual, ReembedRun, RetrievalModel
from manualqa import roles
from manualqa.jobs import lifecycle, queues, runner
from manualqa.lib.embeddings import encode

__all__ = [
    "VectorsMissing",
    "default_vectors",
    "embed_with",
    "embedder_check",
    "embedder_switch",
    "model_name",
    "reembed_run_claim",
    "reembed_run_create",
    "reembed_run_execute",
    "vectors_build",
]

logger = logging.getLogger(__name__)

#: How many chunks one build batch embeds and stores (one commit each).
BUILD_BATCH = 64
#: How often a switch builds what was ingested meanwhile before it gives up.
SWITCH_TRIES = 5


class VectorsMissing(Exception):
    """Some served chunks have no vector under the model being switched to (yet)."""


def model_name(embedder: RetrievalModel | None) -> str:
    """What ``manualqa.lib.embeddings`` loads for ``embedder`` (None: the configured model)."""
    return settings.EMBEDDING_MODEL if embedder is None else embedder.path


def embed_with(
    embedder: RetrievalModel | None, texts: Sequence[str], *, batch_size: int | None = None
) -> np.ndarray:
    """Unit-length embeddings of ``texts`` with ``embedder`` (None: the configured model)."""
    return encode(
        list(texts),
        model_name=model_name(embedder),
        device=settings.EMBEDDING_DEVICE,
        batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
    )


def default_vectors(chunks: Sequence[DocumentChunk]) -> list[np.ndarray | None]:
    """Each chunk's vector under the configured model, which curation's own comparisons use
    (answers and questions are embedded with it): the served one, or for a chunk of a manual on
    a tuned embedder the one kept beside it (embedded now if there is none)."""
    tuned = [chunk for chunk in chunks if chunk.embedder_id is not None]
    kept: dict[int, np.ndarray] = {}
    if tuned:
        kept = dict(
            ChunkVector.objects.filter(
                chunk_id__in=[chunk.pk for chunk in tuned], embedder=None
            ).values_list("chunk_id", "embedding")
        )
        missing = [chunk for chunk in tuned if chunk.pk not in kept]
        if missing:
            kept.update(
                zip(
                    [chunk.pk for chunk in missing],
                    embed_with(None, [chunk.text for chunk in missing]),
                    strict=True,
                )
            )
    return [
        (None if chunk.embedding is None else np.asarray(chunk.embedding))
        if chunk.embedder_id is None
        else np.asarray(kept[chunk.pk])
        for chunk in chunks
    ]


def embedder_check(embedder: RetrievalModel | None) -> None:
    """Raise ``ValidationError`` naming the problem unless ``embedder`` can embed chunks here."""
    if embedder is None:
        return
    if embedder.kind != RetrievalModel.Kind.EMBEDDER:
        raise ValidationError(
            {"embedder": f"{embedder} is a {embedder.get_kind_display().lower()}, not an embedder."}
        )
    if embedder.dimensions != settings.EMBEDDING_DIMENSIONS:
        raise ValidationError(
            {
                "embedder": f"{embedder.name} makes {embedder.dimensions}-dimensional vectors; the "
                f"chunks' vector column holds {settings.EMBEDDING_DIMENSIONS} "
                "(EMBEDDING_DIMENSIONS)."
            }
        )
    if (
        not (Path(embedder.path) / "config.json").is_file()
        and not (Path(embedder.path) / "modules.json").is_file()
    ):
        raise ValidationError(
            {"embedder": f"{embedder.name}'s model folder {embedder.path} is missing or empty."}
        )


def _served(manual: Manual):
    """The manual's chunks chat can find: those with a vector."""
    return DocumentChunk.objects.filter(document__manual=manual, embedding__isnull=False)


def _missing(manual: Manual, embedder: RetrievalModel | None):
    """Served chunks with no vector under ``embedder`` yet."""
    have = ChunkVector.objects.filter(
        embedder=embedder
    )  # embedder=None filters "IS NULL", the default model's rows
    return _served(manual).exclude(pk__in=have.values("chunk_id"))


def vectors_build(
    manual: Manual,
    embedder: RetrievalModel | None,
    *,
    batch_size: int = BUILD_BATCH,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Embed every served chunk of ``manual`` that has no vector under ``embedder`` into
    ``ChunkVector``, a batch per commit; chat is untouched. Returns how many were built.

    Idempotent: a repeated call builds only what is missing (chunks ingested meanwhile).
    """
    built = 0
    last_id = 0
    while True:
        if should_stop is not None and should_stop():
            return built
        batch = list(
            _missing(manual, embedder)
            .filter(pk__gt=last_id)
            .order_by("pk")
            .only("pk", "text")[:batch_size]
        )
        if not batch:
            return built
        vectors = embed_with(embedder, [chunk.text for chunk in batch])
        ChunkVector.objects.bulk_create(
            [
                ChunkVector(chunk_id=chunk.pk, embedder=embedder, embedding=vector)
                for chunk, vector in zip(batch, vectors, strict=True)
            ],
            ignore_conflicts=True,  # built meanwhile by another run: same model, same text
        )
        built += len(batch)
        last_id = batch[-1].pk
        if on_batch is not None:
            on_batch(len(batch))


@transaction.atomic
def embedder_switch(manual: Manual, embedder: RetrievalModel | None) -> Manual:
    """Make ``embedder``'s vectors the ones chat uses for ``manual``, in one transaction.

    The vectors in use are kept as their model's ``ChunkVector`` rows first, so switching back
    is this same call. Raises :class:`VectorsMissing` (and changes nothing) when a served chunk
    has no vector under ``embedder``: build them (:func:`vectors_build`) and call again.
    """
    embedder_check(embedder)
    target = embedder.pk if embedder is not None else None
    # The manual's row lock: ingestion stores a batch's vectors under it too, so no batch of
    # the old model lands after the switch (curation.services.documents._store_vectors).
    manual = Manual.objects.select_for_update().get(pk=manual.pk)
    missing = _missing(manual, embedder).count()
    if missing:
        raise VectorsMissing(
            f"{missing} chunks of {manual} have no vector under {embedder or 'the default model'}"
        )
    chunk_table = DocumentChunk._meta.db_table
    document_table = DocumentChunk._meta.get_field("document").related_model._meta.db_table
    vector_table = ChunkVector._meta.db_table
    with connection.cursor() as cursor:
        # Keep the vectors in use under the model that made them.
        cursor.execute(
            f"""
            INSERT INTO {vector_table} (chunk_id, embedder_id, embedding, created_at)
            SELECT chunk.id, chunk.embedder_id, chunk.embedding, now()
            FROM {chunk_table} AS chunk
            JOIN {document_table} AS document ON document.id = chunk.document_id
            WHERE document.manual_id = %s AND chunk.embedding IS NOT NULL
            ON CONFLICT ON CONSTRAINT one_vector_per_chunk_and_embedder
            DO UPDATE SET embedding = EXCLUDED.embedding
            """,  # noqa: S608 - table names come from the models, values are parameters
            [manual.pk],
        )
        cursor.execute(
            f"""
            UPDATE {chunk_table} AS chunk
            SET embedding = vector.embedding, embedder_id = %s, embedding_model = %s
            FROM {vector_table} AS vector, {document_table} AS document
            WHERE vector.chunk_id = chunk.id
              AND vector.embedder_id IS NOT DISTINCT FROM %s
              AND document.id = chunk.document_id
              AND document.manual_id = %s
              AND chunk.embedding IS NOT NULL
            """,  # noqa: S608
            [target, model_name(embedder)[-300:], target, manual.pk],
        )
    Manual.objects.filter(pk=manual.pk).update(embedder=embedder, updated_at=timezone.now())
    manual.refresh_from_db()
    return manual


def embedder_use(
    manual: Manual,
    embedder: RetrievalModel | None,
    *,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> bool:
    """Build what is missing, then switch; False when ``should_stop`` stopped it first."""
    embedder_check(embedder)
    for _ in range(SWITCH_TRIES):
        vectors_build(manual, embedder, on_batch=on_batch, should_stop=should_stop)
        if should_stop is not None and should_stop():
            return False
        try:
            embedder_switch(manual, embedder)
        except VectorsMissing:  # pages ingested while we built: build those too
            continue
        return True
    raise VectorsMissing(
        f"{manual} kept getting new chunks while it was re-embedded; try again once its "
        "ingestion is done"
    )


# --- the re-embed job ---------------------------------------------------------------------------


@transaction.atomic
def reembed_run_create(
    *, manual: Manual, embedder: RetrievalModel | None, user, enqueue: bool = True
) -> ReembedRun:
    """Queue re-embedding ``manual`` with ``embedder`` (None: back to the configured model)."""
    roles.require(user, "curation.add_reembedrun", "Re-embedding a manual needs the Trainer role.")
    embedder_check(embedder)
    if ReembedRun.objects.filter(
        manual=manual, status__in=[ReembedRun.Status.QUEUED, ReembedRun.Status.RUNNING]
    ).exists():
        raise ValidationError(f"{manual} is being re-embedded already; wait for that run.")
    if manual.embedder_id == (embedder.pk if embedder is not None else None):
        raise ValidationError(f"{manual} uses {embedder or 'the default model'} already.")
    run = ReembedRun.objects.create(
        manual=manual,
        embedder=embedder,
        previous_embedder=manual.embedder,
        total=_served(manual).count(),
        created_by=roles.recorded_user(user),
    )
    if enqueue:
        from curation.tasks import embed_reembed

        queues.enqueue(embed_reembed, run.pk, gpu=True)
    return run


def reembed_run_claim(*, run_id: int, task_id: str = "", redelivered: bool = False) -> bool:
    return lifecycle.claim(ReembedRun, run_id, task_id=task_id, redelivered=redelivered)


def reembed_runs_fail_stale() -> int:
    """Mark failed every running re-embed whose worker stopped beating (the manual keeps the
    vectors it had: nothing switches before the build is whole)."""
    return lifecycle.fail_stale(
        ReembedRun,
        message=lambda run, quiet: (
            f"The worker stopped sending heartbeats ({quiet:.0f} s of silence); the manual "
            "keeps the vectors it had. Start the re-embed again: what was built is kept."
        ),
    )


def reembed_run_execute(*, run_id: int, check_every_s: float = 1.0) -> ReembedRun:
    """Build the run's vectors (progress on its row), then switch; a cancel keeps the old ones."""
    run = ReembedRun.objects.select_related("manual", "embedder").get(pk=run_id)
    should_stop = runner.stop_check(ReembedRun, run.pk, check_every_s)

    def on_batch(count: int) -> None:
        ReembedRun.objects.filter(pk=run.pk).update(
            done=_served(run.manual).count() - _missing(run.manual, run.embedder).count(),
            heartbeat_at=timezone.now(),
        )

    with runner.beating(run, settings.TRAINING_HEARTBEAT_S, fence=run.celery_task_id):
        try:
            switched = embedder_use(
                run.manual, run.embedder, on_batch=on_batch, should_stop=should_stop
            )
        except (ValidationError, VectorsMissing) as exc:
            text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            return lifecycle.finish(run, ReembedRun.Status.FAILED, message=text)
        except Exception as exc:
            return runner.errored(run, exc, doing="Re-embedding failed: ")
        if not switched:
            return lifecycle.finish(
                run,
                ReembedRun.Status.CANCELLED,
                message="Cancelled; the manual keeps the vectors it had.",
            )
        ReembedRun.objects.filter(pk=run.pk).update(done=_served(run.manual).count())
        return lifecycle.finish(run, ReembedRun.Status.SUCCEEDED)


@transaction.atomic
def reembed_run_cancel(*, run: ReembedRun, user) -> ReembedRun:
    """Cancel a queued run now; ask a running one to stop before it switches."""
    roles.require(user, "curation.add_reembedrun", "Re-embedding a manual needs the Trainer role.")
    run = ReembedRun.objects.select_for_update().get(pk=run.pk)
    if run.status == ReembedRun.Status.QUEUED:
        return lifecycle.finish(
            run, ReembedRun.Status.CANCELLED, message="Cancelled before it ran."
        )
    if run.status != ReembedRun.Status.RUNNING:
        raise ValidationError(
            f"Re-embed #{run.pk} is {run.get_status_display().lower()}; too late."
        )
    run.cancel_requested = True
    run.save(update_fields=["cancel_requested"])
    return run
