"""The ``openai`` and ``azure_openai`` kinds: any OpenAI-compatible server over the openai SDK."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import openai

from manualqa.lib.key_names import api_key_env_problem
from manualqa.lib.llm.limits import RETRYABLE_STATUSES, STATUS_PROBLEMS, Failure, RemoteClient
from manualqa.lib.llm.tokens import estimate_tokens, messages_tokens
from manualqa.lib.llm.types import Completion, LLMConfigError, LLMError, StreamDelta, StreamEnd
from manualqa.lib.retry_after import retry_after_s

if TYPE_CHECKING:
    from manualqa.lib.llm.types import EndpointConfig, Request, Source

OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
_CHAT_PATH: Final = "chat/completions"
_COMPLETIONS_PATH: Final = "completions"

# Sent to OpenAI-compatible servers that need no key; the SDK refuses to run without one.
DUMMY_API_KEY: Final = "not-needed"


def _resolve_api_key(config: EndpointConfig) -> str:
    """Read the key from the named environment variable, refusing only where one is needed,
    and never from a variable that may not hold an API key (see :mod:`manualqa.lib.key_names`)."""
    problem = api_key_env_problem(config.api_key_env)
    if problem:
        raise LLMConfigError(f"api_key_env: {problem}")
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


def _without_query(url: object) -> str:
    return str(url).split("?", 1)[0]


class OpenAICompatibleClient(RemoteClient):
    """:class:`LLMClient` for the ``openai`` and ``azure_openai`` kinds over the openai SDK.

    One instance is meant to be shared by many threads: the SDK's HTTP client is thread-safe
    and pools connections, and the limits live in :class:`RequestGate`. A chat goes to the
    chat API; a raw prompt goes to the legacy ``/completions`` API, for models served with a
    prompt format of their own (a model fine-tuned on the seed project's ``<s>[INST] q
    [/INST]`` text, served by vLLM or TGI), which the chat API would wrap in the tokenizer's
    chat template.

    A stream is retried only until its first piece of text has arrived. Once a delta has been
    yielded the caller has shown it, so a later failure cannot be retried transparently: the
    deltas received so far are yielded and then an ``LLMError("stream ended early ...",
    retryable=True)`` is raised for the caller to decide. A stream is complete when a choice
    carries a ``finish_reason``; one that stops without it (cut off, or ended without ``data:
    [DONE]``) counts as ended early.
    """

    def _open(self) -> None:
        config = self.config
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

    def close(self) -> None:
        """Close the pooled HTTP connections (they are also closed when the client is freed)."""
        self._sdk.close()

    def _complete(self, source: Source, request: Request) -> Completion:
        path, params, prompt_tokens = self._params(source, request)
        create = self._create(path)
        started = time.monotonic()
        response, attempt = self._with_retries(
            lambda: create(**params), lambda exc: self._describe_sdk(exc, path)
        )
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

    # -- internals -------------------------------------------------------------------------

    def _create(self, path: str) -> Callable[..., Any]:
        if path == _COMPLETIONS_PATH:
            return self._sdk.completions.create
        return self._sdk.chat.completions.create

    def _stream(self, source: Source, request: Request) -> Iterator[StreamDelta | StreamEnd]:
        path, params, prompt_tokens = self._params(source, request)
        create = self._create(path)
        params["stream"] = True
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
                    failure = Failure(
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
        failure: Failure | None = None
        try:
            while text is not None:
                pieces.append(text)
                yield StreamDelta(text)
                text = state.next_text(events)
        except openai.OpenAIError as exc:
            failure = self._describe(exc, path)
        if failure is None and state.finish_reason is None:
            failure = Failure(
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

    def _params(self, source: Source, request: Request) -> tuple[str, dict[str, Any], int]:
        """The API path for ``source``, the request's parameters, and the prompt's estimated
        tokens (for when the server reports no usage)."""
        params: dict[str, Any] = {
            # Azure routes by the deployment in the URL but the SDK still wants a model.
            "model": self.config.model,
            "temperature": request.temperature,
            # max_tokens rather than max_completion_tokens: every OpenAI-compatible server
            # (vLLM, llama.cpp, Azure's older API versions) understands it.
            "max_tokens": request.max_tokens,
        }
        if request.stop:
            params["stop"] = list(request.stop)
        if isinstance(source, str):
            params["prompt"] = source
            return _COMPLETIONS_PATH, params, estimate_tokens(source)
        params["messages"] = [dict(message) for message in source]
        return _CHAT_PATH, params, messages_tokens(source)

    def _endpoint(self, path: str = _CHAT_PATH) -> str:
        return _without_query(self._sdk.base_url).rstrip("/") + "/" + path

    def _describe_sdk(self, exc: Exception, path: str) -> Failure | None:
        """:meth:`_describe` for the SDK's own exceptions; None for any other, which is a bug
        to raise rather than a failure to retry."""
        return self._describe(exc, path) if isinstance(exc, openai.OpenAIError) else None

    def _describe(self, exc: openai.OpenAIError, path: str = _CHAT_PATH) -> Failure:
        """Turn an SDK exception into a key-free description and a retry decision."""
        request = getattr(exc, "request", None)
        url = _without_query(request.url) if request is not None else self._endpoint(path)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            problem = STATUS_PROBLEMS.get(status, "error")
            detail = _error_detail(exc.body)
            return Failure(
                description=f"HTTP {status} from {url}: {problem}"
                + (f" ({detail})" if detail else ""),
                retryable=status in RETRYABLE_STATUSES,
                status=status,
                retry_after_s=retry_after_s(exc.response.headers),
            )
        if isinstance(exc, openai.APITimeoutError):
            return Failure(
                f"timed out after {self.config.timeout_s:g} s waiting for {url}", retryable=True
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            reason = f": {type(cause).__name__}" if cause is not None else ""
            return Failure(f"connection to {url} failed or was dropped{reason}", retryable=True)
        return Failure(f"error from {url}: {exc}", retryable=False)


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
