"""Benchmark: anonymous abuse of the chat (security review H2 and H3).

(a) Slow streams. The site is served as ``make run`` serves it (gunicorn with uvicorn workers,
    ``manualqa.asgi``) on a free loopback port. 64 clients, each as a different address
    (``X-Forwarded-For`` from a trusted loopback proxy, so the per-owner caps do not stop them:
    this is many attackers, not one), ask for a streamed answer from a RAG assistant whose
    model is the loopback fake OpenAI server streaming one word a second, read the status line,
    and then stop reading. Meanwhile 32 ordinary clients load pages and API reads in a loop
    (the home page, the manuals, the chat page, the assistants, /healthz) for the window. The
    same run against the previous set-up (gunicorn gthread, 2 workers x 16 threads, WSGI) is
    the baseline, in this process, on this machine.
(b) The rate limit behind a real reverse proxy: nginx (started by the bench, on a free port,
    passing X-Forwarded-For) in front of the ASGI server with ``TRUSTED_PROXIES=127.0.0.1`` and
    ``CHAT_RATE_LIMIT=3/hour``. Two clients connect to nginx from two loopback addresses
    (127.0.0.10 and 127.0.0.11). ``rate_limited_ok`` is true when the first gets 200 three
    times and then 429, a spoofed ``X-Forwarded-For`` does not get it a fresh bucket, and the
    second client is still answered. Skipped (null) where nginx is not installed
    (``apt-get install nginx``).

Goal: zero errors for the ordinary clients while 64 slow streams are open.

The last line is one JSON object: {"slow_streams", "ordinary_clients", "ordinary_errors",
"ordinary_p95_ms", "rate_limited_ok", "baseline": {...}}.

Usage: python bench/abuse.py (``make bench-abuse``; the database and Redis must be reachable).
``BENCH_ABUSE_SECONDS`` sets the window (20), ``BENCH_ABUSE_BASELINE=0`` skips the baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import _django
from _servers import ASGI, WSGI_GTHREAD, FakeOpenAIProcess, Gunicorn, free_port

_django.setup()

import redis  # noqa: E402
import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

from chat import services as chat_services  # noqa: E402
from chat.models import Assistant  # noqa: E402
from curation.models import LLMEndpoint, Manual  # noqa: E402

SLOW_STREAMS = 64
ORDINARY_CLIENTS = 32
WINDOW_S = float(os.environ.get("BENCH_ABUSE_SECONDS", "20"))
REQUEST_TIMEOUT_S = 10.0
LEAD_S = 5.0  # the streams start this long before the ordinary clients
ORDINARY_PATHS = ("/", "/manuals/", "/chat/", "/api/chat/assistants/", "/healthz")
SLOW_ASSISTANT = "abuse-bench-slow"
QUICK_ASSISTANT = "abuse-bench-quick"
LOG = settings.VAR_DIR / "bench-abuse-server.log"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the set-up ---------------------------------------------------------------------------------


def assistants(model_url: str) -> None:
    """The sample manual (bootstrap), a slow RAG assistant on the fake and a quick one."""
    call_command("bootstrap", verbosity=0)
    manual = Manual.objects.get(name=settings.SAMPLE_MANUAL_NAME)
    endpoint, _ = LLMEndpoint.objects.update_or_create(
        name="Abuse bench fake model",
        defaults={
            "kind": "openai",
            "model": "fake-model",
            "base_url": model_url,
            "max_concurrency": 256,
            "timeout_s": 60,
        },
    )
    for slug, generator in ((SLOW_ASSISTANT, endpoint), (QUICK_ASSISTANT, None)):
        if not Assistant.objects.filter(slug=slug).exists():  # kept from an earlier run
            chat_services.assistant_create(
                name=slug, slug=slug, manuals=[manual], endpoint=generator, answer_style="generated"
            )


# -- (a) slow streams and ordinary clients ----------------------------------------------------


def open_slow_stream(port: int, number: int) -> socket.socket | None:
    """Ask for a streamed answer as address 10.66.x.y, read the status line, stop reading."""
    session = requests.Session()
    forwarded = {"X-Forwarded-For": f"10.66.{number // 250}.{number % 250 + 1}"}
    try:
        session.get(f"http://127.0.0.1:{port}/chat/", headers=forwarded, timeout=30)
    except requests.RequestException:
        return None
    token = session.cookies.get("csrftoken", "")
    body = json.dumps(
        {
            "assistant": SLOW_ASSISTANT,
            "question": "How do I check the tire pressure?",
            "stream": True,
        }
    ).encode()
    cookies = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    head = (
        f"POST /api/chat/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-CSRFToken: {token}\r\nCookie: {cookies}\r\n"
        f"X-Forwarded-For: {forwarded['X-Forwarded-For']}\r\n"
        f"Referer: http://127.0.0.1:{port}/\r\n\r\n"
    ).encode()
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    # A small receive buffer, so the server soon has to wait for this reader.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    connection.sendall(head + body)
    status = b""
    while not status.endswith(b"\r\n"):
        piece = connection.recv(1)
        if not piece:
            return None
        status += piece
    if b" 200 " not in status:
        say(f"  slow stream {number}: {status.decode().strip()}")
        connection.close()
        return None
    return connection


class Ordinary:
    """What the ordinary clients saw in the window."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()

    def run(self, base: str, number: int, stop_at: float) -> None:
        session = requests.Session()
        while time.monotonic() < stop_at:
            path = ORDINARY_PATHS[number % len(ORDINARY_PATHS)]
            number += 1
            started = time.perf_counter()
            try:
                response = session.get(base + path, timeout=REQUEST_TIMEOUT_S)
                error = (
                    None if response.status_code == 200 else f"{path}: HTTP {response.status_code}"
                )
            except requests.RequestException as exc:
                error = f"{path}: {type(exc).__name__}"
            with self.lock:
                if error:
                    self.errors[error] += 1
                else:
                    self.latencies.append(1000 * (time.perf_counter() - started))


def slow_streams_run(how: tuple, label: str) -> dict:
    env = {"TRUSTED_PROXIES": "127.0.0.1", "CHAT_RATE_LIMIT": "0/min"}
    with Gunicorn(how, env, LOG) as server:
        say(f"(a) {label}: opening {SLOW_STREAMS} slow streams ...")
        held: list[socket.socket] = []
        lock = threading.Lock()

        def opener(number: int) -> None:
            try:
                connection = open_slow_stream(server.port, number)
            except OSError as exc:
                say(f"  slow stream {number}: {type(exc).__name__}")
                connection = None
            if connection is not None:
                with lock:
                    held.append(connection)

        openers = [threading.Thread(target=opener, args=(n,)) for n in range(SLOW_STREAMS)]
        for thread in openers:
            thread.start()
        # The ordinary clients come while the streams open and run (each runs a minute or
        # more), as they would in an attack.
        time.sleep(LEAD_S)
        say(f"  {ORDINARY_CLIENTS} ordinary clients for {WINDOW_S:g} s ...")
        ordinary = Ordinary()
        stop_at = time.monotonic() + WINDOW_S
        clients = [
            threading.Thread(target=ordinary.run, args=(server.base_url, n, stop_at))
            for n in range(ORDINARY_CLIENTS)
        ]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(WINDOW_S + 2 * REQUEST_TIMEOUT_S)
        with lock:
            open_streams = len(held)
        say(f"  {open_streams} slow streams were open at the end of the window")
        for thread in openers:
            thread.join(60)
        for connection in held:
            connection.close()
    latencies = sorted(ordinary.latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else None
    errors = sum(ordinary.errors.values())
    say(
        f"  ordinary: {len(latencies)} answered, {errors} errors "
        f"{dict(ordinary.errors.most_common(4))}, p50 "
        f"{statistics.median(latencies) if latencies else float('nan'):.0f} ms, p95 "
        f"{p95 if p95 is not None else float('nan'):.0f} ms"
    )
    return {
        "slow_streams": open_streams,
        "ordinary_clients": ORDINARY_CLIENTS,
        "ordinary_requests": len(latencies) + errors,
        "ordinary_errors": errors,
        "ordinary_p95_ms": round(p95, 1) if p95 is not None else None,
    }


# -- (b) the rate limit behind nginx ----------------------------------------------------------


class SourceAddress(HTTPAdapter):
    """Connects from a chosen loopback address, as a distinct client would."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        return super().init_poolmanager(*args, **kwargs)


class Nginx:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port

    def __enter__(self) -> Nginx:
        self.port = free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="bench-abuse-nginx-"))
        (self.prefix / "logs").mkdir()
        config = self.prefix / "nginx.conf"
        config.write_text(
            f"""daemon off;
master_process off;
error_log {self.prefix}/logs/error.log;
pid {self.prefix}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {self.prefix}/body;
    proxy_temp_path {self.prefix}/proxy;
    fastcgi_temp_path {self.prefix}/fastcgi;
    uwsgi_temp_path {self.prefix}/uwsgi;
    scgi_temp_path {self.prefix}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://127.0.0.1:{self.upstream_port};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
        }}
    }}
}}
"""
        )
        self.process = subprocess.Popen(
            [shutil.which("nginx") or "nginx", "-p", str(self.prefix), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise SystemExit("nginx did not start; see its error.log under " + str(self.prefix))

    def __exit__(self, *exc_info) -> None:
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.prefix, ignore_errors=True)


def ask_as(address: str, base: str, times: int, spoof: str = "") -> list[int]:
    session = requests.Session()
    session.mount("http://", SourceAddress(address))
    session.get(f"{base}/chat/", timeout=30)
    headers = {"X-CSRFToken": session.cookies.get("csrftoken", ""), "Referer": f"{base}/"}
    if spoof:
        headers["X-Forwarded-For"] = spoof
    codes = []
    for _ in range(times):
        response = session.post(
            f"{base}/api/chat/",
            json={"assistant": QUICK_ASSISTANT, "question": "What tire pressure should I use?"},
            headers=headers,
            timeout=30,
        )
        codes.append(response.status_code)
    return codes


def rate_limit_run() -> bool | None:
    if shutil.which("nginx") is None:
        say("(b) skipped: nginx is not installed (apt-get install nginx)")
        return None
    # Per hour, so that the four questions never straddle the start of a new window; the
    # counters of an earlier run are cleared first.
    env = {"TRUSTED_PROXIES": "127.0.0.1", "CHAT_RATE_LIMIT": "3/hour"}
    counters = redis.Redis.from_url(settings.REDIS_URL)
    stale = list(counters.scan_iter(match=f"{settings.CHAT_RATE_LIMIT_PREFIX}*127.0.0.1[01]*"))
    if stale:
        counters.delete(*stale)
    with Gunicorn(ASGI, env, LOG) as server, Nginx(server.port) as nginx:
        base = f"http://127.0.0.1:{nginx.port}"
        first = ask_as("127.0.0.10", base, 4)
        spoofed = ask_as("127.0.0.10", base, 1, spoof="198.51.100.99")
        second = ask_as("127.0.0.11", base, 1)
    say(f"(b) behind nginx: first {first}, first spoofing {spoofed}, second {second}")
    return first == [200, 200, 200, 429] and spoofed == [429] and second == [200]


def main() -> int:
    LOG.write_text("")
    # A word every two seconds: an answer then takes a minute or more.
    with FakeOpenAIProcess("--chunk-delay", "2.0") as model:
        assistants(model.base_url)
        result = slow_streams_run(ASGI, "ASGI (uvicorn workers)")
        if os.environ.get("BENCH_ABUSE_BASELINE", "1") != "0":
            result["baseline"] = slow_streams_run(WSGI_GTHREAD, "baseline, WSGI gthread 2x16")
    result["rate_limited_ok"] = rate_limit_run()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
