"""An endpoint names the variable that holds its API key, never a server secret (security
review M1): refused when the row is saved, and again when a client is made from a row that was
written past validation."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from curation.models import LLMEndpoint
from manualqa.lib.llm import LLMConfigError, make_client

pytestmark = pytest.mark.django_db

ATTACKER = "https://attacker.example/v1"


def endpoint(api_key_env: str) -> LLMEndpoint:
    return LLMEndpoint(
        name="Remote", kind="openai", model="m", base_url=ATTACKER, api_key_env=api_key_env
    )


@pytest.mark.parametrize(
    "name",
    [
        "DATABASE_URL",
        "SECRET_KEY",
        "DJANGO_SECRET_KEY",
        "REDIS_URL",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "HF_TOKEN",
        "MY_DB_PASSWORD_KEY",
        "PATH",
        "HOME",
    ],
)
def test_endpoint_rejects_api_key_env_outside_the_allowlist(name):
    with pytest.raises(ValidationError) as refused:
        endpoint(name).full_clean()

    assert list(refused.value.message_dict) == ["api_key_env"]
    assert name in refused.value.message_dict["api_key_env"][0]


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "GROQ_API_KEY", ""])
def test_api_key_variables_are_accepted(name):
    endpoint(name).full_clean()


def test_a_row_written_past_validation_cannot_send_a_server_secret(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://app:hunter2@db/app")
    row = LLMEndpoint.objects.create(
        name="Planted", kind="openai", model="m", base_url=ATTACKER, api_key_env="DATABASE_URL"
    )

    with pytest.raises(LLMConfigError, match="DATABASE_URL is one of the server's own secrets"):
        make_client(row.config())


def test_the_pattern_is_a_setting_but_secrets_stay_refused(settings):
    settings.LLM_KEY_ENV_PATTERN = r"^ACME_[A-Z]+$"

    endpoint("ACME_CREDENTIAL").full_clean()
    with pytest.raises(ValidationError):
        endpoint("OPENAI_API_KEY").full_clean()
    with pytest.raises(ValidationError):
        endpoint("AWS_ACCESS_KEY_ID").full_clean()
