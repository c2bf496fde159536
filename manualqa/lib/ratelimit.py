"""A fixed-window request counter in Redis: ``INCR`` a key per window, ``EXPIRE`` it after.

Fixed windows are simple and cheap (one round trip) and allow at most twice the rate across
a window boundary, which is fine for keeping one owner from flooding a model. Redis holds the
counters so every web process shares them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Final

import redis

logger = logging.getLogger("manualqa.ratelimit")

_PERIODS: Final = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE: Final = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` requests per ``window_s`` seconds; ``limit`` 0 means no limit."""

    limit: int
    window_s: int

    def __str__(self) -> str:
        unit = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}.get(self.window_s)
        return f"{self.limit} per {unit}" if unit else f"{self.limit} per {self.window_s} s"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    count: int
    retry_after_s: int


def parse_rate(value: str) -> Rate:
    """``"20/min"`` -> ``Rate(20, 60)``; raises ``ValueError`` naming what is wrong."""
    match = _RATE.match(value.lower())
    if not match or match.group(2) not in _PERIODS:
        raise ValueError(f"{value!r} is not a rate such as 20/min (periods: s, min, hour, day)")
    return Rate(limit=int(match.group(1)), window_s=_PERIODS[match.group(2)])


def _client(url: str) -> redis.Redis:
    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return _clients[url]


def hit(*, key: str, rate: Rate, redis_url: str, prefix: str) -> Decision:
    """Count one request for ``key`` and say whether it is within ``rate``.

    Fails open: when Redis cannot be reached the request is allowed and a warning logged,
    because refusing every owner's question is worse than not counting them for a while.
    """
    if rate.limit <= 0:
        return Decision(allowed=True, count=0, retry_after_s=0)
    now = time.time()
    window = int(now // rate.window_s)
    redis_key = f"{prefix}{key}:{rate.window_s}:{window}"
    try:
        pipeline = _client(redis_url).pipeline()
        pipeline.incr(redis_key)
        pipeline.expire(redis_key, rate.window_s + 1)
        count, _ = pipeline.execute()
    except redis.RedisError as exc:
        logger.warning("rate limit not checked, Redis failed: %s", exc)
        return Decision(allowed=True, count=0, retry_after_s=0)
    retry_after = max(1, int((window + 1) * rate.window_s - now + 0.999))
    return Decision(allowed=count <= rate.limit, count=count, retry_after_s=retry_after)


def peek(*, key: str, rate: Rate, redis_url: str, prefix: str) -> Decision:
    """Whether one more request for ``key`` would be within ``rate``, without counting it
    (fails open like :func:`hit`)."""
    if rate.limit <= 0:
        return Decision(allowed=True, count=0, retry_after_s=0)
    now = time.time()
    window = int(now // rate.window_s)
    try:
        raw = _client(redis_url).get(f"{prefix}{key}:{rate.window_s}:{window}")
    except redis.RedisError as exc:
        logger.warning("rate limit not checked, Redis failed: %s", exc)
        return Decision(allowed=True, count=0, retry_after_s=0)
    count = int(raw or 0)
    retry_after = max(1, int((window + 1) * rate.window_s - now + 0.999))
    return Decision(allowed=count < rate.limit, count=count, retry_after_s=retry_after)


def take_slot(*, key: str, limit: int, redis_url: str, prefix: str, ttl_s: int) -> bool:
    """Take one of ``limit`` concurrent slots for ``key``; False (and nothing taken) when all
    are in use. Give it back with :func:`release_slot`. ``ttl_s`` bounds how long a slot whose
    holder died without releasing it stays taken. Fails open like :func:`hit`."""
    if limit <= 0:
        return True
    redis_key = f"{prefix}{key}"
    try:
        pipeline = _client(redis_url).pipeline()
        pipeline.incr(redis_key)
        pipeline.expire(redis_key, ttl_s)
        count, _ = pipeline.execute()
        if count > limit:
            _client(redis_url).decr(redis_key)
            return False
    except redis.RedisError as exc:
        logger.warning("concurrency limit not checked, Redis failed: %s", exc)
    return True


def release_slot(*, key: str, redis_url: str, prefix: str) -> None:
    """Give back a slot :func:`take_slot` gave (never below zero)."""
    redis_key = f"{prefix}{key}"
    try:
        client = _client(redis_url)
        if client.decr(redis_key) < 0:
            client.set(redis_key, 0, keepttl=True)
    except redis.RedisError as exc:
        logger.warning("concurrency slot not released, Redis failed: %s", exc)
