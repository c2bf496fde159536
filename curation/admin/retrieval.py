"""Admin for the retrieval models retrieval jobs registered, and the runs that re-embed a
manual with one (issue 18): read only; they are made by jobs and steered on their pages."""

from __future__ import annotations

from django.contrib import admin

from curation.models import ReembedRun, RetrievalModel
from manualqa.admin_tools import JobAdminMixin, ReadOnlyAdminMixin


@admin.register(RetrievalModel)
class RetrievalModelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "kind", "dimensions", "decline_below", "base_model", "created_at")
    list_filter = ("kind",)
    search_fields = ("name", "path", "base_model")

    def has_delete_permission(self, request, obj=None) -> bool:
        # A manual's vectors point at their embedder: one in use cannot go.
        return super().has_delete_permission(request, obj) and not (
            obj is not None and obj.manuals.exists()
        )


@admin.register(ReembedRun)
class ReembedRunAdmin(JobAdminMixin, admin.ModelAdmin):
    list_display = ("id", "manual", "embedder", "status", "progress", "created_at")
    list_select_related = ("manual", "embedder")
    list_filter = ("status",)

    def progress_label(self, obj: ReembedRun) -> str:
        return f"{obj.done}/{obj.total} chunks"
