"""The LLM layer's plain types: endpoint configs, completions, stream events, errors and the client
base class."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, TypedDict, Unpack

KINDS: Final = ("openai", "azure_openai", "local", "sagemaker")

Message = Mapping[str, str]
# What a client answers: a chat (a list of messages) or a raw prompt in the model's own format.
Source = list[dict[str, str]] | str


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


class Options(TypedDict, total=False):
    """A call's generation options; one left out means the endpoint config's value."""

    temperature: float | None
    max_tokens: int | None
    stop: list[str] | None


@dataclass(frozen=True)
class Request:
    """A call's options with the endpoint config's defaults filled in."""

    temperature: float
    max_tokens: int
    stop: list[str]


class LLMClient(abc.ABC):
    """What QA generation, chat and evaluation use; thread-safe in every implementation.

    The four calls differ only in what goes in (a chat, or a raw prompt already in the model's
    trained format, which no chat template wraps) and in whether the answer streams. Each kind
    implements :meth:`_complete` and :meth:`_stream` for both sources.
    """

    config: EndpointConfig

    def complete(self, messages: list[dict[str, str]], **options: Unpack[Options]) -> Completion:
        """Answer ``messages``."""
        return self._complete(messages, self._request(options))

    def stream(
        self, messages: list[dict[str, str]], **options: Unpack[Options]
    ) -> Iterator[StreamDelta | StreamEnd]:
        """Yield :class:`StreamDelta` pieces, then one :class:`StreamEnd`.

        Close an abandoned stream (``contextlib.closing``) rather than leaving it to the garbage
        collector: a client holds its concurrency slot until the stream is finished or closed.
        """
        return self._stream(messages, self._request(options))

    def complete_prompt(self, prompt: str, **options: Unpack[Options]) -> Completion:
        """Continue a raw prompt already in the model's trained format (no chat template)."""
        return self._complete(prompt, self._request(options))

    def stream_prompt(
        self, prompt: str, **options: Unpack[Options]
    ) -> Iterator[StreamDelta | StreamEnd]:
        """:meth:`complete_prompt`, streamed like :meth:`stream`."""
        return self._stream(prompt, self._request(options))

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the client holds (pooled connections); it may not be used after."""

    @abc.abstractmethod
    def _complete(self, source: Source, request: Request) -> Completion:
        """Answer a chat (a list of messages) or continue a raw prompt (a str)."""

    @abc.abstractmethod
    def _stream(self, source: Source, request: Request) -> Iterator[StreamDelta | StreamEnd]:
        """:meth:`_complete`, streamed."""

    def _request(self, options: Options) -> Request:
        temperature = options.get("temperature")
        max_tokens = options.get("max_tokens")
        return Request(
            temperature=self.config.temperature if temperature is None else temperature,
            max_tokens=self.config.max_tokens if max_tokens is None else max_tokens,
            stop=[marker for marker in options.get("stop") or () if marker],
        )
