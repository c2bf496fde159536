"""Shared fixtures: real services only.

The database is the real PostgreSQL+pgvector from settings (pytest-django creates
``test_<name>`` in the same server). Redis is real (``make test`` points REDIS_URL at database 15
so a dev worker never takes test tasks). ``celery_worker`` starts a real worker process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.httpserver import LocalHTTPServer

BASE_DIR = Path(__file__).resolve().parent.parent
MODEL3_DIR = BASE_DIR.parent / "shared" / "data" / "model3-manual"
SAMPLE_SITE = BASE_DIR / "curation" / "sample_manual" / "site"


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for a child process that must use the same (test) database."""
    host = settings_dict["HOST"]
    user = settings_dict["USER"]
    name = settings_dict["NAME"]
    if host.startswith("/"):
        return f"postgresql://{user}:@/{name}?host={host}"
    port = settings_dict.get("PORT") or 5432
    password = settings_dict.get("PASSWORD") or ""
    return f"postgresql://{user}:{password}@{host}:{port}/{name}"


@pytest.fixture(scope="session", autouse=True)
def no_sentence_vectors_on_ingest() -> None:
    """Ingestion does not store its sentences' vectors in tests (each of the many ingestions
    would pay for it; ``tests/chat/test_quote_vectors.py`` turns it on where it is tried).
    Answers embed what is not stored, so they are the same either way."""
    settings.QUOTE_VECTORS_ON_INGEST = False


@pytest.fixture(scope="session")
def sample_site() -> Iterator[LocalHTTPServer]:
    """The bundled sample manual served over real HTTP on 127.0.0.1."""
    with LocalHTTPServer(root=SAMPLE_SITE) as server:
        yield server


@pytest.fixture
def sample_start_url(sample_site: LocalHTTPServer) -> str:
    return sample_site.url("/manual/index.html")


@pytest.fixture(scope="session")
def model3_dir() -> Path:
    if not (MODEL3_DIR / "docs").is_dir():
        pytest.skip(f"Model 3 manual data not found at {MODEL3_DIR} (it lives in ../shared/data)")
    return MODEL3_DIR


class WorkerProcess:
    """A real ``celery worker`` process on the default and gpu queues, using the test database.

    Tests may ``kill()`` it (SIGKILL, as a crashed machine would) and ``start()`` it again.
    """

    def __init__(self, database_url: str) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.REDIS_URL,
            "DATABASE_CONN_MAX_AGE": "0",
            "QUOTE_VECTORS_ON_INGEST": "0",
        }
        self.node = f"test-{os.getpid()}@localhost"
        self.log_path = Path(settings.VAR_DIR) / "test-celery-worker.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from manualqa.celery import app

        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "manualqa", "worker", "-Q", "default,gpu",
                "--pool", "solo", "--hostname", self.node, "--without-mingle",
                "--without-gossip", "--loglevel", "INFO",
            ],
            cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.log_tail()}")
            if app.control.ping(destination=[self.node], timeout=0.5):
                return
        self.process.kill()
        raise RuntimeError(f"celery worker did not answer: {self.log_tail()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def log_tail(self) -> str:
        return self.log_path.read_text()[-3000:]


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker) -> Iterator[WorkerProcess]:
    """The session's real worker. Tests that use it must be ``django_db(transaction=True)``:
    the worker only sees committed rows."""
    import redis
    from django.db import connection

    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    # Forget messages that earlier runs queued with no worker to take them.
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    worker = WorkerProcess(url)
    worker.log_path.write_text("")
    worker.start()
    yield worker
    worker.stop()


def wait_for(predicate, *, timeout: float = 120.0, interval: float = 0.25, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or predicate}")
