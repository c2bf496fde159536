"""The QA-pair review list, its bulk decisions and the change page with its history."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from curation import qa, selectors, services
from curation.admin.filters import (
    DocumentFilter,
    FlagFilter,
    GenerationRunFilter,
    GroundingBandFilter,
    SourceChangedFilter,
)
from curation.admin.forms import DuplicateOfForm, QAPairChangeForm, RegenerateForm
from curation.admin.review import ReviewPagesMixin
from curation.highlighting import highlight_supporting_sentence
from curation.models import (
    QAPair,
)
from manualqa.admin_tools import shortened


def _count(count: int) -> str:
    return f"{count:,} QA pair{'' if count == 1 else 's'}"


def _status_action(status: str, verb: str, done: str, description: str):
    """A bulk action that sets the selected pairs' status, after a confirmation page."""
    name = f"{verb.lower()}_pairs"

    @admin.action(description=description, permissions=["review"])
    def action(self, request, queryset):
        return self._set_status(request, queryset, status=status, action=name, verb=verb, done=done)

    action.__name__ = name
    return action


@admin.register(QAPair)
class QAPairAdmin(ReviewPagesMixin, admin.ModelAdmin):
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
        return shortened(obj.question, 140)

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
        context = self.page_context(
            request,
            title,
            action=action,
            button=button,
            form=form,
            count=count,
            count_label=_count(count),
            select_across=request.POST.get("select_across") == "1",
            selected=request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            preview=preview,
            more=f"{count - len(preview):,}",
            changelist_url=request.get_full_path(),
        )
        return TemplateResponse(request, "admin/curation/qapair/action_confirmation.html", context)

    @staticmethod
    def _confirmed(request: HttpRequest) -> bool:
        return request.POST.get("confirm") == "yes"

    def _set_status(self, request, queryset, *, status: str, action: str, verb: str, done: str):
        across = request.POST.get("select_across") == "1"
        if across and status == QAPair.Status.APPROVED and not _filtered_to_feedback(request):
            # Owners' thumbs-down pairs hold text anyone on the site wrote: approving "all
            # matching" never takes them along unless the list is filtered to them (security
            # review M4); chosen one by one, they are approved like any pair.
            queryset = queryset.exclude(origin=QAPair.Origin.CHAT_FEEDBACK)
        if across and not self._confirmed(request):
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

    def _confirmed_form(self, request, queryset, form_class, *, action, title, button):
        """The action's form once the user confirmed it with valid input, else ``None`` and
        the confirmation page to show (``title`` may name ``{scope}`` and ``{pairs}``)."""
        form = form_class(request.POST if self._confirmed(request) else None)
        if form.is_bound and form.is_valid():
            return form, None
        count = queryset.count()
        scope = "all " if request.POST.get("select_across") == "1" else ""
        page = self._confirmation(
            request,
            queryset,
            action=action,
            title=title.format(scope=scope, pairs=_count(count)),
            button=button,
            form=form,
            count=count,
        )
        return None, page

    approve_pairs = _status_action(
        QAPair.Status.APPROVED, "Approve", "Approved", "Approve selected QA pairs"
    )
    reject_pairs = _status_action(
        QAPair.Status.REJECTED, "Reject", "Rejected", "Reject selected QA pairs"
    )
    reset_pairs = _status_action(
        QAPair.Status.PENDING, "Reset", "Reset to pending:", "Reset selected QA pairs to pending"
    )

    @admin.action(description="Mark selected QA pairs as duplicates of…", permissions=["review"])
    def mark_duplicate_of(self, request, queryset):
        form, confirmation = self._confirmed_form(
            request,
            queryset,
            DuplicateOfForm,
            action="mark_duplicate_of",
            title="Mark {scope}{pairs} as duplicates of which pair?",
            button="Mark as duplicates and reject",
        )
        if form is None:
            return confirmation
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
        form, confirmation = self._confirmed_form(
            request,
            queryset,
            RegenerateForm,
            action="regenerate_answers",
            title="Re-generate the answers of {scope}{pairs} with which endpoint?",
            button="Re-generate answers",
        )
        if form is None:
            return confirmation
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


def _filtered_to_feedback(request: HttpRequest) -> bool:
    """Whether the changelist the action came from (its filters are the POST's query string)
    shows chat-feedback pairs on purpose."""
    return request.GET.get("origin__exact") == QAPair.Origin.CHAT_FEEDBACK
