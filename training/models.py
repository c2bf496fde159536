"""Dataset snapshots: the approved pairs a model is trained and evaluated on, frozen."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from curation.models import LLMEndpoint
from manualqa.jobs.models import (
    JOB_FINISHED,
    JOB_TRANSITIONS,
    CancellableJobRow,
    JobStatus,
    progress_percent,
)


class DatasetSnapshot(models.Model):
    """An immutable, versioned set of approved QA pairs with a train/eval/test split.

    The text of every pair is copied at creation, so later edits never change what a model was
    trained on. The split is made by document section (near-duplicates follow their canonical
    pair), so near-identical questions never sit on both sides of it. ``content_hash`` covers
    the frozen questions, answers and splits: two snapshots with the same hash hold the same data.
    """

    PromptFormat = LLMEndpoint.PromptFormat
    #: The choices that decide a snapshot's records and split, besides its manual and filters.
    RECIPE = (
        "prompt_format",
        "system_prompt",
        "train_fraction",
        "eval_fraction",
        "test_fraction",
        "seed",
    )

    manual = models.ForeignKey(
        "curation.Manual", on_delete=models.PROTECT, related_name="dataset_snapshots"
    )
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    prompt_format = models.CharField(
        max_length=20, choices=PromptFormat.choices, default=PromptFormat.CHAT_TEMPLATE
    )
    system_prompt = models.TextField(blank=True)
    train_fraction = models.FloatField(default=0.8)
    eval_fraction = models.FloatField(default=0.1)
    test_fraction = models.FloatField(default=0.1)
    seed = models.PositiveIntegerField(default=42)
    filters = models.JSONField(default=dict, blank=True, help_text="Which approved pairs")
    content_hash = models.CharField(max_length=64)
    pair_count = models.PositiveIntegerField(default=0)
    train_count = models.PositiveIntegerField(default=0)
    eval_count = models.PositiveIntegerField(default=0)
    test_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["manual", "version"], name="unique_snapshot_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class SnapshotPair(models.Model):
    """One pair inside a snapshot, with its text frozen and its split assigned."""

    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        EVAL = "eval", "Eval"
        TEST = "test", "Test"

    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="pairs")
    qa_pair = models.ForeignKey(
        "curation.QAPair", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    question = models.TextField()
    answer = models.TextField()
    source_name = models.CharField(max_length=500, blank=True)
    section = models.CharField(max_length=1000, blank=True)
    split = models.CharField(max_length=5, choices=Split.choices)

    class Meta:
        ordering = ["snapshot", "id"]
        indexes = [models.Index(fields=["snapshot", "split"])]

    def __str__(self) -> str:
        return self.question[:80]


class TrainingJob(CancellableJobRow):
    """A LoRA/QLoRA fine-tuning run of a base model on a dataset snapshot.

    The row is the job's live report: progress, metrics history (for the loss curve), log tail,
    heartbeat and output paths, written by the trainer callback on the gpu worker, so the job
    page can show them long after the Celery result has expired.
    """

    Status = JobStatus

    class Method(models.TextChoices):
        LORA = "lora", "LoRA (full-precision base)"
        QLORA = "qlora", "QLoRA (4-bit nf4 base)"
        EIGHT_BIT = "8bit", "LoRA on an 8-bit base"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.ERRORED)
    STALE_AFTER_SETTING = "TRAINING_STALE_AFTER_S"
    # Running -> running is a takeover of a silent worker's job; -> queued is its resume.
    TRANSITIONS = {
        Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED}),
        Status.RUNNING: frozenset(
            {
                Status.RUNNING,
                Status.SUCCEEDED,
                Status.FAILED,
                Status.CANCELLED,
                Status.ERRORED,
                Status.QUEUED,
            }
        ),
        Status.SUCCEEDED: frozenset(),
        Status.FAILED: frozenset({Status.QUEUED}),
        Status.CANCELLED: frozenset({Status.QUEUED}),
        Status.ERRORED: frozenset({Status.QUEUED}),
    }

    name = models.CharField(max_length=200)
    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.PROTECT, related_name="jobs")
    base_model = models.CharField(
        max_length=500,
        blank=True,
        help_text="Empty for the bundled SmolLM2-135M-Instruct, a local folder, or a Hub id.",
    )
    preset = models.CharField(max_length=100, blank=True)
    method = models.CharField(max_length=10, choices=Method.choices, default=Method.LORA)
    hyperparameters = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.FloatField(default=0.0)
    eta_s = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(
        default=list, blank=True, help_text="[{step, loss, eval_loss, learning_rate, tokens_per_s}]"
    )
    log_tail = models.TextField(blank=True)
    final_train_loss = models.FloatField(null=True, blank=True)
    eval_loss = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    samples = models.JSONField(default=list, blank=True)
    output_dir = models.CharField(max_length=1000, blank=True)
    adapter_dir = models.CharField(max_length=1000, blank=True)
    merged_dir = models.CharField(max_length=1000, blank=True)
    device = models.CharField(max_length=100, blank=True)
    registered_endpoint = models.ForeignKey(
        "curation.LLMEndpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        permissions = [("launch_trainingjob", "Can launch, cancel and resume training jobs")]

    def __str__(self) -> str:
        return self.name

    @property
    def progress_percent(self) -> int:
        return progress_percent(self, self.step, self.total_steps)


class RetrievalJob(CancellableJobRow):
    """Training the retrieval side on a snapshot's reviewed pairs (issue 18): a tuned
    embedder (``retriever``) or a cross-encoder (``reranker``).

    Trained on the ``train`` split only (``training.retrievers``); what it measured before and
    after goes to ``metrics``, and the model it made is registered as ``registered_model``.
    """

    Status = JobStatus

    class Kind(models.TextChoices):
        RETRIEVER = "retriever", "Retriever (embedding model)"
        RERANKER = "reranker", "Reranker (cross-encoder)"

    FINISHED = JOB_FINISHED
    STALE_AFTER_SETTING = "TRAINING_STALE_AFTER_S"
    # Running -> running is a takeover of a silent worker's job (it starts again).
    TRANSITIONS = JOB_TRANSITIONS

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RETRIEVER)
    snapshot = models.ForeignKey(
        DatasetSnapshot, on_delete=models.PROTECT, related_name="retrieval_jobs"
    )
    base_model = models.CharField(
        max_length=500, blank=True, help_text="Empty for the configured embedding model"
    )
    hyperparameters = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    train_examples = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(
        default=dict, blank=True, help_text="{split: {hit_at_1_before, hit_at_1_after, ...}}"
    )
    output_dir = models.CharField(max_length=1000, blank=True)
    registered_model = models.ForeignKey(
        "curation.RetrievalModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def progress_percent(self) -> int:
        return progress_percent(self, self.step, self.total_steps)


class SavedPreset(models.Model):
    """A user's own recipe: a built-in preset plus the overrides they chose, kept by name.

    ``key`` is what a launch names in ``preset`` (the form, the API, ``manage.py train``), beside
    the built-in keys; a saved key never shadows a built-in one.
    """

    key = models.SlugField(max_length=60, unique=True)
    label = models.CharField(max_length=120)
    description = models.CharField(max_length=300, blank=True)
    base_preset = models.CharField(max_length=100)
    base_model = models.CharField(max_length=500, blank=True)
    overrides = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label


class EvaluationRun(CancellableJobRow):
    """Every subject (an assistant, or a manual's default retrieval) on every question of a set.

    The questions are frozen on the row (``questions``) when the run is created, whether they
    come from the test split of a dataset snapshot (reference answers from the approved pairs)
    or from an uploaded JSONL file, so a run can be repeated and its report read long after the
    snapshot or file changed. ``retrieval_only`` measures retrieval alone: no generator runs,
    and ``manual`` (without assistants) uses the default retrieval that RAG assistants use over
    that manual's chunks. The optional LLM judge's prompt and model are stored with the run, and
    its cost counted. Like a training job, the row is the run's live report: status, progress,
    heartbeat, and at the end the summary per subject (``{label: {metric: value}}``).
    """

    Status = JobStatus

    class QuestionSource(models.TextChoices):
        SNAPSHOT = "snapshot", "Test split of a dataset snapshot"
        UPLOAD = "upload", "Uploaded JSONL file"
        SAVED_SET = "saved_set", "Saved question set"

    FINISHED = JOB_FINISHED
    STALE_AFTER_SETTING = "EVALUATION_STALE_AFTER_S"
    # Running -> running is a takeover of a silent worker's run, which goes on where it stopped.
    TRANSITIONS = JOB_TRANSITIONS

    name = models.CharField(max_length=200)
    question_source = models.CharField(max_length=10, choices=QuestionSource.choices)
    snapshot = models.ForeignKey(
        DatasetSnapshot,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="evaluation_runs",
    )
    question_set_version = models.ForeignKey(
        "training.QuestionSetVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="evaluation_runs",
        help_text="The saved question set version the questions were copied from",
    )
    questions_name = models.CharField(
        max_length=300, blank=True, help_text="The uploaded file's name, or the snapshot split"
    )
    questions = models.JSONField(
        default=list,
        help_text="[{id, question, answer, sources, must_include, kind}], frozen at creation",
    )
    assistants = models.ManyToManyField(
        "chat.Assistant", blank=True, related_name="evaluation_runs"
    )
    manual = models.ForeignKey(
        "curation.Manual",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="evaluation_runs",
        help_text="Retrieval only: the default retrieval over this manual's chunks",
    )
    retrieval_only = models.BooleanField(default=False)
    training_job = models.ForeignKey(
        TrainingJob,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="evaluation_runs",
        help_text="The training job whose model this run evaluates, when launched from it",
    )
    judge_endpoint = models.ForeignKey(
        "curation.LLMEndpoint",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    judge_prompt = models.TextField(blank=True)
    judge_model = models.CharField(max_length=500, blank=True)
    judge_prompt_tokens = models.PositiveIntegerField(default=0)
    judge_completion_tokens = models.PositiveIntegerField(default=0)
    judge_cost = models.FloatField(
        null=True, blank=True, help_text="From the judge endpoint's prices; empty without prices"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    judge_check = models.JSONField(
        default=dict,
        blank=True,
        help_text="The judge against people: {n, accuracy, kappa, sources, disagreements}",
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def progress_percent(self) -> int:
        return progress_percent(self, self.done, self.total)


class EvaluationItem(models.Model):
    """One subject's answer to one question of an evaluation run, with its metrics.

    ``subject`` is the label the summary uses (the assistant's name, or "<manual> (default
    retrieval)"), kept even if the assistant is deleted later. ``retrieved_sources`` are the
    documents retrieval ranked, best first (distinct, by source name); ``cited_sources`` the
    documents the answer cites. ``metrics`` holds the per-answer values that
    ``training.metrics.aggregate`` reads (``token_f1``, ``rank``, ``refused``, ...); a key that
    does not apply is absent. A failed answer has empty ``answer`` and says why in ``error``.
    """

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(help_text="The question's index in the run's set")
    assistant = models.ForeignKey(
        "chat.Assistant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=200)
    question_id = models.CharField(max_length=200, blank=True)
    question = models.TextField()
    reference = models.TextField(blank=True)
    kind = models.CharField(max_length=20, default="answerable")
    sources = models.JSONField(default=list, blank=True)
    must_include = models.JSONField(default=list, blank=True)
    answer = models.TextField(blank=True)
    retrieved_sources = models.JSONField(default=list, blank=True)
    cited_sources = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    judge = models.JSONField(
        default=dict, blank=True, help_text="{correctness, faithfulness, raw, error, cost}"
    )
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    refused = models.BooleanField(null=True, blank=True)
    error = models.TextField(blank=True)
    chat_message_id = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The stored chat answer (evaluation owner's session)"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "position", "subject"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "subject", "position"], name="one_evaluation_answer_per_question"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject}: {self.question[:60]}"


class QuestionSet(models.Model):
    """A named set of evaluation questions that grows from use.

    Reviewers add the thumbs-down pairs they corrected and approved, so every failure an owner
    reported becomes a regression question. The questions themselves live in the set's
    :class:`QuestionSetVersion` rows: each addition writes a new version, and the newest one is
    the set as it stands. ``manual`` is optional: a set may span manuals, but one tied to a
    manual only takes that manual's pairs.
    """

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    manual = models.ForeignKey(
        "curation.Manual",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="question_sets",
    )
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("grow_questionset", "Can add reviewed thumbs-down pairs to question sets"),
        ]

    def __str__(self) -> str:
        return self.name


class QuestionSetVersion(models.Model):
    """One immutable version of a question set: its questions as the JSON Lines file an
    evaluation accepts.

    ``jsonl`` is the file itself, one ``{id, question, answer, sources, must_include, kind}``
    record a line, stored in the database so a version is written in the same transaction as
    the addition that made it (nothing half-written) and downloads byte for byte as it was
    written. ``content_hash`` is the SHA-256 of that text. ``added_pairs`` lists the QA pairs
    this version added to the previous one. Versions are only ever created, never changed: the
    admin shows them read-only and evaluation runs keep a link to the version they used.
    """

    question_set = models.ForeignKey(QuestionSet, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    jsonl = models.TextField(blank=True, help_text="The questions, one JSON record a line")
    content_hash = models.CharField(max_length=64)
    question_count = models.PositiveIntegerField(default=0)
    added_pairs = models.JSONField(
        default=list, blank=True, help_text="Ids of the QA pairs this version added"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["question_set", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["question_set", "version"], name="unique_question_set_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question_set} v{self.version}"

    @property
    def filename(self) -> str:
        return f"{self.question_set.slug}-v{self.version}.jsonl"


class EvaluationBaseline(models.Model):
    """The evaluation run an assistant is measured against: the regression gate
    (``manage.py evaluate --gate baseline``, the API's ``gate/``) and the report's
    better / worse / same column compare a new run with it, question by question."""

    assistant = models.OneToOneField(
        "chat.Assistant", on_delete=models.CASCADE, related_name="evaluation_baseline"
    )
    run = models.ForeignKey(EvaluationRun, on_delete=models.PROTECT, related_name="baselines")
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    set_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.assistant}: run #{self.run_id}"
