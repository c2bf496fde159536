"""``manualqa.commands``: a service's refusal ends a management command with its messages."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from manualqa.commands import service_errors


def test_a_service_refusal_becomes_the_commands_error_with_every_message():
    with pytest.raises(CommandError) as raised, service_errors():
        raise ValidationError({"snapshot": "Too few pairs.", "preset": "No such preset."})

    assert str(raised.value) == "Too few pairs.; No such preset."
    assert raised.value.__suppress_context__  # the command prints the refusal, not a traceback


def test_the_messages_are_joined_by_the_separator_asked_for():
    with pytest.raises(CommandError, match=r"^One\. Two\.$"), service_errors(separator=" "):
        raise ValidationError(["One.", "Two."])


def test_other_errors_pass_through_unchanged():
    with pytest.raises(KeyError), service_errors():
        raise KeyError("snapshot")
