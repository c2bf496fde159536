"""Per-client limits and the retry schedule shared by the HTTP clients."""

from __future__ import annotations

import abc
import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, TypeVar

from manualqa.lib.llm.types import EndpointConfig, LLMClient, LLMError

T = TypeVar("T")

# 429 means "slow down", the 5xx listed mean "try again"; anything else will fail the same way.
RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

STATUS_PROBLEMS: Final = {
    400: "bad request",
    401: "unauthorized (check the API key)",
    403: "forbidden",
    404: "not found (check the model or deployment name and the base URL)",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    422: "unprocessable request",
    429: "rate limited",
    500: "server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


# --------------------------------------------------------------------------------------------
# Shared limits


class RateLimiter:
    """Spreads requests evenly: at most ``requests_per_minute``, one every ``60/rpm`` seconds.

    Each caller reserves the next free slot under a lock and then sleeps until it outside the
    lock, so many threads queue up in arrival order without holding each other up. Evenly
    spaced requests (rather than a burst at the start of each minute) are what providers' quota
    windows tolerate best. ``requests_per_minute <= 0`` disables it.
    """

    def __init__(
        self,
        requests_per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval_s = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def wait(self) -> None:
        """Block until this caller may send its request."""
        if not self.interval_s:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval_s
        if slot > now:
            self._sleep(slot - now)


class RequestGate:
    """The per-client limits every attempt passes: a concurrency semaphore, then the RPM slot.

    The semaphore is taken first so that requests released by it are still spaced by the rate
    limiter; the other order would let a queue of already-scheduled requests fire together.
    """

    def __init__(self, config: EndpointConfig, sleep: Callable[[float], None]) -> None:
        self._semaphore = threading.BoundedSemaphore(max(1, config.max_concurrency))
        self._limiter = RateLimiter(config.requests_per_minute, sleep=sleep)
        self._config = config

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the client's slots; waits at most the endpoint's ``timeout_s`` for it,
        then fails retryably: a caller must never wait forever behind streams that others
        opened and stopped reading (security review H2)."""
        if not self._semaphore.acquire(timeout=self._config.timeout_s):
            raise LLMError(
                f"every one of the endpoint's {self._config.max_concurrency} slots stayed busy "
                f"for {self._config.timeout_s:g} s; try again shortly",
                retryable=True,
            )
        try:
            self._limiter.wait()
            yield
        finally:
            self._semaphore.release()


@dataclass(frozen=True)
class Failure:
    """One failed attempt, described without the key, with what the retry policy needs."""

    description: str
    retryable: bool
    status: int | None = None
    retry_after_s: float | None = None


class RemoteClient(LLMClient):
    """An :class:`LLMClient` that calls a server: its limits and its retry schedule (see
    :class:`EndpointConfig`).

    Subclasses set ``_secret`` (a key to scrub from messages, or ""). ``sleep`` and ``rng`` are
    injectable so the retry schedule can be unit-tested without waiting.
    """

    _secret: str = ""

    def __init__(
        self,
        config: EndpointConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._gate = RequestGate(config, sleep)
        self._open()

    @abc.abstractmethod
    def _open(self) -> None:
        """Check the config and make the SDK client; raise :class:`LLMConfigError` when the
        config cannot work."""

    def _with_retries(
        self, call: Callable[[], T], describe: Callable[[Exception], Failure | None]
    ) -> tuple[T, int]:
        """``call()`` inside the client's limits, with its result and the attempts it took;
        a failure ``describe`` names is retried on the schedule, any other exception raised."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._gate.slot():
                    return call(), attempt
            except Exception as exc:
                failure = describe(exc)
                if failure is None:
                    raise
            # Decided outside the except block so the final error does not chain the SDK's
            # exception, whose message may quote the key back from a 401 body.
            self._sleep(self._retry_delay(failure, attempt))

    def _retry_delay(self, failure: Failure, attempt: int) -> float:
        """The sleep before the next attempt, or raise the final :class:`LLMError`."""
        if not failure.retryable:
            raise LLMError(
                self._scrub(f"{failure.description}; not retried"),
                retryable=False,
                status=failure.status,
                attempts=attempt,
            )
        if attempt > self.config.max_retries:
            raise LLMError(
                self._scrub(f"{failure.description}, gave up after {attempt} attempts"),
                retryable=True,
                status=failure.status,
                attempts=attempt,
            )
        ceiling = min(self.config.max_backoff_s, self.config.backoff_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(0, ceiling)
        if failure.retry_after_s is not None:
            delay = min(self.config.max_backoff_s, max(delay, failure.retry_after_s))
        return delay

    def _scrub(self, message: str) -> str:
        return message.replace(self._secret, "***") if self._secret else message
