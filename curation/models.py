"""Manuals and what ingestion makes of them: documents, chunks and the runs that built them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from pgvector.django import HnswIndex, VectorField

from manualqa.jobs.models import CancellableJobRow, JobRow, progress_percent
from manualqa.lib.key_names import api_key_env_problem
from manualqa.lib.local_models import is_local_model, local_model_path


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


class DocumentChunkQuerySet(models.QuerySet):
    def current(self) -> DocumentChunkQuerySet:
        """The chunks of each document's current version, which generation reads and pages list
        (chat reads the embedded ones: see ``services.documents.chunks_embed_pending``)."""
        return self.filter(version=models.F("document__version"))


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
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True)
    embedding_model = models.CharField(max_length=300, blank=True)
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


class IngestionRun(JobRow):
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
        FOLDER = "folder", "Folder (not read yet)"  # its task finds which (security review M2)

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.ERRORED)
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


class LLMEndpoint(models.Model):
    """A model that answers prompts, used for QA generation, chat and evaluation.

    ``openai`` covers OpenAI itself and any OpenAI-compatible server (vLLM, TGI, Ollama) through
    ``base_url``; ``azure_openai`` an Azure deployment; ``local`` a transformers model on the
    worker (a folder path, or empty for the bundled SmolLM2-135M-Instruct); ``sagemaker`` a TGI
    container behind an AWS SageMaker endpoint (``model`` is the endpoint name, ``base_url`` an
    optional endpoint URL override, ``region`` the AWS region; credentials from boto3's usual
    chain). The API key is never stored: ``api_key_env`` names the environment variable that
    holds it.
    """

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible (OpenAI, vLLM, TGI, Ollama)"
        AZURE_OPENAI = "azure_openai", "Azure OpenAI"
        LOCAL = "local", "Local model (transformers folder or GGUF file)"
        SAGEMAKER = "sagemaker", "AWS SageMaker endpoint (TGI container)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.CharField(max_length=300, blank=True)
    model = models.CharField(
        max_length=500,
        blank=True,
        help_text="Model name (OpenAI-compatible), deployment name (Azure), a local model "
        "folder or .gguf file run by llama.cpp (empty for the bundled SmolLM2-135M-Instruct; "
        "SmolLM2-135M-Instruct.Q4_1.gguf for its GGUF through llama.cpp), or the SageMaker "
        "endpoint name.",
    )
    base_url = models.CharField(
        max_length=500,
        blank=True,
        help_text="OpenAI-compatible base URL such as http://127.0.0.1:8001/v1 (empty for "
        "api.openai.com), the Azure resource endpoint, or a SageMaker runtime endpoint URL "
        "override (empty for AWS's own).",
    )
    region = models.CharField(
        max_length=50,
        blank=True,
        help_text="AWS region of a SageMaker endpoint (empty: AWS_DEFAULT_REGION, else us-east-1).",
    )
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[
            RegexValidator(r"^[A-Za-z_][A-Za-z0-9_]*$", "Give an environment variable's name.")
        ],
        help_text=(
            "Name of the environment variable that holds the API key (never the key), such as "
            "OPENAI_API_KEY; the server's own secrets are refused."
        ),
    )
    api_version = models.CharField(max_length=50, blank=True, help_text="Azure API version")
    temperature = models.FloatField(default=0.2, validators=[MinValueValidator(0.0)])
    max_tokens = models.PositiveIntegerField(default=512, validators=[MinValueValidator(1)])
    requests_per_minute = models.PositiveIntegerField(default=0, help_text="0 means no limit")
    max_concurrency = models.PositiveIntegerField(default=4, validators=[MinValueValidator(1)])
    timeout_s = models.FloatField(default=60.0, validators=[MinValueValidator(0.1)])
    max_retries = models.PositiveSmallIntegerField(default=4)
    context_window = models.PositiveIntegerField(default=4096, validators=[MinValueValidator(256)])
    price_in_per_1k = models.DecimalField(
        max_digits=10, decimal_places=6, null=True, blank=True, help_text="USD per 1k input tokens"
    )
    price_out_per_1k = models.DecimalField(
        max_digits=10, decimal_places=6, null=True, blank=True, help_text="USD per 1k output tokens"
    )

    class PromptFormat(models.TextChoices):
        """The formats of :mod:`manualqa.lib.prompt_formats` (dataset snapshots use these too)."""

        CHAT_TEMPLATE = "chat_template", "Tokenizer chat template"
        SEED_INST = "seed_inst", "<s>[INST] q [/INST] a </s> (seed project)"
        ALPACA = "alpaca", "Alpaca instruction/output"

    prompt_format = models.CharField(
        max_length=20,
        choices=PromptFormat.choices,
        blank=True,
        help_text="The format the model was fine-tuned on, written when a training job "
        "registers it; chat prompts it the same way. Empty: not known (a chat model).",
    )
    system_prompt = models.TextField(
        blank=True,
        help_text="The system prompt the model was fine-tuned with, if any; a direct chat "
        "assistant without its own system prompt uses it.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM endpoint"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.kind == self.Kind.OPENAI and not self.model:
            errors["model"] = "An OpenAI-compatible endpoint needs a model name."
        if self.kind == self.Kind.AZURE_OPENAI:
            for field in ("base_url", "model", "api_version"):
                if not getattr(self, field):
                    errors[field] = "Azure OpenAI needs the endpoint, deployment and API version."
        local = self.kind == self.Kind.LOCAL and self.model
        if local and not is_local_model(local_model_path(self.model, Path(settings.MODELS_DIR))):
            errors["model"] = f"No model folder or .gguf file at {self.model}."
        if self.kind == self.Kind.SAGEMAKER and not self.model:
            errors["model"] = "A SageMaker endpoint needs the endpoint's name."
        key_problem = api_key_env_problem(self.api_key_env, settings.LLM_KEY_ENV_PATTERN)
        if key_problem:
            errors["api_key_env"] = key_problem[0].upper() + key_problem[1:] + "."
        if errors:
            raise ValidationError(errors)

    def config(self):
        """The plain ``EndpointConfig`` that ``manualqa.lib.llm.make_client`` takes."""
        from manualqa.lib.llm import EndpointConfig

        return EndpointConfig(
            kind=self.kind,
            model=self.model,
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            api_version=self.api_version,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            requests_per_minute=self.requests_per_minute,
            max_concurrency=self.max_concurrency,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            context_window=self.context_window,
            price_in_per_1k=float(self.price_in_per_1k) if self.price_in_per_1k else None,
            price_out_per_1k=float(self.price_out_per_1k) if self.price_out_per_1k else None,
            models_dir=str(settings.MODELS_DIR),
            region=self.region,
        )


class GenerationRun(CancellableJobRow):
    """One QA-generation job over a manual (or chosen documents) with one endpoint.

    The method is question_extractor's two stages: list the questions a chunk alone answers,
    then answer each from that chunk. The row holds the prompts used, progress, token counts and
    cost; each chunk's outcome is a ``ChunkGeneration`` row, which is what resume and "retry
    failed chunks" work from.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SCORING = "scoring", "Scoring"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        ERRORED = "errored", "Errored"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.ERRORED)
    # Running -> running is a takeover of a silent worker's run; -> queued is its resume.
    #: The run's counters, as pages and the API show them.
    COUNTS = (
        "chunks_total",
        "chunks_done",
        "chunks_failed",
        "pairs_created",
        "pairs_scored",
        "llm_calls",
        "tokens_in",
        "tokens_out",
    )
    TRANSITIONS = {
        Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED}),
        Status.RUNNING: frozenset(
            {
                Status.RUNNING,
                Status.SCORING,
                Status.CANCELLED,
                Status.FAILED,
                Status.ERRORED,
                Status.QUEUED,
            }
        ),
        Status.SCORING: frozenset({Status.SUCCEEDED, Status.ERRORED}),
        Status.SUCCEEDED: frozenset({Status.QUEUED}),  # retry the failed chunks
        Status.FAILED: frozenset({Status.QUEUED}),
        Status.CANCELLED: frozenset({Status.QUEUED}),
        Status.ERRORED: frozenset({Status.QUEUED}),
    }

    manual = models.ForeignKey(Manual, on_delete=models.CASCADE, related_name="generation_runs")
    documents = models.ManyToManyField(
        ManualDocument, blank=True, help_text="Empty means every document of the manual."
    )
    endpoint = models.ForeignKey(LLMEndpoint, on_delete=models.PROTECT, related_name="runs")
    questions_per_chunk = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    questions_system_prompt = models.TextField()
    questions_user_template = models.TextField()
    answer_system_prompt = models.TextField()
    answer_user_template = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    chunks_failed = models.PositiveIntegerField(default=0)
    pairs_created = models.PositiveIntegerField(default=0)
    pairs_scored = models.PositiveIntegerField(default=0)
    llm_calls = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    estimated_cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"Generation #{self.pk} on {self.manual}"

    @property
    def progress_percent(self) -> int:
        return progress_percent(self, self.chunks_done + self.chunks_failed, self.chunks_total)


class ChunkGeneration(models.Model):
    """The outcome of one chunk within a generation run.

    ``pending`` chunks are what a (re)started run works on; a chunk becomes ``done`` in the same
    transaction that stores its pairs, so a worker killed mid-run leaves only complete chunks.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded (its page changed during the run)"

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="chunk_results")
    # Kept when a re-ingest replaces the chunk (the row then says "superseded"), so a run's
    # history and counters stay whole (security review M7).
    chunk = models.ForeignKey(DocumentChunk, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    pairs_created = models.PositiveIntegerField(default=0)
    llm_calls = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "chunk"]
        constraints = [
            models.UniqueConstraint(fields=["run", "chunk"], name="unique_chunk_per_run"),
        ]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"{self.run} / chunk {self.chunk_id}: {self.status}"


class QAPair(models.Model):
    """A question and its answer, tied to the manual text that supports it.

    Generated, imported, hand-written or raised from chat feedback. ``original_question`` and
    ``original_answer`` keep the text as created, whatever reviewers later change.
    ``document_version`` is the document's version the pair was made from: when the document
    moves on, the pair is flagged ``source_changed``. ``source_text`` keeps the supporting chunk's
    text, because chunks are rebuilt when their document changes.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    class Origin(models.TextChoices):
        GENERATED = "generated", "Generated"
        IMPORTED = "imported", "Imported"
        MANUAL = "manual", "Written by hand"
        CHAT_FEEDBACK = "chat_feedback", "Chat feedback"

    manual = models.ForeignKey(Manual, on_delete=models.CASCADE, related_name="qa_pairs")
    document = models.ForeignKey(
        ManualDocument, null=True, blank=True, on_delete=models.SET_NULL, related_name="qa_pairs"
    )
    chunk = models.ForeignKey(
        DocumentChunk, null=True, blank=True, on_delete=models.SET_NULL, related_name="qa_pairs"
    )
    document_version = models.PositiveIntegerField(null=True, blank=True)
    source_text = models.TextField(blank=True)
    question = models.TextField()
    answer = models.TextField()
    question_hash = models.CharField(max_length=64, db_index=True)
    original_question = models.TextField()
    original_answer = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    origin = models.CharField(max_length=20, choices=Origin.choices)
    generation_run = models.ForeignKey(
        GenerationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs"
    )
    grounding_score = models.FloatField(null=True, blank=True)
    lexical_grounding = models.FloatField(null=True, blank=True)
    semantic_grounding = models.FloatField(null=True, blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    flags = ArrayField(models.CharField(max_length=30), default=list, blank=True)
    question_embedding = VectorField(
        dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True
    )
    scored_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reviewed_qa_pairs",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "QA pair"
        permissions = [("review_qapair", "Can review QA pairs (approve, reject, edit)")]
        constraints = [
            # Generation never stores the same question twice for one chunk, however often a
            # run is resumed or repeated.
            models.UniqueConstraint(
                fields=["chunk", "question_hash"],
                condition=models.Q(chunk__isnull=False),
                name="unique_question_per_chunk",
            ),
            # Importing the same file twice does not double it.
            models.UniqueConstraint(
                fields=["document", "question_hash"],
                condition=models.Q(origin="imported"),
                name="unique_imported_question_per_document",
            ),
        ]
        indexes = [
            # The review list's default order, with and without its most common filter.
            models.Index(fields=["-created_at", "-id"], name="qapair_newest"),
            models.Index(
                fields=["manual", "status", "-created_at", "-id"],
                name="qapair_manual_status_newest",
            ),
            models.Index(fields=["status", "grounding_score"]),
            GinIndex(fields=["flags"], name="qapair_flags_gin"),
            HnswIndex(
                name="qapair_question_hnsw_cosine",
                fields=["question_embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return self.question[:80]

    @property
    def source_changed(self) -> bool:
        return (
            self.document_id is not None
            and self.document_version is not None
            and self.document.version != self.document_version
        )


class QAPairRevision(models.Model):
    """One recorded change to a QA pair: who, when, what, and the values before and after.

    ``changes`` maps each changed field to ``[before, after]``. Written by the review services,
    in bulk for bulk actions, so the history is complete without slowing reviewers down.
    """

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        EDIT = "edit", "Edited"
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"
        RESET = "reset", "Reset to pending"
        MARK_DUPLICATE = "mark_duplicate", "Marked duplicate"
        REGENERATE = "regenerate", "Answer regenerated"

    pair = models.ForeignKey(QAPair, on_delete=models.CASCADE, related_name="revisions")
    action = models.CharField(max_length=20, choices=Action.choices)
    changes = models.JSONField(default=dict)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["pair", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} #{self.pair_id}"
