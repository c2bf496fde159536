from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
# The embedded set-up serves plain HTTP; these are the HTTPS items, switched on by HTTPS=1.
HTTPS_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def _check_deploy(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBUG": "0", **extra_env}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_except_for_https_items():
    result = _check_deploy({})
    warnings = set(re.findall(r"\((security\.W\d+)\)", result.stdout + result.stderr))
    assert warnings <= HTTPS_WARNINGS, result.stdout + result.stderr
    assert "ERRORS" not in result.stdout + result.stderr


def test_check_deploy_is_clean_with_https_enabled():
    result = _check_deploy({"HTTPS": "1"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "no issues" in output


def test_a_malformed_setting_fails_loudly_naming_it():
    result = _check_deploy({"DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr
