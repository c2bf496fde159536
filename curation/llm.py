"""One LLM client layer for QA generation, chat and evaluation.

Every part of ManualQA that talks to a language model goes through :func:`make_client`, so the
three kinds of endpoint behave the same way to their callers:

* ``openai``: any OpenAI-compatible chat-completions server (OpenAI itself, vLLM, llama.cpp,
  the test fake in ``tests/fakeopenai.py``);
* ``azure_openai``: an Azure OpenAI resource, where ``model`` is the deployment name;
* ``local``: a transformers model on this machine (:mod:`curation.local_models`), by default the
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

Deliberately plain Python (no Django import): the settings layer builds an
:class:`EndpointConfig` and the rest of the code only sees this module.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import openai

from curation.local_models import DEFAULT_LOCAL_MODEL, load_local

__all__ = [
    "DEFAULT_MODELS_DIR",
    "KINDS",
    "Completion",
    "EndpointConfig",
    "LLMClient",
    "LLMConfigError",
    "LLMError",
    "INST_STOP",
    "Message",
    "RateLimiter",
    "StreamDelta",
    "StreamEnd",
    "estimate_tokens",
    "make_client",
    "messages_tokens",
    "render_inst",
]

KINDS: Final = ("openai", "azure_openai", "local", "sagemaker")

#: Where the ``local`` kind keeps converted models when a config names no ``models_dir``: the
#: project's git-ignored ``var/models`` (README: runtime state lives under ``var/``).
DEFAULT_MODELS_DIR: Final = Path(__file__).resolve().parents[1] / "var" / "models"

OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
_CHAT_PATH: Final = "chat/completions"
_COMPLETIONS_PATH: Final = "completions"

# Sent to OpenAI-compatible servers that need no key; the SDK refuses to run without one.
DUMMY_API_KEY: Final = "not-needed"

# 429 means "slow down", the 5xx listed mean "try again"; anything else will fail the same way.
RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

_STATUS_PROBLEMS: Final = {
    400: "bad request",
    401: "unauthorized (check the API key)",
    403: "forbidden",
    404: "not found (check the model or deployment name and the base URL)",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    422: "unprocessable request",
    429: "rate limited",
    500: "server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}

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


# --------------------------------------------------------------------------------------------
# Shared limits


class RateLimiter:
    """Spreads requests evenly: at most ``requests_per_minute``, one every ``60/rpm`` seconds.

    Each caller reserves the next free slot under a lock and then sleeps until it outside the
    lock, so many threads queue up in arrival order without holding each other up. Evenly
    spaced requests (rather than a burst at the start of each minute) are what providers' quota
    windows tolerate best. ``requests_per_minute <= 0`` disables it.
    """

    def __init__(
        self,
        requests_per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval_s = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def wait(self) -> None:
        """Block until this caller may send its request."""
        if not self.interval_s:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval_s
        if slot > now:
            self._sleep(slot - now)


class _RequestGate:
    """The per-client limits every attempt passes: a concurrency semaphore, then the RPM slot.

    The semaphore is taken first so that requests released by it are still spaced by the rate
    limiter; the other order would let a queue of already-scheduled requests fire together.
    """

    def __init__(self, config: EndpointConfig, sleep: Callable[[float], None]) -> None:
        self._semaphore = threading.BoundedSemaphore(max(1, config.max_concurrency))
        self._limiter = RateLimiter(config.requests_per_minute, sleep=sleep)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._semaphore:
            self._limiter.wait()
            yield


# --------------------------------------------------------------------------------------------
# OpenAI-compatible and Azure endpoints


def _resolve_api_key(config: EndpointConfig) -> str:
    """Read the key from the named environment variable, refusing only where one is needed."""
    key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
    if key:
        return key
    if config.kind == "openai" and not config.base_url:
        variable = config.api_key_env or "OPENAI_API_KEY"
        raise LLMConfigError(
            f"the OpenAI API needs a key: set the environment variable {variable}"
            + ("" if config.api_key_env else " and name it in the endpoint's api_key_env")
        )
    return DUMMY_API_KEY


def _retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as seconds or an HTTP date)."""
    if not headers:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        with contextlib.suppress(ValueError):
            return max(0.0, float(milliseconds) / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _without_query(url: object) -> str:
    return str(url).split("?", 1)[0]


@dataclass(frozen=True)
class _Failure:
    """One failed attempt, described without the key, with what the retry policy needs."""

    description: str
    retryable: bool
    status: int | None = None
    retry_after_s: float | None = None


class _RetryPolicy:
    """The retry schedule shared by the HTTP clients (see :class:`EndpointConfig`).

    Subclasses set ``config``, ``_rng`` and ``_secret`` (a key to scrub from messages, or "").
    """

    config: EndpointConfig
    _rng: random.Random
    _secret: str = ""

    def _retry_delay(self, failure: _Failure, attempt: int) -> float:
        """The sleep before the next attempt, or raise the final :class:`LLMError`."""
        if not failure.retryable:
            raise LLMError(
                self._scrub(f"{failure.description}; not retried"),
                retryable=False,
                status=failure.status,
                attempts=attempt,
            )
        if attempt > self.config.max_retries:
            raise LLMError(
                self._scrub(f"{failure.description}, gave up after {attempt} attempts"),
                retryable=True,
                status=failure.status,
                attempts=attempt,
            )
        ceiling = min(self.config.max_backoff_s, self.config.backoff_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(0, ceiling)
        if failure.retry_after_s is not None:
            delay = min(self.config.max_backoff_s, max(delay, failure.retry_after_s))
        return delay

    def _scrub(self, message: str) -> str:
        return message.replace(self._secret, "***") if self._secret else message


class OpenAICompatibleClient(_RetryPolicy):
    """:class:`LLMClient` for the ``openai`` and ``azure_openai`` kinds over the openai SDK.

    One instance is meant to be shared by many threads: the SDK's HTTP client is thread-safe
    and pools connections, and the limits live in :class:`_RequestGate`. ``sleep`` and ``rng``
    are injectable so the retry schedule can be unit-tested without waiting.
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._gate = _RequestGate(config, sleep)
        api_key = _resolve_api_key(config)
        # Kept only to scrub it from error messages (servers echo keys in 401 bodies).
        self._secret = api_key if api_key != DUMMY_API_KEY else ""
        self._sdk: openai.OpenAI
        if config.kind == "azure_openai":
            missing = [
                name
                for name, value in (
                    ("base_url (the Azure resource endpoint)", config.base_url),
                    ("model (the deployment name)", config.model),
                    ("api_version", config.api_version),
                )
                if not value
            ]
            if missing:
                raise LLMConfigError(f"an azure_openai endpoint needs {', '.join(missing)}")
            self._sdk = openai.AzureOpenAI(
                azure_endpoint=config.base_url,
                azure_deployment=config.model,
                api_version=config.api_version,
                api_key=api_key,
                timeout=config.timeout_s,
                max_retries=0,
            )
        else:
            if not config.model:
                raise LLMConfigError("an openai endpoint needs a model name")
            self._sdk = openai.OpenAI(
                base_url=config.base_url or OPENAI_BASE_URL,
                api_key=api_key,
                timeout=config.timeout_s,
                max_retries=0,
            )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} kind={self.config.kind} model={self.config.model!r} "
            f"base_url={self.config.base_url or OPENAI_BASE_URL!r}>"
        )

    # -- public API ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled HTTP connections (they are also closed when the client is freed)."""
        self._sdk.close()

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        """Answer ``messages`` in one response, retrying transient failures within the bound."""
        params = self._params(temperature, max_tokens, stop)
        params["messages"] = [dict(message) for message in messages]
        return self._complete(_CHAT_PATH, params, messages_tokens(messages))

    def complete_prompt(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        """Continue a raw ``prompt`` through the legacy ``/completions`` API.

        For models served with a prompt format of their own (a model fine-tuned on the seed
        project's ``<s>[INST] q [/INST]`` text, served by vLLM or TGI): the chat API would wrap
        the prompt in the tokenizer's chat template, which is not what the model was trained on.
        """
        params = self._params(temperature, max_tokens, stop)
        params["prompt"] = prompt
        return self._complete(_COMPLETIONS_PATH, params, estimate_tokens(prompt))

    def _complete(self, path: str, params: dict[str, Any], prompt_tokens: int) -> Completion:
        create = self._create(path)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._gate.slot():
                    response = create(**params)
                break
            except openai.OpenAIError as exc:
                failure = self._describe(exc, path)
            # Decided outside the except block so the final error does not chain the SDK's
            # exception, whose message may quote the key back from a 401 body.
            self._sleep(self._retry_delay(failure, attempt))
        try:
            choice = response.choices[0]
        except (AttributeError, IndexError, TypeError):
            raise LLMError(
                f"unexpected response from {self._endpoint(path)}: no choices", attempts=attempt
            ) from None
        text = _choice_text(choice)
        usage = response.usage
        return Completion(
            text=text,
            tokens_in=usage.prompt_tokens if usage else prompt_tokens,
            tokens_out=usage.completion_tokens if usage else estimate_tokens(text),
            finish_reason=choice.finish_reason,
            latency_s=time.monotonic() - started,
            attempts=attempt,
            model=response.model or self.config.model,
            usage_estimated=usage is None,
        )

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[StreamDelta | StreamEnd]:
        """Stream the answer; retry only until the first piece of text has arrived.

        Once a delta has been yielded the caller has shown it, so a later failure cannot be
        retried transparently: the deltas received so far are yielded and then an
        ``LLMError("stream ended early ...", retryable=True)`` is raised for the caller to
        decide. A stream is complete when a choice carries a ``finish_reason``; one that stops
        without it (cut off, or ended without ``data: [DONE]``) counts as ended early.

        The concurrency slot is held until the stream is finished or closed, so close an
        abandoned stream (``contextlib.closing``) rather than leaving it to the garbage
        collector.
        """
        params = self._params(temperature, max_tokens, stop)
        params["messages"] = [dict(message) for message in messages]
        return self._stream(_CHAT_PATH, params, messages_tokens(messages))

    def stream_prompt(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[StreamDelta | StreamEnd]:
        """Stream the continuation of a raw ``prompt`` (``/completions``, see
        :meth:`complete_prompt`), with the same retry rules as :meth:`stream`."""
        params = self._params(temperature, max_tokens, stop)
        params["prompt"] = prompt
        return self._stream(_COMPLETIONS_PATH, params, estimate_tokens(prompt))

    # -- internals -------------------------------------------------------------------------

    def _create(self, path: str) -> Callable[..., Any]:
        if path == _COMPLETIONS_PATH:
            return self._sdk.completions.create
        return self._sdk.chat.completions.create

    def _stream(
        self, path: str, params: dict[str, Any], prompt_tokens: int
    ) -> Iterator[StreamDelta | StreamEnd]:
        create = self._create(path)
        params = {**params, "stream": True}
        # Ask for the usage chunk; servers that ignore the option get estimated usage.
        params["stream_options"] = {"include_usage": True}
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            with self._gate.slot():
                state = _StreamState()
                try:
                    sdk_stream = create(**params)
                    events = iter(sdk_stream)
                    first = state.next_text(events)
                except openai.OpenAIError as exc:
                    failure = self._describe(exc, path)
                else:
                    with contextlib.closing(sdk_stream):
                        if first is not None or state.finish_reason is not None:
                            yield from self._stream_rest(
                                first, events, state, path, prompt_tokens, started, attempt
                            )
                            return
                    failure = _Failure(
                        f"stream from {self._endpoint(path)} ended early, before any text",
                        retryable=True,
                    )
            self._sleep(self._retry_delay(failure, attempt))

    def _stream_rest(
        self,
        first: str | None,
        events: Iterator[Any],
        state: _StreamState,
        path: str,
        prompt_tokens: int,
        started: float,
        attempt: int,
    ) -> Iterator[StreamDelta | StreamEnd]:
        """Yield the committed part of a stream: no retries past the first delta."""
        pieces: list[str] = []
        text = first
        failure: _Failure | None = None
        try:
            while text is not None:
                pieces.append(text)
                yield StreamDelta(text)
                text = state.next_text(events)
        except openai.OpenAIError as exc:
            failure = self._describe(exc, path)
        if failure is None and state.finish_reason is None:
            failure = _Failure(
                "no finish_reason (the connection was cut or the server stopped)", retryable=True
            )
        if failure is not None:
            raise LLMError(
                self._scrub(
                    f"stream from {self._endpoint(path)} ended early after {len(pieces)} pieces: "
                    f"{failure.description}"
                ),
                retryable=True,
                status=failure.status,
                attempts=attempt,
            )
        full_text = "".join(pieces)
        estimated = state.tokens_in is None or state.tokens_out is None
        yield StreamEnd(
            Completion(
                text=full_text,
                tokens_in=state.tokens_in if state.tokens_in is not None else prompt_tokens,
                tokens_out=(
                    state.tokens_out if state.tokens_out is not None else estimate_tokens(full_text)
                ),
                finish_reason=state.finish_reason,
                latency_s=time.monotonic() - started,
                attempts=attempt,
                model=state.model or self.config.model,
                usage_estimated=estimated,
            )
        )

    def _params(
        self,
        temperature: float | None,
        max_tokens: int | None,
        stop: list[str] | None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            # Azure routes by the deployment in the URL but the SDK still wants a model.
            "model": self.config.model,
            "temperature": self.config.temperature if temperature is None else temperature,
            # max_tokens rather than max_completion_tokens: every OpenAI-compatible server
            # (vLLM, llama.cpp, Azure's older API versions) understands it.
            "max_tokens": self.config.max_tokens if max_tokens is None else max_tokens,
        }
        if stop:
            params["stop"] = list(stop)
        return params

    def _endpoint(self, path: str = _CHAT_PATH) -> str:
        return _without_query(self._sdk.base_url).rstrip("/") + "/" + path

    def _describe(self, exc: openai.OpenAIError, path: str = _CHAT_PATH) -> _Failure:
        """Turn an SDK exception into a key-free description and a retry decision."""
        request = getattr(exc, "request", None)
        url = _without_query(request.url) if request is not None else self._endpoint(path)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            problem = _STATUS_PROBLEMS.get(status, "error")
            detail = _error_detail(exc.body)
            return _Failure(
                description=f"HTTP {status} from {url}: {problem}"
                + (f" ({detail})" if detail else ""),
                retryable=status in RETRYABLE_STATUSES,
                status=status,
                retry_after_s=_retry_after_s(exc.response.headers),
            )
        if isinstance(exc, openai.APITimeoutError):
            return _Failure(
                f"timed out after {self.config.timeout_s:g} s waiting for {url}", retryable=True
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            reason = f": {type(cause).__name__}" if cause is not None else ""
            return _Failure(f"connection to {url} failed or was dropped{reason}", retryable=True)
        return _Failure(f"error from {url}: {exc}", retryable=False)


def _error_detail(body: object) -> str:
    """The human part of an OpenAI-style error body, shortened for a log line."""
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message[:300]
        return ""
    if isinstance(body, str):
        return body.strip()[:300]
    return ""


def _choice_text(choice: Any, *, streamed: bool = False) -> str:
    """The text of a chat choice (``message``/``delta``) or a completions choice (``text``)."""
    part = getattr(choice, "delta" if streamed else "message", None)
    if part is not None:
        return getattr(part, "content", None) or ""
    return getattr(choice, "text", None) or ""


class _StreamState:
    """What a stream has told us so far besides the text: finish reason, usage, model."""

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.model: str = ""

    def next_text(self, events: Iterator[Any]) -> str | None:
        """Consume chunks until one carries text; None when the stream is exhausted."""
        for chunk in events:
            self.model = getattr(chunk, "model", None) or self.model
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                self.tokens_in = usage.prompt_tokens
                self.tokens_out = usage.completion_tokens
            text = ""
            for choice in getattr(chunk, "choices", None) or []:
                if choice.finish_reason:
                    self.finish_reason = choice.finish_reason
                text += _choice_text(choice, streamed=True)
            if text:
                return text
        return None


# --------------------------------------------------------------------------------------------
# The local kind


class LocalClient:
    """:class:`LLMClient` for the ``local`` kind: a transformers model in this process.

    Models load lazily on the first call (seconds, and minutes for the first conversion of the
    default model), through the process-wide cache in :mod:`curation.local_models`, so several
    clients naming the same folder share one copy. Nothing is retried: a local failure is not
    transient. ``max_concurrency`` still applies; the model itself runs one generation at a
    time.
    """

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._models_dir = Path(config.models_dir) if config.models_dir else DEFAULT_MODELS_DIR
        self._semaphore = threading.BoundedSemaphore(max(1, config.max_concurrency))

    def __repr__(self) -> str:
        return f"<LocalClient model={self.model_name!r}>"

    @property
    def model_name(self) -> str:
        return self.config.model or DEFAULT_LOCAL_MODEL

    def close(self) -> None:
        """Nothing to release: loaded models stay in the process-wide cache for other clients."""

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        """Generate an answer on this machine (the chat is rendered by the chat template)."""
        return self._complete(messages, temperature, max_tokens, stop)

    def complete_prompt(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        """Continue a raw ``prompt`` already in the model's trained format (no chat template)."""
        return self._complete(prompt, temperature, max_tokens, stop)

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[StreamDelta | StreamEnd]:
        """Stream an answer generated on this machine, piece by piece as tokens decode."""
        return self._stream(messages, temperature, max_tokens, stop)

    def stream_prompt(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[StreamDelta | StreamEnd]:
        """Stream the continuation of a raw ``prompt`` (see :meth:`complete_prompt`)."""
        return self._stream(prompt, temperature, max_tokens, stop)

    def _complete(
        self,
        source: list[dict[str, str]] | str,
        temperature: float | None,
        max_tokens: int | None,
        stop: list[str] | None,
    ) -> Completion:
        limit = self.config.max_tokens if max_tokens is None else max_tokens
        started = time.monotonic()
        with self._semaphore:
            model = self._load()
            try:
                result = model.generate_detailed(
                    source,
                    max_new_tokens=limit,
                    temperature=self.config.temperature if temperature is None else temperature,
                    stop=stop,
                )
            except Exception as exc:
                raise LLMError(f"local model {self.model_name} failed: {exc}", attempts=1) from exc
        return Completion(
            text=result.text,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            finish_reason=result.finish_reason,
            latency_s=time.monotonic() - started,
            attempts=1,
            model=self.model_name,
        )

    def _stream(
        self,
        source: list[dict[str, str]] | str,
        temperature: float | None,
        max_tokens: int | None,
        stop: list[str] | None,
    ) -> Iterator[StreamDelta | StreamEnd]:
        limit = self.config.max_tokens if max_tokens is None else max_tokens
        started = time.monotonic()
        with self._semaphore:
            model = self._load()
            pieces: list[str] = []
            local_stream = None
            try:
                local_stream = model.stream(
                    source,
                    max_new_tokens=limit,
                    temperature=self.config.temperature if temperature is None else temperature,
                    stop=stop,
                )
                for piece in local_stream:
                    pieces.append(piece)
                    yield StreamDelta(piece)
            except LLMError:
                raise
            except GeneratorExit:
                # The reader stopped (the owner left, or the loop guard saw a loop): stop the
                # model at its next token instead of letting it run to max_tokens.
                local_stream.close()
                raise
            except Exception as exc:
                raise LLMError(
                    f"local model {self.model_name} failed after {len(pieces)} pieces: {exc}",
                    attempts=1,
                ) from exc
        yield StreamEnd(
            Completion(
                text="".join(pieces),
                tokens_in=local_stream.tokens_in,
                tokens_out=local_stream.tokens_out,
                finish_reason=local_stream.finish_reason,
                latency_s=time.monotonic() - started,
                attempts=1,
                model=self.model_name,
            )
        )

    def _load(self) -> Any:
        try:
            return load_local(self.config.model, self._models_dir)
        except (OSError, ValueError, ImportError) as exc:
            raise LLMConfigError(
                f"cannot load local model {self.config.model or 'default'!r}: {exc}"
            ) from exc


# --------------------------------------------------------------------------------------------
# The seed project's prompt format, and stop strings

#: Markers that end an answer in the seed format: the literal ``</s>`` a model fine-tuned on
#: ``<s>[INST] q [/INST] a </s>`` text writes after its answer, and the start of a new turn.
INST_STOP: Final = ("</s>", "[INST]")


def render_inst(messages: Iterable[Message]) -> str:
    """A chat in the seed project's Llama 2 format, ready for the model to continue.

    ``<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST]``, earlier turns as
    ``<s>[INST] q [/INST] a </s>``; exactly the prompt that ``training.trainer`` trains on for
    ``seed_inst`` snapshots (``<s>[INST] q [/INST]``, the answer following after a space).
    System messages are merged into the first user turn, where Llama 2 puts them.
    """
    messages = list(messages)
    system = "\n\n".join(
        str(m.get("content") or "").strip()
        for m in messages
        if m.get("role") == "system" and str(m.get("content") or "").strip()
    )
    parts: list[str] = []
    first_user = True
    for message in messages:
        role, content = message.get("role"), str(message.get("content") or "").strip()
        if role == "user":
            if first_user and system:
                content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
            first_user = False
            parts.append(f"<s>[INST] {content} [/INST]")
        elif role == "assistant":
            parts.append(f" {content} </s>")
    return "".join(parts)


def _cut_at_stop(text: str, stop: Iterable[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string (dropped), and whether one was found."""
    positions = [index for marker in stop if marker and (index := text.find(marker)) >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


class _StopFilter:
    """Applies stop strings to streamed text: what might be the start of a stop string is held
    back until the next piece shows it is not, so the caller never sees part of a marker."""

    def __init__(self, stop: Iterable[str]) -> None:
        self._stop = [marker for marker in stop if marker]
        self._text = ""
        self._emitted = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The newly safe text after ``piece`` (may be empty); sets ``stopped`` at a marker."""
        if self.stopped:
            return ""
        self._text += piece
        cut, self.stopped = _cut_at_stop(self._text, self._stop)
        safe = len(cut) if self.stopped else len(cut) - self._held_back(cut)
        if safe <= self._emitted:
            return ""
        out = cut[self._emitted : safe]
        self._emitted = safe
        return out

    def flush(self) -> str:
        """What was held back, once the stream has ended without a marker."""
        if self.stopped:
            return ""
        out = self._text[self._emitted :]
        self._emitted = len(self._text)
        return out

    def _held_back(self, text: str) -> int:
        longest = 0
        for marker in self._stop:
            for size in range(min(len(marker) - 1, len(text)), 0, -1):
                if text.endswith(marker[:size]):
                    longest = max(longest, size)
                    break
        return longest


# --------------------------------------------------------------------------------------------
# The sagemaker kind: a TGI container behind a SageMaker endpoint

# TGI's default --max-stop-sequences; a request with more is refused with a 422.
_TGI_MAX_STOP: Final = 4
# TGI names why it stopped differently from the OpenAI API.
_TGI_FINISH_REASONS: Final = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
_SAGEMAKER_DEFAULT_REGION: Final = "us-east-1"


class SageMakerClient(_RetryPolicy):
    """:class:`LLMClient` for the ``sagemaker`` kind: TGI behind ``invoke_endpoint``.

    The body is TGI's ``{"inputs": prompt, "parameters": {...}}``; the answer comes back as
    ``[{"generated_text": ..., "details": {...}}]``. Chats are rendered with
    :func:`render_inst` (the seed project deployed Llama 2 / Mistral models trained on that
    format). Streaming uses ``invoke_endpoint_with_response_stream``: TGI's server-sent
    ``data:{"token": {...}}`` lines arrive split across the event stream's ``PayloadPart``
    blobs and are reassembled here. boto3's own retries are off; the retry rules are this
    module's (429, 5xx, timeouts and dropped connections, with backoff, ``max_retries``).
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not config.model:
            raise LLMConfigError("a sagemaker endpoint needs the SageMaker endpoint name (model)")
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError as exc:  # pragma: no cover - boto3 is in requirements.txt
            raise LLMConfigError(f"the sagemaker kind needs boto3 ({exc})") from exc
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._gate = _RequestGate(config, sleep)
        self.region = (
            config.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or _SAGEMAKER_DEFAULT_REGION
        )
        # A session per client: boto3's default session is not safe to share across threads
        # while clients are being made.
        self._runtime = boto3.session.Session().client(
            "sagemaker-runtime",
            region_name=self.region,
            endpoint_url=config.base_url or None,
            config=BotoConfig(
                retries={"total_max_attempts": 1},
                connect_timeout=min(10.0, config.timeout_s),
                read_timeout=config.timeout_s,
                max_pool_connections=max(10, config.max_concurrency),
            ),
        )

    def __repr__(self) -> str:
        return f"<SageMakerClient endpoint={self.config.model!r} region={self.region!r}>"

    def close(self) -> None:
        self._runtime.close()

    # -- public API ------------------------------------------------------------------------

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        """Answer a chat, rendered in the seed ``[INST]`` format."""
        return self.complete_prompt(
            render_inst(messages),
            temperature=temperature,
            max_tokens=max_tokens,
            stop=[*(stop or []), *INST_STOP],
        )

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[StreamDelta | StreamEnd]:
        """Stream the answer to a chat, rendered in the seed ``[INST]`` format."""
        return self.stream_prompt(
            render_inst(messages),
            temperature=temperature,
            max_tokens=max_tokens,
            stop=[*(stop or []), *INST_STOP],
        )

    def complete_prompt(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        """``invoke_endpoint`` with TGI's body; retries transient failures within the bound."""
        stops = _unique(stop or [])
        body = self._body(prompt, temperature, max_tokens, stops, stream=False)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._gate.slot():
                    response = self._runtime.invoke_endpoint(
                        EndpointName=self.config.model,
                        Body=body,
                        ContentType="application/json",
                        Accept="application/json",
                    )
                    raw = response["Body"].read()
                break
            except Exception as exc:  # botocore's exceptions, sorted out by _describe
                failure = self._describe(exc, stream=False)
            self._sleep(self._retry_delay(failure, attempt))
        text, details = self._parse(raw, attempt)
        text, stopped = _cut_at_stop(text, stops)
        tokens_out = details.get("generated_tokens")
        return Completion(
            text=text,
            tokens_in=estimate_tokens(prompt),
            tokens_out=tokens_out if isinstance(tokens_out, int) else estimate_tokens(text),
            finish_reason="stop" if stopped else _tgi_finish_reason(details),
            latency_s=time.monotonic() - started,
            attempts=attempt,
            model=self.config.model,
            # TGI reports generated tokens but not the prompt's without extra work.
            usage_estimated=True,
        )

    def stream_prompt(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[StreamDelta | StreamEnd]:
        """``invoke_endpoint_with_response_stream``; retried only until the first text, as
        :meth:`OpenAICompatibleClient.stream` is."""
        stops = _unique(stop or [])
        body = self._body(prompt, temperature, max_tokens, stops, stream=True)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            with self._gate.slot():
                try:
                    response = self._runtime.invoke_endpoint_with_response_stream(
                        EndpointName=self.config.model,
                        Body=body,
                        ContentType="application/json",
                        Accept="application/json",
                    )
                    event_stream = response["Body"]
                    tokens = _TGIStream(event_stream)
                    first = tokens.next_text()
                except LLMError:
                    raise
                except Exception as exc:
                    failure = self._describe(exc, stream=True)
                else:
                    with contextlib.closing(event_stream):
                        yield from self._stream_rest(first, tokens, stops, prompt, started, attempt)
                    return
            self._sleep(self._retry_delay(failure, attempt))

    # -- internals -------------------------------------------------------------------------

    def _stream_rest(
        self,
        first: str | None,
        tokens: _TGIStream,
        stops: list[str],
        prompt: str,
        started: float,
        attempt: int,
    ) -> Iterator[StreamDelta | StreamEnd]:
        filter_ = _StopFilter(stops)
        pieces: list[str] = []
        text = first
        try:
            while text is not None:
                safe = filter_.feed(text)
                if safe:
                    pieces.append(safe)
                    yield StreamDelta(safe)
                if filter_.stopped:
                    break
                text = tokens.next_text()
        except LLMError:
            raise
        except Exception as exc:
            failure = self._describe(exc, stream=True)
            raise LLMError(
                f"stream from {self._url(stream=True)} ended early after {len(pieces)} "
                f"pieces: {failure.description}",
                retryable=True,
                status=failure.status,
                attempts=attempt,
            ) from None
        if not filter_.stopped:
            if tokens.details is None:
                raise LLMError(
                    f"stream from {self._url(stream=True)} ended early after {len(pieces)} "
                    "pieces: no final details (the connection was cut or the server stopped)",
                    retryable=True,
                    attempts=attempt,
                )
            rest = filter_.flush()
            if rest:
                pieces.append(rest)
                yield StreamDelta(rest)
        full_text = "".join(pieces)
        details = tokens.details or {}
        tokens_out = details.get("generated_tokens")
        yield StreamEnd(
            Completion(
                text=full_text,
                tokens_in=estimate_tokens(prompt),
                tokens_out=tokens_out if isinstance(tokens_out, int) else tokens.count,
                finish_reason="stop" if filter_.stopped else _tgi_finish_reason(details),
                latency_s=time.monotonic() - started,
                attempts=attempt,
                model=self.config.model,
                usage_estimated=True,
            )
        )

    def _body(
        self,
        prompt: str,
        temperature: float | None,
        max_tokens: int | None,
        stops: list[str],
        *,
        stream: bool,
    ) -> bytes:
        temperature = self.config.temperature if temperature is None else temperature
        parameters: dict[str, Any] = {
            "max_new_tokens": self.config.max_tokens if max_tokens is None else max_tokens,
            "do_sample": temperature > 0,
            "return_full_text": False,
            "details": True,
        }
        # TGI refuses temperature 0 and top_p outside (0, 1); greedy needs neither.
        if temperature > 0:
            parameters["temperature"] = temperature
            if 0 < self.config.top_p < 1:
                parameters["top_p"] = self.config.top_p
        if stops:
            parameters["stop"] = stops[:_TGI_MAX_STOP]
        document: dict[str, Any] = {"inputs": prompt, "parameters": parameters}
        if stream:
            document["stream"] = True
        return json.dumps(document).encode()

    def _parse(self, raw: bytes, attempt: int) -> tuple[str, dict[str, Any]]:
        try:
            document = json.loads(raw)
        except ValueError:
            raise LLMError(
                f"unexpected response from {self._url(stream=False)}: not JSON ({raw[:200]!r})",
                attempts=attempt,
            ) from None
        if isinstance(document, list) and document:
            document = document[0]
        if isinstance(document, dict) and isinstance(document.get("generated_text"), str):
            details = document.get("details")
            return document["generated_text"], details if isinstance(details, dict) else {}
        raise LLMError(
            f"unexpected response from {self._url(stream=False)}: no generated_text "
            f"({str(document)[:200]})",
            attempts=attempt,
        )

    def _url(self, *, stream: bool) -> str:
        suffix = "invocations-response-stream" if stream else "invocations"
        base = str(self._runtime.meta.endpoint_url).rstrip("/")
        return f"{base}/endpoints/{self.config.model}/{suffix}"

    def _describe(self, exc: Exception, *, stream: bool) -> _Failure:
        """A botocore exception as a description and a retry decision."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        url = self._url(stream=stream)
        if isinstance(exc, NoCredentialsError):
            raise LLMConfigError(
                "no AWS credentials for the sagemaker endpoint: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run with an instance role)"
            ) from None
        if isinstance(exc, ClientError):
            response = exc.response or {}
            metadata = response.get("ResponseMetadata") or {}
            status = metadata.get("HTTPStatusCode")
            error = response.get("Error") or {}
            code = error.get("Code") or ""
            detail = str(response.get("OriginalMessage") or error.get("Message") or "")[:300]
            original = response.get("OriginalStatusCode")
            if original:  # a ModelError: the container itself answered with this status
                detail = f"the model container answered HTTP {original}: {detail}"
            problem = _STATUS_PROBLEMS.get(status, "error") if status else "error"
            if status == 404 or (code == "ValidationError" and "not found" in detail.lower()):
                problem = "not found (check the SageMaker endpoint name and region)"
            what = ", ".join(part for part in (code, detail) if part)
            return _Failure(
                description=f"HTTP {status} from {url}: {problem}" + (f" ({what})" if what else ""),
                retryable=status in RETRYABLE_STATUSES or code == "ThrottlingException",
                status=status,
                retry_after_s=_retry_after_s(metadata.get("HTTPHeaders")),
            )
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            return _Failure(
                f"timed out after {self.config.timeout_s:g} s waiting for {url}", retryable=True
            )
        if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
            return _Failure(f"connection to {url} failed or was dropped", retryable=True)
        if isinstance(exc, OSError):
            return _Failure(
                f"connection to {url} failed or was dropped: {type(exc).__name__}",
                retryable=True,
            )
        return _Failure(f"error from {url}: {type(exc).__name__}: {exc}", retryable=False)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def _tgi_finish_reason(details: Mapping[str, Any]) -> str | None:
    reason = details.get("finish_reason")
    return _TGI_FINISH_REASONS.get(reason, reason) if isinstance(reason, str) else None


class _TGIStream:
    """TGI's server-sent events, read from a SageMaker event stream of ``PayloadPart`` blobs.

    A blob may hold part of a line or several lines, so bytes are buffered until a newline.
    ``details`` is set by the final event (TGI sends ``generated_text`` and ``details`` with
    the last token); a stream that ends without it was cut short.
    """

    def __init__(self, event_stream: Iterable[Mapping[str, Any]]) -> None:
        self._events = iter(event_stream)
        self._buffer = b""
        self._lines: list[bytes] = []
        self.details: dict[str, Any] | None = None
        self.count = 0

    def next_text(self) -> str | None:
        """The next token's text (special tokens skipped); None when the stream is over."""
        while True:
            line = self._next_line()
            if line is None:
                return None
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("error"):
                raise LLMError(f"the model container failed mid-stream: {event['error']}")
            token = event.get("token") or {}
            self.count += 1
            if isinstance(event.get("details"), dict) or event.get("generated_text") is not None:
                self.details = event.get("details") or {}
            text = "" if token.get("special") else str(token.get("text") or "")
            if text:
                return text
            if self.details is not None:
                return None

    def _next_line(self) -> bytes | None:
        while not self._lines:
            try:
                event = next(self._events)
            except StopIteration:
                if self._buffer:
                    line, self._buffer = self._buffer, b""
                    return line
                return None
            part = event.get("PayloadPart") if isinstance(event, Mapping) else None
            if part is None:
                problem = next(iter(event), "unknown") if isinstance(event, Mapping) else event
                raise LLMError(f"the SageMaker stream reported {problem}")
            self._buffer += part.get("Bytes") or b""
            *complete, self._buffer = self._buffer.split(b"\n")
            self._lines.extend(line for line in complete if line.strip())
        return self._lines.pop(0)


# --------------------------------------------------------------------------------------------


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
