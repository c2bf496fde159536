"""Helpers shared by the review tests: users in the real role groups, and QA pairs made fast.

Pairs are rows written with the ORM straight onto a manual built by ``make_manual`` (real
documents and embedded chunks), which is all review needs: generation has its own tests.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from curation import qa
from curation.models import DocumentChunk, Manual, QAPair
from manualqa import roles

PASSWORD = "review-pw-1234"


def staff_user(username: str, *, groups: tuple[str, ...] = ()) -> User:
    """A staff user (may enter the admin) in the given role groups, with ``PASSWORD``."""
    roles.roles_ensure()  # idempotent; the groups exist after migrate anyway
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


def reviewer(username: str = "rita") -> User:
    return staff_user(username, groups=(roles.REVIEWER_GROUP,))


def trainer(username: str = "tom") -> User:
    return staff_user(username, groups=(roles.TRAINER_GROUP,))


def make_pairs(
    manual: Manual,
    count: int,
    *,
    status: str = QAPair.Status.PENDING,
    grounding: list[float | None] | None = None,
    flags: list[list[str]] | None = None,
    prefix: str = "How do I",
) -> list[QAPair]:
    """``count`` generated pairs spread over the manual's chunks, oldest first.

    Answers quote their chunk's first body sentence, so they are grounded in it. ``grounding``
    and ``flags`` give each pair's score and flags (default: 0.5 and none).
    """
    chunks = list(
        DocumentChunk.objects.filter(document__manual=manual)
        .select_related("document")
        .order_by("document__source_name", "position")
    )
    pairs = []
    for index in range(count):
        chunk = chunks[index % len(chunks)]
        question = f"{prefix} use feature number {index + 1} of {chunk.heading_path}?"
        answer = chunk.body.split(". ")[0].strip().rstrip(".") + "."
        pairs.append(
            QAPair(
                manual=manual,
                document=chunk.document,
                chunk=chunk,
                document_version=chunk.document.version,
                source_text=chunk.text,
                question=question,
                answer=answer,
                question_hash=qa.question_hash(question),
                original_question=question,
                original_answer=answer,
                status=status,
                origin=QAPair.Origin.GENERATED,
                grounding_score=0.5 if grounding is None else grounding[index],
                flags=[] if flags is None else flags[index],
            )
        )
    return QAPair.objects.bulk_create(pairs)
