"""The ``sagemaker`` kind: a TGI container behind a SageMaker endpoint."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from manualqa.lib.llm.limits import RETRYABLE_STATUSES, STATUS_PROBLEMS, Failure, RemoteClient
from manualqa.lib.llm.tokens import estimate_tokens
from manualqa.lib.llm.types import Completion, LLMConfigError, LLMError, StreamDelta, StreamEnd
from manualqa.lib.prompt_formats import INST_STOP, render_inst
from manualqa.lib.retry_after import retry_after_s
from manualqa.lib.stops import StopFilter, cut_at_stop

if TYPE_CHECKING:
    from manualqa.lib.llm.types import Request, Source

# --------------------------------------------------------------------------------------------
# The sagemaker kind: a TGI container behind a SageMaker endpoint

# TGI's default --max-stop-sequences; a request with more is refused with a 422.
_TGI_MAX_STOP: Final = 4
# TGI names why it stopped differently from the OpenAI API.
_TGI_FINISH_REASONS: Final = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
_SAGEMAKER_DEFAULT_REGION: Final = "us-east-1"


class SageMakerClient(RemoteClient):
    """:class:`LLMClient` for the ``sagemaker`` kind: TGI behind ``invoke_endpoint``.

    The body is TGI's ``{"inputs": prompt, "parameters": {...}}``; the answer comes back as
    ``[{"generated_text": ..., "details": {...}}]``. Chats are rendered with
    :func:`render_inst` (the seed project deployed Llama 2 / Mistral models trained on that
    format). Streaming uses ``invoke_endpoint_with_response_stream``: TGI's server-sent
    ``data:{"token": {...}}`` lines arrive split across the event stream's ``PayloadPart``
    blobs and are reassembled here. boto3's own retries are off; the retry rules are this
    module's (429, 5xx, timeouts and dropped connections, with backoff, ``max_retries``).
    """

    def _open(self) -> None:
        config = self.config
        if not config.model:
            raise LLMConfigError("a sagemaker endpoint needs the SageMaker endpoint name (model)")
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError as exc:  # pragma: no cover - boto3 is in requirements.txt
            raise LLMConfigError(f"the sagemaker kind needs boto3 ({exc})") from exc
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

    def _prompt(self, source: Source, request: Request) -> tuple[str, list[str]]:
        """The prompt TGI continues and its stop strings: a chat is rendered in the seed
        ``[INST]`` format, which also stops at the next turn's markers."""
        if isinstance(source, str):
            return source, _unique(request.stop)
        return render_inst(source), _unique([*request.stop, *INST_STOP])

    def _complete(self, source: Source, request: Request) -> Completion:
        """``invoke_endpoint`` with TGI's body; retries transient failures within the bound."""
        prompt, stops = self._prompt(source, request)
        body = self._body(prompt, request, stops, stream=False)
        started = time.monotonic()

        def invoke() -> bytes:
            response = self._runtime.invoke_endpoint(
                EndpointName=self.config.model,
                Body=body,
                ContentType="application/json",
                Accept="application/json",
            )
            return response["Body"].read()

        # botocore's exceptions, sorted out by _describe
        raw, attempt = self._with_retries(invoke, lambda exc: self._describe(exc, stream=False))
        text, details = self._parse(raw, attempt)
        text, stopped = cut_at_stop(text, stops)
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

    def _stream(self, source: Source, request: Request) -> Iterator[StreamDelta | StreamEnd]:
        """``invoke_endpoint_with_response_stream``; retried only until the first text, as
        :class:`OpenAICompatibleClient` streams are."""
        prompt, stops = self._prompt(source, request)
        body = self._body(prompt, request, stops, stream=True)
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
        filter_ = StopFilter(stops)
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

    def _body(self, prompt: str, request: Request, stops: list[str], *, stream: bool) -> bytes:
        temperature = request.temperature
        parameters: dict[str, Any] = {
            "max_new_tokens": request.max_tokens,
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

    def _describe(self, exc: Exception, *, stream: bool) -> Failure:
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
            problem = STATUS_PROBLEMS.get(status, "error") if status else "error"
            if status == 404 or (code == "ValidationError" and "not found" in detail.lower()):
                problem = "not found (check the SageMaker endpoint name and region)"
            what = ", ".join(part for part in (code, detail) if part)
            return Failure(
                description=f"HTTP {status} from {url}: {problem}" + (f" ({what})" if what else ""),
                retryable=status in RETRYABLE_STATUSES or code == "ThrottlingException",
                status=status,
                retry_after_s=retry_after_s(metadata.get("HTTPHeaders")),
            )
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            return Failure(
                f"timed out after {self.config.timeout_s:g} s waiting for {url}", retryable=True
            )
        if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
            return Failure(f"connection to {url} failed or was dropped", retryable=True)
        if isinstance(exc, OSError):
            return Failure(
                f"connection to {url} failed or was dropped: {type(exc).__name__}",
                retryable=True,
            )
        return Failure(f"error from {url}: {type(exc).__name__}: {exc}", retryable=False)


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
