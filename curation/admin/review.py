"""The focused review page (one pending pair at a time) and the review dashboard."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe

from curation import selectors, services
from curation.admin.forms import ReviewActionForm, ReviewFilterForm
from curation.highlighting import highlight_supporting_sentence
from curation.models import (
    QAPair,
)
from manualqa.admin_tools import ExtraViewsMixin, shortened


class ReviewPagesMixin(ExtraViewsMixin):
    """The focused review page and the dashboard, as views of :class:`QAPairAdmin`."""

    extra_views = (
        ("review/", "review_view", "review"),
        ("dashboard/", "dashboard_view", "dashboard"),
    )

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
        context = self.page_context(
            request,
            "Review QA pairs",
            choices=choices,
            manual=manual,
            order=order,
            orders=selectors.REVIEW_ORDERS.items(),
            counts=counts,
            pair=pair,
            position=position,
            action_form=action_form,
            editing=action_form is not None,
        )
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
                self.message_user(request, f"Saved your edit of “{shortened(pair.question, 80)}”.")
                return HttpResponseRedirect(
                    self._review_url(manual_id=manual_id, order=order, pair_id=pair.pk)
                )
        status = QAPair.Status.REJECTED if action == "reject" else QAPair.Status.APPROVED
        services.qa_pair_set_status(pair=pair, status=status, reviewer=request.user)
        verb = "Rejected" if status == QAPair.Status.REJECTED else "Approved"
        self.message_user(request, f"{verb} “{shortened(pair.question, 80)}”.", messages.SUCCESS)
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
        context = self.page_context(
            request,
            "Review dashboard" + (f": {manual.name}" if manual else ""),
            choices=choices,
            manual=manual,
            counts=counts,
            status_links=[
                ("Pending", counts.pending, link(status__exact=QAPair.Status.PENDING)),
                ("Approved", counts.approved, link(status__exact=QAPair.Status.APPROVED)),
                ("Rejected", counts.rejected, link(status__exact=QAPair.Status.REJECTED)),
                ("All", counts.total, link()),
            ],
            documents=documents,
            days=days,
            throughput=throughput,
            review_url=self._review_url(manual_id=manual_id, order="grounding"),
            flagged_url=link(status__exact=QAPair.Status.PENDING, flag="any"),
            source_changed_url=link(source_changed="yes"),
        )
        return TemplateResponse(request, "admin/curation/review/dashboard.html", context)
