"""Which environment variables an endpoint may name as its API key (security review M1).

An endpoint row names the variable that holds its key (``api_key_env``), and the client sends
that variable's value as the bearer key to the endpoint's ``base_url``. Whoever may edit an
endpoint could otherwise name a server secret (``DATABASE_URL``, ``SECRET_KEY``, AWS
credentials) and have it sent to a server of their choosing. So a name must look like an API
key's (:data:`DEFAULT_KEY_ENV_PATTERN`, overridable with the ``LLM_KEY_ENV_PATTERN``
environment variable, which the settings read too) and is never one of the server's own
secrets, whatever the pattern says. The model's ``clean()`` refuses such a name when it is
saved, and the LLM client refuses it again when it is used, for rows written past
validation. Plain Python, light enough for the settings to import.
"""

from __future__ import annotations

import os
import re
from typing import Final

DEFAULT_KEY_ENV_PATTERN: Final = r"^[A-Z][A-Z0-9_]*(API_KEY|_KEY|_TOKEN)$"

#: The server's own secrets: never an API key, whatever the pattern allows.
_SERVER_SECRETS: Final = frozenset(
    {
        "SECRET_KEY",
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        # The training trackers' credentials (TRAINING_REPORT_TO): never an endpoint's key.
        "WANDB_API_KEY",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_PASSWORD",
    }
)
_SECRET_PREFIXES: Final = ("AWS_", "DJANGO_", "POSTGRES", "PG")
_SECRET_WORDS: Final = ("SECRET", "PASSWORD")


def key_env_pattern() -> str:
    """The pattern in force: ``LLM_KEY_ENV_PATTERN`` from the environment, else the default."""
    return os.environ.get("LLM_KEY_ENV_PATTERN", "").strip() or DEFAULT_KEY_ENV_PATTERN


def api_key_env_problem(name: str, pattern: str | None = None) -> str | None:
    """Why ``name`` may not name an endpoint's API key, or None when it may (or is empty)."""
    if not name:
        return None
    upper = name.upper()
    if (
        upper in _SERVER_SECRETS
        or upper.startswith(_SECRET_PREFIXES)
        or any(word in upper for word in _SECRET_WORDS)
    ):
        return (
            f"{name} is one of the server's own secrets; name the variable that holds this "
            "endpoint's API key (for example OPENAI_API_KEY)"
        )
    pattern = pattern or key_env_pattern()
    if not re.fullmatch(pattern, name):
        return (
            f"{name} does not look like an API key's variable (it must match {pattern}, "
            "for example OPENAI_API_KEY)"
        )
    return None
