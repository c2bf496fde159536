"""Secrets on disk (security review L5): written 0600 in one step, and the demo superuser only
when asked for, its password printed once."""

from __future__ import annotations

import io
import stat

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from manualqa.env import secret_file


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_key_file_is_created_0600_atomically(tmp_path):
    path = tmp_path / "secret_key"
    made = []

    first = secret_file(path, lambda: made.append(1) or "s3cret-value")
    again = secret_file(path, lambda: made.append(1) or "another-value")

    assert (first, again, made) == ("s3cret-value", "s3cret-value", [1])
    assert mode(path) == 0o600


def test_a_secret_file_another_process_wrote_first_is_used_as_it_is(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("written-by-the-other-process\n")

    assert secret_file(path, lambda: pytest.fail("made a second secret")) == (
        "written-by-the-other-process"
    )


@pytest.mark.django_db
def test_bootstrap_creates_no_superuser_without_demo_flag(settings, tmp_path):
    settings.VAR_DIR = tmp_path

    call_command("bootstrap", "--no-sample", stdout=io.StringIO())

    assert not User.objects.filter(username="admin").exists()
    assert not (tmp_path / "demo_admin_password").exists()


@pytest.mark.django_db
def test_the_demo_password_is_printed_once_and_dropped_once_changed(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    password_file = tmp_path / "demo_admin_password"

    first = io.StringIO()
    call_command("bootstrap", "--no-sample", "--demo", stdout=first)
    password = password_file.read_text().strip()
    second = io.StringIO()
    call_command("bootstrap", "--no-sample", "--demo", stdout=second)

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert mode(password_file) == 0o600
    assert password in first.getvalue()
    assert password not in second.getvalue() and str(password_file) in second.getvalue()

    admin.set_password("a-password-of-my-own")
    admin.save()
    call_command("bootstrap", "--no-sample", "--demo", stdout=io.StringIO())
    assert not password_file.exists()
