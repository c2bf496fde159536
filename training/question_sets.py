"""Question sets that grow from use: reviewed thumbs-down pairs become regression questions.

An owner's thumbs-down raises a pending QA pair (origin ``chat_feedback``) holding their question
and the answer they marked wrong. Once a reviewer has corrected it (an edit) and approved it,
the pair is a *reviewed thumbs-down pair*: a failure with a known right answer. Adding such pairs
to a :class:`~training.models.QuestionSet` writes a new immutable
:class:`~training.models.QuestionSetVersion` whose questions are the JSON Lines an evaluation
accepts (:func:`training.evaluation.questions.questions_parse_jsonl`), so every corrected
failure is asked again of every model evaluated on the set.

The rule for "reviewed" is the one dataset snapshots use to let a thumbs-down pair train a
model (security review M4): an approved pair's text was still written by whoever chatted, so
it counts only once a reviewer has edited it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, QuerySet
from django.utils.text import slugify

from curation.models import Manual, QAPair, QAPairRevision
from manualqa import roles
from training.evaluation.questions import question_normalize, questions_parse_jsonl
from training.models import QuestionSet, QuestionSetVersion

__all__ = [
    "GROW_PERMISSION",
    "QuestionSetAddition",
    "qa_pairs_reviewed_feedback",
    "question_id_for_pair",
    "question_set_add_pairs",
    "question_set_create",
    "question_set_latest_version",
    "question_set_refusals",
    "question_set_version_get",
    "question_set_version_questions",
]

GROW_PERMISSION = "training.grow_questionset"
#: Refused pairs named in a refusal before "and N more".
MAX_LISTED_PAIRS = 20


# --------------------------------------------------------------------------------------------
# Selectors


def _listed(pair_ids: list[int]) -> str:
    shown = ", ".join(f"#{pk}" for pk in pair_ids[:MAX_LISTED_PAIRS])
    more = len(pair_ids) - MAX_LISTED_PAIRS
    return shown + (f" and {more:,} more" if more > 0 else "")


def qa_pairs_reviewed_feedback(pairs: QuerySet[QAPair] | None = None) -> QuerySet[QAPair]:
    """The thumbs-down pairs a reviewer has corrected and approved (of ``pairs``, or all)."""
    edited = QAPairRevision.objects.filter(pair=OuterRef("pk"), action=QAPairRevision.Action.EDIT)
    pairs = QAPair.objects.all() if pairs is None else pairs
    return pairs.filter(
        Exists(edited), origin=QAPair.Origin.CHAT_FEEDBACK, status=QAPair.Status.APPROVED
    )


def question_id_for_pair(pair_id: int) -> str:
    """The question id that names a QA pair in every set (and in snapshot test splits)."""
    return f"pair-{pair_id}"


def question_set_latest_version(question_set: QuestionSet) -> QuestionSetVersion | None:
    return question_set.versions.order_by("-version").first()


def question_set_refusals(*, pair_ids: list[int], manual: Manual | None = None) -> list[str]:
    """Why these pairs cannot join a question set (of ``manual``, if it has one), naming them;
    empty when they all can. The admin asks before showing its form, the service before writing.
    """
    chosen = QAPair.objects.filter(pk__in=pair_ids)
    reviewed = set(qa_pairs_reviewed_feedback(chosen).values_list("pk", flat=True))
    not_reviewed = [pk for pk in sorted(pair_ids) if pk not in reviewed]
    problems = []
    if not_reviewed:
        problems.append(
            "Only thumbs-down pairs that a reviewer has corrected and approved can become "
            f"regression questions; these are not: {_listed(not_reviewed)}."
        )
    if manual is not None:
        elsewhere = sorted(chosen.exclude(manual=manual).values_list("pk", flat=True))
        if elsewhere:
            problems.append(
                f"The question set is for {manual.name}; these pairs are from another manual: "
                f"{_listed(elsewhere)}."
            )
    return problems


def question_set_version_get(*, slug: str, version: int | None = None) -> QuestionSetVersion | None:
    """The set ``slug``'s version number ``version``, or its newest one; ``None`` if none."""
    versions = QuestionSetVersion.objects.select_related("question_set").filter(
        question_set__slug=slug
    )
    if version is not None:
        versions = versions.filter(version=version)
    return versions.order_by("-version").first()


def question_set_version_questions(version: QuestionSetVersion) -> list[dict[str, Any]]:
    """A version's questions, read back from its file as an evaluation reads them."""
    if not version.jsonl.strip():
        return []
    return questions_parse_jsonl(version.jsonl)


# --------------------------------------------------------------------------------------------
# Services


@transaction.atomic
def question_set_create(
    *, name: str, user, slug: str = "", manual: Manual | None = None, description: str = ""
) -> QuestionSet:
    """A new, empty question set; its first addition writes version 1.

    ``slug`` (default: from ``name``) names the set in ``manage.py evaluate --question-set`` and
    in its files. With a ``manual``, the set takes only that manual's pairs.
    """
    roles.require(user, GROW_PERMISSION, "Growing question sets needs the Reviewer role.")
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the question set."})
    slug = slugify(slug.strip() or name)[:100]
    if not slug:
        raise ValidationError({"name": "The name needs a letter or a digit."})
    if QuestionSet.objects.filter(slug=slug).exists():
        raise ValidationError(
            {"name": f"A question set named {slug!r} exists already: choose it instead."}
        )
    return QuestionSet.objects.create(
        name=name[:200],
        slug=slug,
        manual=manual,
        description=description.strip(),
        created_by=roles.recorded_user(user),
    )


@dataclass(frozen=True)
class QuestionSetAddition:
    """What :func:`question_set_add_pairs` did: the set, the version it wrote (``None`` when
    every pair was in the set already, and nothing was written), and the pairs on each side."""

    question_set: QuestionSet
    version: QuestionSetVersion | None
    added: list[int] = field(default_factory=list)
    already_in_set: list[int] = field(default_factory=list)


def _pair_question(pair: QAPair) -> dict[str, Any]:
    row = {
        "id": question_id_for_pair(pair.pk),
        "question": pair.question,
        "answer": pair.answer,
        "sources": [pair.document.source_name] if pair.document_id else [],
        "must_include": [],
        "kind": "answerable",
    }
    return question_normalize(row, default_id=row["id"])


def _jsonl(questions: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(question, ensure_ascii=False) + "\n" for question in questions)


@transaction.atomic
def question_set_add_pairs(
    *,
    pairs: Iterable[QAPair] | QuerySet[QAPair],
    user,
    question_set: QuestionSet | None = None,
    new_set_name: str = "",
    new_set_manual: Manual | None = None,
) -> QuestionSetAddition:
    """Add reviewed thumbs-down ``pairs`` to ``question_set`` (or to a new set named
    ``new_set_name``) as a new version; pairs already in the set are not added again.

    Every pair must be a reviewed thumbs-down pair (see the module docstring), of the set's
    manual if it has one; otherwise the whole addition is refused with a ``ValidationError``
    naming the pairs, and nothing is written (not even the new set). A version is written only
    when at least one pair is new to the set, and never changes after.
    """
    roles.require(user, GROW_PERMISSION, "Growing question sets needs the Reviewer role.")
    if (question_set is None) == (not new_set_name.strip()):
        raise ValidationError(
            {"question_set": "Choose a question set, or name a new one (not both)."}
        )
    pair_ids = sorted(
        {pair.pk for pair in pairs}
        if not isinstance(pairs, QuerySet)
        else set(pairs.values_list("pk", flat=True))
    )
    if not pair_ids:
        raise ValidationError("Choose at least one QA pair.")
    manual = question_set.manual if question_set is not None else new_set_manual

    problems = question_set_refusals(pair_ids=pair_ids, manual=manual)
    if problems:
        raise ValidationError(problems)
    chosen = QAPair.objects.filter(pk__in=pair_ids)

    if question_set is None:
        question_set = question_set_create(name=new_set_name, manual=new_set_manual, user=user)
    # Lock the set so two additions never write the same version number or lose a pair.
    question_set = QuestionSet.objects.select_for_update().get(pk=question_set.pk)
    latest = question_set_latest_version(question_set)
    questions = question_set_version_questions(latest) if latest is not None else []
    present = {question["id"] for question in questions}

    new_pairs = [
        pair
        for pair in chosen.select_related("document").order_by("pk")
        if question_id_for_pair(pair.pk) not in present
    ]
    already = [pk for pk in pair_ids if question_id_for_pair(pk) in present]
    if not new_pairs:
        return QuestionSetAddition(question_set, None, [], already)
    too_long = []
    for pair in new_pairs:
        try:
            questions.append(_pair_question(pair))
        except ValueError as exc:
            too_long.append(f"#{pair.pk}: {exc}")
    if too_long:
        raise ValidationError([f"These pairs cannot be questions: {'; '.join(too_long)}."])

    text = _jsonl(questions)
    number = (question_set.versions.aggregate(v=Max("version"))["v"] or 0) + 1
    version = QuestionSetVersion.objects.create(
        question_set=question_set,
        version=number,
        jsonl=text,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        question_count=len(questions),
        added_pairs=[pair.pk for pair in new_pairs],
        created_by=roles.recorded_user(user),
    )
    return QuestionSetAddition(question_set, version, version.added_pairs, already)
