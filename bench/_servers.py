"""What the benches serve over loopback: the fake OpenAI server in its own process, and the site
under gunicorn on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from _django import BASE_DIR

#: How ``make run`` serves the site (manualqa.stack): uvicorn workers, a connection pool.
ASGI = (
    [
        "manualqa.asgi:application",
        "--worker-class",
        "uvicorn_worker.UvicornWorker",
        "--workers",
        "2",
    ],
    {"DATABASE_POOL": "1"},
)
#: How it was served before (the baseline of bench/abuse.py): gthread, 2 workers x 16 threads.
WSGI_GTHREAD = (
    ["manualqa.wsgi", "--worker-class", "gthread", "--workers", "2", "--threads", "16"],
    {"DATABASE_POOL": "0"},
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    """gunicorn serving ``how`` (one of the two above) with ``env``, logging to ``log``; ready
    once the chat page answers."""

    def __init__(self, how: tuple[list[str], dict[str, str]], env: dict[str, str], log: Path):
        self.args, extra = how
        self.env = {**os.environ, **extra, **env}
        self.log_path = log

    def __enter__(self) -> Gunicorn:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", *self.args, "--bind", f"127.0.0.1:{self.port}",
                "--timeout", "120", "--access-logfile", "-",
            ],
            cwd=BASE_DIR, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{self.base_url}/chat/", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise SystemExit(f"gunicorn did not serve; see {self.log_path}")
            time.sleep(0.5)

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class FakeOpenAIProcess:
    """``tests.fakeopenai`` in its own process (its work must not share the bench's GIL), with
    ``options`` such as ``--latency 0.3`` or ``--chunk-delay 2``; ``base_url`` once started."""

    def __init__(self, *options: str) -> None:
        self.options = options

    def __enter__(self) -> FakeOpenAIProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakeopenai", *self.options],
            cwd=BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self.process.stdout.readline().strip()
        return self

    @property
    def max_in_flight(self) -> int:
        """The most requests the fake answered at once so far."""
        self.process.stdin.write("?\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def __exit__(self, *exc_info) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
