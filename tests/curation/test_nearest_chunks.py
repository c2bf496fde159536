"""Nearest-chunk retrieval when a small manual shares the HNSW index with a bigger one."""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from pgvector.django import CosineDistance

from curation import selectors
from curation.models import DocumentChunk, Manual, ManualDocument

pytestmark = pytest.mark.django_db


def unit(vector: np.ndarray) -> list[float]:
    return (vector / np.linalg.norm(vector)).tolist()


def manual_with_chunks(name: str, vectors: list[list[float]]) -> Manual:
    manual = Manual.objects.create(name=name)
    now = timezone.now()
    document = ManualDocument.objects.create(
        manual=manual,
        title=name,
        source_name=f"{name}.md",
        markdown="x",
        content_hash="0" * 64,
        fetched_at=now,
        updated_at=now,
    )
    DocumentChunk.objects.bulk_create(
        DocumentChunk(
            document=document,
            position=i,
            heading_path=f"{name} {i}",
            text=f"{name} chunk {i}",
            token_count=3,
            embedding=vector,
        )
        for i, vector in enumerate(vectors)
    )
    return manual


def test_a_small_manual_gets_k_chunks_even_when_the_index_candidates_are_all_elsewhere():
    rng = np.random.default_rng(0)
    dims = settings.EMBEDDING_DIMENSIONS
    query = rng.normal(size=dims)
    # The big manual's chunks all sit right next to the query; the small manual's are far off,
    # so every HNSW candidate belongs to the big manual and the manual filter removes them all.
    big = manual_with_chunks(
        "Big", [unit(query + 0.05 * rng.normal(size=dims)) for _ in range(300)]
    )
    small = manual_with_chunks("Small", [unit(rng.normal(size=dims)) for _ in range(6)])
    with connection.cursor() as cursor:
        # A table this small would be scanned and sorted exactly anyway; make the planner use
        # the index, as it does at real sizes (ordered rows without a sort: only HNSW has them).
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_sort = off")
        plan = "\n".join(row[0] for row in _explain(cursor, unit(query), small.pk, limit=4))
    assert "chunk_embedding_hnsw_cosine" in plan, plan
    # The index pass alone comes back short: its candidates were all in the big manual.
    assert len(selectors._nearest(unit(query), [small.pk], 4, ef=4)) < 4

    found = selectors.chunks_nearest(
        query_embedding=unit(query), manual_ids=[small.pk], k=4, ef_search=4
    )

    assert len(found) == 4
    assert {chunk.document.manual_id for chunk in found} == {small.pk}
    exact = sorted(
        DocumentChunk.objects.filter(document__manual=small),
        key=lambda chunk: -float(np.dot(chunk.embedding, unit(query))),
    )[:4]
    assert [chunk.pk for chunk in found] == [chunk.pk for chunk in exact]
    distances = [chunk.distance for chunk in found]
    assert distances == sorted(distances)
    # The big manual itself is served by the index as before.
    assert len(selectors.chunks_nearest(query_embedding=unit(query), manual_ids=[big.pk], k=4)) == 4
    with connection.cursor() as cursor:
        cursor.execute("RESET enable_seqscan")
        cursor.execute("RESET enable_sort")


def _explain(cursor, query: list[float], manual_id: int, *, limit: int) -> list[tuple]:
    """The plan of the filtered nearest-chunks query (as chunks_nearest builds it)."""
    sql, params = (
        DocumentChunk.objects.filter(embedding__isnull=False, document__manual_id=manual_id)
        .annotate(distance=CosineDistance("embedding", query))
        .order_by("distance")
        .values("pk")[:limit]
        .query.sql_with_params()
    )
    cursor.execute("EXPLAIN " + sql, params)
    return cursor.fetchall()
