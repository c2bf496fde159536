"""Reads for manuals, documents, chunks and QA pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    Min,
    Prefetch,
    Q,
    QuerySet,
    Value,
    Window,
)
from django.db.models.functions import Lag, Lead, RowNumber, TruncDate
from django.utils import timezone
from pgvector.django import CosineDistance

from curation import qa
from curation.models import (
    DocumentChunk,
    Figure,
    IngestionRun,
    Manual,
    ManualDocument,
    QAPair,
    QAPairRevision,
)

# Counts of chunks are of each document's current version (a changed page briefly has two).
CURRENT_CHUNKS = Q(documents__chunks__version=F("documents__version"))
DOCUMENT_CHUNK_COUNT = Count("chunks", filter=Q(chunks__version=F("version")))


def manuals_with_counts() -> QuerySet[Manual]:
    """Manuals with their document, chunk and embedded-chunk counts, for lists."""
    return Manual.objects.annotate(
        document_count=Count("documents", distinct=True),
        chunk_count=Count("documents__chunks", filter=CURRENT_CHUNKS, distinct=True),
        embedded_count=Count(
            "documents__chunks",
            filter=CURRENT_CHUNKS & Q(documents__chunks__embedding__isnull=False),
            distinct=True,
        ),
    ).order_by("name")


def manual_documents(*, manual: Manual) -> QuerySet[ManualDocument]:
    return manual.documents.annotate(chunk_count=DOCUMENT_CHUNK_COUNT).order_by("title")


def document_chunks(*, document: ManualDocument) -> QuerySet[DocumentChunk]:
    """The current chunks of a document in order, each with its ``figures`` (prefetched)."""
    return (
        document.chunks.current()
        .defer("embedding")
        .order_by("position")
        .prefetch_related(Prefetch("figures", queryset=Figure.objects.order_by("position")))
    )


def figure_url(*, manual_id: int, document_id: int, figure_id: int) -> str:
    """Where a figure's image is served (``curation.views.figure_image``)."""
    from django.urls import reverse

    return reverse("curation:figure", args=[manual_id, document_id, figure_id])


def chunk_figures(*, chunk_ids: Sequence[int], per_chunk: int = 4) -> dict[int, list[dict]]:
    """The figures of each chunk as a citation shows them, in document order, at most
    ``per_chunk`` each: ``{"url", "caption", "width", "height"}`` (one query)."""
    found: dict[int, list[dict]] = {}
    if not chunk_ids:
        return found
    rows = (
        Figure.objects.filter(chunk_id__in=list(chunk_ids))
        .annotate(row=Window(RowNumber(), partition_by="chunk_id", order_by="position"))
        .filter(row__lte=per_chunk)
        .order_by("chunk_id", "position")
        .values_list(
            "pk", "chunk_id", "document_id", "document__manual_id", "caption", "width", "height"
        )
    )
    for pk, chunk_id, document_id, manual_id, caption, width, height in rows:
        found.setdefault(chunk_id, []).append(
            {
                "url": figure_url(manual_id=manual_id, document_id=document_id, figure_id=pk),
                "caption": caption,
                "width": width,
                "height": height,
            }
        )
    return found


def latest_ingestion_runs(*, manual: Manual | None = None, limit: int = 10) -> list[IngestionRun]:
    runs = IngestionRun.objects.select_related("manual")
    if manual is not None:
        runs = runs.filter(manual=manual)
    return list(runs[:limit])


def chunks_nearest(
    *,
    query_embedding: Sequence[float],
    manual_ids: Sequence[int] | None = None,
    k: int = 5,
    ef_search: int | None = None,
    embedder_id: int | None = None,
) -> list[DocumentChunk]:
    """The ``k`` chunks closest to ``query_embedding`` by cosine distance, through the HNSW index.

    Each chunk carries ``distance`` (0 = identical direction) and its document. ``ef_search``
    widens the HNSW candidate list (default ``HNSW_EF_SEARCH``, at least ``k``).

    Only chunks whose vector was made by ``embedder_id`` (None: the configured model) are
    compared, so a question embedded with one model never meets another model's vectors, also
    while a manual switches embedders (``curation.services.embedders``).

    pgvector 0.6 applies a ``manual_ids`` filter *after* the index has picked its candidates, so
    a small manual sharing the table with a big one can get fewer than ``k`` rows (measured: 1
    of 4 for the 1,142-chunk Model 3 manual beside 100,000 other chunks). Then the query runs
    again as an exact scan, which for a manual that small costs a few milliseconds.
    """
    ef = max(ef_search or settings.HNSW_EF_SEARCH, k)
    chunks = _nearest(query_embedding, manual_ids, k, ef=ef, embedder_id=embedder_id)
    if manual_ids is not None and len(chunks) < k:
        chunks = _nearest(query_embedding, manual_ids, k, ef=None, embedder_id=embedder_id)
    return chunks


def _nearest(
    query_embedding: Sequence[float],
    manual_ids: Sequence[int] | None,
    k: int,
    *,
    ef: int | None,
    embedder_id: int | None = None,
) -> list[DocumentChunk]:
    """One nearest-chunks query: through HNSW with ``ef`` candidates, or exact with ``ef=None``."""
    distance = CosineDistance("embedding", list(query_embedding))
    if ef is None:  # "+ 0" orders by an expression the index cannot serve: an exact scan
        distance = ExpressionWrapper(distance + Value(0.0), output_field=FloatField())
    with transaction.atomic():
        if ef is not None:
            with connection.cursor() as cursor:
                # SET LOCAL keeps the setting inside this transaction only.
                cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef])
        chunks = DocumentChunk.objects.filter(embedding__isnull=False, embedder_id=embedder_id)
        if manual_ids is not None:
            chunks = chunks.filter(document__manual_id__in=list(manual_ids))
        return list(
            chunks.select_related("document", "document__manual")
            .defer("embedding")
            .annotate(distance=distance)
            .order_by("distance")[:k]
        )


def chunks_for_question(
    *, question: str, manual_ids: Sequence[int] | None = None, k: int = 5
) -> list[DocumentChunk]:
    """Embed ``question`` with the configured model and return the nearest chunks (of manuals
    on that model: a manual switched to a tuned embedder is searched by ``chat.retrieval``)."""
    from manualqa.embedding import embed

    vector = embed([question])[0]
    return chunks_nearest(query_embedding=vector.tolist(), manual_ids=manual_ids, k=k)


# --- QA pairs, documents and chunks for the API --------------------------------------------------

QA_PAIR_ORDERINGS = ("-created_at", "created_at", "-grounding_score", "grounding_score")


def documents_list(*, manual_id: int | None = None) -> QuerySet[ManualDocument]:
    """Documents with their chunk count, without their markdown (lists never show it)."""
    documents = ManualDocument.objects.annotate(chunk_count=DOCUMENT_CHUNK_COUNT)
    if manual_id is not None:
        documents = documents.filter(manual_id=manual_id)
    return documents.order_by("manual_id", "source_name")


def chunks_list(*, document_id: int | None = None) -> QuerySet[DocumentChunk]:
    """Chunks with an ``is_embedded`` flag instead of their vector, which is never loaded."""
    chunks = (
        DocumentChunk.objects.current()
        .defer("embedding")
        .annotate(
            is_embedded=ExpressionWrapper(Q(embedding__isnull=False), output_field=BooleanField())
        )
    )
    if document_id is not None:
        chunks = chunks.filter(document_id=document_id)
    return chunks.order_by("document_id", "position")


def qa_pairs_list(
    *,
    status: str | None = None,
    manual_id: int | None = None,
    document_id: int | None = None,
    origin: str | None = None,
    generation_run_id: int | None = None,
    flag: str | None = None,
    min_grounding: float | None = None,
    max_grounding: float | None = None,
    search: str = "",
    ordering: str = "-created_at",
) -> QuerySet[QAPair]:
    """QA pairs for review lists, filtered and ordered, in one query with what a row shows.

    The document, chunk and reviewer come in the same query (``source_changed`` and the
    chunk's heading path need them); vectors and page markdown are never loaded. Pairs without
    a grounding score sort last in either direction.
    """
    if ordering not in QA_PAIR_ORDERINGS:
        raise ValueError(f"unknown ordering {ordering!r}")
    pairs = QAPair.objects.select_related("document", "chunk", "reviewed_by").defer(
        "question_embedding", "chunk__embedding", "chunk__text", "document__markdown"
    )
    exact = {
        "status": status,
        "manual_id": manual_id,
        "document_id": document_id,
        "origin": origin,
        "generation_run_id": generation_run_id,
    }
    pairs = pairs.filter(**{field: value for field, value in exact.items() if value is not None})
    if flag:
        pairs = pairs.filter(flags__contains=[flag])
    if min_grounding is not None:
        pairs = pairs.filter(grounding_score__gte=min_grounding)
    if max_grounding is not None:
        pairs = pairs.filter(grounding_score__lte=max_grounding)
    if search:
        pairs = pairs.filter(Q(question__icontains=search) | Q(answer__icontains=search))
    descending = ordering.startswith("-")
    field = F(ordering.lstrip("-"))
    return pairs.order_by(
        field.desc(nulls_last=True) if descending else field.asc(nulls_last=True),
        "-id" if descending else "id",
    )


def qa_pair_history(*, pair: QAPair) -> QuerySet[QAPairRevision]:
    """A pair's recorded changes, newest first, with who made them."""
    return pair.revisions.select_related("user").order_by("-created_at", "-id")


# --------------------------------------------------------------------------------------------
# Review: the focused review queue and the dashboard

REVIEW_ORDERS = {
    "grounding": "Lowest grounding score first",
    "document": "By document",
    "newest": "Newest first",
}


def _review_ordering(order: str) -> list:
    """The queue's sort for ``order``, ending in ``id`` so the order is total and stable."""
    if order == "document":
        return [
            F("document__title").asc(nulls_last=True),
            F("document_id").asc(nulls_last=True),
            F("chunk__position").asc(nulls_last=True),
            F("id").asc(),
        ]
    if order == "newest":
        return [F("created_at").desc(), F("id").desc()]
    # Unscored pairs go last: their score is unknown, not low.
    return [F("grounding_score").asc(nulls_last=True), F("id").asc()]


def qa_pairs_review_queue(
    *, manual_id: int | None = None, order: str = "grounding"
) -> QuerySet[QAPair]:
    """Pending QA pairs in the order a reviewer works through them.

    ``order`` is one of ``REVIEW_ORDERS``: the least grounded answers first (they most need a
    human), by document (page by page, passage by passage), or newest first.
    """
    if order not in REVIEW_ORDERS:
        raise ValueError(f"unknown review order {order!r}")
    pairs = QAPair.objects.filter(status=QAPair.Status.PENDING)
    if manual_id is not None:
        pairs = pairs.filter(manual_id=manual_id)
    return pairs.order_by(*_review_ordering(order))


@dataclass(frozen=True)
class ReviewPosition:
    """Where a pair sits in the review queue: its 1-based position and its neighbours' ids."""

    pair_id: int
    position: int
    previous_id: int | None
    next_id: int | None


def qa_pair_review_position(
    *, pair_id: int | None, manual_id: int | None = None, order: str = "grounding"
) -> ReviewPosition | None:
    """The position of ``pair_id`` in the queue, or of the queue's first pair.

    The first pair is used when ``pair_id`` is None or no longer pending (reviewed meanwhile).
    None when the queue is empty. One query: window functions number the queue and find each
    pair's neighbours, so the page costs the same for ten pending pairs or a hundred thousand.
    """
    ordering = _review_ordering(order)
    queue = (
        qa_pairs_review_queue(manual_id=manual_id, order=order)
        .annotate(
            queue_position=Window(RowNumber(), order_by=ordering),
            previous_id=Window(Lag("id"), order_by=ordering),
            next_id=Window(Lead("id"), order_by=ordering),
            # The pair's own id as a window expression: Django applies filters on window
            # expressions outside the numbered queue, where a plain ``id=`` filter would cut the
            # queue down to that one row before it is numbered.
            row_id=Window(Min("id"), partition_by=[F("id")]),
        )
        .values("id", "queue_position", "previous_id", "next_id")
    )
    row = None
    if pair_id is not None:
        row = queue.filter(row_id=pair_id).first()
    if row is None:
        row = queue.filter(queue_position=1).first()
    if row is None:
        return None
    return ReviewPosition(
        pair_id=row["id"],
        position=row["queue_position"],
        previous_id=row["previous_id"],
        next_id=row["next_id"],
    )


def qa_pair_for_review(*, pair_id: int) -> QAPair:
    """One pair with everything the focused review page shows about it."""
    return (
        QAPair.objects.select_related("manual", "document", "chunk", "generation_run")
        .defer("question_embedding", "chunk__embedding", "document__markdown")
        .get(pk=pair_id)
    )


@dataclass(frozen=True)
class StatusCounts:
    """How many QA pairs are in each review status."""

    pending: int
    approved: int
    rejected: int

    @property
    def total(self) -> int:
        return self.pending + self.approved + self.rejected

    @property
    def reviewed(self) -> int:
        return self.approved + self.rejected

    @property
    def reviewed_percent(self) -> int:
        return round(100 * self.reviewed / self.total) if self.total else 0


def qa_pair_status_counts(*, manual_id: int | None = None) -> StatusCounts:
    """Pairs per status (of one manual, or all), in one query."""
    pairs = QAPair.objects.all()
    if manual_id is not None:
        pairs = pairs.filter(manual_id=manual_id)
    counts = pairs.aggregate(
        **{
            status: Count("id", filter=Q(status=status))
            for status in (QAPair.Status.PENDING, QAPair.Status.APPROVED, QAPair.Status.REJECTED)
        }
    )
    return StatusCounts(**counts)


def documents_review_counts(*, manual_id: int | None = None) -> QuerySet[ManualDocument]:
    """Documents with ``approved``/``pending``/``rejected``/``total`` pair counts, in one query.

    Sorted so the pages with the fewest approved pairs come first (those are where a model
    trained on the approved pairs knows least), then the most pending pairs, then by title.
    """
    documents = ManualDocument.objects.select_related("manual").only(
        "id", "title", "source_name", "manual__id", "manual__name"
    )
    if manual_id is not None:
        documents = documents.filter(manual_id=manual_id)
    return documents.annotate(
        approved=Count("qa_pairs", filter=Q(qa_pairs__status=QAPair.Status.APPROVED)),
        pending=Count("qa_pairs", filter=Q(qa_pairs__status=QAPair.Status.PENDING)),
        rejected=Count("qa_pairs", filter=Q(qa_pairs__status=QAPair.Status.REJECTED)),
        total=Count("qa_pairs"),
    ).order_by("approved", "-pending", "title", "id")


@dataclass(frozen=True)
class ReviewerThroughput:
    """One reviewer's recorded review actions per day, oldest day first, and their total."""

    user_id: int
    username: str
    per_day: list[int]
    total: int


def review_throughput(*, days: int = 14, today: date | None = None):
    """Review actions (revisions) per reviewer per day over the last ``days`` days.

    Returns ``(day_list, rows)``: the days, oldest first, and a ``ReviewerThroughput`` per
    reviewer who did anything in that window, busiest first. Creation revisions are not
    reviews and are left out. One query, whatever the number of reviewers or days.
    """
    today = today or timezone.localdate()
    day_list = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    start = datetime.combine(day_list[0], time.min, tzinfo=timezone.get_current_timezone())
    counts = (
        QAPairRevision.objects.filter(created_at__gte=start, user__isnull=False)
        .exclude(action=QAPairRevision.Action.CREATE)
        .annotate(day=TruncDate("created_at"))
        .values("user_id", "user__username", "day")
        .annotate(count=Count("id"))
        .order_by()
    )
    by_user: dict[int, dict] = {}
    for row in counts:
        entry = by_user.setdefault(row["user_id"], {"username": row["user__username"], "days": {}})
        entry["days"][row["day"]] = row["count"]
    rows = [
        ReviewerThroughput(
            user_id=user_id,
            username=entry["username"],
            per_day=[entry["days"].get(day, 0) for day in day_list],
            total=sum(entry["days"].values()),
        )
        for user_id, entry in by_user.items()
    ]
    rows.sort(key=lambda row: (-row.total, row.username))
    return day_list, rows


def qa_pair_question_taken(*, pair: QAPair, question: str) -> bool:
    """Whether another pair from ``pair``'s chunk already asks ``question`` (in any wording
    that normalises the same), which an edit must not create."""
    if pair.chunk_id is None:
        return False
    return (
        QAPair.objects.filter(chunk_id=pair.chunk_id, question_hash=qa.question_hash(question))
        .exclude(pk=pair.pk)
        .exists()
    )
