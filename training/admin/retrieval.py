"""Admin for retrieval jobs (issue 18): read only, launched and steered on their pages."""

from __future__ import annotations

from django.contrib import admin

from manualqa.admin_tools import JobAdminMixin
from training import retrieval_jobs
from training.models import RetrievalJob


@admin.register(RetrievalJob)
class RetrievalJobAdmin(JobAdminMixin, admin.ModelAdmin):
    list_display = ("id", "name", "kind", "snapshot", "status", "progress", "created_at")
    list_select_related = ("snapshot",)
    list_filter = ("status", "kind")
    search_fields = ("name", "base_model", "message")
    actions = ["cancel"]

    def progress_label(self, obj: RetrievalJob) -> str:
        return f"{obj.step}/{obj.total_steps or '?'} steps"

    @admin.action(description="Cancel the selected jobs", permissions=["launch"])
    def cancel(self, request, queryset) -> None:
        # Its refusals are one message each ("Job #3 is succeeded; too late.").
        self.act_on_each(request, queryset, retrieval_jobs.retrieval_job_cancel, row_argument="job")

    def has_launch_permission(self, request) -> bool:
        return request.user.has_perm("training.add_retrievaljob")
