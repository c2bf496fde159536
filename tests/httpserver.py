"""A real, threaded HTTP server on 127.0.0.1 for tests.

Tests that exercise HTTP clients (the crawler, later an OpenAI-compatible fake) should talk to
a real socket rather than mock ``requests``: timeouts, dropped connections, chunked bodies and
redirects only behave realistically on the wire. This helper keeps that cheap:

* it serves static files from a directory (``root``), like ``python -m http.server``;
* a test can *script* the responses of one path (status, headers, body, delay, dropped
  connection), consumed in order with the last one repeating;
* a test can register a callable for a path prefix, for dynamic fakes such as an API server,
  which may return a :class:`Response` or an iterator of ``bytes`` chunks to stream;
* every request is recorded: ``server.hits[path]`` lists the ``time.monotonic()`` arrival
  times, and ``server.requests`` keeps full :class:`Request` records.

Example::

    with LocalHTTPServer(root=tmp_path) as server:
        server.script("/flaky", [Response(status=503), Response(body=b"ok")])
        requests.get(server.url("/flaky"))

The server binds port 0 so parallel test runs never collide, runs in a daemon thread, and is
shut down when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import mimetypes
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import unquote, urlsplit

__all__ = ["Handler", "LocalHTTPServer", "Request", "Response"]


@dataclass
class Response:
    """One scripted HTTP response.

    ``body`` is either ``bytes`` (sent with a ``Content-Length``) or an iterable of ``bytes``
    chunks (sent with ``Transfer-Encoding: chunked`` and no length, which is how a client sees a
    streamed body of unknown size). ``chunked=True`` forces chunked encoding for a ``bytes``
    body too.

    ``delay_s`` sleeps before anything is sent (to trigger client read timeouts);
    ``chunk_delay_s`` sleeps between chunks (to simulate slow streams such as SSE).

    ``drop=True`` closes the connection mid-response: with an empty body nothing at all is
    sent; otherwise the status line, the headers (announcing the full ``Content-Length``) and
    the first half of the body are sent before the socket is closed.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    chunked: bool = False
    drop: bool = False


@dataclass(frozen=True)
class Request:
    """What the server received; kept in :attr:`LocalHTTPServer.requests` for assertions."""

    method: str
    path: str  # without the query string
    query: str
    headers: Mapping[str, str]
    body: bytes
    time: float  # time.monotonic() when the request line had been parsed


#: A dynamic handler: ``handler(method, path, headers, body)``. ``path`` includes the query
#: string, so handlers can parse it. Returning an iterator of ``bytes`` streams it as a 200
#: ``text/event-stream`` response (the common case for streaming fakes); return a
#: :class:`Response` with an iterable ``body`` to control status and headers.
Handler = Callable[[str, str, Mapping[str, str], bytes], "Response | Iterator[bytes]"]


class _QuietThreadingHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that does not print tracebacks for clients that hang up.

    Tests routinely abandon responses on purpose (timeouts, size limits), which makes the
    handler's next write fail; that is expected and must not clutter the test output.
    """

    daemon_threads = True  # a handler stuck in a keep-alive read must never block exit
    # The default listen backlog of 5 drops connection attempts when dozens of clients
    # connect at once (the generation benchmark runs 32).
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class LocalHTTPServer:
    """A threaded HTTP/1.1 server on ``127.0.0.1`` with a random free port.

    Dispatch order for a request path: a scripted response for that exact path, then the
    registered handler with the longest matching prefix, then a static file under ``root``,
    else 404.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self.hits: defaultdict[str, list[float]] = defaultdict(list)
        self.requests: list[Request] = []
        self._scripts: dict[str, list[Response]] = {}
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        # Set on close so that delayed responses stop sleeping and shutdown is quick.
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port and serve in a daemon thread."""
        handler_class = type("_BoundHandler", (_RequestHandler,), {"server_state": self})
        self._httpd = _QuietThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalHTTPServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server is bound to (only valid once started)."""
        if self._httpd is None:
            raise RuntimeError("server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    # -- configuration ---------------------------------------------------------------------

    def script(self, path: str, responses: Response | Sequence[Response]) -> None:
        """Answer ``path`` with ``responses`` in order; the last one repeats forever."""
        if isinstance(responses, Response):
            responses = [responses]
        if not responses:
            raise ValueError("script() needs at least one Response")
        with self._lock:
            self._scripts[path] = list(responses)

    def handle(self, prefix: str, handler: Handler) -> None:
        """Route every path starting with ``prefix`` to ``handler`` (longest prefix wins)."""
        with self._lock:
            self._handlers[prefix] = handler

    def hit_count(self, path: str) -> int:
        """How many requests arrived for ``path`` (query string ignored)."""
        with self._lock:
            return len(self.hits.get(path, []))

    def reset_hits(self) -> None:
        """Forget recorded hits and requests, e.g. between two phases of a test."""
        with self._lock:
            self.hits.clear()
            self.requests.clear()

    # -- used by the request handler -------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self.hits[request.path].append(request.time)
            self.requests.append(request)

    def _next_scripted(self, path: str) -> Response | None:
        with self._lock:
            queue = self._scripts.get(path)
            if not queue:
                return None
            # Keep the last response in place so that it repeats.
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _handler_for(self, path: str) -> Handler | None:
        with self._lock:
            matches = [prefix for prefix in self._handlers if path.startswith(prefix)]
            return self._handlers[max(matches, key=len)] if matches else None

    def _static(self, path: str) -> Response:
        if self.root is None:
            return _not_found()
        relative = unquote(path).lstrip("/")
        target = (self.root / relative).resolve()
        # Refuse anything that escapes the root through "..", as a real server would.
        if target != self.root and self.root not in target.parents:
            return _not_found()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return _not_found()
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return Response(headers={"Content-Type": content_type}, body=target.read_bytes())


def _not_found() -> Response:
    return Response(status=404, headers={"Content-Type": "text/plain"}, body=b"not found\n")


class _RequestHandler(BaseHTTPRequestHandler):
    """Turns each request into a :class:`Response` via the owning server's dispatch rules."""

    # HTTP/1.1 so that chunked bodies and keep-alive behave like a production server.
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections give up after a while rather than linger forever.
    timeout = 30
    # Headers and body go out in separate writes; with Nagle's algorithm on, a keep-alive client
    # waits for its delayed ACK (~40 ms) before the body arrives. Production servers (uvicorn,
    # vLLM, nginx) set TCP_NODELAY, and so does this one.
    disable_nagle_algorithm = True
    server_state: LocalHTTPServer  # set on the per-server subclass

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: pytest output should not be flooded with access logs."""

    def _dispatch(self) -> None:
        state = self.server_state
        arrived = time.monotonic()
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = dict(self.headers.items())
        state._record(Request(self.command, split.path, split.query, headers, body, arrived))

        response = state._next_scripted(split.path)
        if response is None:
            handler = state._handler_for(split.path)
            if handler is not None:
                result = handler(self.command, self.path, headers, body)
                response = (
                    result
                    if isinstance(result, Response)
                    else Response(headers={"Content-Type": "text/event-stream"}, body=result)
                )
            else:
                response = state._static(split.path)
        self._send(response)

    def _send(self, response: Response) -> None:
        closing = self.server_state._closing
        if response.delay_s and closing.wait(response.delay_s):
            return
        if response.drop:
            self._send_dropped(response)
            return

        streamed = response.chunked or not isinstance(response.body, bytes | bytearray)
        self.send_response(response.status)
        sent = {name.lower() for name in response.headers}
        for name, value in response.headers.items():
            self.send_header(name, value)
        if "content-type" not in sent:
            self.send_header("Content-Type", "application/octet-stream")
        if streamed:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(response.body)))  # type: ignore[arg-type]
        self.end_headers()
        if self.command == "HEAD":
            return

        if not streamed:
            self.wfile.write(response.body)  # type: ignore[arg-type]
            return
        chunks = [response.body] if isinstance(response.body, bytes | bytearray) else response.body
        for chunk in chunks:
            if not chunk:
                continue  # an empty chunk would terminate the chunked body early
            self.wfile.write(f"{len(chunk):X}\r\n".encode("ascii") + chunk + b"\r\n")
            self.wfile.flush()
            if response.chunk_delay_s and closing.wait(response.chunk_delay_s):
                return
        self.wfile.write(b"0\r\n\r\n")

    def _send_dropped(self, response: Response) -> None:
        body = response.body if isinstance(response.body, bytes) else b"".join(response.body)
        if body:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
        # Shut the socket down so the client sees EOF (or a reset) instead of waiting.
        self.close_connection = True
        # The client may already be gone, which is fine for a drop.
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = _dispatch
    do_HEAD = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch
    do_DELETE = _dispatch
    do_OPTIONS = _dispatch
