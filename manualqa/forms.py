"""What every form page does with a service's answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest

__all__ = ["add_errors_above", "add_service_errors", "flash_service"]

Result = TypeVar("Result")


def add_errors_above(form: forms.Form, exc: ValidationError) -> None:
    """Show every message of a service's ValidationError above the form."""
    for message in exc.messages:
        form.add_error(None, message)


def add_service_errors(
    form: forms.Form, exc: ValidationError, *, rename: Mapping[str, str | None] | None = None
) -> None:
    """Show a service's ValidationError on the form field it names, or above the form.

    ``rename`` maps a service's field name to the form's (``None``: above the form), for a form
    whose fields are named differently from the service's arguments.
    """
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            field = (rename or {}).get(field, field)
            for message in errors:
                form.add_error(field if field in form.fields else None, message)
    else:
        add_errors_above(form, exc)


def flash_service(
    request: HttpRequest,
    service: Callable[..., Result],
    said: str | Callable[[Result], str],
    **arguments: Any,
) -> Result | None:
    """For a page's button: call ``service(**arguments)``, flash ``said`` (or ``said(result)``)
    and return the result; or flash the service's refusal as an error and return ``None``."""
    try:
        result = service(**arguments)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return None
    messages.success(request, said(result) if callable(said) else said)
    return result
