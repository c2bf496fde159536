"""Writes for QA pairs: quality scoring, near-duplicate links and imports."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from pgvector.django import CosineDistance

from curation import qa
from curation.models import DocumentChunk, Manual, ManualDocument, QAPair
from curation.services import embedders
from manualqa.embedding import embed
from manualqa.jobs import queues

logger = logging.getLogger("curation.qa_pairs")

__all__ = [
    "ImportReport",
    "qa_pair_build",
    "qa_pair_text_changed",
    "qa_pairs_import",
    "qa_pairs_mark_duplicates",
    "qa_pairs_score",
]

SCORE_BATCH = 128


def _with_flag(flags: list[str], flag: str, present: bool) -> list[str]:
    flags = [f for f in flags if f != flag]
    return [*flags, flag] if present else flags


def _apply_scores(pair: QAPair, question_vector, answer_vector, now) -> None:
    """Fill a pair's grounding fields, low-grounding flag and question embedding in memory."""
    # The chunk's vector under the configured model, like the answer's (issue 18).
    chunk_vector = embedders.default_vectors([pair.chunk])[0] if pair.chunk_id else None
    semantic = (
        float(np.dot(answer_vector, np.asarray(chunk_vector))) if chunk_vector is not None else None
    )
    source = pair.source_text or (pair.chunk.text if pair.chunk_id else "")
    lexical = qa.lexical_grounding(pair.answer, source) if source else 0.0
    pair.lexical_grounding = lexical
    pair.semantic_grounding = semantic
    pair.grounding_score = qa.grounding_score(lexical=lexical, semantic=semantic)
    pair.flags = _with_flag(
        pair.flags, qa.FLAG_LOW_GROUNDING, pair.grounding_score < qa.LOW_GROUNDING_THRESHOLD
    )
    pair.question_embedding = question_vector
    pair.scored_at = now


def qa_pair_build(
    *,
    manual_id: int,
    question: str,
    answer: str,
    origin: str,
    chunk: DocumentChunk | None = None,
    document: ManualDocument | None = None,
    flags: tuple[str, ...] = (),
    **fields,
) -> QAPair:
    """A new, unsaved pair: its question and answer as given and as the originals, the key that
    keeps a passage from asking one question twice, and the flags of its text (after ``flags``).

    The one way a pair is made, whether generated, imported or sent by an owner's thumbs-down.
    ``document`` defaults to the chunk's; ``fields`` are set as given (``generation_run``...).
    """
    document = document or (chunk.document if chunk is not None else None)
    return QAPair(
        manual_id=manual_id,
        document=document,
        chunk=chunk,
        document_version=document.version if document is not None else None,
        source_text=chunk.text if chunk is not None else "",
        question=question,
        answer=answer,
        question_hash=qa.question_hash(question),
        original_question=question,
        original_answer=answer,
        origin=origin,
        flags=[*flags, *qa.question_flags(question), *qa.answer_flags(answer)],
        **fields,
    )


#: Flags computed from a pair's own text, recomputed whenever the text changes.
_TEXT_FLAGS = frozenset(
    {
        qa.FLAG_NOT_A_QUESTION,
        qa.FLAG_TOO_SHORT,
        qa.FLAG_TOO_LONG,
        qa.FLAG_EMPTY_ANSWER,
        qa.FLAG_REFUSAL,
    }
)


def qa_pair_text_changed(pair: QAPair) -> None:
    """Bring a pair whose question or answer changed up to date, and schedule its rescoring.

    The one rule for every path that changes a pair's text (a reviewer's edit, a regenerated
    answer): the flags that come from the text are computed anew, the lexical grounding too,
    and the scores that belong to the old text are cleared (``scored_at``). Once the caller's
    transaction commits, ``curation.embed_score_pairs`` computes the semantic grounding, the
    question embedding and the near-duplicate links again. The caller saves the pair.
    """
    kept = [flag for flag in pair.flags if flag not in _TEXT_FLAGS]
    pair.flags = kept + qa.question_flags(pair.question) + qa.answer_flags(pair.answer)
    if pair.source_text:
        pair.lexical_grounding = qa.lexical_grounding(pair.answer, pair.source_text)
    pair.scored_at = None
    qa_pairs_score_later([pair.pk])


def qa_pairs_score_later(pair_ids: list[int]) -> None:
    """Have a worker score these pairs (``curation.embed_score_pairs``, on the ``gpu`` queue
    with the embedding model) once the caller's transaction commits."""
    from curation.tasks import embed_score_pairs

    queues.enqueue(embed_score_pairs, list(pair_ids), gpu=True)


def qa_pairs_score(
    *, pairs: QuerySet[QAPair], on_batch: Callable[[int], None] | None = None
) -> int:
    """Grounding scores, question embeddings and near-duplicate links for ``pairs``.

    Grounding mixes lexical overlap with the source text and the cosine similarity between the
    answer's and the chunk's embeddings (``curation.qa.grounding_score``). Each batch commits on
    its own; scoring is idempotent. Returns the number of pairs scored.
    """
    ids = list(pairs.order_by("id").values_list("id", flat=True))
    manuals: set[int] = set()
    for start in range(0, len(ids), SCORE_BATCH):
        batch = list(
            QAPair.objects.filter(id__in=ids[start : start + SCORE_BATCH])
            .select_related("chunk")
            .order_by("id")
        )
        questions = embed([pair.question for pair in batch])
        answers = embed([pair.answer for pair in batch])
        now = timezone.now()
        for pair, question_vector, answer_vector in zip(batch, questions, answers, strict=True):
            _apply_scores(pair, question_vector, answer_vector, now)
            manuals.add(pair.manual_id)
        QAPair.objects.bulk_update(
            batch,
            [
                "lexical_grounding",
                "semantic_grounding",
                "grounding_score",
                "flags",
                "question_embedding",
                "scored_at",
            ],
        )
        if on_batch is not None:
            on_batch(len(batch))
    if ids:
        qa_pairs_mark_duplicates(pair_ids=ids)
    return len(ids)


def qa_pairs_mark_duplicates(*, pair_ids: list[int]) -> int:
    """Link each pair to an older pair of its manual whose question means the same.

    The canonical pair is the oldest of a group: a pair whose nearest older neighbour is itself a
    duplicate points at that neighbour's canonical. Returns how many pairs were marked.
    """
    threshold = 1.0 - settings.QA_DUPLICATE_SIMILARITY
    marked = 0
    pairs = QAPair.objects.filter(id__in=pair_ids, question_embedding__isnull=False).order_by("id")
    for pair in pairs.only("id", "manual_id", "question_embedding", "flags", "duplicate_of_id"):
        nearest = (
            QAPair.objects.filter(
                manual_id=pair.manual_id, question_embedding__isnull=False, id__lt=pair.id
            )
            .annotate(distance=CosineDistance("question_embedding", pair.question_embedding))
            .order_by("distance")
            .only("id", "duplicate_of_id")
            .first()
        )
        is_duplicate = nearest is not None and nearest.distance <= threshold
        canonical_id = (nearest.duplicate_of_id or nearest.id) if is_duplicate else None
        flags = _with_flag(pair.flags, qa.FLAG_DUPLICATE, is_duplicate)
        if canonical_id != pair.duplicate_of_id or flags != pair.flags:
            QAPair.objects.filter(pk=pair.pk).update(duplicate_of_id=canonical_id, flags=flags)
        marked += is_duplicate
    return marked


@dataclass
class ImportReport:
    """What an import did: pairs created, pairs already there, and every bad line."""

    created: int = 0
    already_present: int = 0
    problems: list[qa.ImportProblem] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return (
            f"{self.created} pairs imported, {self.already_present} already present, "
            f"{len(self.problems)} problem line(s)"
        )


def _parse(raw: bytes | str, fmt: str) -> tuple[list[qa.ImportRecord], list[qa.ImportProblem], str]:
    """Records, problems, and what a record's number counts ("line", or "record" in an array)."""
    text = raw.decode("utf-8-sig", errors="replace") if isinstance(raw, bytes) else raw
    unit = "record" if text.lstrip().startswith("[") else "line"
    if fmt == "auto":
        first = next((line for line in text.splitlines() if line.strip()), "")
        fmt = "inst_jsonl" if '"text"' in first and "[INST]" in first else "question_extractor"
    if fmt == "question_extractor":
        return (*qa.parse_question_extractor_json(raw), unit)
    if fmt == "inst_jsonl":
        return (*qa.parse_inst_jsonl(raw), "line")
    raise ValueError(f"unknown import format {fmt!r}: use auto, question_extractor or inst_jsonl")


def _section_chunks(chunks: list[DocumentChunk], slug: str | None) -> list[DocumentChunk]:
    """The chunks under the ``##`` section named by a question_extractor slug, if any match."""
    if not slug:
        return chunks
    wanted = qa.heading_slug(slug.lstrip("#"))
    matching = [
        chunk
        for chunk in chunks
        if len(parts := chunk.heading_path.split(" > ")) > 1 and qa.heading_slug(parts[1]) == wanted
    ]
    return matching or chunks


def qa_pairs_import(*, manual: Manual, raw: bytes | str, fmt: str = "auto") -> ImportReport:
    """Import pairs onto ``manual``'s documents; bad lines are reported, the rest still import.

    A record names its page (question_extractor's ``source``): it is matched to the document of
    that source name, then to the chunk of its section (or of the whole page) whose embedding is
    closest to the question and answer. Records without a page (the ``[INST]`` JSONL form) go to
    the closest chunk in the whole manual. Importing the same file again adds nothing.
    """
    now_start = timezone.now()
    records, problems, unit = _parse(raw, fmt)
    report = ImportReport(problems=list(problems))
    documents = {doc.source_name: doc for doc in manual.documents.all()}
    by_basename = {name.rsplit("/", 1)[-1]: doc for name, doc in documents.items()}
    chunks_by_document: dict[int, list[DocumentChunk]] = {}
    for chunk in DocumentChunk.objects.filter(
        document__manual=manual, embedding__isnull=False
    ).order_by("document_id", "position"):
        chunks_by_document.setdefault(chunk.document_id, []).append(chunk)
    if not chunks_by_document:
        report.problems.append(
            qa.ImportProblem(0, f"{manual.name} has no embedded chunks; ingest it first")
        )
        return report

    placed: list[tuple[qa.ImportRecord, ManualDocument | None]] = []
    for record in records:
        if qa.FLAG_EMPTY_ANSWER in qa.answer_flags(record.answer):
            # Source files carry placeholders such as "ERROR" where a call failed; they are
            # not answers, so they are reported rather than stored.
            report.problems.append(
                qa.ImportProblem(
                    record.line,
                    f"{unit} {record.line}: the answer {record.answer.strip()[:40]!r} is empty "
                    "or a placeholder",
                )
            )
            continue
        document = None
        if record.page:
            document = documents.get(record.page) or by_basename.get(record.page)
            if document is None or document.pk not in chunks_by_document:
                report.problems.append(
                    qa.ImportProblem(
                        record.line, f"{unit} {record.line}: no document named {record.page!r}"
                    )
                )
                continue
        placed.append((record, document))

    all_chunks = [chunk for chunks in chunks_by_document.values() for chunk in chunks]
    vector_of = dict(
        zip([chunk.pk for chunk in all_chunks], embedders.default_vectors(all_chunks), strict=True)
    )
    all_matrix = np.asarray([vector_of[chunk.pk] for chunk in all_chunks])
    new_pairs: list[QAPair] = []
    for start in range(0, len(placed), SCORE_BATCH):
        batch = placed[start : start + SCORE_BATCH]
        question_vectors = embed([record.question for record, _ in batch])
        answer_vectors = embed([record.answer for record, _ in batch])
        now = timezone.now()
        for (record, document), question_vector, vector in zip(
            batch, question_vectors, answer_vectors, strict=True
        ):
            # The chunk that best matches question and answer together supports the pair.
            match = question_vector + vector
            if document is None:
                candidates = all_chunks
                scores = all_matrix @ match
            else:
                candidates = _section_chunks(chunks_by_document[document.pk], record.section_slug)
                scores = np.asarray([vector_of[chunk.pk] for chunk in candidates]) @ match
            chunk = candidates[int(np.argmax(scores))]
            document = document or next(
                doc for doc in documents.values() if doc.pk == chunk.document_id
            )
            pair = qa_pair_build(
                manual_id=manual.pk,
                chunk=chunk,
                document=document,
                question=record.question,
                answer=record.answer,
                origin=QAPair.Origin.IMPORTED,
            )
            _apply_scores(pair, question_vector, vector, now)
            new_pairs.append(pair)
    imported = QAPair.objects.filter(manual=manual, origin=QAPair.Origin.IMPORTED)
    with transaction.atomic():
        before = imported.count()
        existing = set(
            QAPair.objects.filter(manual=manual, origin=QAPair.Origin.IMPORTED).values_list(
                "document_id", "question_hash"
            )
        )
        fresh = []
        for pair in new_pairs:
            key = (pair.document_id, pair.question_hash)
            if key in existing:
                report.already_present += 1
                continue
            existing.add(key)
            fresh.append(pair)
        # A generated pair may already hold the same question for the same chunk.
        QAPair.objects.bulk_create(fresh, batch_size=500, ignore_conflicts=True)
        report.created = imported.count() - before
    report.already_present += len(fresh) - report.created
    new_ids = list(imported.filter(scored_at__gte=now_start).values_list("id", flat=True))
    qa_pairs_mark_duplicates(pair_ids=new_ids)
    return report
