"""Admin pages for manuals, documents, chunks, ingestion and generation runs, and QA review.

Ingestion is started from the "Ingest a source" page (a button on the runs list) or from the
"Re-ingest" action on manuals; both call ``curation.services.ingestion_run_create``.

QA pairs are reviewed in the list (filters, bulk actions), on the change page (edit with
history), on the focused review page (``review/``: one pair at a time, keyboard driven) and
followed on the dashboard (``dashboard/``). All of it is for the Reviewer role
(``curation.review_qapair``), and every write goes through ``curation.services``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, F, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from curation import qa, selectors, services
from curation.highlighting import highlight_supporting_sentence
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
        (
            "Where",
            {"fields": ("model", "base_url", "region", "api_key_env", "key_status", "api_version")},
        ),
        (
            "Generation",
            {"fields": ("temperature", "max_tokens", "context_window")},
        ),
        (
            "Trained format",
            {
                "fields": ("prompt_format", "system_prompt"),
                "description": "How the model was fine-tuned, so that chat prompts it the same "
                "way. A training job fills these in for the models it registers.",
            },
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


class DocumentFilter(admin.SimpleListFilter):
    """Documents of the chosen manual (or of the only manual), so the list stays short."""

    title = "document"
    parameter_name = "document"

    def lookups(self, request, model_admin):
        documents = ManualDocument.objects.only("id", "title", "source_name")
        manual_id = request.GET.get("manual__id__exact", "")
        if manual_id.isdigit():
            documents = documents.filter(manual_id=int(manual_id))
        elif (self.value() or "").isdigit():
            documents = documents.filter(manual__documents__id=int(self.value()))
        elif Manual.objects.count() != 1:
            return []  # choose a manual first
        return [(str(document.pk), str(document)) for document in documents.order_by("title")]

    def queryset(self, request, queryset):
        if (self.value() or "").isdigit():
            return queryset.filter(document_id=int(self.value()))
        return queryset


class GenerationRunFilter(admin.SimpleListFilter):
    """The latest generation runs (of the chosen manual), named by endpoint and date."""

    title = "generation run"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        runs = GenerationRun.objects.select_related("endpoint").only(
            "id", "created_at", "endpoint__name"
        )
        manual_id = request.GET.get("manual__id__exact", "")
        if manual_id.isdigit():
            runs = runs.filter(manual_id=int(manual_id))
        return [
            (str(run.pk), f"#{run.pk} {run.endpoint.name}, {run.created_at:%Y-%m-%d}")
            for run in runs.order_by("-created_at")[:30]
        ]

    def queryset(self, request, queryset):
        if (self.value() or "").isdigit():
            return queryset.filter(generation_run_id=int(self.value()))
        return queryset


class SourceChangedFilter(admin.SimpleListFilter):
    """Pairs whose document changed after they were generated, flagged or not yet."""

    title = "source changed since generation"
    parameter_name = "source_changed"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        changed = (
            Q(flags__contains=[qa.FLAG_SOURCE_CHANGED])
            | Q(document__version__lt=F("document_version"))
            | Q(document__version__gt=F("document_version"))
        )
        if self.value() == "yes":
            return queryset.filter(changed)
        if self.value() == "no":
            return queryset.exclude(pk__in=QAPair.objects.filter(changed).values("pk"))
        return queryset


class ReviewTextField(forms.CharField):
    """A text field whose line endings are ``\\n``: browsers send ``\\r\\n`` from a textarea,
    which would otherwise count as an edit of every multi-line answer."""

    def to_python(self, value):
        return super().to_python(value).replace("\r\n", "\n").replace("\r", "\n")


class QAPairChangeForm(forms.ModelForm):
    """The change page's editable part: the text and the status, saved through the services."""

    question = ReviewTextField(widget=forms.Textarea(attrs={"rows": 2, "cols": 100}))
    answer = ReviewTextField(widget=forms.Textarea(attrs={"rows": 8, "cols": 100}))

    class Meta:
        model = QAPair
        fields = ("question", "answer", "status")

    def clean_question(self):
        question = self.cleaned_data["question"]
        if selectors.qa_pair_question_taken(pair=self.instance, question=question):
            raise ValidationError("Another pair from the same passage already asks this question.")
        return question


class DuplicateOfForm(forms.Form):
    canonical = forms.IntegerField(
        min_value=1,
        label="Canonical pair id",
        help_text="The pair to keep. The selected pairs are linked to it and rejected.",
    )

    def clean_canonical(self) -> QAPair:
        pk = self.cleaned_data["canonical"]
        canonical = QAPair.objects.filter(pk=pk).only("id", "question").first()
        if canonical is None:
            raise ValidationError(f"There is no QA pair #{pk}.")
        return canonical


class RegenerateForm(forms.Form):
    endpoint = forms.ModelChoiceField(
        queryset=LLMEndpoint.objects.filter(is_active=True).order_by("name"),
        help_text="Answers each question again from the pair's source text, with the answer "
        "prompt generation uses.",
    )


class ReviewFilterForm(forms.Form):
    """The focused review page's choices: which manual, and in what order."""

    manual = forms.ModelChoiceField(
        queryset=Manual.objects.order_by("name"), required=False, empty_label="All manuals"
    )
    order = forms.ChoiceField(choices=list(selectors.REVIEW_ORDERS.items()), required=False)
    pair = forms.IntegerField(required=False, widget=forms.HiddenInput)


class ReviewActionForm(forms.Form):
    """One decision on the focused review page."""

    ACTIONS = ("approve", "reject", "edit", "edit_approve")

    pair = forms.IntegerField(widget=forms.HiddenInput)
    action = forms.ChoiceField(choices=[(action, action) for action in ACTIONS])
    question = ReviewTextField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    answer = ReviewTextField(required=False, widget=forms.Textarea(attrs={"rows": 8}))


def _count(count: int) -> str:
    return f"{count:,} QA pair{'' if count == 1 else 's'}"


def _short(text: str, length: int = 80) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


@admin.register(QAPair)
class QAPairAdmin(admin.ModelAdmin):
    """Review of QA pairs: filtered lists, bulk decisions, the change page with its history,
    the focused review page and the review dashboard. Every write goes through a service, which
    records the reviewer, the time and a revision."""

    form = QAPairChangeForm
    change_list_template = "admin/curation/qapair/change_list.html"
    change_form_template = "admin/curation/qapair/change_form.html"
    list_display = ("question_text", "status", "origin", "grounding", "flag_list", "document")
    list_display_links = ("question_text",)
    list_select_related = ("document",)
    list_filter = (
        "status",
        "manual",
        DocumentFilter,
        "origin",
        GenerationRunFilter,
        GroundingBandFilter,
        FlagFilter,
        SourceChangedFilter,
    )
    search_fields = ("question", "answer")
    list_per_page = 50
    # A filtered page would otherwise count the whole table a second time (~35 ms at 100k).
    show_full_result_count = False
    actions = [
        "approve_pairs",
        "reject_pairs",
        "reset_pairs",
        "mark_duplicate_of",
        "regenerate_answers",
    ]
    readonly_fields = (
        "manual",
        "document_link",
        "chunk_heading",
        "source_change",
        "supporting_source",
        "original_question",
        "original_answer",
        "origin",
        "generation_run",
        "created_at",
        "grounding_score",
        "lexical_grounding",
        "semantic_grounding",
        "flags",
        "duplicate_link",
        "reviewed_by",
        "reviewed_at",
        "updated_at",
        "history",
    )
    fieldsets = [
        (None, {"fields": ("question", "answer", "status")}),
        (
            "Source",
            {"fields": ("manual", "document_link", "chunk_heading", "source_change")},
        ),
        (
            "Source text (the sentence that supports the answer is marked)",
            {
                "fields": ("supporting_source",),
            },
        ),
        (
            "As created",
            {
                "fields": (
                    "original_question",
                    "original_answer",
                    "origin",
                    "generation_run",
                    "created_at",
                )
            },
        ),
        (
            "Quality",
            {
                "fields": (
                    "grounding_score",
                    "lexical_grounding",
                    "semantic_grounding",
                    "flags",
                    "duplicate_link",
                )
            },
        ),
        ("Review", {"fields": ("reviewed_by", "reviewed_at", "updated_at", "history")}),
    ]

    # -- permissions -----------------------------------------------------------------------

    def has_add_permission(self, request) -> bool:
        return False  # pairs come from generation, import, the API or chat feedback

    def has_change_permission(self, request, obj=None) -> bool:
        return services.user_can_review(request.user)

    def has_review_permission(self, request) -> bool:
        return services.user_can_review(request.user)

    # -- the list --------------------------------------------------------------------------

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .defer("question_embedding", "source_text", "document__markdown")
        )

    @admin.display(description="Question", ordering="question")
    def question_text(self, obj: QAPair) -> str:
        return _short(obj.question, 140)

    @admin.display(description="Grounding", ordering="grounding_score")
    def grounding(self, obj: QAPair) -> str:
        return "-" if obj.grounding_score is None else f"{obj.grounding_score:.2f}"

    @admin.display(description="Flags")
    def flag_list(self, obj: QAPair) -> str:
        return ", ".join(flag.replace("_", " ") for flag in obj.flags) or "-"

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_review": self.has_review_permission(request)}
        return super().changelist_view(request, extra_context)

    # -- the change page -------------------------------------------------------------------

    @admin.display(description="Document")
    def document_link(self, obj: QAPair) -> str:
        if obj.document_id is None:
            return "-"
        url = reverse("admin:curation_manualdocument_change", args=[obj.document_id])
        return format_html('<a href="{}">{}</a>', url, obj.document)

    @admin.display(description="Section")
    def chunk_heading(self, obj: QAPair) -> str:
        return obj.chunk.heading_path if obj.chunk_id else "-"

    @admin.display(description="Source changed since generation")
    def source_change(self, obj: QAPair) -> str:
        if obj.source_changed:
            return (
                f"Yes: generated from version {obj.document_version}, "
                f"the document is now at version {obj.document.version}."
            )
        if qa.FLAG_SOURCE_CHANGED in obj.flags:
            return "Yes (flagged)"
        return "No"

    @admin.display(description="Source text")
    def supporting_source(self, obj: QAPair) -> str:
        source = obj.source_text or (obj.chunk.text if obj.chunk_id else "")
        if not source:
            return "-"
        return format_html(
            '<div class="qa-source">{}</div>',
            mark_safe(highlight_supporting_sentence(obj.answer, source)),  # noqa: S308 - escaped
        )

    @admin.display(description="Duplicate of")
    def duplicate_link(self, obj: QAPair) -> str:
        if obj.duplicate_of_id is None:
            return "-"
        url = reverse("admin:curation_qapair_change", args=[obj.duplicate_of_id])
        return format_html('<a href="{}">#{}</a>', url, obj.duplicate_of_id)

    @admin.display(description="History")
    def history(self, obj: QAPair) -> str:
        revisions = list(selectors.qa_pair_history(pair=obj))
        if not revisions:
            return "No changes recorded yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    date_format(timezone.localtime(revision.created_at), "DATETIME_FORMAT"),
                    revision.user or "-",
                    revision.get_action_display(),
                    self._changes(revision.changes),
                )
                for revision in revisions
            ),
        )
        return format_html(
            '<table class="qa-history"><thead><tr><th>When</th><th>Who</th><th>Action</th>'
            "<th>Change (before → after)</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @staticmethod
    def _changes(changes: dict) -> str:
        items = []
        for field, value in changes.items():
            if isinstance(value, list) and len(value) == 2:
                before, after = ("-" if v is None or v == "" else v for v in value)
                items.append(
                    format_html(
                        '<div class="qa-change"><strong>{}</strong>: '
                        '<span class="qa-before">{}</span> → <span class="qa-after">{}</span>'
                        "</div>",
                        field.replace("_", " "),
                        before,
                        after,
                    )
                )
            else:
                items.append(
                    format_html(
                        '<div class="qa-change"><strong>{}</strong>: {}</div>',
                        field.replace("_", " "),
                        value,
                    )
                )
        return format_html_join("", "{}", ((item,) for item in items)) if items else "-"

    def save_model(self, request, obj, form, change) -> None:
        # ``obj`` already holds the form's values in memory; the services read the stored row,
        # compare, write and record revisions, so the instance itself is never saved here.
        data = form.cleaned_data
        if {"question", "answer"} & set(form.changed_data):
            services.qa_pair_edit(
                pair=obj, reviewer=request.user, question=data["question"], answer=data["answer"]
            )
        if "status" in form.changed_data:
            services.qa_pair_set_status(pair=obj, status=data["status"], reviewer=request.user)
        obj.refresh_from_db()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            # A race the form could not see (another reviewer's edit in between).
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # -- bulk actions ----------------------------------------------------------------------

    def _confirmation(
        self,
        request: HttpRequest,
        queryset,
        *,
        action: str,
        title: str,
        button: str,
        form: forms.Form | None = None,
        count: int | None = None,
    ) -> TemplateResponse:
        """An intermediate page that posts the same action again with ``confirm=yes``."""
        count = queryset.count() if count is None else count
        preview = list(queryset.order_by("id").values_list("id", "question")[:10])
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "action": action,
            "button": button,
            "form": form,
            "count": count,
            "count_label": _count(count),
            "select_across": request.POST.get("select_across") == "1",
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "preview": preview,
            "more": f"{count - len(preview):,}",
            "changelist_url": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/curation/qapair/action_confirmation.html", context)

    @staticmethod
    def _confirmed(request: HttpRequest) -> bool:
        return request.POST.get("confirm") == "yes"

    def _set_status(self, request, queryset, *, status: str, action: str, verb: str, done: str):
        if request.POST.get("select_across") == "1" and not self._confirmed(request):
            count = queryset.count()
            suffix = " to pending" if status == QAPair.Status.PENDING else ""
            return self._confirmation(
                request,
                queryset,
                action=action,
                title=f"{verb} all {_count(count)} matching the current filter{suffix}?",
                button=f"Yes, {verb.lower()} all {count:,}",
                count=count,
            )
        changed = services.qa_pairs_bulk_set_status(
            pairs=queryset, status=status, reviewer=request.user
        )
        self.message_user(request, f"{done} {_count(changed)}.", messages.SUCCESS)
        return None

    @admin.action(description="Approve selected QA pairs", permissions=["review"])
    def approve_pairs(self, request, queryset):
        return self._set_status(
            request,
            queryset,
            status=QAPair.Status.APPROVED,
            action="approve_pairs",
            verb="Approve",
            done="Approved",
        )

    @admin.action(description="Reject selected QA pairs", permissions=["review"])
    def reject_pairs(self, request, queryset):
        return self._set_status(
            request,
            queryset,
            status=QAPair.Status.REJECTED,
            action="reject_pairs",
            verb="Reject",
            done="Rejected",
        )

    @admin.action(description="Reset selected QA pairs to pending", permissions=["review"])
    def reset_pairs(self, request, queryset):
        return self._set_status(
            request,
            queryset,
            status=QAPair.Status.PENDING,
            action="reset_pairs",
            verb="Reset",
            done="Reset to pending:",
        )

    @admin.action(description="Mark selected QA pairs as duplicates of…", permissions=["review"])
    def mark_duplicate_of(self, request, queryset):
        form = DuplicateOfForm(request.POST if self._confirmed(request) else None)
        if not form.is_bound or not form.is_valid():
            count = queryset.count()
            scope = "all " if request.POST.get("select_across") == "1" else ""
            return self._confirmation(
                request,
                queryset,
                action="mark_duplicate_of",
                title=f"Mark {scope}{_count(count)} as duplicates of which pair?",
                button="Mark as duplicates and reject",
                form=form,
                count=count,
            )
        canonical = form.cleaned_data["canonical"]
        marked = services.qa_pairs_mark_duplicate_of(
            pairs=queryset, canonical=canonical, reviewer=request.user
        )
        self.message_user(
            request,
            f"Marked {_count(marked)} as duplicates of #{canonical.pk} and rejected them.",
            messages.SUCCESS,
        )
        return None

    @admin.action(
        description="Re-generate the answers of selected QA pairs…", permissions=["review"]
    )
    def regenerate_answers(self, request, queryset):
        form = RegenerateForm(request.POST if self._confirmed(request) else None)
        if not form.is_bound or not form.is_valid():
            count = queryset.count()
            scope = "all " if request.POST.get("select_across") == "1" else ""
            return self._confirmation(
                request,
                queryset,
                action="regenerate_answers",
                title=f"Re-generate the answers of {scope}{_count(count)} with which endpoint?",
                button="Re-generate answers",
                form=form,
                count=count,
            )
        endpoint = form.cleaned_data["endpoint"]
        try:
            queued = services.qa_pairs_regenerate_enqueue(
                pairs=queryset, endpoint=endpoint, reviewer=request.user
            )
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return None
        self.message_user(
            request,
            f"Queued {_count(queued)} for new answers from {endpoint.name}. Each answer changes "
            "as it arrives, with a revision; the original answer is kept.",
            messages.SUCCESS,
        )
        return None

    # -- the focused review page and the dashboard ----------------------------------------

    def get_urls(self):
        return [
            path(
                "review/",
                self.admin_site.admin_view(self.review_view),
                name="curation_qapair_review",
            ),
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="curation_qapair_dashboard",
            ),
            *super().get_urls(),
        ]

    @staticmethod
    def _review_url(*, manual_id: int | None, order: str, pair_id: int | None = None) -> str:
        params = {"order": order}
        if manual_id is not None:
            params["manual"] = manual_id
        if pair_id is not None:
            params["pair"] = pair_id
        return reverse("admin:curation_qapair_review") + "?" + urlencode(params)

    def review_view(self, request: HttpRequest) -> HttpResponse:
        """One pending pair at a time next to its source, decided with a key press."""
        if not self.has_review_permission(request):
            raise PermissionDenied
        choices = ReviewFilterForm(request.GET)
        choices.is_valid()  # an unknown manual or order falls back to the default
        manual = choices.cleaned_data.get("manual")
        manual_id = manual.pk if manual else None
        order = choices.cleaned_data.get("order") or "grounding"
        requested = choices.cleaned_data.get("pair")
        action_form = None
        if request.method == "POST":
            action_form = ReviewActionForm(request.POST)
            if not action_form.is_valid():
                return HttpResponseRedirect(self._review_url(manual_id=manual_id, order=order))
            response = self._review_decide(request, action_form, manual_id=manual_id, order=order)
            if response is not None:
                return response
            requested = action_form.cleaned_data["pair"]  # the edit failed: show it again
        position = selectors.qa_pair_review_position(
            pair_id=requested, manual_id=manual_id, order=order
        )
        pair = selectors.qa_pair_for_review(pair_id=position.pair_id) if position else None
        counts = selectors.qa_pair_status_counts(manual_id=manual_id)
        context = {
            **self.admin_site.each_context(request),
            "title": "Review QA pairs",
            "opts": self.model._meta,
            "choices": choices,
            "manual": manual,
            "order": order,
            "orders": selectors.REVIEW_ORDERS.items(),
            "counts": counts,
            "pair": pair,
            "position": position,
            "action_form": action_form,
            "editing": action_form is not None,
        }
        if pair is not None:
            source = pair.source_text or (pair.chunk.text if pair.chunk_id else "")
            context.update(
                highlighted_source=mark_safe(  # noqa: S308 - every part is escaped
                    highlight_supporting_sentence(pair.answer, source)
                ),
                action_url=self._review_url(manual_id=manual_id, order=order, pair_id=pair.pk),
                next_url=position.next_id
                and self._review_url(manual_id=manual_id, order=order, pair_id=position.next_id),
                previous_url=position.previous_id
                and self._review_url(
                    manual_id=manual_id, order=order, pair_id=position.previous_id
                ),
                # Skipping past the last pair starts again at the top of the queue.
                skip_url=self._review_url(
                    manual_id=manual_id, order=order, pair_id=position.next_id
                ),
                change_url=reverse("admin:curation_qapair_change", args=[pair.pk]),
                flag_labels=[flag.replace("_", " ") for flag in pair.flags],
                text_changed=(pair.question, pair.answer)
                != (pair.original_question, pair.original_answer),
            )
        return TemplateResponse(request, "admin/curation/review/review.html", context)

    def _review_decide(
        self, request: HttpRequest, form: ReviewActionForm, *, manual_id: int | None, order: str
    ) -> HttpResponse | None:
        """Apply one decision, then send the reviewer on (None: show the form's errors)."""
        data = form.cleaned_data
        pair = QAPair.objects.filter(pk=data["pair"]).first()
        if pair is None:
            self.message_user(request, "That QA pair no longer exists.", messages.WARNING)
            return HttpResponseRedirect(self._review_url(manual_id=manual_id, order=order))
        # The next pair is found before the decision takes this one out of the queue.
        position = selectors.qa_pair_review_position(
            pair_id=pair.pk, manual_id=manual_id, order=order
        )
        next_id = position.next_id if position and position.pair_id == pair.pk else None
        action = data["action"]
        if action in ("edit", "edit_approve"):
            try:
                pair = services.qa_pair_edit(
                    pair=pair,
                    reviewer=request.user,
                    question=data["question"],
                    answer=data["answer"],
                )
            except ValidationError as exc:
                errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
                for field, messages_ in errors.items():
                    for message in messages_:
                        form.add_error(field if field in form.fields else None, message)
                return None
            if action == "edit":
                self.message_user(request, f"Saved your edit of “{_short(pair.question)}”.")
                return HttpResponseRedirect(
                    self._review_url(manual_id=manual_id, order=order, pair_id=pair.pk)
                )
        status = QAPair.Status.REJECTED if action == "reject" else QAPair.Status.APPROVED
        services.qa_pair_set_status(pair=pair, status=status, reviewer=request.user)
        verb = "Rejected" if status == QAPair.Status.REJECTED else "Approved"
        self.message_user(request, f"{verb} “{_short(pair.question)}”.", messages.SUCCESS)
        return HttpResponseRedirect(
            self._review_url(manual_id=manual_id, order=order, pair_id=next_id)
        )

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Where review stands: pairs per status, per document and reviewers' daily work."""
        if not self.has_review_permission(request):
            raise PermissionDenied
        choices = ReviewFilterForm(request.GET)
        choices.is_valid()
        manual = choices.cleaned_data.get("manual")
        manual_id = manual.pk if manual else None
        changelist = reverse("admin:curation_qapair_changelist")
        scope = {"manual__id__exact": manual_id} if manual_id else {}

        def link(**params) -> str:
            return changelist + "?" + urlencode({**scope, **params})

        counts = selectors.qa_pair_status_counts(manual_id=manual_id)
        statuses = (QAPair.Status.APPROVED, QAPair.Status.PENDING, QAPair.Status.REJECTED)
        documents = []
        for document in selectors.documents_review_counts(manual_id=manual_id):
            where = {"manual__id__exact": document.manual_id, "document": document.pk}
            documents.append(
                {
                    "document": document,
                    "counts": [
                        (getattr(document, status), link(**where, status__exact=status))
                        for status in statuses
                    ],
                    "total": document.total,
                    "all_url": link(**where),
                }
            )
        days, throughput = selectors.review_throughput(days=14)
        context = {
            **self.admin_site.each_context(request),
            "title": "Review dashboard" + (f": {manual.name}" if manual else ""),
            "opts": self.model._meta,
            "choices": choices,
            "manual": manual,
            "counts": counts,
            "status_links": [
                ("Pending", counts.pending, link(status__exact=QAPair.Status.PENDING)),
                ("Approved", counts.approved, link(status__exact=QAPair.Status.APPROVED)),
                ("Rejected", counts.rejected, link(status__exact=QAPair.Status.REJECTED)),
                ("All", counts.total, link()),
            ],
            "documents": documents,
            "days": days,
            "throughput": throughput,
            "review_url": self._review_url(manual_id=manual_id, order="grounding"),
            "flagged_url": link(status__exact=QAPair.Status.PENDING, flag="any"),
            "source_changed_url": link(source_changed="yes"),
        }
        return TemplateResponse(request, "admin/curation/review/dashboard.html", context)
