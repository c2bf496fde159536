"""Reads for manuals, documents and chunks."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from pgvector.django import CosineDistance

from curation.models import DocumentChunk, IngestionRun, Manual, ManualDocument


def manuals_with_counts() -> QuerySet[Manual]:
    """Manuals with their document, chunk and embedded-chunk counts, for lists."""
    return Manual.objects.annotate(
        document_count=Count("documents", distinct=True),
        chunk_count=Count("documents__chunks", distinct=True),
        embedded_count=Count(
            "documents__chunks",
            filter=Q(documents__chunks__embedding__isnull=False),
            distinct=True,
        ),
    ).order_by("name")


def manual_documents(*, manual: Manual) -> QuerySet[ManualDocument]:
    return manual.documents.annotate(chunk_count=Count("chunks")).order_by("title")


def document_chunks(*, document: ManualDocument) -> QuerySet[DocumentChunk]:
    return document.chunks.defer("embedding").order_by("position")


def latest_ingestion_runs(*, manual: Manual | None = None, limit: int = 10) -> list[IngestionRun]:
    runs = IngestionRun.objects.select_related("manual")
    if manual is not None:
        runs = runs.filter(manual=manual)
    return list(runs[:limit])


def chunks_nearest(
    *,
    query_embedding: Sequence[float],
    manual_ids: Sequence[int] | None = None,
    k: int = 5,
    ef_search: int | None = None,
) -> list[DocumentChunk]:
    """The ``k`` chunks closest to ``query_embedding`` by cosine distance, through the HNSW index.

    Each chunk carries ``distance`` (0 = identical direction) and its document. ``ef_search``
    widens the HNSW candidate list; it must be at least ``k`` for the index to return ``k`` rows.
    """
    ef = max(ef_search or 40, k)
    with transaction.atomic():
        with connection.cursor() as cursor:
            # SET LOCAL keeps the setting inside this transaction only.
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef])
        chunks = DocumentChunk.objects.filter(embedding__isnull=False)
        if manual_ids is not None:
            chunks = chunks.filter(document__manual_id__in=list(manual_ids))
        return list(
            chunks.select_related("document", "document__manual")
            .defer("embedding")
            .annotate(distance=CosineDistance("embedding", list(query_embedding)))
            .order_by("distance")[:k]
        )


def chunks_for_question(
    *, question: str, manual_ids: Sequence[int] | None = None, k: int = 5
) -> list[DocumentChunk]:
    """Embed ``question`` with the configured model and return the nearest chunks."""
    from curation.embeddings import encode

    vector = encode(
        [question], model_name=settings.EMBEDDING_MODEL, device=settings.EMBEDDING_DEVICE
    )[0]
    return chunks_nearest(query_embedding=vector.tolist(), manual_ids=manual_ids, k=k)
