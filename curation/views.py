"""Public pages to browse manuals and read their documents.

Chat citations (Stage 5) link to a document page with the cited chunk highlighted; a section
of a PDF shows the original PDF beside its text, opened at the cited passage's page.
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from curation import selectors
from curation.models import Figure, Manual, ManualDocument, SourceFile


@require_GET
def manual_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "curation/manual_list.html", {"manuals": selectors.manuals_with_counts()}
    )


@require_GET
def manual_detail(request: HttpRequest, manual_id: int) -> HttpResponse:
    manual = get_object_or_404(Manual, pk=manual_id)
    return render(
        request,
        "curation/manual_detail.html",
        {
            "manual": manual,
            "documents": selectors.manual_documents(manual=manual),
            "runs": selectors.latest_ingestion_runs(manual=manual, limit=5),
        },
    )


@require_GET
def document_detail(request: HttpRequest, manual_id: int, document_id: int) -> HttpResponse:
    document = get_object_or_404(
        ManualDocument.objects.select_related("manual", "source_file"),
        pk=document_id,
        manual_id=manual_id,
    )
    # A citation may span neighbouring passages (a procedure chunking split): ?chunk=1&chunk=2.
    highlighted = [int(pk) for pk in request.GET.getlist("chunk") if pk.isdigit()]
    chunks = list(selectors.document_chunks(document=document))
    pdf = None
    if document.source_file_id is not None:
        cited = next((c for c in chunks if c.pk in highlighted and c.pages), None)
        page = cited.pages[0] if cited is not None else document.first_page or 1
        url = reverse("curation:source_file", args=[document.manual_id, document.source_file_id])
        pdf = {"url": url, "page": page, "name": document.source_file.name}
    return render(
        request,
        "curation/document_detail.html",
        {
            "manual": document.manual,
            "document": document,
            "chunks": chunks,
            "highlighted": highlighted,
            "pdf": pdf,
        },
    )


#: A stored file (a PDF, a figure) runs nothing, loads nothing, and may be framed by this
#: site's pages only (the document page shows the PDF beside its text).
_STORED_FILE_POLICY = "default-src 'none'; frame-ancestors 'self'"


@require_GET
@xframe_options_sameorigin
def source_file(request: HttpRequest, manual_id: int, source_file_id: int) -> FileResponse:
    """The original PDF a manual's sections were cut from, shown inline (the browser's viewer
    opens it at ``#page=N``), to whoever may read the manual's documents: everyone, as the
    document pages are public."""
    stored = get_object_or_404(SourceFile, pk=source_file_id, manual_id=manual_id)
    try:
        handle = stored.file.open("rb")
    except FileNotFoundError:
        raise Http404(f"The stored copy of {stored.name} is missing.") from None
    response = FileResponse(handle, content_type="application/pdf", filename=stored.name)
    response["Content-Security-Policy"] = _STORED_FILE_POLICY
    response["Cache-Control"] = "private, max-age=3600"
    return response


#: A figure's bytes never change under its URL (a new version of its page makes new figures).
_FIGURE_CACHE = "private, max-age=31536000, immutable"


@require_GET
def figure_image(
    request: HttpRequest, manual_id: int, document_id: int, figure_id: int
) -> FileResponse:
    """A figure's stored image, to whoever may read its document: everyone, as the document
    pages are public (chat citations link anonymous owners to them). Only the figure's own
    file is served, by its row; nothing else under media is reachable."""
    figure = get_object_or_404(
        Figure.objects.only("image", "content_type"),
        pk=figure_id,
        document_id=document_id,
        document__manual_id=manual_id,
    )
    try:
        handle = figure.image.open("rb")
    except (FileNotFoundError, ValueError):  # ValueError: the row has no file
        raise Http404("The figure's image is missing.") from None
    response = FileResponse(handle, content_type=figure.content_type)
    response["Cache-Control"] = _FIGURE_CACHE
    response["Content-Security-Policy"] = _STORED_FILE_POLICY
    return response
