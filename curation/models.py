"""Manuals and what ingestion makes of them: documents, chunks and the runs that built them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from pgvector.django import HnswIndex, VectorField


class Manual(models.Model):
    """A product manual, e.g. the owner's manual of one vehicle model and year.

    Documents, chunks and (later) QA pairs, datasets and assistants all hang off a manual.
    """

    name = models.CharField(max_length=200, unique=True)
    vehicle_make = models.CharField(max_length=100, blank=True)
    vehicle_model = models.CharField(max_length=100, blank=True)
    vehicle_year = models.PositiveSmallIntegerField(null=True, blank=True)
    source_url = models.URLField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def vehicle(self) -> str:
        parts = [str(self.vehicle_year or ""), self.vehicle_make, self.vehicle_model]
        return " ".join(part for part in parts if part)


class ManualDocument(models.Model):
    """One page of a manual, cleaned into markdown.

    ``source_name`` identifies the page within its manual across re-ingests (a file name such as
    ``charging_instructions.md`` or a URL path under the crawl prefix). ``version`` goes up each
    time the cleaned content changes, so objects built from an older version (QA pairs) can tell
    that their source changed.
    """

    manual = models.ForeignKey(Manual, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=500)
    source_name = models.CharField(max_length=500)
    source_url = models.CharField(max_length=1000, blank=True)
    markdown = models.TextField()
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the cleaned markdown")
    word_count = models.PositiveIntegerField(default=0)
    version = models.PositiveIntegerField(default=1)
    fetched_at = models.DateTimeField(help_text="Last time the source was read")
    updated_at = models.DateTimeField(help_text="Last time the content changed")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["manual", "source_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["manual", "source_name"], name="unique_document_source_per_manual"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.source_name})"


class DocumentChunk(models.Model):
    """A passage of a document, sized for embedding and retrieval.

    Chunks follow headings and never cross a ``##`` section. ``text`` starts with the heading
    path, so the embedding knows which page and section the passage comes from.
    ``embedding`` is empty until the embedding task has run.
    """

    document = models.ForeignKey(ManualDocument, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    heading_path = models.CharField(max_length=1000)
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True)
    embedding_model = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "position"], name="unique_chunk_position_per_document"
            ),
        ]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw_cosine",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.heading_path} #{self.position}"

    @property
    def body(self) -> str:
        """The passage without its heading-path prefix line, for display under that heading."""
        first, _, rest = self.text.partition("\n\n")
        return rest if rest and self.heading_path.startswith(first.strip()) else self.text


class IngestionRun(models.Model):
    """One ingestion of a source (a URL, a folder or a zip) into a manual.

    The run's row is its progress report: pages done out of total, what happened to each page,
    and the per-page errors, so the admin can show them after the Celery result has expired.
    A failed page never aborts the run; the run fails only when the source itself is unusable.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        EMBEDDING = "embedding", "Embedding"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        ERRORED = "errored", "Errored"

    class SourceKind(models.TextChoices):
        URL = "url", "Web crawl"
        HTML_FOLDER = "html_folder", "Folder of HTML pages"
        HTML_ZIP = "html_zip", "Zip of HTML pages"
        MARKDOWN_FOLDER = "markdown_folder", "Folder of markdown files"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.ERRORED)

    manual = models.ForeignKey(Manual, on_delete=models.CASCADE, related_name="ingestion_runs")
    source = models.CharField(max_length=1000)
    source_kind = models.CharField(max_length=20, choices=SourceKind.choices)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    pages_total = models.PositiveIntegerField(null=True, blank=True)
    pages_done = models.PositiveIntegerField(default=0)
    pages_failed = models.PositiveIntegerField(default=0)
    documents_created = models.PositiveIntegerField(default=0)
    documents_updated = models.PositiveIntegerField(default=0)
    documents_unchanged = models.PositiveIntegerField(default=0)
    chunks_created = models.PositiveIntegerField(default=0)
    chunks_embedded = models.PositiveIntegerField(default=0)
    errors = models.JSONField(
        default=list, blank=True, help_text='Per-page errors: [{"page": ..., "error": ...}]'
    )
    message = models.TextField(blank=True, help_text="Why the run failed, for the user")
    traceback = models.TextField(blank=True, help_text="Crash details, for developers")
    celery_task_id = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"Ingestion #{self.pk} of {self.source}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.pages_total:
            return 0
        return min(100, round(100 * self.pages_done / self.pages_total))
