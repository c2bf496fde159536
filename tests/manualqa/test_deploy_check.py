"""``manage.py check --deploy`` is clean for a deployment behind TLS (security review L4)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.db import connection

from tests.conftest import BASE_DIR, database_url

pytestmark = pytest.mark.django_db


def deploy_check(**environment: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "manual.example",
        "DEBUG": "0",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_deploy_check_has_no_warnings_with_https():
    result = deploy_check(HTTPS="1")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_without_https_the_deploy_check_says_what_is_missing():
    result = deploy_check(HTTPS="0")

    warnings = result.stdout + result.stderr
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in warnings
