"""The ``local`` kind: a transformers model in this process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from manualqa.lib.llm.types import (
    Completion,
    LLMClient,
    LLMConfigError,
    LLMError,
    StreamDelta,
    StreamEnd,
)
from manualqa.lib.local_models import DEFAULT_LOCAL_MODEL, Decoding, load_local

if TYPE_CHECKING:
    from manualqa.lib.llm.types import EndpointConfig, Request, Source

#: Where the ``local`` kind keeps converted models when a config names no ``models_dir``: the
#: project's git-ignored ``var/models`` (README: runtime state lives under ``var/``).
DEFAULT_MODELS_DIR: Final = Path(__file__).resolve().parents[3] / "var" / "models"

# --------------------------------------------------------------------------------------------
# The local kind


class LocalClient(LLMClient):
    """:class:`LLMClient` for the ``local`` kind: a transformers model in this process.

    Models load lazily on the first call (seconds, and minutes for the first conversion of the
    default model), through the process-wide cache in :mod:`manualqa.lib.local_models`, so several
    clients naming the same folder share one copy. Nothing is retried: a local failure is not
    transient. ``max_concurrency`` still applies; the model itself runs one generation at a
    time.
    """

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._models_dir = Path(config.models_dir) if config.models_dir else DEFAULT_MODELS_DIR
        self._semaphore = threading.BoundedSemaphore(max(1, config.max_concurrency))

    def __repr__(self) -> str:
        return f"<LocalClient model={self.model_name!r}>"

    @property
    def model_name(self) -> str:
        return self.config.model or DEFAULT_LOCAL_MODEL

    def close(self) -> None:
        """Nothing to release: loaded models stay in the process-wide cache for other clients."""

    def _complete(self, source: Source, request: Request) -> Completion:
        """Generate on this machine (a chat is rendered by the model's chat template)."""
        started = time.monotonic()
        with self._slot():
            model = self._load()
            try:
                result = model.generate(source, self._decoding(request))
            except TimeoutError as exc:
                raise LLMError(str(exc), retryable=True, attempts=1) from exc
            except Exception as exc:
                raise LLMError(f"local model {self.model_name} failed: {exc}", attempts=1) from exc
        return self._completion(result.text, result, started)

    def _stream(self, source: Source, request: Request) -> Iterator[StreamDelta | StreamEnd]:
        """Stream an answer generated on this machine, piece by piece as tokens decode."""
        started = time.monotonic()
        with self._slot():
            model = self._load()
            pieces: list[str] = []
            local_stream = None
            try:
                local_stream = model.stream(source, self._decoding(request))
                for piece in local_stream:
                    pieces.append(piece)
                    yield StreamDelta(piece)
            except LLMError:
                raise
            except TimeoutError as exc:  # the model stayed busy: nothing was generated
                raise LLMError(str(exc), retryable=True, attempts=1) from exc
            except GeneratorExit:
                # The reader stopped (the owner left, or the loop guard saw a loop): stop the
                # model at its next token instead of letting it run to max_tokens.
                local_stream.close()
                raise
            except Exception as exc:
                raise LLMError(
                    f"local model {self.model_name} failed after {len(pieces)} pieces: {exc}",
                    attempts=1,
                ) from exc
        yield StreamEnd(self._completion("".join(pieces), local_stream, started))

    def _completion(self, text: str, result: Any, started: float) -> Completion:
        """``text`` with the token counts and finish reason ``result`` (a finished generation
        or stream) reports, timed from ``started``."""
        return Completion(
            text=text,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            finish_reason=result.finish_reason,
            latency_s=time.monotonic() - started,
            attempts=1,
            model=self.model_name,
        )

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        """One of ``max_concurrency`` slots, waited for at most ``timeout_s``."""
        if not self._semaphore.acquire(timeout=self.config.timeout_s):
            raise LLMError(
                f"local model {self.model_name}: every one of its "
                f"{self.config.max_concurrency} slots stayed busy for "
                f"{self.config.timeout_s:g} s; try again shortly",
                retryable=True,
            )
        try:
            yield
        finally:
            self._semaphore.release()

    def _decoding(self, request: Request) -> Decoding:
        return Decoding(
            max_new_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=request.stop,
            wait_s=self.config.timeout_s,
        )

    def _load(self) -> Any:
        try:
            return load_local(self.config.model, self._models_dir)
        except (OSError, ValueError, ImportError) as exc:
            raise LLMConfigError(
                f"cannot load local model {self.config.model or 'default'!r}: {exc}"
            ) from exc
