"""Curation's models: manuals and their documents, chunks and ingestion runs
(:mod:`.manuals`), LLM endpoints (:mod:`.endpoints`), QA generation and pairs
(:mod:`.qa`), and the retrievers and rerankers trained on reviewed pairs
(:mod:`.retrieval_models`)."""

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
from curation.models.retrieval_models import ChunkVector, ReembedRun, RetrievalModel

__all__ = [
    "ChunkGeneration",
    "ChunkVector",
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
    "ReembedRun",
    "RetrievalModel",
    "SourceFile",
]
