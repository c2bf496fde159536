"""Reordering retrieved passages with an assistant's reranker, a cross-encoder trained on
reviewed pairs (``curation.RetrievalModel`` of kind reranker; trained by
``training.retrievers.reranker``, scored by ``manualqa.lib.reranking``).

With a reranker, the chat retrieves :data:`RERANK_CANDIDATES` passages instead of the
assistant's ``top_k``, scores each against the question, and keeps the ``top_k`` best scored.
The best score is the retrieval's *answerability*: below the reranker's ``decline_below`` the
question is declined (``chat.answering.decide``).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from chat.retrieval import Retrieval
from curation.models import RetrievalModel
from manualqa.lib.reranking import load_scorer

__all__ = ["RERANK_CANDIDATES", "candidates_for", "rerank"]

#: Passages retrieved for the reranker to choose from. The cross-encoder reads each one with the
#: question, so its cost grows with this number: scoring 10 took p50 267 ms and p95 282 ms per
#: owner question on the 2-core CPU (p95 1.2 s while other work kept it busy; bench/reranker.py),
#: and 20 would double that.
RERANK_CANDIDATES: Final = 10


def candidates_for(top_k: int, reranker: RetrievalModel | None) -> int:
    """How many passages to retrieve for an assistant keeping ``top_k``."""
    return max(top_k, RERANK_CANDIDATES) if reranker is not None else top_k


def rerank(retrieval: Retrieval, question: str, reranker: RetrievalModel, k: int) -> Retrieval:
    """``retrieval`` with its passages ordered by ``reranker``'s scores (best first, ties in
    retrieval's order), the ``k`` best kept, and its best score as the answerability."""
    if not retrieval.passages:
        return retrieval
    scores = load_scorer(reranker.path).score(question, [p.text for p in retrieval.passages])
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
    passages = [dataclasses.replace(retrieval.passages[i], rerank_score=scores[i]) for i in order]
    return dataclasses.replace(retrieval, passages=passages, answerability=max(scores))
