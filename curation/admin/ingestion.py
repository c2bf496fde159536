"""Admin pages for ingestion runs, and the "Ingest a source" page."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from curation import services
from curation.models import (
    IngestionRun,
    Manual,
)
from manualqa.admin_tools import ChoicesFilter, ExtraViewsMixin, JobAdminMixin, html_table
from manualqa.forms import add_errors_above


class IngestForm(forms.Form):
    manual = forms.ModelChoiceField(queryset=Manual.objects.all(), required=False)
    new_manual_name = forms.CharField(
        required=False, help_text="Or create a new manual with this name."
    )
    source = forms.CharField(
        max_length=1000,
        help_text="A start URL (pages under its path are crawled, and PDFs it links to), a "
        "folder of HTML, markdown or PDF files, a .zip of HTML pages or PDFs, or a PDF on the "
        "server.",
    )
    max_pages = forms.IntegerField(min_value=1, initial=500)

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("manual") and not cleaned.get("new_manual_name", "").strip():
            raise ValidationError("Choose a manual or name a new one.")
        return cleaned


class IngestionStatusFilter(ChoicesFilter):
    title = "outcome"
    parameter_name = "outcome"
    options = {
        "active": ("In progress", ~Q(status__in=IngestionRun.FINISHED)),
        "page_errors": (
            "Finished with page errors",
            Q(status=IngestionRun.Status.SUCCEEDED, pages_failed__gt=0),
        ),
    }


@admin.register(IngestionRun)
class IngestionRunAdmin(JobAdminMixin, ExtraViewsMixin, admin.ModelAdmin):
    # Read only: runs are started through the ingest page, which validates the source.
    extra_views = (("ingest/", "ingest_view", "ingest"),)
    actions = ["ingest_again"]
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
        "options",
        *IngestionRun.LIFECYCLE,
    )
    exclude = ("errors",)

    def progress_label(self, obj: IngestionRun) -> str:
        total = obj.pages_total if obj.pages_total is not None else "?"
        label = f"{obj.pages_done}/{total} pages"
        if obj.status == IngestionRun.Status.EMBEDDING:
            label += f", {obj.chunks_embedded}/{obj.chunks_created} chunks embedded"
        return label

    @admin.display(description="Page errors")
    def page_errors(self, obj: IngestionRun) -> str:
        if not obj.errors:
            return "None"
        # A note (an image left out of a page that was kept) has "note" in place of "error".
        return html_table(
            ("Page", "Error"),
            (
                (e["page"], e["error"] if "error" in e else f"Note: {e.get('note', '')}")
                for e in obj.errors
            ),
        )

    def has_ingest_permission(self, request) -> bool:
        return request.user.has_perm("curation.add_ingestionrun")

    @admin.action(description="Ingest the source again", permissions=["ingest"])
    def ingest_again(self, request: HttpRequest, queryset) -> None:
        """For runs that failed, crashed, or whose worker died (review M5)."""
        again = services.ingestion_run_again
        self.act_on_each(request, queryset, again, done="Queued {count} ingestion run(s).")

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
                add_errors_above(form, exc)
            else:
                return self.to_created(
                    request, run, f"Ingestion #{run.pk} queued for {manual.name}."
                )
        context = self.page_context(request, "Ingest a manual source", form=form)
        return TemplateResponse(request, "admin/curation/ingestionrun/ingest.html", context)
