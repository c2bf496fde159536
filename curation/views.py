"""Public pages to browse manuals and read their documents.

Chat citations (Stage 5) link to a document page with the cited chunk highlighted.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from curation import selectors
from curation.models import Manual, ManualDocument


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
        ManualDocument.objects.select_related("manual"), pk=document_id, manual_id=manual_id
    )
    highlighted = request.GET.get("chunk")
    return render(
        request,
        "curation/document_detail.html",
        {
            "manual": document.manual,
            "document": document,
            "chunks": selectors.document_chunks(document=document),
            "highlighted": int(highlighted) if highlighted and highlighted.isdigit() else None,
        },
    )
