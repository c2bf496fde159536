"""Scoring passages against a question with a cross-encoder (a reranker trained on reviewed pairs).

Plain module (no Django): the chat passes the model's folder (``RetrievalModel.path``). A
cross-encoder reads the question and a passage together and gives one logit; its sigmoid is the
score, between 0 and 1, that the passage answers the question. Unlike the embedding's cosine
similarity it is comparable across questions, which is why it can serve as the answerability
signal of a decline (below the model's ``decline_below``).

The model is loaded once per process per folder and shared between threads; a lock serialises
its forward passes (a fast tokenizer refuses concurrent use, and two passes at once on a 2-core
CPU are no faster than one after the other).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["MAX_LENGTH", "CrossEncoderScorer", "RerankerError", "load_scorer", "score"]

#: Word pieces of question and passage read together: all-MiniLM-L6-v2's window (a chunk is at
#: most 240 pieces, so a long passage loses its tail, never the question).
MAX_LENGTH: Final = 256
#: Pairs per forward pass. Measured on the 2-core CPU (busy with other work) with a MiniLM-L6
#: cross-encoder, 20 pairs of 256 pieces: batches of 4 took 6.6 s, of 10 3.1 s, of 20 2.1 s; the
#: chat scores 10 candidates (``chat.reranking``), so one pass.
BATCH_SIZE: Final = 20


class RerankerError(Exception):
    """The reranker cannot be loaded (its folder is missing or holds no model)."""


class CrossEncoderScorer:
    """A cross-encoder loaded from ``path``: :meth:`score` gives each passage's score for a
    question (the sigmoid of the model's single logit)."""

    def __init__(self, path: str | Path, *, device: str = "cpu", max_length: int = MAX_LENGTH):
        folder = Path(path)
        if not folder.is_dir():
            raise RerankerError(f"the reranker's folder {str(folder)!r} does not exist")
        if not (folder / "config.json").is_file():
            raise RerankerError(
                f"the reranker's folder {str(folder)!r} holds no model (no config.json)"
            )
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = folder
        self.max_length = max_length
        self.device = device
        self._torch = torch
        self._lock = threading.Lock()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), local_files_only=True
        )
        if self.model.config.num_labels != 1:
            raise RerankerError(
                f"the model in {str(folder)!r} has {self.model.config.num_labels} outputs; a "
                "reranker has one"
            )
        self.model.to(device)
        self.model.eval()

    def logits(self, question: str, passages: Sequence[str], batch_size: int = BATCH_SIZE):
        """The raw logits, one per passage (a 1-d float tensor on the CPU)."""
        torch = self._torch
        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(passages), batch_size):
                batch = list(passages[start : start + batch_size])
                encoded = self.tokenizer(
                    [question] * len(batch),
                    batch,
                    padding=True,
                    truncation="only_second",
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                out.append(self.model(**encoded).logits.view(-1).float().cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        """Each passage's score for ``question``, between 0 and 1 (higher: it answers)."""
        if not passages:
            return []
        return [
            round(float(value), 6) for value in self._torch.sigmoid(self.logits(question, passages))
        ]


_SCORERS: dict[tuple[str, str], CrossEncoderScorer] = {}
_SCORERS_LOCK = threading.Lock()


def load_scorer(path: str | Path, *, device: str = "cpu") -> CrossEncoderScorer:
    """The process's scorer for the model in ``path`` (loaded on first use)."""
    key = (str(Path(path).resolve()), device)
    with _SCORERS_LOCK:
        scorer = _SCORERS.get(key)
        if scorer is None:
            scorer = _SCORERS[key] = CrossEncoderScorer(path, device=device)
        return scorer


def score(path: str | Path, question: str, passages: Sequence[str]) -> list[float]:
    """Each passage's score for ``question`` by the reranker in ``path`` (see the module
    docstring)."""
    return load_scorer(path).score(question, passages)
