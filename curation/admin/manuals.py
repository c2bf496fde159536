"""Admin pages for manuals, their documents and chunks, and the Re-ingest action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from curation import selectors, services
from curation.models import (
    DocumentChunk,
    Figure,
    Manual,
    ManualDocument,
)
from manualqa.admin_tools import ChoicesFilter, ReadOnlyInlineMixin, sortable_column


def _generate_url(manual_id: int, document_ids: list[int] | None = None) -> str:
    url = reverse("admin:curation_generationrun_start") + f"?manual={manual_id}"
    if document_ids:
        url += "&documents=" + ",".join(str(pk) for pk in document_ids)
    return url


@admin.register(Manual)
class ManualAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "vehicle",
        "document_count",
        "chunk_count",
        "embedder",
        "source_url",
        "updated_at",
    )
    search_fields = ("name", "vehicle_make", "vehicle_model", "source_url")
    list_filter = ("vehicle_make", "vehicle_year")
    # The embedder changes only by re-embedding (the switch keeps vectors and model in step).
    readonly_fields = ("embedder",)
    actions = ["reingest_from_source_url", "generate_qa_pairs", "switch_to_default_embedder"]

    @admin.action(
        description="Switch back to the default embedding model (re-embed)",
        permissions=["reembed"],
    )
    def switch_to_default_embedder(self, request: HttpRequest, queryset):
        from curation.services import embedders

        for manual in queryset.exclude(embedder=None):
            try:
                run = embedders.reembed_run_create(manual=manual, embedder=None, user=request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(request, f"Re-embed #{run.pk} of {manual} queued.")

    def has_reembed_permission(self, request) -> bool:
        return request.user.has_perm("curation.add_reembedrun")

    @admin.action(description="Generate QA pairs…", permissions=["generate"])
    def generate_qa_pairs(self, request: HttpRequest, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one manual to generate from.", messages.WARNING)
            return None
        return HttpResponseRedirect(_generate_url(queryset.get().pk))

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _document_count=Count("documents", distinct=True),
                _chunk_count=Count(
                    "documents__chunks", filter=selectors.CURRENT_CHUNKS, distinct=True
                ),
            )
        )

    document_count = sortable_column("_document_count", "Documents")
    chunk_count = sortable_column("_chunk_count", "Chunks")

    def has_ingest_permission(self, request) -> bool:
        return request.user.has_perm("curation.add_ingestionrun")

    def has_generate_permission(self, request) -> bool:
        return request.user.has_perm("curation.add_generationrun")

    @admin.action(description="Re-ingest from the manual's source URL", permissions=["ingest"])
    def reingest_from_source_url(self, request: HttpRequest, queryset) -> None:
        started = 0
        for manual in queryset:
            if not manual.source_url:
                self.message_user(
                    request, f"{manual.name} has no source URL to re-ingest.", messages.WARNING
                )
                continue
            services.ingestion_run_create(
                manual=manual, source=manual.source_url, user=request.user
            )
            started += 1
        if started:
            self.message_user(request, f"Queued {started} ingestion run(s).", messages.SUCCESS)


class ChunkInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = DocumentChunk
    fields = ("version", "position", "heading_path", "token_count", "has_embedding")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding", "text")

    @admin.display(boolean=True, description="Embedded")
    def has_embedding(self, obj: DocumentChunk) -> bool:
        return obj.embedding is not None


class FigureInline(ReadOnlyInlineMixin, admin.TabularInline):
    """The document's figures, every version's, with a thumbnail and the passage each is in."""

    model = Figure
    fields = ("version", "position", "thumbnail", "caption", "passage", "size", "page")
    show_change_link = False  # a figure has no page of its own; its thumbnail opens it

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_manual_id=F("document__manual_id"), _passage=F("chunk__position"))
            .order_by("version", "position")
        )

    @admin.display(description="Image")
    def thumbnail(self, obj: Figure) -> str:
        url = selectors.figure_url(
            manual_id=obj._manual_id, document_id=obj.document_id, figure_id=obj.pk
        )
        return format_html(
            '<a href="{}"><img src="{}" alt="{}" style="max-height:64px;max-width:160px"></a>',
            url,
            url,
            obj.caption,
        )

    @admin.display(description="Passage")
    def passage(self, obj: Figure) -> str:
        return f"#{obj._passage}" if obj._passage is not None else "-"

    @admin.display(description="Size")
    def size(self, obj: Figure) -> str:
        return f"{obj.width}x{obj.height}"


@admin.register(ManualDocument)
class ManualDocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "source_name", "manual", "version", "word_count", "updated_at")
    list_select_related = ("manual",)
    list_filter = ("manual", "version")
    search_fields = ("title", "source_name", "markdown")
    readonly_fields = (
        "manual",
        "source_name",
        "source_url",
        "content_hash",
        "word_count",
        "version",
        "fetched_at",
        "updated_at",
        "created_at",
    )
    fields = ("title", *readonly_fields, "markdown")
    inlines = [ChunkInline, FigureInline]
    actions = ["generate_qa_pairs"]

    def has_generate_permission(self, request) -> bool:
        return request.user.has_perm("curation.add_generationrun")

    @admin.action(
        description="Generate QA pairs from the selected documents…", permissions=["generate"]
    )
    def generate_qa_pairs(self, request: HttpRequest, queryset):
        manual_ids = set(queryset.values_list("manual_id", flat=True))
        if len(manual_ids) != 1:
            self.message_user(request, "Choose documents of one manual.", messages.WARNING)
            return None
        return HttpResponseRedirect(
            _generate_url(manual_ids.pop(), list(queryset.values_list("pk", flat=True)))
        )

    def has_add_permission(self, request) -> bool:
        return False  # documents come from ingestion, so they keep a real source


class EmbeddedFilter(ChoicesFilter):
    title = "embedding"
    parameter_name = "embedded"
    options = {
        "yes": ("Embedded", Q(embedding__isnull=False)),
        "no": ("Waiting for embedding", Q(embedding__isnull=True)),
    }


@admin.register(DocumentChunk)
class DocumentChunkAdmin(admin.ModelAdmin):
    list_display = ("heading_path", "version", "position", "token_count", "document", "embedded")
    list_select_related = ("document",)
    list_filter = (EmbeddedFilter, "document__manual")
    search_fields = ("heading_path", "text")
    raw_id_fields = ("document",)
    readonly_fields = (
        "document",
        "version",
        "position",
        "heading_path",
        "token_count",
        "embedding_model",
    )
    fields = (*readonly_fields, "text")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(boolean=True, description="Embedded")
    def embedded(self, obj: DocumentChunk) -> bool:
        # ``defer`` keeps the vector out of list queries; a null check would load it per row.
        return bool(obj.embedding_model)
