"""QA generation runs, their per-chunk results, the QA pairs and their revisions."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from curation.models.endpoints import LLMEndpoint
from curation.models.manuals import DocumentChunk, Manual, ManualDocument
from curation.models.vectors import cosine_hnsw_index, embedding_field
from manualqa.jobs.models import CancellableJobRow, progress_percent


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
    STALE_AFTER_SETTING = "GENERATION_STALE_AFTER_S"
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
    question_embedding = embedding_field(null=True, blank=True)
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
            cosine_hnsw_index("qapair_question_hnsw_cosine", "question_embedding"),
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
