"""Models trained on reviewed pairs to find and judge passages (issue 18)."""

from __future__ import annotations

from django.db import models


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
