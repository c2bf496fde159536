"""``manualqa.forms.flash_service``: a page's button calls a service and says how it went."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from manualqa.forms import flash_service


def a_request():
    request = RequestFactory().post("/")
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


def flashed(request) -> list[tuple[int, str]]:
    return [(message.level, message.message) for message in get_messages(request)]


def test_a_service_that_succeeds_flashes_what_it_did_and_returns_its_result():
    request = a_request()

    result = flash_service(request, lambda *, job: job * 2, "Queued.", job=21)
    named = flash_service(request, lambda *, job: job, lambda job: f"Job #{job} queued.", job=7)

    assert (result, named) == (42, 7)
    assert flashed(request) == [(messages.SUCCESS, "Queued."), (messages.SUCCESS, "Job #7 queued.")]


def test_a_refusal_is_flashed_as_an_error_with_every_message_and_returns_none():
    def refuse(**_):
        raise ValidationError({"job": "Job #3 is finished; too late.", "user": "Not yours."})

    request = a_request()

    assert flash_service(request, refuse, "Cancel requested.", job=3) is None
    assert flashed(request) == [(messages.ERROR, "Job #3 is finished; too late. Not yours.")]
