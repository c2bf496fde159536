"""Curation's models: manuals and their documents, chunks and ingestion runs
(:mod:`.manuals`), LLM endpoints (:mod:`.endpoints`), and QA generation and pairs
(:mod:`.qa`)."""

from curation.models.endpoints import LLMEndpoint
from curation.models.manuals import (
    DocumentChunk,
    DocumentChunkQuerySet,
    Figure,
    IngestionRun,
    Manual,
    ManualDocument,
    SourceFile,
)
from curation.models.qa import ChunkGeneration, GenerationRun, QAPair, QAPairRevision

__all__ = [
    "ChunkGeneration",
    "DocumentChunk",
    "DocumentChunkQuerySet",
    "Figure",
    "GenerationRun",
    "IngestionRun",
    "LLMEndpoint",
    "Manual",
    "ManualDocument",
    "QAPair",
    "QAPairRevision",
    "SourceFile",
]
