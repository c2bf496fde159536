"""Training the retrieval side on reviewed pairs (issue 18): a tuned embedder (retriever) and a
cross-encoder reranker, each trained by a retrieval job from a dataset snapshot.

The contract between the job runner and the trainers:

* a trainer is ``train(snapshot, *, base_model, hyperparameters, output_dir, progress,
  should_stop) -> TrainedModel``: it reads only the snapshot's ``train`` pairs for training
  (``eval`` to choose thresholds and measure, never ``test``), writes the model into
  ``output_dir``, calls ``progress(step, total_steps, loss)`` as it goes and stops early (raising
  :class:`Stopped`) when ``should_stop()`` turns true;
* ``embedder.train`` (:mod:`.embedder`) and ``reranker.train`` (:mod:`.reranker`) are the two
  trainers; the job registers what they return as a ``curation.RetrievalModel``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Progress", "Stopped", "TrainedModel"]

#: ``progress(step, total_steps, loss)``; ``loss`` is None when there is none to report yet.
Progress = Callable[[int, int, float | None], None]


class Stopped(Exception):
    """The job was cancelled while training."""


@dataclass(frozen=True)
class TrainedModel:
    """What a trainer leaves behind: the model's folder and what it measured."""

    path: Path
    base_model: str
    train_examples: int
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    #: Embedders: the vectors' length.
    dimensions: int | None = None
    #: Rerankers: the score below which the best passage does not answer (set on ``eval``).
    decline_below: float | None = None
