"""A fake OpenAI-compatible API on a real socket, for tests and benchmarks.

The openai SDK talks to it unchanged (``base_url=fake.base_url`` or
``azure_endpoint=fake.azure_endpoint``), so tests exercise the real HTTP client: its timeouts,
dropped connections, status codes, ``Retry-After`` headers and server-sent events. Faults are
injected per request rather than mocked, because the point is to see what the client does on
the wire.

Served on top of :class:`tests.httpserver.LocalHTTPServer` (a threading server, so concurrent
requests run in parallel, which the 32-thread generation benchmark relies on):

* ``POST /v1/chat/completions`` and the Azure form
  ``POST /openai/deployments/{deployment}/chat/completions?api-version=...``: a
  ``chat.completion`` JSON, or with ``"stream": true`` server-sent ``chat.completion.chunk``
  events (role, one chunk per word, a finish chunk, a usage chunk when
  ``stream_options.include_usage`` is set, then ``data: [DONE]``);
* ``GET /v1/models``.

The answer comes from ``responder(messages) -> str``; the default one is deterministic (see
:func:`default_responder`). ``max_tokens`` cuts the answer (``finish_reason: "length"``) and
``stop`` strings cut it at the first match, counting one token per word or punctuation mark.

Example::

    with FakeOpenAI() as fake:
        fake.fail_next(1, status=429, retry_after=1)
        client = make_client(EndpointConfig(kind="openai", model="m", base_url=fake.base_url))
        client.complete([{"role": "user", "content": "Hi"}])
        assert len(fake.requests) == 2
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from tests.httpserver import LocalHTTPServer, Response

__all__ = ["FakeOpenAI", "default_responder", "fake_token_count"]

Responder = Callable[[list[dict[str, Any]]], str]

_AZURE_PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/chat/completions$")
_TOKEN = re.compile(r"\w+|[^\w\s]")

# Words that say nothing about a topic; dropped when picking phrases and matching.
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "please",
        "answer",
        "question",
        "questions",
        "context",
        "manual",
        "using",
        "only",
        "based",
        "following",
        "write",
        "generate",
        "list",
        "each",
        "about",
    }
)

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def fake_token_count(text: str) -> int:
    """How the fake counts tokens: one per word or punctuation mark.

    Deliberately not the client's ``estimate_tokens`` (characters / 4), so a test can tell a
    usage figure the server reported from one the client estimated.
    """
    return len(_TOKEN.findall(text))


# --------------------------------------------------------------------------------------------
# The default responder


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # the multi-part form: [{"type": "text", "text": ...}]
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


_LABEL = re.compile(r"^(?:context|question|answer|excerpt|passage|text)\s*:\s*", re.IGNORECASE)


def _sentences(text: str) -> list[str]:
    """Sentences and lines of ``text``, without list markers or prompt labels."""
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    cleaned = (_LABEL.sub("", part.strip(" \t-*#>|")) for part in parts)
    return [part for part in cleaned if part]


def _keywords(text: str) -> list[str]:
    return [word for word in re.findall(r"[a-z0-9]+", text.lower()) if word not in _STOPWORDS]


def default_responder(messages: list[dict[str, Any]]) -> str:
    """A deterministic stand-in for a model that looks at its prompt.

    If the last user message asks for questions, it answers with a numbered list of questions
    ("1. What does the manual say about ...?"), as many as the prompt asks for ("5 questions"),
    else three, each about a phrase taken from the prompt's text. Otherwise it answers with one
    sentence quoting the sentence of the prompt that shares the most words with the question,
    or says it cannot find the answer when no sentence shares any.
    """
    user_messages = [message for message in messages if message.get("role") == "user"]
    prompt = _content(user_messages[-1]) if user_messages else ""
    all_text = "\n".join(_content(message) for message in messages)
    if "questions" in prompt.lower():
        return _questions(prompt, all_text)
    return _answer(prompt, all_text)


def _questions(prompt: str, all_text: str) -> str:
    wanted = re.search(r"(\d+)\s+(?:[a-z-]+\s+){0,3}questions", prompt, re.IGNORECASE)
    count = min(max(int(wanted.group(1)), 1), 50) if wanted else 3
    topics: list[str] = []
    for sentence in _sentences(all_text):
        if "question" in sentence.lower():
            # The instructions, not the material; keep only what follows a colon, if anything
            # ("Write 3 questions about: The charge port ...").
            sentence = sentence.rpartition(":")[2]
        words = _keywords(sentence)
        if len(words) < 2:
            continue
        topic = " ".join(words[:4])
        if topic not in topics:
            topics.append(topic)
    if not topics:
        topics = ["this section"]
    templates = (
        "What does the manual say about {}?",
        "How should an owner handle {}?",
        "When does {} matter?",
    )
    # Every topic with the first template, then again with the next, so a long list repeats
    # no question.
    variants = [template.format(topic) for template in templates for topic in topics]
    return "\n".join(f"{index}. {question}" for index, question in enumerate(variants[:count], 1))


def _answer(prompt: str, all_text: str) -> str:
    question_part = prompt.rsplit("Question:", 1)[-1]
    asked = set(_keywords(question_part))
    best, best_score = "", 0
    for sentence in _sentences(all_text):
        if sentence.endswith("?") or sentence in question_part:
            continue
        score = len(asked & set(_keywords(sentence)))
        if score > best_score:
            best, best_score = sentence, score
    if not best:
        return "I could not find that in the manual."
    quote = " ".join(best.split()[:16]).rstrip(".,;:")
    return f'According to the manual, "{quote}".'


# --------------------------------------------------------------------------------------------
# Faults


@dataclass(frozen=True)
class _Fault:
    """One injected misbehaviour, consumed by one chat-completion request."""

    kind: str  # "error" | "drop" | "truncate" | "slow"
    status: int = 500
    retry_after: float | str | None = None
    body: str = ""
    after_chunks: int = 2
    cut_connection: bool = False
    delay_s: float = 0.0

    def applies_to(self, streaming: bool) -> bool:
        # A truncation only makes sense for a stream; it waits for the next streaming request.
        return streaming or self.kind != "truncate"


class _TrackedBody:
    """A streamed body that tells the fake when it is done, however it ends.

    A generator's ``finally`` never runs if the server fails before starting it (the client
    hung up while the headers were written), which would leave the in-flight count high for
    ever; ``__del__`` covers that case.
    """

    def __init__(self, chunks: Iterator[bytes], on_done: Callable[[], None]) -> None:
        self._chunks = chunks
        self._on_done = on_done
        self._done = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:
            self._finish()
            raise

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._on_done()

    def __del__(self) -> None:
        self._finish()


# --------------------------------------------------------------------------------------------
# The server


class FakeOpenAI:
    """An OpenAI-compatible chat-completions server on ``127.0.0.1`` (a context manager).

    Attributes a test may set at any time: ``responder``, ``latency_s`` (added before every
    response), ``chunk_delay_s`` (between streamed chunks), ``send_usage`` (False: no usage in
    responses, so clients must estimate) and ``api_key`` (when set, requests must carry it as
    ``Authorization: Bearer`` or ``api-key``, else 401; the 401 message quotes the key it got,
    as real servers partly do, so tests can check that clients keep keys out of errors).

    What it saw: ``requests`` lists one dict per request, in arrival order, with ``method``,
    ``path``, ``query`` (parsed, e.g. ``{"api-version": "2024-06-01"}``), ``headers``
    (lower-case names), ``body`` (the parsed JSON or None), ``deployment`` (Azure path, else
    None) and ``time`` (``time.monotonic()`` on arrival). ``in_flight`` and ``max_in_flight``
    count chat requests being answered, to check a client's concurrency limit.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency_s: float = 0.0,
        api_key: str | None = None,
        model: str = "fake-model",
    ) -> None:
        self.responder: Responder = responder or default_responder
        self.latency_s = latency_s
        self.chunk_delay_s = 0.0
        self.send_usage = True
        self.api_key = api_key
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: list[_Fault] = []
        # Re-entrant because _TrackedBody.__del__ takes it and a garbage collection can run in
        # a thread that already holds it.
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._ids = itertools.count(1)
        self._server = LocalHTTPServer()
        self._server.handle("/v1/", self._handle)
        self._server.handle("/openai/", self._handle)

    # -- lifecycle and addresses -----------------------------------------------------------

    def start(self) -> Self:
        self._closing.clear()
        self._server.start()  # LocalHTTPServer listens with a backlog that suits 32+ clients
        return self

    def close(self) -> None:
        self._closing.set()  # wakes handlers sleeping on latency so shutdown is quick
        self._server.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"{self._server.base_url}/v1"

    @property
    def azure_endpoint(self) -> str:
        """The Azure-style resource endpoint, ``http://127.0.0.1:PORT``."""
        return self._server.base_url

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        *,
        status: int = 500,
        retry_after: float | str | None = None,
        body: str = "",
    ) -> None:
        """Answer the next ``count`` chat requests with HTTP ``status`` and an OpenAI error body.

        ``retry_after`` is sent as a ``Retry-After`` header: a number of seconds, or a string
        sent verbatim (an HTTP date). ``body`` replaces the JSON error body.
        """
        self._add(count, _Fault("error", status=status, retry_after=retry_after, body=body))

    def drop_next(self, count: int) -> None:
        """Close the connection of the next ``count`` chat requests without answering."""
        self._add(count, _Fault("drop"))

    def truncate_next_stream(
        self, count: int, *, after_chunks: int = 2, cut_connection: bool = False
    ) -> None:
        """Stop the next ``count`` streams after ``after_chunks`` text chunks.

        The stream ends without a finish chunk, usage or ``data: [DONE]``; by default the HTTP
        body ends cleanly (a server that gave up), with ``cut_connection=True`` the socket is
        closed mid-body (a dropped connection). Non-streaming requests do not consume it.
        """
        self._add(
            count, _Fault("truncate", after_chunks=after_chunks, cut_connection=cut_connection)
        )

    def slow_next(self, count: int, delay_s: float) -> None:
        """Delay the next ``count`` chat responses by ``delay_s`` (to trigger client timeouts)."""
        self._add(count, _Fault("slow", delay_s=delay_s))

    def pending_faults(self) -> int:
        """How many injected faults have not been consumed yet."""
        with self._lock:
            return len(self._faults)

    def reset(self) -> None:
        """Forget requests, counters and pending faults (between phases of a test)."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.max_in_flight = self.in_flight

    def chat_requests(self) -> list[dict[str, Any]]:
        """The recorded chat-completion requests (not ``/v1/models``)."""
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def _add(self, count: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    def _take_fault(self, streaming: bool) -> _Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.applies_to(streaming):
                    return self._faults.pop(index)
        return None

    # -- request handling ------------------------------------------------------------------

    def _handle(
        self, method: str, path_with_query: str, headers: Mapping[str, str], body: bytes
    ) -> Response | Iterator[bytes]:
        split = urlsplit(path_with_query)
        path = split.path
        query = {name: values[-1] for name, values in parse_qs(split.query).items()}
        lower_headers = {name.lower(): value for name, value in headers.items()}
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        azure = _AZURE_PATH.match(path)
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "query": query,
                    "headers": lower_headers,
                    "body": payload,
                    "deployment": azure.group("deployment") if azure else None,
                    "time": time.monotonic(),
                }
            )

        if self.api_key is not None:
            given = lower_headers.get("api-key") or lower_headers.get(
                "authorization", ""
            ).removeprefix("Bearer ")
            if given != self.api_key:
                return _error(401, f"Incorrect API key provided: {given}.")

        if path == "/v1/models":
            if method != "GET":
                return _error(405, f"Method {method} not allowed on {path}.")
            return self._models()
        if path != "/v1/chat/completions" and not azure:
            return _error(404, f"Unknown request URL: {method} {path}.")
        if method != "POST":
            return _error(405, f"Method {method} not allowed on {path}.")
        if azure and "api-version" not in query:
            return _error(404, "Resource not found (the api-version query parameter is missing).")
        if body and payload is None:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
            return _error(400, "'messages' is a required property.")
        model = str(payload.get("model") or (azure.group("deployment") if azure else self.model))
        return self._chat(payload, model)

    def _chat(self, payload: dict[str, Any], model: str) -> Response | Iterator[bytes]:
        streaming = bool(payload.get("stream"))
        fault = self._take_fault(streaming)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        handed_over = False
        try:
            self._pause(self.latency_s)
            if fault is not None and fault.kind == "slow":
                self._pause(fault.delay_s)
            if fault is not None and fault.kind == "drop":
                return Response(drop=True)
            if fault is not None and fault.kind == "error":
                return _fault_response(fault)
            try:
                text = self.responder(payload["messages"])
            except Exception as exc:  # a broken responder is the test's bug: say so loudly
                return _error(500, f"The fake's responder raised {type(exc).__name__}: {exc}")
            text, finish_reason = _limit(text, payload)
            prompt_tokens = sum(fake_token_count(_content(m)) for m in payload["messages"])
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": fake_token_count(text),
                "total_tokens": prompt_tokens + fake_token_count(text),
            }
            completion_id = f"chatcmpl-fake{next(self._ids)}"
            if not streaming:
                document = {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": finish_reason,
                            "logprobs": None,
                        }
                    ],
                }
                if self.send_usage:
                    document["usage"] = usage
                return _json(200, document)
            include_usage = self.send_usage and bool(
                (payload.get("stream_options") or {}).get("include_usage")
            )
            events = self._events(
                completion_id, model, text, finish_reason, usage if include_usage else None, fault
            )
            handed_over = True
            return Response(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                body=_TrackedBody(events, self._request_done),
            )
        finally:
            if not handed_over:
                self._request_done()

    def _events(
        self,
        completion_id: str,
        model: str,
        text: str,
        finish_reason: str,
        usage: dict[str, int] | None,
        fault: _Fault | None,
    ) -> Iterator[bytes]:
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            document = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(document)}\n\n".encode()

        def delta(content: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}]

        yield chunk(delta({"role": "assistant", "content": ""}))
        # One chunk per word with its trailing space; joined they give back the text exactly.
        pieces = re.findall(r"\S+\s*|\s+", text)
        truncated = fault is not None and fault.kind == "truncate"
        for index, piece in enumerate(pieces):
            if truncated and index >= fault.after_chunks:
                break
            self._pause(self.chunk_delay_s)
            yield chunk(delta({"content": piece}))
        if truncated:
            if fault.cut_connection:
                # Unwinds the server's response loop, which then closes the socket without the
                # chunked body's terminator: on the client's side, a dropped connection.
                raise ConnectionResetError("fake stream cut on purpose")
            return
        yield chunk(delta({}, finish_reason))
        if usage is not None:
            yield chunk([], usage=usage)
        yield b"data: [DONE]\n\n"

    def _models(self) -> Response:
        return _json(
            200,
            {
                "object": "list",
                "data": [
                    {"id": self.model, "object": "model", "created": 0, "owned_by": "fakeopenai"}
                ],
            },
        )

    def _request_done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._closing.wait(seconds)


def _limit(text: str, payload: Mapping[str, Any]) -> tuple[str, str]:
    """Apply the request's ``stop`` strings and token limit, as a real server would."""
    stop = payload.get("stop")
    markers: Sequence[str] = [stop] if isinstance(stop, str) else list(stop or [])
    positions = [index for marker in markers if marker and (index := text.find(marker)) >= 0]
    if positions:
        return text[: min(positions)], "stop"
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and fake_token_count(text) > limit:
        kept, used = [], 0
        for piece in re.findall(r"\S+\s*", text):
            used += fake_token_count(piece)
            if used > limit:
                break
            kept.append(piece)
        return "".join(kept).rstrip(), "length"
    return text, "stop"


def _json(
    status: int, document: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
        body=json.dumps(document).encode(),
    )


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    error_type, code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "error", None)
    )
    return _json(
        status,
        {"error": {"message": message, "type": error_type, "param": None, "code": code}},
        headers,
    )


def _fault_response(fault: _Fault) -> Response:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = (
            fault.retry_after if isinstance(fault.retry_after, str) else f"{fault.retry_after:g}"
        )
    if fault.body:
        try:
            json.loads(fault.body)
            content_type = "application/json"
        except ValueError:
            content_type = "text/plain"
        return Response(
            status=fault.status,
            headers={"Content-Type": content_type, **headers},
            body=fault.body.encode(),
        )
    messages = {
        429: "Rate limit reached for requests (injected by the fake).",
        500: "The server had an error while processing your request (injected by the fake).",
    }
    message = messages.get(fault.status, f"Injected failure with status {fault.status}.")
    return _error(fault.status, message, headers)


def main(argv: list[str] | None = None) -> None:
    """Serve the fake from its own process (benchmarks: its work must not share our GIL).

    Prints the base URL on the first line of stdout, then the largest number of concurrent
    requests it saw whenever it reads a line on stdin; exits when stdin closes.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    parser.add_argument(
        "--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks"
    )
    args = parser.parse_args(argv)
    with FakeOpenAI(latency_s=args.latency) as server:
        server.chunk_delay_s = args.chunk_delay
        print(server.base_url, flush=True)
        for _line in sys.stdin:
            print(server.max_in_flight, flush=True)


if __name__ == "__main__":
    main()
