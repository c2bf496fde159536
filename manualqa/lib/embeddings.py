"""Sentence embeddings and token counting with one sentence-transformers model per process.

Plain module (no Django): callers pass the model name. The model is loaded once per process and
shared, because loading it costs far more than encoding a batch.
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
# Subword tokenizers (WordPiece, BPE) emit about 1.3 tokens per English word.
_SUBWORDS_PER_WORD = 1.3


def word_token_count(text: str) -> int:
    """Cheap, dependency-free estimate of a subword tokenizer's token count.

    Counts words and punctuation marks (``\\w+`` runs and single non-space symbols) and scales
    by 1.3 subword tokens per word, rounding up. It is the default ``count_tokens`` for when the
    embedding model's real tokenizer is not available; it tends to overestimate, which keeps
    chunks safely inside the model's input limit.
    """
    return math.ceil(len(_TOKEN_RE.findall(text)) * _SUBWORDS_PER_WORD)


_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load_model(model_name: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_name, device=device, local_files_only=True)


def load_model(model_name: str, device: str = "cpu") -> SentenceTransformer:
    """The shared model for ``model_name`` (a local path or an id already in the HF cache)."""
    with _load_lock:
        return _load_model(model_name, device)


@lru_cache(maxsize=4)
def _tokenizer(model_name: str):
    # The fast tokenizer alone loads in milliseconds, so chunking can count tokens exactly
    # without loading the model weights.
    from tokenizers import Tokenizer

    path = Path(model_name) / "tokenizer.json"
    if not path.exists():
        return None
    tokenizer = Tokenizer.from_file(str(path))
    # The saved tokenizer pads and truncates to the model's window; counting needs neither.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def token_counter(model_name: str):
    """A ``count_tokens(text) -> int`` that counts the embedding model's word pieces.

    Falls back to the word-based estimate :func:`word_token_count` when the model has no local
    ``tokenizer.json``.
    """
    tokenizer = _tokenizer(model_name)
    if tokenizer is None:
        return word_token_count

    def count_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count_tokens


def encode(
    texts: list[str], *, model_name: str, device: str = "cpu", batch_size: int = 64
) -> np.ndarray:
    """Unit-length embeddings for ``texts``, one row each (cosine = dot product)."""
    model = load_model(model_name, device)
    return model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
