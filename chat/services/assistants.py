"""Creating assistants, and the default one a manual gets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from chat.models import Assistant
from curation.models import LLMEndpoint, Manual

DEFAULT_ASSISTANT_NAME = "Manual assistant (RAG)"
DEFAULT_ASSISTANT_SLUG = "manual-assistant"


# --------------------------------------------------------------------------------------------
# Assistants


@transaction.atomic
def assistant_create(
    *,
    name: str,
    manuals: Iterable[Manual],
    mode: str = Assistant.Mode.RAG,
    endpoint: LLMEndpoint | None = None,
    slug: str = "",
    is_default: bool = False,
    **options: Any,
) -> Assistant:
    """A new assistant over ``manuals``; ``options`` are the other ``Assistant`` fields.

    Making it the default takes that from the previous default.
    """
    assistant = Assistant(
        name=name,
        slug=slug or slugify(name)[:100],
        mode=mode,
        endpoint=endpoint,
        is_default=is_default,
        **options,
    )
    if is_default:  # before validation, which checks that there is one default at most
        Assistant.objects.filter(is_default=True).update(is_default=False)
    assistant.full_clean(exclude=["manuals"])
    assistant.save()
    assistant.manuals.set(list(manuals))
    return assistant


@transaction.atomic
def assistant_ensure_default(*, manual: Manual, endpoint: LLMEndpoint | None) -> Assistant:
    """The default assistant of a fresh install: RAG over ``manual`` with ``endpoint`` (the
    bundled local model; None makes it extractive). Leaves an existing default alone."""
    existing = Assistant.objects.filter(is_default=True).first()
    if existing is not None:
        return existing
    existing = Assistant.objects.filter(slug=DEFAULT_ASSISTANT_SLUG).first()
    if existing is not None:
        Assistant.objects.filter(pk=existing.pk).update(is_default=True)
        existing.refresh_from_db()
        return existing
    try:
        return assistant_create(
            name=DEFAULT_ASSISTANT_NAME,
            slug=DEFAULT_ASSISTANT_SLUG,
            manuals=[manual],
            mode=Assistant.Mode.RAG,
            endpoint=endpoint,
            is_default=True,
            description=(
                f"Answers from the {manual.name} owner's manual, citing the passages it uses, "
                "and says so when the manual does not cover a question."
            ),
        )
    except ValidationError as exc:  # a name taken by an assistant the admin renamed
        raise ValidationError(f"Cannot create the default assistant: {exc}") from exc
