"""Admin pages for manuals, documents, chunks and ingestion runs.

Ingestion is started from the "Ingest a source" page (a button on the runs list) or from the
"Re-ingest" action on manuals; both call ``curation.services.ingestion_run_create``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from curation import qa, services
from curation.models import (
    ChunkGeneration,
    DocumentChunk,
    GenerationRun,
    IngestionRun,
    LLMEndpoint,
    Manual,
    ManualDocument,
    QAPair,
)


def _generate_url(manual_id: int, document_ids: list[int] | None = None) -> str:
    url = reverse("admin:curation_generationrun_start") + f"?manual={manual_id}"
    if document_ids:
        url += "&documents=" + ",".join(str(pk) for pk in document_ids)
    return url


@admin.register(Manual)
class ManualAdmin(admin.ModelAdmin):
    list_display = ("name", "vehicle", "document_count", "chunk_count", "source_url", "updated_at")
    search_fields = ("name", "vehicle_make", "vehicle_model", "source_url")
    list_filter = ("vehicle_make", "vehicle_year")
    actions = ["reingest_from_source_url", "generate_qa_pairs"]

    @admin.action(description="Generate QA pairs…")
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
                _chunk_count=Count("documents__chunks", distinct=True),
            )
        )

    @admin.display(description="Documents", ordering="_document_count")
    def document_count(self, obj: Manual) -> int:
        return obj._document_count

    @admin.display(description="Chunks", ordering="_chunk_count")
    def chunk_count(self, obj: Manual) -> int:
        return obj._chunk_count

    @admin.action(description="Re-ingest from the manual's source URL")
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


class ChunkInline(admin.TabularInline):
    model = DocumentChunk
    fields = ("position", "heading_path", "token_count", "has_embedding")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding", "text")

    @admin.display(boolean=True, description="Embedded")
    def has_embedding(self, obj: DocumentChunk) -> bool:
        return obj.embedding is not None


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
    inlines = [ChunkInline]
    actions = ["generate_qa_pairs"]

    @admin.action(description="Generate QA pairs from the selected documents…")
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


class EmbeddedFilter(admin.SimpleListFilter):
    title = "embedding"
    parameter_name = "embedded"

    def lookups(self, request, model_admin):
        return [("yes", "Embedded"), ("no", "Waiting for embedding")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(embedding__isnull=False)
        if self.value() == "no":
            return queryset.filter(embedding__isnull=True)
        return queryset


@admin.register(DocumentChunk)
class DocumentChunkAdmin(admin.ModelAdmin):
    list_display = ("heading_path", "position", "token_count", "document", "embedded")
    list_select_related = ("document",)
    list_filter = (EmbeddedFilter, "document__manual")
    search_fields = ("heading_path", "text")
    raw_id_fields = ("document",)
    readonly_fields = ("document", "position", "heading_path", "token_count", "embedding_model")
    fields = (*readonly_fields, "text")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(boolean=True, description="Embedded")
    def embedded(self, obj: DocumentChunk) -> bool:
        # ``defer`` keeps the vector out of list queries; a null check would load it per row.
        return bool(obj.embedding_model)


class IngestForm(forms.Form):
    manual = forms.ModelChoiceField(queryset=Manual.objects.all(), required=False)
    new_manual_name = forms.CharField(
        required=False, help_text="Or create a new manual with this name."
    )
    source = forms.CharField(
        max_length=1000,
        help_text="A start URL (pages under its path are crawled), a folder of HTML or "
        "markdown files, or a .zip of HTML pages on the server.",
    )
    max_pages = forms.IntegerField(min_value=1, initial=500)

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("manual") and not cleaned.get("new_manual_name", "").strip():
            raise ValidationError("Choose a manual or name a new one.")
        return cleaned


class IngestionStatusFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [("active", "In progress"), ("page_errors", "Finished with page errors")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.exclude(status__in=IngestionRun.FINISHED)
        if self.value() == "page_errors":
            return queryset.filter(Q(status=IngestionRun.Status.SUCCEEDED), pages_failed__gt=0)
        return queryset


@admin.register(IngestionRun)
class IngestionRunAdmin(admin.ModelAdmin):
    list_display = ("id", "manual", "source", "status", "progress", "pages_failed", "created_at")
    list_select_related = ("manual",)
    list_filter = ("status", IngestionStatusFilter, "source_kind", "manual")
    search_fields = ("source", "manual__name", "message")
    change_list_template = "admin/curation/ingestionrun/change_list.html"
    readonly_fields = (
        "manual",
        "source",
        "source_kind",
        "status",
        "progress",
        "pages_total",
        "pages_done",
        "pages_failed",
        "documents_created",
        "documents_updated",
        "documents_unchanged",
        "chunks_created",
        "chunks_embedded",
        "page_errors",
        "message",
        "traceback",
        "options",
        "celery_task_id",
        "created_by",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )
    exclude = ("errors",)

    def has_add_permission(self, request) -> bool:
        return False  # runs are started through the ingest page, which validates the source

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Progress")
    def progress(self, obj: IngestionRun) -> str:
        total = obj.pages_total if obj.pages_total is not None else "?"
        label = f"{obj.pages_done}/{total} pages"
        if obj.status == IngestionRun.Status.EMBEDDING:
            label += f", {obj.chunks_embedded}/{obj.chunks_created} chunks embedded"
        return format_html(
            '<progress max="100" value="{}" style="width:8em"></progress> {}',
            obj.progress_percent,
            label,
        )

    @admin.display(description="Page errors")
    def page_errors(self, obj: IngestionRun) -> str:
        if not obj.errors:
            return "None"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>", ((e["page"], e["error"]) for e in obj.errors)
        )
        return format_html(
            "<table><thead><tr><th>Page</th><th>Error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def get_urls(self):
        return [
            path(
                "ingest/",
                self.admin_site.admin_view(self.ingest_view),
                name="curation_ingestionrun_ingest",
            ),
            *super().get_urls(),
        ]

    def ingest_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("curation.add_ingestionrun"):
            raise PermissionDenied
        form = IngestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                manual = form.cleaned_data["manual"] or services.manual_get_or_create(
                    name=form.cleaned_data["new_manual_name"]
                )
                run = services.ingestion_run_create(
                    manual=manual,
                    source=form.cleaned_data["source"],
                    options={"max_pages": form.cleaned_data["max_pages"]},
                    user=request.user,
                )
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                self.message_user(
                    request, f"Ingestion #{run.pk} queued for {manual.name}.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:curation_ingestionrun_change", args=[run.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Ingest a manual source",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/curation/ingestionrun/ingest.html", context)


@admin.register(LLMEndpoint)
class LLMEndpointAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "model",
        "base_url",
        "max_concurrency",
        "key_status",
        "is_active",
    )
    list_filter = ("kind", "is_active")
    search_fields = ("name", "model", "base_url", "description")
    readonly_fields = ("key_status", "created_at", "updated_at")
    fieldsets = [
        (None, {"fields": ("name", "kind", "description", "is_active")}),
        ("Where", {"fields": ("model", "base_url", "api_key_env", "key_status", "api_version")}),
        (
            "Generation",
            {"fields": ("temperature", "max_tokens", "context_window")},
        ),
        (
            "Limits and retries",
            {"fields": ("requests_per_minute", "max_concurrency", "timeout_s", "max_retries")},
        ),
        ("Cost", {"fields": ("price_in_per_1k", "price_out_per_1k")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    ]

    @admin.display(description="API key")
    def key_status(self, obj: LLMEndpoint) -> str:
        # Says whether the variable is set on this web server; never shows the value.
        import os

        if not obj.api_key_env:
            return "not needed" if obj.kind != LLMEndpoint.Kind.AZURE_OPENAI else "missing"
        return f"${obj.api_key_env} is {'set' if os.environ.get(obj.api_key_env) else 'NOT set'}"


class GenerateForm(forms.Form):
    endpoint = forms.ModelChoiceField(queryset=LLMEndpoint.objects.filter(is_active=True))
    questions_per_chunk = forms.IntegerField(min_value=1, max_value=50, initial=5)
    questions_system_prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), initial=qa.DEFAULT_QUESTIONS_SYSTEM_PROMPT
    )
    questions_user_template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}), initial=qa.DEFAULT_QUESTIONS_USER_TEMPLATE
    )
    answer_system_prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), initial=qa.DEFAULT_ANSWER_SYSTEM_PROMPT
    )
    answer_user_template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}), initial=qa.DEFAULT_ANSWER_USER_TEMPLATE
    )


class ChunkGenerationInline(admin.TabularInline):
    model = ChunkGeneration
    fields = ("chunk", "status", "pairs_created", "llm_calls", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Failed chunks"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(status=ChunkGeneration.Status.FAILED)
            .select_related("chunk")
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "manual",
        "endpoint",
        "status",
        "progress",
        "pairs_created",
        "chunks_failed",
        "cost",
        "created_at",
    )
    list_select_related = ("manual", "endpoint")
    list_filter = ("status", "endpoint", "manual")
    search_fields = ("manual__name", "endpoint__name", "message")
    actions = ["cancel_runs", "resume_runs", "retry_failed_chunks"]
    inlines = [ChunkGenerationInline]
    readonly_fields = (
        "manual",
        "endpoint",
        "documents_list",
        "questions_per_chunk",
        "status",
        "progress",
        "chunks_total",
        "chunks_done",
        "chunks_failed",
        "pairs_created",
        "pairs_scored",
        "llm_calls",
        "tokens_in",
        "tokens_out",
        "cost",
        "message",
        "traceback",
        "questions_system_prompt",
        "questions_user_template",
        "answer_system_prompt",
        "answer_user_template",
        "cancel_requested",
        "celery_task_id",
        "created_by",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )
    exclude = ("documents",)

    def has_add_permission(self, request) -> bool:
        return False  # started from manuals/documents, the command or the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Progress")
    def progress(self, obj: GenerationRun) -> str:
        label = f"{obj.chunks_done + obj.chunks_failed}/{obj.chunks_total} chunks"
        if obj.status == GenerationRun.Status.SCORING:
            label += f", {obj.pairs_scored}/{obj.pairs_created} pairs scored"
        return format_html(
            '<progress max="100" value="{}" style="width:8em"></progress> {}',
            obj.progress_percent,
            label,
        )

    @admin.display(description="Est. cost (USD)")
    def cost(self, obj: GenerationRun) -> str:
        return "-" if obj.estimated_cost is None else f"{obj.estimated_cost:.4f}"

    @admin.display(description="Documents")
    def documents_list(self, obj: GenerationRun) -> str:
        names = [doc.source_name for doc in obj.documents.all()]
        return ", ".join(names) if names else "All documents of the manual"

    def _each(self, request, queryset, service, verb: str) -> None:
        done = 0
        for run in queryset:
            try:
                service(run=run)
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} run(s).", messages.SUCCESS)

    @admin.action(description="Cancel")
    def cancel_runs(self, request, queryset) -> None:
        self._each(request, queryset, services.generation_run_cancel, "Cancelled")

    @admin.action(description="Resume")
    def resume_runs(self, request, queryset) -> None:
        self._each(request, queryset, services.generation_run_resume, "Resumed")

    @admin.action(description="Retry failed chunks")
    def retry_failed_chunks(self, request, queryset) -> None:
        self._each(request, queryset, services.generation_run_retry_failed, "Re-queued")

    def get_urls(self):
        return [
            path(
                "start/",
                self.admin_site.admin_view(self.start_view),
                name="curation_generationrun_start",
            ),
            *super().get_urls(),
        ]

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("curation.add_generationrun"):
            raise PermissionDenied
        manual = Manual.objects.filter(pk=request.GET.get("manual") or 0).first()
        if manual is None:
            return HttpResponseRedirect(reverse("admin:curation_manual_changelist"))
        raw_ids = [pk for pk in request.GET.get("documents", "").split(",") if pk.isdigit()]
        documents = list(manual.documents.filter(pk__in=raw_ids))
        form = GenerateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                run = services.generation_run_create(
                    manual=manual,
                    endpoint=data["endpoint"],
                    documents=documents,
                    questions_per_chunk=data["questions_per_chunk"],
                    prompts={
                        key: data[key]
                        for key in GenerateForm.base_fields
                        if "prompt" in key or "template" in key
                    },
                    user=request.user,
                )
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                self.message_user(
                    request,
                    f"Generation #{run.pk} queued: {run.chunks_total} chunks with {run.endpoint}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:curation_generationrun_change", args=[run.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Generate QA pairs from {manual.name}",
            "form": form,
            "manual": manual,
            "documents": documents,
            "chunk_count": DocumentChunk.objects.filter(
                document__manual=manual, **({"document__in": documents} if documents else {})
            ).count(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/curation/generationrun/start.html", context)


class GroundingBandFilter(admin.SimpleListFilter):
    title = "grounding score"
    parameter_name = "grounding"

    def lookups(self, request, model_admin):
        return [
            ("low", f"Low (< {qa.LOW_GROUNDING_THRESHOLD})"),
            ("mid", f"Medium ({qa.LOW_GROUNDING_THRESHOLD}-0.7)"),
            ("high", "High (>= 0.7)"),
            ("none", "Not scored yet"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "low":
            return queryset.filter(grounding_score__lt=qa.LOW_GROUNDING_THRESHOLD)
        if value == "mid":
            return queryset.filter(
                grounding_score__gte=qa.LOW_GROUNDING_THRESHOLD, grounding_score__lt=0.7
            )
        if value == "high":
            return queryset.filter(grounding_score__gte=0.7)
        if value == "none":
            return queryset.filter(grounding_score__isnull=True)
        return queryset


class FlagFilter(admin.SimpleListFilter):
    title = "quality flag"
    parameter_name = "flag"

    def lookups(self, request, model_admin):
        return [
            (flag, flag.replace("_", " "))
            for flag in (
                qa.FLAG_DUPLICATE,
                qa.FLAG_LOW_GROUNDING,
                qa.FLAG_SOURCE_CHANGED,
                qa.FLAG_REFUSAL,
                qa.FLAG_EMPTY_ANSWER,
                qa.FLAG_NOT_A_QUESTION,
                qa.FLAG_TOO_SHORT,
                qa.FLAG_TOO_LONG,
            )
        ] + [("any", "Any flag"), ("clean", "No flags")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "any":
            return queryset.exclude(flags=[])
        if value == "clean":
            return queryset.filter(flags=[])
        if value:
            return queryset.filter(flags__contains=[value])
        return queryset


@admin.register(QAPair)
class QAPairAdmin(admin.ModelAdmin):
    list_display = (
        "question",
        "status",
        "origin",
        "grounding",
        "flag_list",
        "document",
        "created_at",
    )
    list_select_related = ("document",)
    list_filter = (
        "status",
        "origin",
        GroundingBandFilter,
        FlagFilter,
        "manual",
        "generation_run",
    )
    search_fields = ("question", "answer")
    raw_id_fields = ("document", "chunk", "generation_run", "duplicate_of")
    readonly_fields = (
        "manual",
        "origin",
        "generation_run",
        "document_version",
        "original_question",
        "original_answer",
        "grounding_score",
        "lexical_grounding",
        "semantic_grounding",
        "flags",
        "source_text",
        "reviewed_by",
        "reviewed_at",
        "created_at",
        "updated_at",
    )
    exclude = ("question_embedding", "question_hash")
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).defer("question_embedding", "source_text")

    @admin.display(description="Grounding", ordering="grounding_score")
    def grounding(self, obj: QAPair) -> str:
        return "-" if obj.grounding_score is None else f"{obj.grounding_score:.2f}"

    @admin.display(description="Flags")
    def flag_list(self, obj: QAPair) -> str:
        return ", ".join(obj.flags) or "-"
