"""Writes for a manual's documents and chunks: cleaning a page, storing it, embedding chunks.

A page is written whole or not at all; an unchanged page is skipped by its hash; a changed page
gets a new version and new chunks, and its old chunks keep answering chat until the new ones
are embedded (``chunks_embed_pending`` swaps them in one transaction).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Func, QuerySet, Value
from django.utils import timezone

from curation.chunking import chunk_markdown
from curation.models import DocumentChunk, Manual, ManualDocument, QAPair, SourceFile
from curation.qa import FLAG_SOURCE_CHANGED
from curation.scraping import (
    PageRejected,
    decode_html,
    drop_lost_references,
    html_to_markdown,
    normalize_text,
)
from curation.services import embedders
from curation.services.figures import figure_files_delete, figures_create, figures_retire
from curation.sources import RawPage
from manualqa.lib.embeddings import token_counter

__all__ = [
    "CleanDocument",
    "FigureImage",
    "chunks_embed_pending",
    "clean_page",
    "content_hash",
    "document_upsert",
]


@dataclass(frozen=True)
class FigureImage:
    """A picture found in a page or a PDF, before it is stored: ``key`` (the SHA-256 of
    ``data`` in hex) is how the document's markdown refers to it (``<!-- figure KEY -->``)."""

    key: str
    data: bytes
    caption: str = ""
    page: int | None = None
    source_url: str = ""


@dataclass(frozen=True)
class CleanDocument:
    """A page (or a section of a PDF) turned into markdown, ready to store.

    ``figures`` are the pictures its markdown refers to; ``source_file`` is the stored PDF a
    section was cut from and ``first_page`` the page it starts on (None for web pages)."""

    source_name: str
    source_url: str
    title: str
    markdown: str
    word_count: int
    figures: tuple[FigureImage, ...] = ()
    source_file: SourceFile | None = None
    first_page: int | None = None


def clean_page(page: RawPage, *, on_note: Callable[[str], None] | None = None) -> CleanDocument:
    """Turn a fetched page (HTML or markdown) into a clean document, or raise PageRejected.

    An HTML page's pictures are read through its source's ``load_image`` and come with the
    document as ``figures``; ``on_note`` is told of each image left out, and why."""
    if page.error is not None or page.content is None:
        raise PageRejected(page.error or "no content")
    if page.content_type == "text/markdown":
        try:
            text = page.content.decode(page.charset or "utf-8-sig")
        except (UnicodeDecodeError, LookupError) as exc:
            raise PageRejected(f"undecodable: {exc}") from None
        markdown = drop_lost_references(normalize_text(text)).strip()
        title = _markdown_title(markdown) or Path(page.source_name).stem.replace("_", " ").title()
        if not markdown.startswith("# "):
            markdown = f"# {title}\n\n{markdown}"
        word_count = len(markdown.split())
        if word_count < 5:
            raise PageRejected("empty after cleaning")
        return CleanDocument(page.source_name, page.source_url, title, markdown + "\n", word_count)
    html = decode_html(page.content, content_type_header=_content_type_header(page))
    cleaned = html_to_markdown(html, base_url=page.source_url, load_image=page.load_image)
    title = cleaned.title or Path(page.source_name).stem.replace("-", " ").title()
    if on_note is not None:
        for note in cleaned.notes:
            on_note(note)
    return CleanDocument(
        page.source_name,
        page.source_url,
        title,
        drop_lost_references(cleaned.markdown),
        cleaned.word_count,
        figures=tuple(
            FigureImage(key=f.key, data=f.data, caption=f.caption, source_url=f.url)
            for f in cleaned.figures
        ),
    )


def _content_type_header(page: RawPage) -> str | None:
    if page.charset:
        return f"{page.content_type}; charset={page.charset}"
    return page.content_type or None


def _markdown_title(markdown: str) -> str:
    for line in markdown.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def content_hash(markdown: str) -> str:
    return hashlib.sha256(markdown.encode("utf-8")).hexdigest()


def _build_chunks(document: ManualDocument) -> list[tuple[DocumentChunk, tuple[str, ...]]]:
    """The chunks of the document's current version, each with the keys of the figures whose
    markers it held."""
    chunks = chunk_markdown(
        document.markdown,
        title=document.title,
        max_tokens=settings.CHUNK_MAX_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        count_tokens=token_counter(settings.EMBEDDING_MODEL),
    )
    return [
        (
            DocumentChunk(
                document=document,
                version=document.version,
                position=chunk.position,
                heading_path=chunk.heading_path[:1000],
                text=chunk.text,
                token_count=chunk.token_count,
                pages=list(chunk.pages),
            ),
            chunk.figures,
        )
        for chunk in chunks
    ]


def document_upsert(
    *,
    manual: Manual,
    clean: CleanDocument,
    on_note: Callable[[str], None] | None = None,
) -> tuple[ManualDocument, str, int]:
    """Store a cleaned page, atomically. Returns (document, outcome, chunks created).

    ``outcome`` is ``created``, ``updated`` (content changed: version + 1, chunks and figures
    rebuilt) or ``unchanged`` (same hash: only ``fetched_at`` moves). ``on_note`` is told of
    each figure left out (``services.figures.figures_create``).
    """
    written: list[str] = []
    try:
        return _document_upsert(manual=manual, clean=clean, on_note=on_note, written=written)
    except BaseException:
        figure_files_delete(written)  # their rows were rolled back
        raise


@transaction.atomic
def _document_upsert(
    *,
    manual: Manual,
    clean: CleanDocument,
    on_note: Callable[[str], None] | None,
    written: list[str],
) -> tuple[ManualDocument, str, int]:
    now = timezone.now()
    digest = content_hash(clean.markdown)
    document = (
        ManualDocument.objects.select_for_update()
        .filter(manual=manual, source_name=clean.source_name)
        .first()
    )
    if document is not None and document.content_hash == digest:
        document.fetched_at = now
        document.save(update_fields=["fetched_at"])
        return document, "unchanged", 0

    if document is None:
        document = ManualDocument(manual=manual, source_name=clean.source_name, version=1)
        outcome = "created"
    else:
        document.version = F("version") + 1
        outcome = "updated"
        # Pairs made from the old text keep their source_text snapshot, and are flagged so
        # reviewers re-check them.
        QAPair.objects.filter(document=document).exclude(
            flags__contains=[FLAG_SOURCE_CHANGED]
        ).update(flags=Func(F("flags"), Value(FLAG_SOURCE_CHANGED), function="array_append"))
    document.title = clean.title[:500]
    document.source_url = clean.source_url[:1000]
    document.markdown = clean.markdown
    document.content_hash = digest
    document.word_count = clean.word_count
    document.source_file = clean.source_file
    document.first_page = clean.first_page
    document.fetched_at = now
    document.updated_at = now
    document.save()
    document.refresh_from_db(fields=["version"])
    built = _build_chunks(document)
    chunks = DocumentChunk.objects.bulk_create([chunk for chunk, _ in built])
    chunk_of: dict[str, DocumentChunk] = {}
    for chunk, keys in built:
        for key in keys:
            chunk_of.setdefault(key, chunk)
    figures_create(
        document=document,
        figures=clean.figures,
        chunk_of=chunk_of,
        on_note=on_note,
        written=written,
    )
    if outcome == "updated":
        # The embedded chunks of the old text keep answering questions until the new ones are
        # embedded (``chunks_embed_pending`` swaps them); old chunks that were never embedded
        # serve nobody, so they go now (security review M7).
        _retire(document.chunks.filter(version__lt=document.version, embedding__isnull=True))
        figures_retire(document_id=document.pk, version=document.version)
    return document, outcome, len(chunks)


@transaction.atomic
def _store_vectors(batch: list[DocumentChunk], *, manual_id: int, embedder_id: int | None) -> bool:
    """Store a batch's vectors, and retire the older chunks of the documents whose current
    chunks are now all embedded, in one transaction, so chat never sees both versions of a
    page, nor neither (security review M7).

    The vectors were made with the embedder ``embedder_id`` (None: the configured model); if
    the manual switched embedders meanwhile, nothing is stored and False returned (the batch
    is embedded again with the new one), so a manual's chunks never carry two models' vectors.
    The manual's row lock orders this against ``curation.services.embedders.embedder_switch``.
    """
    current = (
        Manual.objects.select_for_update()
        .filter(pk=manual_id)
        .values_list("embedder_id", flat=True)
    )
    if list(current) != [embedder_id]:
        return False
    document_ids = {chunk.document_id for chunk in batch}
    # document_upsert's lock, taken before any chunk row: a page changing now waits for this.
    list(
        ManualDocument.objects.select_for_update()
        .filter(pk__in=document_ids)
        .order_by("pk")
        .only("pk")
    )
    # A chunk deleted meanwhile (its page changed again) simply updates no row.
    DocumentChunk.objects.bulk_update(batch, ["embedding", "embedding_model", "embedder"])
    waiting = set(
        DocumentChunk.objects.current()
        .filter(document_id__in=document_ids, embedding__isnull=True)
        .values_list("document_id", flat=True)
    )
    ready = ManualDocument.objects.filter(pk__in=document_ids - waiting)
    for document_id, version in ready.values_list("pk", "version"):
        _retire(DocumentChunk.objects.filter(document_id=document_id, version__lt=version))
        figures_retire(document_id=document_id, version=version)
    return True


def _retire(old: QuerySet[DocumentChunk]) -> None:
    """Delete the older chunks ``old`` of one document, whose current chunks exist.

    Their pairs move to the current chunk of the same section, so they keep their passage
    (their ``source_text`` and the source-changed flag tell reviewers the text moved on). A pair
    whose section is gone, or whose new chunk already has its question, stays without a chunk.
    """
    old_chunks = list(old.values_list("pk", "document_id", "heading_path"))
    if not old_chunks:
        return
    old_headings = {pk: heading for pk, _, heading in old_chunks}
    by_heading: dict[str, int] = {}
    for chunk_id, heading in (
        DocumentChunk.objects.current()
        .filter(document_id=old_chunks[0][1])
        .order_by("position")
        .values_list("pk", "heading_path")
    ):
        by_heading.setdefault(heading, chunk_id)
    linked = list(QAPair.objects.filter(chunk_id__in=old_headings).values_list("pk", "chunk_id"))
    # Pairs generated from the old chunks after the page changed are flagged here.
    QAPair.objects.filter(pk__in=[pair_id for pair_id, _ in linked]).exclude(
        flags__contains=[FLAG_SOURCE_CHANGED]
    ).update(flags=Func(F("flags"), Value(FLAG_SOURCE_CHANGED), function="array_append"))
    for pair_id, old_chunk in linked:
        new_chunk = by_heading.get(old_headings[old_chunk])
        if new_chunk is None:
            continue
        try:
            with transaction.atomic():
                QAPair.objects.filter(pk=pair_id).update(chunk_id=new_chunk)
        except IntegrityError:  # the new chunk already has a pair asking this question
            continue
    DocumentChunk.objects.filter(pk__in=old_headings).delete()


EMBED_WRITE_BATCH = 64


def chunks_embed_pending(
    *,
    manual: Manual,
    batch_size: int = EMBED_WRITE_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Embed every chunk of ``manual`` that has no embedding yet, in batches.

    Idempotent: a redelivered or repeated call only embeds what is still missing. Each batch of
    about ``batch_size`` rows is committed on its own, so a crash loses at most one batch of
    work. A batch always ends with the last chunk of a document, and the commit that stores a
    changed page's new vectors also retires its old chunks (``_store_vectors``), so chat always
    answers from one whole version of every page. The model itself runs on smaller batches
    (EMBEDDING_BATCH_SIZE), which measured faster on CPU. Returns the number of chunks embedded.
    """
    done = 0
    last_id = 0
    pending = DocumentChunk.objects.filter(document__manual=manual, embedding__isnull=True)
    while True:
        batch = list(
            pending.filter(id__gt=last_id)
            .order_by("id")
            .only("id", "document_id", "text")[:batch_size]
        )
        if not batch:
            return done
        batch += pending.filter(document_id=batch[-1].document_id, id__gt=batch[-1].id).order_by(
            "id"
        )
        # Embedded with the manual's embedder (a tuned one once it switched; issue 18).
        embedder = Manual.objects.select_related("embedder").get(pk=manual.pk).embedder
        vectors = embedders.embed_with(embedder, [chunk.text for chunk in batch])
        for chunk, vector in zip(batch, vectors, strict=True):
            chunk.embedding = vector
            chunk.embedding_model = embedders.model_name(embedder)[-300:]
            chunk.embedder = embedder
        if not _store_vectors(
            batch, manual_id=manual.pk, embedder_id=embedder.pk if embedder else None
        ):
            continue  # the manual switched embedders meanwhile: this batch again, new model
        done += len(batch)
        last_id = batch[-1].id
        if on_batch is not None:
            on_batch(len(batch))
