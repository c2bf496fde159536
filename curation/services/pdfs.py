"""PDF manuals: one stored original per file, one document per section.

A PDF arrives from a source as one :class:`~curation.sources.RawPage` of the whole file.
:func:`clean_pdf` reads it (``curation.scraping.pdf``: text with its structure, page markers,
figures), keeps the original once per content (:class:`~curation.models.SourceFile`, so a
citation can open it at its page), and returns a :class:`CleanDocument` per top-level section,
named ``{file name}/{section title}`` so that a question set can name it and a re-ingest finds
the same section again (an unchanged section is skipped by its hash, a changed one gets a new
version, as pages do).

Nothing is stored from a PDF that cannot be read: an encrypted, scanned (no text layer),
truncated or oversized file raises ``PdfRejected`` (a ``PageRejected``) before any row or file
is written.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from curation.models import Manual, SourceFile
from curation.services.documents import CleanDocument, FigureImage
from curation.sources import RawPage

__all__ = ["clean_pdf", "pdf_source_name", "source_file_store"]

#: Longest source name a document keeps (the column's length).
_MAX_SOURCE_NAME = 500


def pdf_source_name(file_name: str, title: str, taken: set[str]) -> str:
    """``{file name}/{section title}``, made unique within one PDF with " (2)", " (3)"..."""
    title = " ".join(title.split()).replace("/", "-") or "Untitled"
    base = f"{file_name}/{title}"[: _MAX_SOURCE_NAME - 6]
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base} ({number})"
    taken.add(name)
    return name


def source_file_store(*, manual: Manual, name: str, data: bytes, page_count: int) -> SourceFile:
    """The stored original of a PDF, written once per content and manual."""
    digest = hashlib.sha256(data).hexdigest()
    found = SourceFile.objects.filter(manual=manual, sha256=digest).first()
    if found is not None:
        return found
    row = SourceFile(
        manual=manual, name=name[:500], sha256=digest, size=len(data), page_count=page_count
    )
    # Content-addressed, so a retry or a second manual's copy never clashes with this one.
    row.file.save(f"{digest}.pdf", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:  # the same PDF stored by a concurrent run
        return SourceFile.objects.get(manual=manual, sha256=digest)
    return row


def clean_pdf(page: RawPage, *, manual: Manual) -> tuple[list[CleanDocument], list[str]]:
    """The sections of a PDF as documents, and the notes on what was skipped in it.

    Raises ``PdfRejected`` (naming the problem) for a PDF nothing can be read from; the
    original is stored only once its text has been read."""
    from curation.scraping.pdf import pdf_to_sections  # the PDF library loads only for PDFs

    assert page.content is not None
    parsed = pdf_to_sections(
        page.content, file_name=page.source_name, max_bytes=settings.PDF_MAX_BYTES
    )
    stored = source_file_store(
        manual=manual, name=page.source_name, data=page.content, page_count=parsed.page_count
    )
    taken: set[str] = set()
    documents = []
    for section in parsed.sections:
        documents.append(
            CleanDocument(
                source_name=pdf_source_name(page.source_name, section.title, taken),
                source_url=f"{page.source_url}#page={section.first_page}",
                title=section.title[:500],
                markdown=section.markdown,
                word_count=len(section.markdown.split()),
                figures=tuple(
                    FigureImage(
                        key=figure.key,
                        data=figure.data,
                        caption=figure.caption,
                        page=figure.page,
                        source_url=f"{page.source_url}#page={figure.page}",
                    )
                    for figure in section.figures
                ),
                source_file=stored,
                first_page=section.first_page,
            )
        )
    return documents, list(parsed.notes)
