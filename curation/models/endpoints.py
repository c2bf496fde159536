"""The LLM endpoints that generate QA pairs, answer in chat and judge evaluations."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from manualqa.lib.key_names import api_key_env_problem
from manualqa.lib.local_models import is_local_model, local_model_path


class LLMEndpoint(models.Model):
    """A model that answers prompts, used for QA generation, chat and evaluation.

    ``openai`` covers OpenAI itself and any OpenAI-compatible server (vLLM, TGI, Ollama) through
    ``base_url``; ``azure_openai`` an Azure deployment; ``local`` a transformers model on the
    worker (a folder path, or empty for the bundled SmolLM2-135M-Instruct); ``sagemaker`` a TGI
    container behind an AWS SageMaker endpoint (``model`` is the endpoint name, ``base_url`` an
    optional endpoint URL override, ``region`` the AWS region; credentials from boto3's usual
    chain). The API key is never stored: ``api_key_env`` names the environment variable that
    holds it.
    """

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible (OpenAI, vLLM, TGI, Ollama)"
        AZURE_OPENAI = "azure_openai", "Azure OpenAI"
        LOCAL = "local", "Local model (transformers folder or GGUF file)"
        SAGEMAKER = "sagemaker", "AWS SageMaker endpoint (TGI container)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.CharField(max_length=300, blank=True)
    model = models.CharField(
        max_length=500,
        blank=True,
        help_text="Model name (OpenAI-compatible), deployment name (Azure), a local model "
        "folder or .gguf file run by llama.cpp (empty for the bundled SmolLM2-135M-Instruct; "
        "SmolLM2-135M-Instruct.Q4_1.gguf for its GGUF through llama.cpp), or the SageMaker "
        "endpoint name.",
    )
    base_url = models.CharField(
        max_length=500,
        blank=True,
        help_text="OpenAI-compatible base URL such as http://127.0.0.1:8001/v1 (empty for "
        "api.openai.com), the Azure resource endpoint, or a SageMaker runtime endpoint URL "
        "override (empty for AWS's own).",
    )
    region = models.CharField(
        max_length=50,
        blank=True,
        help_text="AWS region of a SageMaker endpoint (empty: AWS_DEFAULT_REGION, else us-east-1).",
    )
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[
            RegexValidator(r"^[A-Za-z_][A-Za-z0-9_]*$", "Give an environment variable's name.")
        ],
        help_text=(
            "Name of the environment variable that holds the API key (never the key), such as "
            "OPENAI_API_KEY; the server's own secrets are refused."
        ),
    )
    api_version = models.CharField(max_length=50, blank=True, help_text="Azure API version")
    temperature = models.FloatField(default=0.2, validators=[MinValueValidator(0.0)])
    max_tokens = models.PositiveIntegerField(default=512, validators=[MinValueValidator(1)])
    requests_per_minute = models.PositiveIntegerField(default=0, help_text="0 means no limit")
    max_concurrency = models.PositiveIntegerField(default=4, validators=[MinValueValidator(1)])
    timeout_s = models.FloatField(default=60.0, validators=[MinValueValidator(0.1)])
    max_retries = models.PositiveSmallIntegerField(default=4)
    context_window = models.PositiveIntegerField(default=4096, validators=[MinValueValidator(256)])
    price_in_per_1k = models.DecimalField(
        max_digits=10, decimal_places=6, null=True, blank=True, help_text="USD per 1k input tokens"
    )
    price_out_per_1k = models.DecimalField(
        max_digits=10, decimal_places=6, null=True, blank=True, help_text="USD per 1k output tokens"
    )

    class PromptFormat(models.TextChoices):
        """The formats of :mod:`manualqa.lib.prompt_formats` (dataset snapshots use these too)."""

        CHAT_TEMPLATE = "chat_template", "Tokenizer chat template"
        SEED_INST = "seed_inst", "<s>[INST] q [/INST] a </s> (seed project)"
        ALPACA = "alpaca", "Alpaca instruction/output"

    prompt_format = models.CharField(
        max_length=20,
        choices=PromptFormat.choices,
        blank=True,
        help_text="The format the model was fine-tuned on, written when a training job "
        "registers it; chat prompts it the same way. Empty: not known (a chat model).",
    )
    system_prompt = models.TextField(
        blank=True,
        help_text="The system prompt the model was fine-tuned with, if any; a direct chat "
        "assistant without its own system prompt uses it.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM endpoint"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.kind == self.Kind.OPENAI and not self.model:
            errors["model"] = "An OpenAI-compatible endpoint needs a model name."
        if self.kind == self.Kind.AZURE_OPENAI:
            for field in ("base_url", "model", "api_version"):
                if not getattr(self, field):
                    errors[field] = "Azure OpenAI needs the endpoint, deployment and API version."
        local = self.kind == self.Kind.LOCAL and self.model
        if local and not is_local_model(local_model_path(self.model, Path(settings.MODELS_DIR))):
            errors["model"] = f"No model folder or .gguf file at {self.model}."
        if self.kind == self.Kind.SAGEMAKER and not self.model:
            errors["model"] = "A SageMaker endpoint needs the endpoint's name."
        key_problem = api_key_env_problem(self.api_key_env, settings.LLM_KEY_ENV_PATTERN)
        if key_problem:
            errors["api_key_env"] = key_problem[0].upper() + key_problem[1:] + "."
        if errors:
            raise ValidationError(errors)

    def config(self):
        """The plain ``EndpointConfig`` that ``manualqa.lib.llm.make_client`` takes."""
        from manualqa.lib.llm import EndpointConfig

        return EndpointConfig(
            kind=self.kind,
            model=self.model,
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            api_version=self.api_version,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            requests_per_minute=self.requests_per_minute,
            max_concurrency=self.max_concurrency,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            context_window=self.context_window,
            price_in_per_1k=float(self.price_in_per_1k) if self.price_in_per_1k else None,
            price_out_per_1k=float(self.price_out_per_1k) if self.price_out_per_1k else None,
            models_dir=str(settings.MODELS_DIR),
            region=self.region,
        )
