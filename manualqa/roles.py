"""The site's roles: the Reviewer and Trainer groups and the permissions each holds.

A Reviewer reviews QA pairs (and adds the thumbs-down pairs they corrected to question sets); a
Trainer also builds datasets, launches generation, training and evaluation, so the Trainer group
holds both sets. :func:`roles_ensure` runs after every
``migrate`` (``manualqa.apps``), so the permissions of models added later join their groups.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied

__all__ = ["REVIEWER_GROUP", "TRAINER_GROUP", "recorded_user", "require", "roles_ensure"]

REVIEWER_GROUP = "Reviewer"
TRAINER_GROUP = "Trainer"

# What each role may do, as Django permissions (codenames per app). A Trainer is also a
# Reviewer: the Trainer group holds both sets.
_REVIEWER_PERMISSIONS = {
    "curation": [
        "view_manual",
        "view_manualdocument",
        "view_documentchunk",
        "view_qapair",
        "change_qapair",
        "review_qapair",
        "view_qapairrevision",
        "view_generationrun",
    ],
    # A reviewer who corrects an owner's thumbs-down pair makes it a regression question.
    "training": [
        "view_questionset",
        "view_questionsetversion",
        "grow_questionset",
    ],
}
_TRAINER_PERMISSIONS = {
    "curation": [
        "add_generationrun",
        "change_generationrun",
        "view_llmendpoint",
        "view_ingestionrun",
        "view_retrievalmodel",
        "view_reembedrun",
        "add_reembedrun",
    ],
    "training": [
        "view_datasetsnapshot",
        "add_datasetsnapshot",
        "view_snapshotpair",
        "view_trainingjob",
        "launch_trainingjob",
        "view_retrievaljob",
        "add_retrievaljob",
    ],
}


def require(user, permission: str, refusal: str) -> None:
    """Raise ``PermissionDenied(refusal)`` unless ``user`` holds ``permission``.

    The one rule services apply, so the admin, the API and the pages refuse the same people.
    ``user=None`` is the system itself (a management command, the bootstrap, a task acting on
    a row someone was allowed to make), which may do anything.
    """
    if user is not None and not (user.is_active and user.has_perm(permission)):
        raise PermissionDenied(refusal)


def recorded_user(user):
    """Who a row records as having made it (``created_by``): ``user`` when signed in; nobody
    for the system itself (``user=None``) or an anonymous visitor."""
    return user if user is not None and user.is_authenticated else None


def roles_ensure() -> None:
    """Create the Reviewer and Trainer groups with their permissions (idempotent).

    Runs after every migrate, so permissions of models added later join their groups.
    """
    for group_name, grants in (
        (REVIEWER_GROUP, [_REVIEWER_PERMISSIONS]),
        (TRAINER_GROUP, [_REVIEWER_PERMISSIONS, _TRAINER_PERMISSIONS]),
    ):
        group, _ = Group.objects.get_or_create(name=group_name)
        wanted = []
        for grant in grants:
            for app_label, codenames in grant.items():
                wanted += Permission.objects.filter(
                    content_type__app_label=app_label, codename__in=codenames
                )
        group.permissions.add(*wanted)
