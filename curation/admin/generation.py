"""Admin pages for QA-generation runs, and the page that starts one."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from curation import qa, services
from curation.models import (
    ChunkGeneration,
    DocumentChunk,
    GenerationRun,
    LLMEndpoint,
    Manual,
)
from manualqa.admin_tools import (
    ExtraViewsMixin,
    JobAdminMixin,
    ReadOnlyInlineMixin,
)
from manualqa.forms import add_errors_above


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


class ChunkGenerationInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = ChunkGeneration
    fields = ("chunk", "status", "pairs_created", "llm_calls", "error")
    verbose_name_plural = "Failed chunks"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(status=ChunkGeneration.Status.FAILED)
            .select_related("chunk")
        )


@admin.register(GenerationRun)
class GenerationRunAdmin(JobAdminMixin, ExtraViewsMixin, admin.ModelAdmin):
    # Read only: runs are started from manuals/documents, the command or the API.
    extra_views = (("start/", "start_view", "start"),)
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
        *GenerationRun.COUNTS,
        "cost",
        "questions_system_prompt",
        "questions_user_template",
        "answer_system_prompt",
        "answer_user_template",
        "cancel_requested",
        *GenerationRun.LIFECYCLE,
    )
    exclude = ("documents",)

    def progress_label(self, obj: GenerationRun) -> str:
        label = f"{obj.chunks_done + obj.chunks_failed}/{obj.chunks_total} chunks"
        if obj.status == GenerationRun.Status.SCORING:
            label += f", {obj.pairs_scored}/{obj.pairs_created} pairs scored"
        return label

    @admin.display(description="Est. cost (USD)")
    def cost(self, obj: GenerationRun) -> str:
        return "-" if obj.estimated_cost is None else f"{obj.estimated_cost:.4f}"

    @admin.display(description="Documents")
    def documents_list(self, obj: GenerationRun) -> str:
        names = [doc.source_name for doc in obj.documents.all()]
        return ", ".join(names) if names else "All documents of the manual"

    def has_steer_permission(self, request) -> bool:
        return request.user.has_perm("curation.change_generationrun")

    @admin.action(description="Cancel", permissions=["steer"])
    def cancel_runs(self, request, queryset) -> None:
        cancel = services.generation_run_cancel
        self.act_on_each(request, queryset, cancel, done="Cancelled {count} run(s).")

    @admin.action(description="Resume", permissions=["steer"])
    def resume_runs(self, request, queryset) -> None:
        resume = services.generation_run_resume
        self.act_on_each(request, queryset, resume, done="Resumed {count} run(s).")

    @admin.action(description="Retry failed chunks", permissions=["steer"])
    def retry_failed_chunks(self, request, queryset) -> None:
        retry = services.generation_run_retry_failed
        self.act_on_each(request, queryset, retry, done="Re-queued {count} run(s).")

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
                add_errors_above(form, exc)
            else:
                return self.to_created(
                    request,
                    run,
                    f"Generation #{run.pk} queued: {run.chunks_total} chunks with {run.endpoint}.",
                )
        context = self.page_context(
            request,
            f"Generate QA pairs from {manual.name}",
            form=form,
            manual=manual,
            documents=documents,
            chunk_count=DocumentChunk.objects.current()
            .filter(document__manual=manual, **({"document__in": documents} if documents else {}))
            .count(),
        )
        return TemplateResponse(request, "admin/curation/generationrun/start.html", context)
