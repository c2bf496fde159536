"""What every form page does with a service's answer."""

from __future__ import annotations

from collections.abc import Mapping

from django import forms
from django.core.exceptions import ValidationError

__all__ = ["add_service_errors"]


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
        for message in exc.messages:
            form.add_error(None, message)
