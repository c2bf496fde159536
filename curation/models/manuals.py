"""Manuals and what ingestion makes of them: documents, chunks and the runs that built them."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

from curation.models.vectors import cosine_hnsw_index, embedding_field
from manualqa.jobs.models import JobRow, progress_percent


class Manual(models.Model):
    """A product manual, e.g. the owner's manual of one vehicle model and year.

    Documents, chunks and (later) QA pairs, datasets and assistants all hang off a manual.
    """

    name = models.CharField(max_length=200, unique=True)
    vehicle_make = models.CharField(max_length=100, blank=True)
    vehicle_model = models.CharField(max_length=100, blank=True)
    vehicle_year = models.PositiveSmallIntegerField(null=True, blank=True)
    source_url = models.URLField(max_length=1000, blank=True)
    #: The tuned embedder whose vectors the chunks carry now; empty: the configured
    #: ``EMBEDDING_MODEL``. Changed only by ``curation.embedders.embedder_switch``.
    embedder = models.ForeignKey(
        "curation.RetrievalModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="manuals",
        limit_choices_to={"kind": "embedder"},
        help_text="The tuned embedder in use; empty for the configured default model",
    )
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


class SourceFile(models.Model):
    """An original file a manual's documents were cut from: a PDF, kept so that a citation can
    open it at its page. Stored once per content (``sha256``); re-ingesting the same PDF reuses
    the row."""

    manual = models.ForeignKey(Manual, on_delete=models.CASCADE, related_name="source_files")
    name = models.CharField(max_length=500, help_text="The file's name, e.g. owners-manual.pdf")
    file = models.FileField(upload_to="sources/")
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField(default=0)
    page_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["manual", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["manual", "sha256"], name="unique_source_file_content_per_manual"
            ),
        ]

    def __str__(self) -> str:
        return self.name


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
    source_file = models.ForeignKey(
        SourceFile,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="documents",
        help_text="The PDF this section was cut from (empty for web pages and markdown)",
    )
    first_page = models.PositiveIntegerField(
        null=True, blank=True, help_text="The PDF page the section starts on"
    )
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


class DocumentChunkQuerySet(models.QuerySet):
    def current(self) -> DocumentChunkQuerySet:
        """The chunks of each document's current version, which generation reads and pages list
        (chat reads the embedded ones: see ``services.documents.chunks_embed_pending``)."""
        return self.filter(version=models.F("document__version"))

    def served(self) -> DocumentChunkQuerySet:
        """The chunks retrieval serves: embedded by their manual's embedder (``embedder``;
        None: the configured model), so that a chunk left from before a switch of embedders is
        never found."""
        return self.filter(embedding__isnull=False).filter(
            models.Q(embedder_id=models.F("document__manual__embedder_id"))
            | models.Q(embedder__isnull=True, document__manual__embedder__isnull=True)
        )


class DocumentChunk(models.Model):
    """A passage of a document, sized for embedding and retrieval.

    Chunks follow headings and never cross a ``##`` section. ``text`` starts with the heading
    path, so the embedding knows which page and section the passage comes from.
    ``embedding`` is empty until the embedding task has run.
    """

    document = models.ForeignKey(ManualDocument, on_delete=models.CASCADE, related_name="chunks")
    # The document version it was cut from: a changed page has two for a while (``current``).
    version = models.PositiveIntegerField(default=1)
    position = models.PositiveIntegerField()
    heading_path = models.CharField(max_length=1000)
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    pages = ArrayField(
        models.PositiveIntegerField(),
        default=list,
        blank=True,
        help_text="The PDF pages the passage spans (empty for web pages and markdown)",
    )
    embedding = embedding_field(null=True, blank=True)
    embedding_model = models.CharField(max_length=300, blank=True)
    #: Which model's vector ``embedding`` is (empty: the configured default). Written in the same
    #: UPDATE as the vector, so retrieval can ask for one model's vectors only.
    embedder = models.ForeignKey(
        "curation.RetrievalModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DocumentChunkQuerySet.as_manager()

    class Meta:
        ordering = ["document", "version", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "version", "position"],
                name="unique_chunk_position_per_document_version",
            ),
        ]
        indexes = [cosine_hnsw_index("chunk_embedding_hnsw_cosine", "embedding")]

    def __str__(self) -> str:
        return f"{self.heading_path} #{self.position}"

    @property
    def body(self) -> str:
        """The passage without its heading-path prefix line, for display under that heading."""
        first, _, rest = self.text.partition("\n\n")
        return rest if rest and self.heading_path.startswith(first.strip()) else self.text


class Figure(models.Model):
    """A picture of a document (an HTML ``<img>`` or an image in a PDF), kept with its alt text
    or caption and the passage it belongs to.

    The image is re-encoded to a web format and capped in size when it is stored. ``key`` is the
    SHA-256 of the original image bytes, stable across re-ingests, and is how the document's
    markdown refers to the figure (``<!-- figure KEY -->``), so the chunk holding that marker is
    the figure's ``chunk``. A figure belongs to one version of its document.
    """

    document = models.ForeignKey(ManualDocument, on_delete=models.CASCADE, related_name="figures")
    version = models.PositiveIntegerField(default=1)
    chunk = models.ForeignKey(
        DocumentChunk, null=True, blank=True, on_delete=models.SET_NULL, related_name="figures"
    )
    key = models.CharField(max_length=64)
    position = models.PositiveIntegerField(help_text="Order within the document")
    image = models.FileField(upload_to="figures/")
    content_type = models.CharField(max_length=50, default="image/webp")
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    caption = models.TextField(blank=True, help_text="Alt text or caption")
    page = models.PositiveIntegerField(null=True, blank=True, help_text="PDF page")
    source_url = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document", "version", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "version", "key"], name="unique_figure_per_document_version"
            ),
        ]

    def __str__(self) -> str:
        return self.caption[:60] or f"figure {self.key[:8]}"


class IngestionRun(JobRow):
    """One ingestion of a source (a URL, a folder, a zip or a PDF) into a manual.

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
        PDF = "pdf", "PDF file"
        PDF_FOLDER = "pdf_folder", "Folder of PDFs"
        FOLDER = "folder", "Folder (not read yet)"  # its task finds which (security review M2)

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.ERRORED)
    STALE_AFTER_SETTING = "INGESTION_STALE_AFTER_S"
    TRANSITIONS = {
        Status.QUEUED: frozenset({Status.RUNNING}),
        Status.RUNNING: frozenset({Status.EMBEDDING, Status.FAILED, Status.ERRORED}),
        Status.EMBEDDING: frozenset({Status.SUCCEEDED, Status.ERRORED}),
        Status.SUCCEEDED: frozenset(),
        Status.FAILED: frozenset(),
        Status.ERRORED: frozenset(),
    }

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

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"Ingestion #{self.pk} of {self.source}"

    @property
    def progress_percent(self) -> int:
        return progress_percent(self, self.pages_done, self.pages_total)
