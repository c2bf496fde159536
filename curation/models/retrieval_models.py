"""Models trained on reviewed pairs to find and judge passages (issue 18)."""

from __future__ import annotations

from django.db import models

from curation.models.vectors import embedding_field
from manualqa.jobs.models import (
    JOB_FINISHED,
    JOB_TRANSITIONS,
    CancellableJobRow,
    JobStatus,
    progress_percent,
)


class RetrievalModel(models.Model):
    """A model a retrieval job trained on a dataset snapshot's reviewed pairs.

    * an **embedder**: a tuned sentence-transformers model that embeds a manual's chunks and
      the owners' questions (a manual switches to it by re-embedding);
    * a **reranker**: a cross-encoder that scores whether a passage answers a question; an
      assistant uses it to reorder retrieved passages and to decline when the best one scores
      below ``decline_below`` (chosen on the snapshot's eval split).

    ``path`` is the model's folder on disk; ``metrics`` what its job measured.
    """

    class Kind(models.TextChoices):
        EMBEDDER = "embedder", "Embedder (retriever)"
        RERANKER = "reranker", "Reranker (cross-encoder)"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    path = models.CharField(max_length=1000, help_text="The model's folder on disk.")
    base_model = models.CharField(max_length=500, blank=True)
    dimensions = models.PositiveIntegerField(
        null=True, blank=True, help_text="Embedders: the length of their vectors."
    )
    decline_below = models.FloatField(
        null=True,
        blank=True,
        help_text="Rerankers: a best passage scoring below this does not answer the question.",
    )
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display().lower()})"


class ChunkVector(models.Model):
    """A chunk's vector under one embedder, kept beside the vector chat uses.

    A re-embed builds the new model's vectors here while chat keeps reading
    ``DocumentChunk.embedding``; the switch copies them over in one transaction, after keeping
    the vectors it replaces here too, so switching back needs no model run.
    ``embedder`` empty: the configured default model (``EMBEDDING_MODEL``).
    """

    chunk = models.ForeignKey(
        "curation.DocumentChunk", on_delete=models.CASCADE, related_name="vectors"
    )
    embedder = models.ForeignKey(
        RetrievalModel, null=True, blank=True, on_delete=models.CASCADE, related_name="vectors"
    )
    embedding = embedding_field()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["chunk", "embedder"],
                name="one_vector_per_chunk_and_embedder",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"chunk {self.chunk_id} / {self.embedder or 'default'}"


class ReembedRun(CancellableJobRow):
    """Re-embedding a manual's chunks with another embedder, then switching to it at once.

    ``embedder`` empty: back to the configured default model. The row is the run's live
    report (``done`` of ``total`` vectors built); chat keeps the old vectors until the switch.
    """

    Status = JobStatus
    FINISHED = JOB_FINISHED
    STALE_AFTER_SETTING = "TRAINING_STALE_AFTER_S"
    TRANSITIONS = JOB_TRANSITIONS

    manual = models.ForeignKey(
        "curation.Manual", on_delete=models.CASCADE, related_name="reembed_runs"
    )
    embedder = models.ForeignKey(
        RetrievalModel, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    previous_embedder = models.ForeignKey(
        RetrievalModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Re-embed #{self.pk} of {self.manual_id} with {self.embedder or 'default'}"

    @property
    def progress_percent(self) -> int:
        return progress_percent(self, self.done, self.total)
