"""``manualqa.commands``: a service's refusal, or a job that did not succeed, ends a management
command with its messages."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from curation.models import IngestionRun
from manualqa.commands import fail_unless_succeeded, service_errors
from training.models import EvaluationRun


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


def test_a_job_that_did_not_succeed_ends_the_command_with_its_status_and_message():
    run = EvaluationRun(status=EvaluationRun.Status.FAILED, message="No questions.")

    with pytest.raises(CommandError) as raised:
        fail_unless_succeeded(run, "Evaluation")

    assert str(raised.value) == "Evaluation failed: No questions."


def test_the_detail_follows_on_its_own_line():
    run = IngestionRun(status=IngestionRun.Status.ERRORED, message="Boom.")

    with pytest.raises(CommandError) as raised:
        fail_unless_succeeded(run, "Ingestion", detail="0 pages.")

    assert str(raised.value) == "Ingestion errored: Boom.\n0 pages."


def test_a_job_that_succeeded_lets_the_command_go_on():
    fail_unless_succeeded(IngestionRun(status=IngestionRun.Status.SUCCEEDED), "Ingestion")
