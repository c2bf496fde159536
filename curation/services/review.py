"""Writes for reviewing QA pairs: edit, approve, reject, reset, mark duplicate, regenerate.

Every change records a ``QAPairRevision`` with the reviewer, the time and the values before and
after; bulk actions write their revisions in bulk. ``original_question``/``original_answer`` are
never touched, so the generated text is never lost.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from curation import qa
from curation.models import QAPair, QAPairRevision
from curation.services.qa_pairs import qa_pair_text_changed

__all__ = [
    "qa_pair_edit",
    "qa_pair_set_status",
    "qa_pairs_bulk_set_status",
    "qa_pairs_mark_duplicate_of",
    "user_can_review",
]

_STATUS_ACTIONS = {
    QAPair.Status.APPROVED: QAPairRevision.Action.APPROVE,
    QAPair.Status.REJECTED: QAPairRevision.Action.REJECT,
    QAPair.Status.PENDING: QAPairRevision.Action.RESET,
}


def user_can_review(user) -> bool:
    return bool(user and user.is_active and user.has_perm("curation.review_qapair"))


def _require_reviewer(user) -> None:
    if not user_can_review(user):
        raise PermissionDenied("Reviewing QA pairs needs the Reviewer role.")


@transaction.atomic
def qa_pair_edit(*, pair: QAPair, reviewer, question: str, answer: str) -> QAPair:
    """Change a pair's question and/or answer, keeping the original text and recording both."""
    _require_reviewer(reviewer)
    question, answer = question.strip(), answer.strip()
    if not question:
        raise ValidationError({"question": "The question cannot be empty."})
    if not answer:
        raise ValidationError({"answer": "The answer cannot be empty."})
    pair = QAPair.objects.select_for_update().get(pk=pair.pk)
    changes = {}
    if question != pair.question:
        changes["question"] = [pair.question, question]
    if answer != pair.answer:
        changes["answer"] = [pair.answer, answer]
    if not changes:
        return pair
    pair.question, pair.answer = question, answer
    pair.question_hash = qa.question_hash(question)
    qa_pair_text_changed(pair)
    pair.reviewed_by = reviewer
    pair.reviewed_at = timezone.now()
    try:
        with transaction.atomic():
            pair.save()
    except IntegrityError:
        raise ValidationError(
            {"question": "Another pair from the same passage already asks this question."}
        ) from None
    QAPairRevision.objects.create(
        pair=pair, action=QAPairRevision.Action.EDIT, changes=changes, user=reviewer
    )
    return pair


@transaction.atomic
def qa_pair_set_status(*, pair: QAPair, status: str, reviewer) -> QAPair:
    """Approve, reject or reset one pair, recording who did it and when."""
    _require_reviewer(reviewer)
    if status not in _STATUS_ACTIONS:
        raise ValidationError({"status": f"Unknown status {status!r}."})
    pair = QAPair.objects.select_for_update().get(pk=pair.pk)
    if pair.status == status:
        return pair
    before = pair.status
    pair.status = status
    pair.reviewed_by = reviewer
    pair.reviewed_at = timezone.now()
    pair.save(update_fields=["status", "reviewed_by", "reviewed_at", "updated_at"])
    QAPairRevision.objects.create(
        pair=pair,
        action=_STATUS_ACTIONS[status],
        changes={"status": [before, status]},
        user=reviewer,
    )
    return pair


@transaction.atomic
def qa_pairs_bulk_set_status(*, pairs: QuerySet[QAPair], status: str, reviewer) -> int:
    """Set the status of every pair in ``pairs`` in one statement, with a revision for each.

    Returns how many pairs changed (pairs already in that status are left alone).
    """
    _require_reviewer(reviewer)
    if status not in _STATUS_ACTIONS:
        raise ValidationError({"status": f"Unknown status {status!r}."})
    changing = pairs.exclude(status=status).order_by()
    before = list(changing.values_list("id", "status"))
    if not before:
        return 0
    now = timezone.now()
    updated = QAPair.objects.filter(id__in=[pk for pk, _ in before]).update(
        status=status, reviewed_by=reviewer, reviewed_at=now, updated_at=now
    )
    action = _STATUS_ACTIONS[status]
    QAPairRevision.objects.bulk_create(
        [
            QAPairRevision(
                pair_id=pk,
                action=action,
                changes={"status": [old, status]},
                user=reviewer,
                created_at=now,
            )
            for pk, old in before
        ],
        batch_size=5000,
    )
    return updated


@transaction.atomic
def qa_pairs_mark_duplicate_of(*, pairs: QuerySet[QAPair], canonical: QAPair, reviewer) -> int:
    """Link ``pairs`` to ``canonical`` as duplicates and reject them, with revisions."""
    _require_reviewer(reviewer)
    canonical = QAPair.objects.get(pk=canonical.pk)
    if canonical.duplicate_of_id:
        canonical = canonical.duplicate_of
    rows = list(
        pairs.exclude(pk=canonical.pk).order_by().values_list("id", "duplicate_of_id", "status")
    )
    if not rows:
        return 0
    now = timezone.now()
    revisions = []
    for pk, old_canonical, old_status in rows:
        pair = QAPair.objects.select_for_update().get(pk=pk)
        pair.duplicate_of = canonical
        if qa.FLAG_DUPLICATE not in pair.flags:
            pair.flags = [*pair.flags, qa.FLAG_DUPLICATE]
        pair.status = QAPair.Status.REJECTED
        pair.reviewed_by = reviewer
        pair.reviewed_at = now
        pair.save(update_fields=["duplicate_of", "flags", "status", "reviewed_by", "reviewed_at"])
        revisions.append(
            QAPairRevision(
                pair_id=pk,
                action=QAPairRevision.Action.MARK_DUPLICATE,
                changes={
                    "duplicate_of": [old_canonical, canonical.pk],
                    "status": [old_status, QAPair.Status.REJECTED],
                },
                user=reviewer,
                created_at=now,
            )
        )
    QAPairRevision.objects.bulk_create(revisions)
    return len(rows)
