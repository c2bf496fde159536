"""Admin pages for question sets that grow from reviewed thumbs-down pairs.

Training contributes the "Add to question set…" action to curation's QA-pair admin by
registering a subclass of it (the way a project extends ``django.contrib.auth``'s
``UserAdmin``), because curation must not import training. Versions are read-only and download
as the JSONL an evaluation accepts.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from curation.admin.qa_pairs import QAPairAdmin as CurationQAPairAdmin
from curation.models import Manual, QAPair
from manualqa.admin_tools import (
    ChoicesFilter,
    ExtraViewsMixin,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
    sortable_column,
)
from training import question_sets
from training.models import (
    QuestionSet,
    QuestionSetVersion,
)


class AddToQuestionSetForm(forms.Form):
    """What ``question_set_add_pairs`` takes; the service does the validation that matters."""

    question_set = forms.ModelChoiceField(
        queryset=QuestionSet.objects.select_related("manual").order_by("name"),
        required=False,
        help_text="The pairs become questions of its next version.",
    )
    new_set_name = forms.CharField(max_length=200, required=False, label="…or a new set named")
    new_set_manual = forms.ModelChoiceField(
        queryset=Manual.objects.order_by("name"),
        required=False,
        label="New set's manual",
        help_text="Optional: the new set then takes only this manual's pairs.",
    )

    def clean(self):
        data = super().clean()
        if (data.get("question_set") is None) == (not data.get("new_set_name", "").strip()):
            raise ValidationError("Choose a question set, or name a new one (not both).")
        return data


class ReviewedFeedbackFilter(ChoicesFilter):
    """The owners' thumbs-down pairs that a reviewer corrected and approved: the ones the
    "Add to question set…" action takes."""

    title = "regression questions"
    parameter_name = "regression"
    options = {
        "reviewed_feedback": (
            "Reviewed thumbs-down (can join a question set)",
            question_sets.qa_pairs_reviewed_feedback,
        ),
    }


admin.site.unregister(QAPair)


@admin.register(QAPair)
class QAPairAdmin(CurationQAPairAdmin):
    """Curation's review list, plus training's action that turns reviewed thumbs-down pairs
    into regression questions (curation cannot know about question sets)."""

    list_filter = (*CurationQAPairAdmin.list_filter, ReviewedFeedbackFilter)
    actions = [*CurationQAPairAdmin.actions, "add_to_question_set"]

    def has_grow_question_set_permission(self, request) -> bool:
        return request.user.is_active and request.user.has_perm(question_sets.GROW_PERMISSION)

    @admin.action(
        description="Add selected thumbs-down pairs to a question set…",
        permissions=["grow_question_set"],
    )
    def add_to_question_set(self, request: HttpRequest, queryset):
        pair_ids = list(queryset.values_list("pk", flat=True))
        refusals = question_sets.question_set_refusals(pair_ids=pair_ids)
        if refusals:
            self.message_user(request, " ".join(refusals), messages.ERROR)
            return None
        form, confirmation = self._confirmed_form(
            request,
            queryset,
            AddToQuestionSetForm,
            action="add_to_question_set",
            title="Add {scope}{pairs} to which question set?",
            button="Add to the question set",
        )
        if form is None:
            return confirmation
        data = form.cleaned_data
        try:
            addition = question_sets.question_set_add_pairs(
                pairs=queryset,
                user=request.user,
                question_set=data["question_set"],
                new_set_name=data["new_set_name"],
                new_set_manual=data["new_set_manual"],
            )
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return None
        already = (
            f" Already in the set: {', '.join(f'#{pk}' for pk in addition.already_in_set)}."
            if addition.already_in_set
            else ""
        )
        if addition.version is None:
            self.message_user(
                request,
                f"Nothing added: every chosen pair is in {addition.question_set} already.",
                messages.WARNING,
            )
            return None
        version = addition.version
        self.message_user(
            request,
            format_html(
                'Added {} to <a href="{}">{}</a>: {} questions in all.{}',
                f"{len(addition.added):,} question{'' if len(addition.added) == 1 else 's'}",
                reverse("admin:training_questionsetversion_change", args=[version.pk]),
                version,
                f"{version.question_count:,}",
                already,
            ),
            messages.SUCCESS,
        )
        return None


def _download_link(version_id: int, text: str = "JSONL") -> str:
    url = reverse("admin:training_questionsetversion_download", args=[version_id])
    return format_html('<a href="{}" download>{}</a>', url, text)


class QuestionSetVersionInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = QuestionSetVersion
    fields = (
        "version",
        "question_count",
        "added",
        "short_hash",
        "created_by",
        "created_at",
        "download",
    )
    ordering = ("-version",)
    max_num = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").defer("jsonl")

    @admin.display(description="Pairs added")
    def added(self, obj: QuestionSetVersion) -> int:
        return len(obj.added_pairs)

    @admin.display(description="Hash")
    def short_hash(self, obj: QuestionSetVersion) -> str:
        return obj.content_hash[:12]

    @admin.display(description="File")
    def download(self, obj: QuestionSetVersion) -> str:
        return _download_link(obj.pk)


@admin.register(QuestionSet)
class QuestionSetAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Question sets, read only: they are made and grown by the "Add to question set…" action
    on the QA-pair review list, one immutable version per addition."""

    list_display = (
        "name",
        "slug",
        "manual",
        "newest_version",
        "questions",
        "newest_file",
        "created_by",
        "created_at",
    )
    list_select_related = ("manual", "created_by")
    list_filter = ("manual",)
    search_fields = ("name", "slug", "description")
    fields = ("name", "slug", "manual", "description", "created_by", "created_at")
    inlines = [QuestionSetVersionInline]

    def get_queryset(self, request):
        newest = QuestionSetVersion.objects.filter(question_set=OuterRef("pk")).order_by("-version")
        return (
            super()
            .get_queryset(request)
            .annotate(
                newest_version_number=Subquery(newest.values("version")[:1]),
                newest_version_id=Subquery(newest.values("pk")[:1]),
                newest_question_count=Subquery(newest.values("question_count")[:1]),
            )
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    newest_version = sortable_column("newest_version_number", "Version")
    questions = sortable_column("newest_question_count", "Questions")

    @admin.display(description="File")
    def newest_file(self, obj: QuestionSet) -> str:
        return _download_link(obj.newest_version_id) if obj.newest_version_id else "-"


@admin.register(QuestionSetVersion)
class QuestionSetVersionAdmin(ReadOnlyAdminMixin, ExtraViewsMixin, admin.ModelAdmin):
    """One version of a question set: its questions as written, never changed, and the file."""

    extra_views = (("<int:object_id>/download/", "download_view", "download"),)
    list_display = (
        "__str__",
        "question_set",
        "version",
        "question_count",
        "short_hash",
        "created_by",
        "created_at",
        "download",
    )
    list_select_related = ("question_set", "created_by")
    list_filter = ("question_set",)
    fields = (
        "question_set",
        "version",
        "question_count",
        "content_hash",
        "added_pair_links",
        "download",
        "jsonl",
        "created_by",
        "created_at",
    )
    readonly_fields = ("added_pair_links", "download")

    def get_queryset(self, request):
        # Pages read the file only where they show it (a version can hold thousands of lines).
        return super().get_queryset(request).defer("jsonl")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # versions leave only with their set

    @admin.display(description="Hash", ordering="content_hash")
    def short_hash(self, obj: QuestionSetVersion) -> str:
        return obj.content_hash[:12]

    @admin.display(description="File")
    def download(self, obj: QuestionSetVersion) -> str:
        return _download_link(obj.pk, obj.filename)

    @admin.display(description="Pairs added by this version")
    def added_pair_links(self, obj: QuestionSetVersion) -> str:
        if not obj.added_pairs:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}">#{}</a>',
            ((reverse("admin:curation_qapair_change", args=[pk]), pk) for pk in obj.added_pairs),
        )

    def download_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        version = (
            QuestionSetVersion.objects.select_related("question_set").filter(pk=object_id).first()
        )
        if version is None:
            raise Http404("No such question set version.")
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        response = HttpResponse(version.jsonl, content_type="application/jsonl; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{version.filename}"'
        return response
