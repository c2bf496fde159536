"""Dataset snapshots: the approved pairs a model is trained and evaluated on, frozen."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class DatasetSnapshot(models.Model):
    """An immutable, versioned set of approved QA pairs with a train/eval/test split.

    The text of every pair is copied at creation, so later edits never change what a model was
    trained on. The split is made by document section (near-duplicates follow their canonical
    pair), so near-identical questions never sit on both sides of it. ``content_hash`` covers
    the frozen questions, answers and splits: two snapshots with the same hash hold the same data.
    """

    class PromptFormat(models.TextChoices):
        CHAT_TEMPLATE = "chat_template", "Tokenizer chat template"
        SEED_INST = "seed_inst", "<s>[INST] q [/INST] a </s> (seed project)"
        ALPACA = "alpaca", "Alpaca instruction/output"

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


class TrainingJob(models.Model):
    """A LoRA/QLoRA fine-tuning run of a base model on a dataset snapshot.

    The row is the job's live report: progress, metrics history (for the loss curve), log tail,
    heartbeat and output paths, written by the trainer callback on the gpu worker, so the job
    page can show them long after the Celery result has expired.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        ERRORED = "errored", "Errored"

    class Method(models.TextChoices):
        LORA = "lora", "LoRA (full-precision base)"
        QLORA = "qlora", "QLoRA (4-bit nf4 base)"
        EIGHT_BIT = "8bit", "LoRA on an 8-bit base"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.ERRORED)

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
    cancel_requested = models.BooleanField(default=False)
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
    message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
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
        permissions = [("launch_trainingjob", "Can launch, cancel and resume training jobs")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.total_steps:
            return 0
        return min(100, round(100 * self.step / self.total_steps))
