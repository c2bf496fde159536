"""One LLM client layer for QA generation, chat and evaluation.

Every part of ManualQA that talks to a language model goes through :func:`make_client`, so the
three kinds of endpoint behave the same way to their callers:

* ``openai``: any OpenAI-compatible chat-completions server (OpenAI itself, vLLM, llama.cpp,
  the test fake in ``tests/fakeopenai.py``);
* ``azure_openai``: an Azure OpenAI resource, where ``model`` is the deployment name;
* ``local``: a transformers model on this machine (:mod:`manualqa.lib.local_models`), by default the
  bundled SmolLM2-135M-Instruct, so that everything works with nothing configured;
* ``sagemaker``: a Hugging Face TGI container behind an AWS SageMaker endpoint (the seed
  project's deployment), through boto3's ``invoke_endpoint``; chats are rendered in the seed
  project's ``<s>[INST] ... [/INST]`` format (:func:`render_inst`).

Every client answers a chat (``complete``/``stream``) and also a raw prompt already in a model's
trained format (``complete_prompt``/``stream_prompt``), because a model fine-tuned on
``<s>[INST] q [/INST] a </s>`` text must be prompted with exactly that text, not with whatever
chat template its tokenizer or server would wrap around a chat.

Why the layer exists rather than calling the SDK directly:

* **Bounded, observable retries.** The SDK's own retries are switched off (``max_retries=0``)
  and done here instead, so a call makes at most ``1 + max_retries`` attempts whatever the
  kind, ``Completion.attempts`` says how many it took, and the final error names the last
  failure and the count. 429, 500/502/503/504, timeouts and dropped connections are retried
  with exponential backoff and full jitter, honouring ``Retry-After``; other 4xx are not,
  because repeating a bad request only burns quota.
* **Shared limits.** One client is shared by a pool of worker threads (QA generation uses 32).
  ``max_concurrency`` and ``requests_per_minute`` are enforced per client across all of them,
  which is what a provider's quota is about.
* **Secrets stay out of reach.** :class:`EndpointConfig` holds the *name* of the environment
  variable with the key, never the key, so configs can be logged, stored on rows and shown in
  the admin. The key is read once when the client is made and scrubbed from error messages.

Plain Python (no Django import), like all of :mod:`manualqa.lib`: the settings layer builds an
:class:`EndpointConfig` and the rest of the code only sees this module.

Layout: :mod:`.types` (configs, results, stream events, errors, the client base class),
:mod:`.tokens` (cheap token estimates), :mod:`.limits` (concurrency, rate and retry rules
and the base of the clients that call a server), one module per kind
(:mod:`.openai_compatible`, :mod:`.local`, :mod:`.sagemaker`), and :func:`make_client` here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from manualqa.lib.llm.limits import RateLimiter
from manualqa.lib.llm.local import DEFAULT_MODELS_DIR, LocalClient
from manualqa.lib.llm.openai_compatible import OpenAICompatibleClient
from manualqa.lib.llm.sagemaker import SageMakerClient
from manualqa.lib.llm.tokens import estimate_tokens, messages_tokens
from manualqa.lib.llm.types import (
    KINDS,
    Completion,
    EndpointConfig,
    LLMClient,
    LLMConfigError,
    LLMError,
    Message,
    StreamDelta,
    StreamEnd,
)

__all__ = [
    "DEFAULT_MODELS_DIR",
    "KINDS",
    "Completion",
    "EndpointConfig",
    "LLMClient",
    "LLMConfigError",
    "LLMError",
    "LocalClient",
    "Message",
    "OpenAICompatibleClient",
    "RateLimiter",
    "SageMakerClient",
    "StreamDelta",
    "StreamEnd",
    "estimate_tokens",
    "make_client",
    "messages_tokens",
]


def make_client(
    config: EndpointConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> LLMClient:
    """The client for ``config``; raises :class:`LLMConfigError` when it cannot work.

    Cheap for every kind (a local model loads on first use), so callers may make one per job.
    ``sleep`` and ``rng`` exist for unit tests of the retry schedule.
    """
    if config.kind == "local":
        return LocalClient(config)
    if config.kind in ("openai", "azure_openai"):
        return OpenAICompatibleClient(config, sleep=sleep, rng=rng)
    if config.kind == "sagemaker":
        return SageMakerClient(config, sleep=sleep, rng=rng)
    raise LLMConfigError(
        f"unknown endpoint kind {config.kind!r}; expected one of {', '.join(KINDS)}"
    )
