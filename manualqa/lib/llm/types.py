"""The LLM layer's plain types: endpoint configs, completions, stream events, errors, the client
protocol, and cheap token estimates used for prompt budgets."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

KINDS: Final = ("openai", "azure_openai", "local", "sagemaker")

# Every chat message costs a few tokens beyond its text (role markers such as ChatML's
# ``<|im_start|>user\n``); counting them keeps prompt budgets on the safe side.
_TOKENS_PER_MESSAGE: Final = 4

Message = Mapping[str, str]


# --------------------------------------------------------------------------------------------
# Configuration, results and errors


@dataclass(frozen=True)
class EndpointConfig:
    """Everything needed to reach one model, and nothing secret.

    ``kind`` is one of :data:`KINDS`. ``model`` is the model name (``openai``), the deployment
    name (``azure_openai``) or a model folder (``local``; empty means the bundled
    SmolLM2-135M-Instruct). ``base_url`` is the OpenAI-compatible base URL (empty means the real
    OpenAI API) or the Azure resource endpoint. ``api_key_env`` is the *name* of the environment
    variable holding the key; when it is empty or unset a dummy key is sent, which suits local
    OpenAI-compatible servers, except for the real OpenAI API where that is an
    :class:`LLMConfigError`.

    The limits (``requests_per_minute``, 0 meaning unlimited, and ``max_concurrency``) apply to
    one client across all threads using it. Retries: at most ``1 + max_retries`` attempts, the
    n-th retry sleeping ``uniform(0, min(max_backoff_s, backoff_s * 2**(n-1)))`` seconds, or the
    server's ``Retry-After`` when longer (capped at ``max_backoff_s``).

    ``context_window`` is the model's prompt plus answer budget in tokens, for callers that
    pack context. Prices are per 1,000 tokens and optional (see :meth:`Completion.cost`).

    ``sagemaker``: ``model`` is the SageMaker endpoint name, ``base_url`` an optional endpoint
    URL override (a VPC endpoint, or a loopback server in tests), ``region`` the AWS region
    (empty: ``AWS_REGION``/``AWS_DEFAULT_REGION``, else us-east-1); credentials come from
    boto3's usual chain (environment, profile, instance role), never from the config.
    ``top_p`` applies where sampling is on (temperature above 0) and the server takes it.
    """

    kind: str
    model: str = ""
    base_url: str = ""
    api_key_env: str = ""
    api_version: str = ""
    temperature: float = 0.2
    max_tokens: int = 512
    requests_per_minute: int = 0
    max_concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    context_window: int = 4096
    price_in_per_1k: float | None = None
    price_out_per_1k: float | None = None
    models_dir: str = ""
    region: str = ""
    top_p: float = 0.95


@dataclass(frozen=True)
class Completion:
    """One finished answer with what it cost.

    ``tokens_in``/``tokens_out`` come from the server's usage report, or from
    :func:`estimate_tokens` when it sent none (then ``usage_estimated`` is true).
    ``latency_s`` is the wall time the caller waited, retries and rate-limit waits included,
    because that is what a person in the chat experiences. ``attempts`` counts HTTP attempts
    (1 when the first one succeeded). ``model`` is the model the server says answered.
    """

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str | None
    latency_s: float
    attempts: int
    model: str
    usage_estimated: bool = False

    def cost(self, config: EndpointConfig) -> float | None:
        """The price of this completion under ``config``'s prices, or None when it has none.

        A config with only one of the two prices counts the other side as free, so an
        endpoint priced on output alone still reports a cost.
        """
        if config.price_in_per_1k is None and config.price_out_per_1k is None:
            return None
        price_in = config.price_in_per_1k or 0.0
        price_out = config.price_out_per_1k or 0.0
        return self.tokens_in / 1000 * price_in + self.tokens_out / 1000 * price_out


@dataclass(frozen=True)
class StreamDelta:
    """A piece of streamed answer text, in order."""

    text: str


@dataclass(frozen=True)
class StreamEnd:
    """The last event of a stream: the whole answer with its usage (estimated if not sent)."""

    completion: Completion


class LLMError(Exception):
    """A call to a model failed; the message names the problem, the endpoint and the attempts.

    ``retryable`` tells a caller (e.g. a Celery task) whether trying again later might work;
    ``status`` is the HTTP status when there was one; ``attempts`` how many were made.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.attempts = attempts


class LLMConfigError(LLMError):
    """The endpoint configuration cannot work (missing key, unknown kind, missing field)."""


@runtime_checkable
class LLMClient(Protocol):
    """What QA generation, chat and evaluation use; thread-safe in every implementation."""

    config: EndpointConfig

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        """Answer ``messages``; None for an option means the config's value."""
        ...

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[StreamDelta | StreamEnd]:
        """Yield :class:`StreamDelta` pieces, then one :class:`StreamEnd`."""
        ...

    def complete_prompt(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        """Continue a raw prompt already in the model's trained format (no chat template)."""
        ...

    def stream_prompt(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[StreamDelta | StreamEnd]:
        """:meth:`complete_prompt`, streamed like :meth:`stream`."""
        ...


# --------------------------------------------------------------------------------------------
# Token estimates


def estimate_tokens(text: str) -> int:
    """A cheap token count for budgeting when no tokenizer or usage report is at hand.

    English text averages about four characters per BPE token, so this is
    ``ceil(len(text) / 4)``. It is deliberately tokenizer-free: it must be fast enough to run on
    every chunk while packing prompts, and a model-exact count is not needed for that.
    """
    return math.ceil(len(text) / 4)


def messages_tokens(messages: Iterable[Message]) -> int:
    """Estimated prompt tokens for a chat: each message's text plus its role-marker overhead."""
    return sum(
        estimate_tokens(str(message.get("content") or "")) + _TOKENS_PER_MESSAGE
        for message in messages
    )
