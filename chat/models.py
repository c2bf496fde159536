"""Assistants that car owners chat with, their conversations, and what owners say about answers."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Assistant(models.Model):
    """What an owner chooses to talk to: a model, how it is prompted, and the manuals it covers.

    ``rag`` retrieves passages of ``manuals`` for every question and asks the endpoint to answer
    from them, citing them; ``direct`` sends the question straight to the endpoint (typically a
    model fine-tuned in Stage 4) in the prompt format it was trained with. Both decline without
    calling the model when retrieval finds nothing in the manuals close enough to the question
    (``min_score``). No endpoint means no generator: the answer is the best passages, said to be
    an extractive answer. ``temperature``/``max_tokens`` left empty take the endpoint's values.
    """

    class Mode(models.TextChoices):
        RAG = "rag", "Retrieval-augmented (answers from retrieved passages)"
        DIRECT = "direct", "Direct (the question straight to the model)"

    class PromptFormat(models.TextChoices):
        AUTO = "auto", "Automatic (the format the endpoint's model was trained with)"
        CHAT = "chat", "Chat messages (the model's chat template)"
        INST = "inst", "<s>[INST] q [/INST] (seed project)"
        ALPACA = "alpaca", "Alpaca instruction/response"

    class AnswerStyle(models.TextChoices):
        GROUNDED = "grounded", "Grounded: a short verified answer, then the quote from the manual"
        QUOTED = "quoted", "Quoted: the passage of the manual that answers, with its citation"
        GENERATED = "generated", "Generated: the model's answer, verified sentence by sentence"

    class Retrieval(models.TextChoices):
        VECTOR = "vector", "Vector (pgvector HNSW, cosine)"
        HYBRID = "hybrid", "Hybrid (vector + keyword BM25, reciprocal rank fusion)"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.RAG)
    endpoint = models.ForeignKey(
        "curation.LLMEndpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assistants",
        help_text="Empty: no generator; answers quote the best passages (extractive).",
    )
    manuals = models.ManyToManyField("curation.Manual", related_name="assistants")
    system_prompt = models.TextField(
        blank=True,
        help_text="Empty: the grounded-answer instructions (rag), or the system prompt of the "
        "dataset the endpoint's model was trained on (direct).",
    )
    prompt_format = models.CharField(
        max_length=10, choices=PromptFormat.choices, default=PromptFormat.AUTO
    )
    temperature = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text="Empty: the endpoint's temperature.",
    )
    answer_style = models.CharField(
        max_length=10,
        choices=AnswerStyle.choices,
        default=AnswerStyle.QUOTED,
        help_text="What owners read. Every style shows only what the manual supports; a "
        "generated answer with too little support falls back to the quote.",
    )
    max_tokens = models.PositiveIntegerField(
        default=160,
        validators=[MinValueValidator(1), MaxValueValidator(4096)],
        verbose_name="answer token budget",
        help_text="The most tokens the model may write for one chat answer (a grounded "
        "answer uses at most 64). Separate from the endpoint's max tokens, which bound its "
        "generation jobs.",
    )
    retrieval = models.CharField(max_length=10, choices=Retrieval.choices, default=Retrieval.VECTOR)
    top_k = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Passages put into the prompt (rag) and cited.",
    )
    min_score = models.FloatField(
        default=0.30,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Decline when the best passage's cosine similarity to the question is below "
        "this: nothing in the manual is on the question's topic (off-topic questions score "
        "0.11-0.30; what is on topic but unanswered is left to the later checks).",
    )
    min_coverage = models.FloatField(
        default=0.45,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Decline when words the manual uses carry less than this share of the "
        "question's key terms (IDF-weighted): a question about resale value or CarPlay is on "
        "the manual's topic, but asks for something it never mentions. 0 turns it off.",
    )
    match_questions = models.BooleanField(
        default=True,
        help_text="Also match approved QA pairs' questions and retrieve their passages.",
    )
    reranker = models.ForeignKey(
        "curation.RetrievalModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assistants",
        limit_choices_to={"kind": "reranker"},
        help_text="A cross-encoder trained on reviewed pairs: it reorders the retrieved "
        "passages and declines when the best one scores below its threshold. Empty: none.",
    )
    is_default = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_assistant",
                violation_error_message="Another assistant is already the default; untick "
                "“default” there first.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    """One owner's exchange with one assistant.

    It belongs to a signed-in user (``owner``) or, for owners without an account, to the browser
    session (``session_key``); nobody else can read it (``chat.selectors``).
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="chat_conversations",
    )
    session_key = models.CharField(max_length=64, blank=True)
    assistant = models.ForeignKey(Assistant, on_delete=models.PROTECT, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(owner__isnull=False) | ~models.Q(session_key=""),
                name="conversation_has_an_owner",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent"),
            models.Index(fields=["session_key", "-updated_at"], name="conversation_session_recent"),
        ]

    def __str__(self) -> str:
        return self.title or f"Conversation #{self.pk}"


class Message(models.Model):
    """One turn: the owner's question, or the assistant's answer with what it rests on.

    An answer keeps its ``citations`` (``[{"n", "chunk_id", "document_id", "source_name",
    "title", "heading_path", "score", "url", "excerpt"}]``; ``score`` is the passage's cosine
    similarity to the question), its cost (``latency_ms`` from question to last token,
    ``ttft_ms`` to the first visible text, token counts), and whether it ``declined`` or was
    ``extractive`` (no model text: the quote alone). ``content`` is what the owner reads:
    only sentences that passed verification, or the ``quote`` from the manual; the model's
    ``raw_content`` and the per-sentence ``verification`` stay on the record for reviewers. A
    failed answer has empty ``content`` and says why in ``error``.
    """

    class Role(models.TextChoices):
        USER = "user", "Owner"
        ASSISTANT = "assistant", "Assistant"

    #: What an answer cost, as the admin and the API show it.
    COSTS = (
        "model",
        "retrieval_score",
        "latency_ms",
        "ttft_ms",
        "prompt_tokens",
        "completion_tokens",
    )

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    assistant = models.ForeignKey(
        Assistant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who answered (answers only).",
    )
    reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="replies",
        help_text="The question an answer answers.",
    )
    content = models.TextField(blank=True)
    citations = models.JSONField(default=list, blank=True)
    retrieval_score = models.FloatField(
        null=True, blank=True, help_text="Best passage's cosine similarity to the question"
    )
    model = models.CharField(max_length=500, blank=True, help_text="The model that answered")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    declined = models.BooleanField(default=False)
    extractive = models.BooleanField(default=False)
    answer_style = models.CharField(max_length=10, blank=True)
    quote = models.JSONField(
        null=True,
        blank=True,
        help_text="The quote from the manual: {text, numbers (citations), words, coverage, "
        "score, parts, see_also (links to the other close sections)}.",
    )
    raw_content = models.TextField(
        blank=True, help_text="What the model wrote, before loops were cut and sentences checked."
    )
    verification = models.JSONField(
        default=list,
        blank=True,
        help_text="A verdict per sentence of the model's text: {text, supported, reason, "
        "detail, score, lexical, semantic, passage}.",
    )
    looped = models.BooleanField(default=False, help_text="The model's text repeated itself.")
    checks = models.JSONField(
        default=dict,
        blank=True,
        help_text="Why the answer was declined or fell back to the quote, and what was measured.",
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation", "created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at", "id"])]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.content[:60] or self.error[:60]}"

    @property
    def quote_text(self) -> str:
        return (self.quote or {}).get("text", "")

    @property
    def shows_quote(self) -> bool:
        """Whether the page shows the quote under the answer (it is not the answer itself)."""
        return bool(self.quote_text) and (self.quote or {}).get("shown", True)

    @property
    def visible_text(self) -> str:
        """Everything the owner reads: the answer and, below it, the quote when it differs."""
        if self.shows_quote and self.quote_text.strip() != self.content.strip():
            return f"{self.content}\n\n{self.quote_text}".strip()
        return self.content

    @property
    def dropped_verdicts(self) -> list[dict]:
        """The verdicts of sentences cut from the answer (unsupported by the passages)."""
        return [
            verdict
            for verdict in self.verification or []
            if not verdict.get("supported")
            and verdict.get("reason") in ("weak", "number", "negation")
        ]


class Feedback(models.Model):
    """An owner's thumbs up or down on an answer, with an optional comment.

    A thumbs-down also raises a pending QA pair (origin "chat feedback") for reviewers, linked
    in ``qa_pair``. One feedback per answer; giving it again changes it.
    """

    class Rating(models.TextChoices):
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    rating = models.CharField(max_length=4, choices=Rating.choices)
    comment = models.TextField(blank=True)
    qa_pair = models.ForeignKey(
        "curation.QAPair",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chat_feedback",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    session_key = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "feedback"

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on message #{self.message_id}"


class Preference(models.Model):
    """Which of two assistants' answers to the same question an owner found better (compare
    mode); exported as chosen/rejected pairs for preference training (ties are kept but not
    exported)."""

    class Choice(models.TextChoices):
        A = "a", "A was better"
        B = "b", "B was better"
        TIE = "tie", "Tie"

    question = models.TextField()
    assistant_a = models.ForeignKey(Assistant, on_delete=models.PROTECT, related_name="+")
    assistant_b = models.ForeignKey(Assistant, on_delete=models.PROTECT, related_name="+")
    message_a = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    message_b = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    chosen = models.CharField(max_length=3, choices=Choice.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    session_key = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["message_a", "message_b"], name="one_preference_per_answer_pair"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.assistant_a} vs {self.assistant_b}: {self.get_chosen_display()}"


class SentenceVector(models.Model):
    """The embedding of one sentence, step, list item or table row of a manual (the units a
    quote is composed of, ``chat.quote_vectors``), stored when the manual has been embedded so
    that composing a quote embeds only the question and its candidate spans.

    Keyed by the embedding model and the SHA-256 of the text: a sentence that several chunks
    or manuals share is stored once, and a vector is never read under another model. A cache:
    what is missing is embedded when needed, and rows can be deleted at any time."""

    model = models.CharField(max_length=500, help_text="The embedding model (EMBEDDING_MODEL)")
    digest = models.CharField(max_length=64, help_text="SHA-256 of the text, hex")
    vector = models.BinaryField(help_text="Unit-length float32 values")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "digest"], name="one_vector_per_model_text")
        ]

    def __str__(self) -> str:
        return f"{self.digest[:12]} ({self.model})"
