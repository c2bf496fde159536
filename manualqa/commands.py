"""What management commands share: finding the rows they are given, reading ``--set`` options,
and ending on a service's refusal or a job that did not succeed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import models

__all__ = [
    "add_set_argument",
    "fail_unless_succeeded",
    "get_or_fail",
    "overrides_from",
    "service_errors",
]


@contextmanager
def service_errors(separator: str = "; ") -> Iterator[None]:
    """Around a service call: its ValidationError ends the command as a CommandError with its
    messages joined by ``separator`` (printed as the command's error, without a traceback)."""
    try:
        yield
    except ValidationError as exc:
        raise CommandError(separator.join(exc.messages)) from None


def fail_unless_succeeded(row: models.Model, what: str, *, detail: str = "") -> None:
    """End the command when the job ``row`` did not succeed, saying ``{what} {status}:
    {message}`` (and ``detail`` on the next line)."""
    if row.status != row.Status.SUCCEEDED:
        failed = f"{what} {row.status}: {row.message}"
        raise CommandError(f"{failed}\n{detail}" if detail else failed)


def get_or_fail(model: type[models.Model], missing: str, **lookup: Any) -> Any:
    """The ``model`` row that ``lookup`` names; when there is none the command ends saying
    ``missing``."""
    try:
        return model.objects.get(**lookup)
    except model.DoesNotExist:
        raise CommandError(missing) from None


def add_set_argument(parser, *, help: str) -> None:
    """A repeatable ``--set KEY=JSON`` option, read with :func:`overrides_from`."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help=help)


def overrides_from(items: Iterable[str], *, json_only: bool = False) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as ``{KEY: VALUE}``, each value read as JSON; a value that is
    not JSON is kept as text, or with ``json_only`` ends the command."""
    overrides = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            if json_only:
                raise CommandError(f"--set {item}: the value must be JSON.") from None
            overrides[key.strip()] = raw
    return overrides
