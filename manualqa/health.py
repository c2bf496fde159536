"""Health checks of the services ManualQA depends on, for ``GET /healthz``.

Anyone may ask whether the site is up (:func:`site_ok`: the database and Redis answer); only
staff, or a monitor holding ``HEALTHZ_TOKEN``, see the details (:func:`health_report`:
versions, worker names and queues, driver errors). The Celery probe is a broadcast that waits
for its whole timeout, so its answer is kept for ``HEALTHZ_CELERY_CACHE_S`` seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection


def database_status() -> dict[str, Any]:
    """Whether the database answers, and which pgvector version it has installed."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            server_version = cursor.fetchone()[0]
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
    except Exception as exc:  # any driver error means "not OK"; report it, don't crash
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "pgvector": None}
    return {
        "ok": row is not None,
        "server": server_version.split(" on ")[0],
        "pgvector": row[0] if row else None,
        **({} if row else {"error": "pgvector extension is not installed (run migrate)"}),
    }


def redis_status() -> dict[str, Any]:
    """Whether the Redis broker answers PING."""
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
        info = client.info("server")
    except (redis.exceptions.RedisError, OSError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "version": info.get("redis_version")}


_celery_cache: dict[str, Any] = {}
_celery_lock = threading.Lock()


def celery_status_cached() -> dict[str, Any]:
    """:func:`celery_status`, probed at most once per ``HEALTHZ_CELERY_CACHE_S`` seconds per
    process (concurrent callers wait for the one probe rather than each broadcasting)."""
    with _celery_lock:
        fresh = time.monotonic() - _celery_cache.get("at", float("-inf"))
        if fresh >= settings.HEALTHZ_CELERY_CACHE_S or "status" not in _celery_cache:
            _celery_cache.update(status=celery_status(), at=time.monotonic())
        return _celery_cache["status"]


def celery_status(timeout: float = 1.0) -> dict[str, Any]:
    """The live Celery workers and the queues each one consumes."""
    from manualqa.celery import app

    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:  # broker down or unreachable
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "workers": {}}
    workers = {
        name: sorted(queue["name"] for queue in queues) for name, queues in sorted(replies.items())
    }
    return {"ok": bool(workers), "workers": workers}


def site_ok() -> bool:
    """Whether the site can serve: the database and Redis answer (what anyone may know)."""
    return bool(database_status()["ok"] and redis_status()["ok"])


def health_report() -> dict[str, Any]:
    """All checks together. ``ok`` is false when the database or Redis is down.

    A missing Celery worker is reported but does not make the site unhealthy: pages still work,
    and queued jobs wait for a worker.
    """
    database = database_status()
    redis = redis_status()
    celery = (
        celery_status_cached()
        if redis["ok"]
        else {"ok": False, "workers": {}, "error": "no broker"}
    )
    return {
        "ok": database["ok"] and redis["ok"],
        "database": database,
        "pgvector": database.get("pgvector"),
        "redis": redis,
        "celery": celery,
    }
