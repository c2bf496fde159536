"""The embedding columns and the index retrieval searches them with."""

from __future__ import annotations

from django.conf import settings
from pgvector.django import HnswIndex, VectorField


def embedding_field(**options) -> VectorField:
    """A column holding one vector of the configured embedding model (``EMBEDDING_DIMENSIONS``
    long)."""
    return VectorField(dimensions=settings.EMBEDDING_DIMENSIONS, **options)


def cosine_hnsw_index(name: str, field: str) -> HnswIndex:
    """The nearest-neighbour index on an embedding column: HNSW over cosine distance, with
    pgvector's default build parameters written out so every such index is built alike."""
    return HnswIndex(
        name=name,
        fields=[field],
        m=16,
        ef_construction=64,
        opclasses=["vector_cosine_ops"],
    )
