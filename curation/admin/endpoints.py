"""Admin pages for LLM endpoints (the key itself is never shown, only whether it is set)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin

from curation.models import (
    LLMEndpoint,
)
from manualqa.lib.key_names import api_key_env_problem


@admin.register(LLMEndpoint)
class LLMEndpointAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "model",
        "base_url",
        "max_concurrency",
        "key_status",
        "is_active",
    )
    list_filter = ("kind", "is_active")
    search_fields = ("name", "model", "base_url", "description")
    readonly_fields = ("key_status", "created_at", "updated_at")
    fieldsets = [
        (None, {"fields": ("name", "kind", "description", "is_active")}),
        (
            "Where",
            {"fields": ("model", "base_url", "region", "api_key_env", "key_status", "api_version")},
        ),
        (
            "Generation",
            {"fields": ("temperature", "max_tokens", "context_window")},
        ),
        (
            "Trained format",
            {
                "fields": ("prompt_format", "system_prompt"),
                "description": "How the model was fine-tuned, so that chat prompts it the same "
                "way. A training job fills these in for the models it registers.",
            },
        ),
        (
            "Limits and retries",
            {"fields": ("requests_per_minute", "max_concurrency", "timeout_s", "max_retries")},
        ),
        ("Cost", {"fields": ("price_in_per_1k", "price_out_per_1k")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    ]

    @admin.display(description="API key")
    def key_status(self, obj: LLMEndpoint) -> str:
        # Says whether the variable is set on this web server; never shows the value.
        import os

        if not obj.api_key_env:
            return "not needed" if obj.kind != LLMEndpoint.Kind.AZURE_OPENAI else "missing"
        if api_key_env_problem(obj.api_key_env, settings.LLM_KEY_ENV_PATTERN):
            # Not even whether a server secret is set.
            return f"${obj.api_key_env} may not hold an API key"
        return f"${obj.api_key_env} is {'set' if os.environ.get(obj.api_key_env) else 'NOT set'}"
