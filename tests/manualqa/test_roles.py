"""``manualqa.roles``: who a new row records as its maker."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, User

from manualqa import roles


@pytest.mark.django_db
def test_a_signed_in_user_is_recorded_as_the_maker():
    ada = User.objects.create_user("ada")

    assert roles.recorded_user(ada) == ada


def test_the_system_and_an_anonymous_visitor_are_recorded_as_nobody():
    assert roles.recorded_user(None) is None
    assert roles.recorded_user(AnonymousUser()) is None
