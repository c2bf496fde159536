"""Helpers shared by the API tests: users in roles, token clients and QA pairs on a manual."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from curation import qa
from curation.models import DocumentChunk, Manual, QAPair
from manualqa.roles import REVIEWER_GROUP, TRAINER_GROUP

# One pair per chunk of ``generation_support.make_manual()``, in chunk order:
# (question, answer, grounding score, flags).
PAIRS = [
    ("How do I open the charge port?", "Press the button on the charge cable.", 0.9, []),
    ("How do I open the charge port without power?", "Pull the release cable.", 0.7, []),
    ("What pressure do 18 inch tires need?", "42 PSI (290 kPa) cold.", 0.3, ["low_grounding"]),
    ("How often should I rotate the tires?", "Every 10,000 km.", None, []),
]


def make_pairs(manual: Manual, *, status: str = QAPair.Status.PENDING) -> list[QAPair]:
    """A generated QA pair on each of the manual's chunks, as generation would store it."""
    chunks = DocumentChunk.objects.filter(document__manual=manual).select_related("document")
    pairs = []
    for chunk, (question, answer, grounding, flags) in zip(
        chunks.order_by("document__source_name", "position"), PAIRS, strict=True
    ):
        pairs.append(
            QAPair.objects.create(
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
                grounding_score=grounding,
                flags=flags,
            )
        )
    return pairs


def user_in(group_name: str, username: str | None = None) -> User:
    user = User.objects.create_user(username or group_name.lower(), password="x-12345")
    user.groups.add(Group.objects.get(name=group_name))
    return user


def reviewer() -> User:
    return user_in(REVIEWER_GROUP)


def trainer() -> User:
    return user_in(TRAINER_GROUP)


def user_with(*codenames: str) -> User:
    """A user holding exactly these permissions (``app_label.codename``), and no role."""
    user = User.objects.create_user(f"user-{User.objects.count()}", password="x-12345")
    for name in codenames:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client
