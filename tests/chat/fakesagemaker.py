"""A fake SageMaker runtime serving a TGI container, on a real socket, for tests.

boto3 talks to it unchanged through ``endpoint_url=fake.endpoint_url``: requests are signed
(with whatever dummy credentials the test sets) and sent over HTTP as to AWS. It serves:

* ``POST /endpoints/{name}/invocations``: TGI's ``[{"generated_text": ..., "details": ...}]``;
* ``POST /endpoints/{name}/invocations-response-stream``: TGI's server-sent ``data:{"token":...}``
  lines, wrapped in the AWS event-stream binary framing (``PayloadPart`` events) the way
  SageMaker wraps a container's streamed body, split across parts at awkward places so the
  client has to reassemble lines;
* an unknown endpoint name: 400 ``ValidationError`` "Endpoint ... not found", as AWS answers.

``requests`` records each call's endpoint name, path, headers and parsed JSON body. The answer
comes from ``responder(inputs) -> str``; ``fail_next(count, status)`` injects errors.
"""

from __future__ import annotations

import binascii
import json
import re
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

from tests.httpserver import LocalHTTPServer, Response

__all__ = ["FakeSageMaker", "event_stream_message"]

_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<op>invocations(?:-response-stream)?)$")
_WORDS = re.compile(r"\S+\s*|\s+")


def _header(name: str, value: str) -> bytes:
    encoded = value.encode()
    # Header value type 7 is a string with a 2-byte length.
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(encoded)) + encoded


def event_stream_message(payload: bytes, *, event_type: str = "PayloadPart") -> bytes:
    """One AWS event-stream message: prelude with CRC, headers, payload, message CRC."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/octet-stream")
        + _header(":message-type", "event")
    )
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


class FakeSageMaker:
    """SageMaker runtime endpoints named ``endpoint_names`` on 127.0.0.1 (a context manager)."""

    def __init__(
        self,
        responder: Callable[[str], str] | None = None,
        *,
        endpoint_names: tuple[str, ...] = ("tgi-endpoint",),
    ) -> None:
        self.responder = responder or (lambda inputs: "The manual says to check the fuse.")
        self.endpoint_names = endpoint_names
        self.requests: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = LocalHTTPServer()
        self._server.handle("/endpoints/", self._handle)

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.close()

    @property
    def endpoint_url(self) -> str:
        return self._server.base_url

    def fail_next(self, count: int, *, status: int = 503) -> None:
        """Fail the next ``count`` calls with ``status``; 424 is SageMaker's ModelError (the
        container answered 422)."""
        with self._lock:
            self._failures.extend([status] * count)

    def _handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Response | Iterator[bytes]:
        match = _PATH.match(path.split("?", 1)[0])
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "endpoint": match.group("name") if match else None,
                    "operation": match.group("op") if match else None,
                    "headers": {name.lower(): value for name, value in headers.items()},
                    "body": payload,
                }
            )
            failure = self._failures.pop(0) if self._failures else None
        if match is None or method != "POST":
            return _aws_error(404, "UnknownOperationException", f"No route for {path}")
        if match.group("name") not in self.endpoint_names:
            return _aws_error(
                400, "ValidationError", f"Endpoint {match.group('name')} of account not found."
            )
        if failure is not None and failure != 424:
            return _aws_error(failure, "ServiceUnavailable", "Injected failure.")
        if (
            failure == 424
            or not isinstance(payload, dict)
            or not isinstance(payload.get("inputs"), str)
        ):
            # What SageMaker reports when the container refuses the request.
            return _aws_error(
                424,
                "ModelError",
                "Received client error (422) from primary",
                original_status=422,
                original_message='{"error":"Input validation error: `inputs` is required"}',
            )
        parameters = payload.get("parameters") or {}
        text = self.responder(payload["inputs"])
        words = _WORDS.findall(text)
        limit = parameters.get("max_new_tokens")
        finish = "eos_token"
        if isinstance(limit, int) and len(words) > limit:
            words, finish = words[:limit], "length"
        text = "".join(words)
        details = {"finish_reason": finish, "generated_tokens": len(words), "seed": None}
        if match.group("op") == "invocations":
            return Response(
                headers={"Content-Type": "application/json"},
                body=json.dumps([{"generated_text": text, "details": details}]).encode(),
            )
        return Response(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                "X-Amzn-SageMaker-Content-Type": "text/event-stream",
            },
            body=self._stream(words, text, details),
        )

    def _stream(self, words: list[str], text: str, details: dict[str, Any]) -> Iterator[bytes]:
        lines = []
        for index, word in enumerate(words):
            last = index == len(words) - 1
            event = {
                "token": {"id": index, "text": word, "logprob": -0.1, "special": False},
                "generated_text": text if last else None,
                "details": details if last else None,
            }
            lines.append(f"data:{json.dumps(event)}\n\n".encode())
        if not words:
            lines.append(
                b"data:"
                + json.dumps(
                    {
                        "token": {"id": 2, "text": "</s>", "logprob": 0.0, "special": True},
                        "generated_text": "",
                        "details": details,
                    }
                ).encode()
                + b"\n\n"
            )
        raw = b"".join(lines)
        # Parts of 37 bytes: lines and even UTF-8 characters are split across events.
        for start in range(0, len(raw), 37):
            yield event_stream_message(raw[start : start + 37])


def _aws_error(
    status: int,
    code: str,
    message: str,
    *,
    original_status: int | None = None,
    original_message: str | None = None,
) -> Response:
    document: dict[str, Any] = {"message": message}
    if original_status is not None:
        document["OriginalStatusCode"] = original_status
        document["OriginalMessage"] = original_message
    return Response(
        status=status,
        headers={"Content-Type": "application/json", "x-amzn-ErrorType": f"{code}:http://x/"},
        body=json.dumps(document).encode(),
    )
