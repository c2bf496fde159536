"""Embedding with the configured model: the one place that reads the ``EMBEDDING_*`` settings.

Chunks, questions, answers, quoted sentences and evaluation references are all embedded with
``EMBEDDING_MODEL`` on ``EMBEDDING_DEVICE``; :mod:`manualqa.lib.embeddings` does the work with
plain arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.conf import settings

from manualqa.lib.embeddings import encode, load_model

__all__ = ["embed", "embedding_model"]


def embed(texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
    """Unit-length embeddings of ``texts`` (one row each) with the configured model."""
    return encode(
        list(texts),
        model_name=settings.EMBEDDING_MODEL,
        device=settings.EMBEDDING_DEVICE,
        batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
    )


def embedding_model():
    """The configured model itself, loaded once per process."""
    return load_model(settings.EMBEDDING_MODEL, settings.EMBEDDING_DEVICE)
