"""Writes for figures: the pictures of one version of a document, stored under media.

Each picture is re-encoded for the web (``curation.images``) and stored once per document
version, key and file (``figures/<manual>/<document>/v<version>/<key>.webp``), linked to the
chunk whose text held its marker. A picture that cannot be stored is left out with a note for
the ingestion run; it never fails the page. A version's figures go when its last chunk goes
(``documents._retire``), their files once that deletion has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from curation.images import ImageRefused, encode_web_image
from curation.models import DocumentChunk, Figure, ManualDocument

if TYPE_CHECKING:
    from curation.services.documents import FigureImage

logger = logging.getLogger("curation.figures")

__all__ = ["figure_files_delete", "figures_create", "figures_retire"]


def figures_create(
    *,
    document: ManualDocument,
    figures: Sequence[FigureImage],
    chunk_of: Mapping[str, DocumentChunk],
    on_note: Callable[[str], None] | None = None,
    written: list[str] | None = None,
) -> list[Figure]:
    """Store the pictures of the document's current version, in the caller's transaction.

    ``chunk_of`` maps a figure's key to the chunk that holds its marker (a figure whose marker
    no chunk kept is stored without one). A picture over ``FIGURE_MAX_BYTES``, declaring more
    than ``FIGURE_MAX_PIXELS`` pixels or that does not decode is left out, and ``on_note`` is
    told why. The names of the files written are added to ``written``, so that a caller whose
    transaction fails can delete them (:func:`figure_files_delete`).
    """
    rows: list[Figure] = []
    seen: set[str] = set()
    files = written if written is not None else []
    try:
        for figure in figures:
            if figure.key in seen:
                continue
            seen.add(figure.key)
            try:
                encoded = encode_web_image(
                    figure.data,
                    max_bytes=settings.FIGURE_MAX_BYTES,
                    max_pixels=settings.FIGURE_MAX_PIXELS,
                    max_side=settings.FIGURE_MAX_SIDE,
                )
            except ImageRefused as exc:
                if on_note is not None:
                    on_note(f"figure {_label(figure)} left out: {exc}")
                continue
            row = Figure(
                document=document,
                version=document.version,
                chunk=chunk_of.get(figure.key),
                key=figure.key,
                position=len(rows),
                content_type=encoded.content_type,
                width=encoded.width,
                height=encoded.height,
                caption=figure.caption,
                page=figure.page,
                source_url=figure.source_url[:1000],
            )
            name = (
                f"{document.manual_id}/{document.pk}/v{document.version}/"
                f"{figure.key}.{encoded.suffix}"
            )
            row.image.save(name, ContentFile(encoded.data), save=False)
            files.append(row.image.name)
            rows.append(row)
        return Figure.objects.bulk_create(rows)
    except BaseException:
        if written is None:  # nobody else will clean up what this call wrote
            figure_files_delete(files)
        raise


def figures_retire(*, document_id: int, version: int) -> int:
    """Delete the figures of the document's versions older than ``version`` that have no
    chunk left (the chunks of an old version answer chat until the new ones are embedded, and
    their citations show their figures until then). The files go once this commits."""
    live_versions = DocumentChunk.objects.filter(document_id=document_id).values("version")
    doomed = list(
        Figure.objects.filter(document_id=document_id, version__lt=version)
        .exclude(version__in=live_versions)
        .values_list("pk", "image")
    )
    if not doomed:
        return 0
    Figure.objects.filter(pk__in=[pk for pk, _ in doomed]).delete()
    names = [name for _, name in doomed]
    transaction.on_commit(lambda: figure_files_delete(names))
    return len(doomed)


def figure_files_delete(names: Iterable[str]) -> None:
    """Delete stored figure files, logging (never raising) what cannot be deleted: it runs
    after a commit or while an error is already on its way up."""
    for name in names:
        if not name:
            continue
        try:
            default_storage.delete(name)
        except OSError as exc:
            logger.warning("could not delete figure file %s: %s", name, exc)


def _label(figure: FigureImage) -> str:
    """How a note names a figure: its caption, else where it came from, else its key."""
    if figure.caption:
        caption = figure.caption
        return f'"{caption[:80]}..."' if len(caption) > 80 else f'"{caption}"'
    if figure.source_url and not figure.source_url.startswith("data:"):
        return figure.source_url[-120:]
    return figure.key[:12]
