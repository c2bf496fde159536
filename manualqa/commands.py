"""What every management command does with a service's refusal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

__all__ = ["service_errors"]


@contextmanager
def service_errors(separator: str = "; ") -> Iterator[None]:
    """Around a service call: its ValidationError ends the command as a CommandError with its
    messages joined by ``separator`` (printed as the command's error, without a traceback)."""
    try:
        yield
    except ValidationError as exc:
        raise CommandError(separator.join(exc.messages)) from None
