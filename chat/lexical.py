"""Keyword ranking of a manual's chunks: Okapi BM25 over stemmed terms.

Plain Python (no Django). Retrieval's ``"terms"`` list (``chat.retrieval``): an owner's
question often hinges on the manual's own name for a thing ("ground clearance", "turning
circle", "Slip Start"), which the embedding of a chatty question ("whats the ground clearance
on the model 3? my driveway has a nasty dip at the bottom") ranks below passages that read
like the rest of it. BM25 (Robertson and Zaragoza, 2009) weighs each term by its IDF over
the chunks, so the rare term that names the subject counts most, and the owner's fillers,
function words and figures (``chat.asking.key_terms``) are not searched for at all.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from chat.text_units import terms

__all__ = ["TermIndex"]

#: BM25's usual parameters: term frequency saturates (k1), documents longer than the
#: average count a term less (b).
K1: Final = 1.2
B: Final = 0.75


@dataclass(frozen=True)
class TermIndex:
    """Postings of stemmed terms (``chat.text_units.terms``) over chunks, for BM25."""

    #: term -> ((chunk id, frequency in it), ...)
    postings: dict[str, tuple[tuple[int, int], ...]]
    #: chunk id -> its number of terms
    lengths: dict[int, int]

    @classmethod
    def from_texts(cls, rows: Iterable[tuple[int, str]]) -> TermIndex:
        """The index of ``(chunk id, text)`` rows."""
        postings: dict[str, list[tuple[int, int]]] = {}
        lengths: dict[int, int] = {}
        for chunk_id, text in rows:
            counts = Counter(terms(text))
            lengths[chunk_id] = sum(counts.values())
            for term, count in counts.items():
                postings.setdefault(term, []).append((chunk_id, count))
        return cls(
            postings={term: tuple(found) for term, found in postings.items()}, lengths=lengths
        )

    def search(self, query_terms: Sequence[str], limit: int) -> list[int]:
        """The ids of the ``limit`` chunks scoring best for ``query_terms`` (each counted once;
        ties by id), only chunks holding at least one of them."""
        if not self.lengths:
            return []
        documents = len(self.lengths)
        average = sum(self.lengths.values()) / documents or 1.0
        scores: dict[int, float] = {}
        for term in dict.fromkeys(query_terms):
            found = self.postings.get(term, ())
            if not found:
                continue
            idf = math.log(1.0 + (documents - len(found) + 0.5) / (len(found) + 0.5))
            for chunk_id, count in found:
                norm = K1 * (1.0 - B + B * self.lengths[chunk_id] / average)
                gain = idf * count * (K1 + 1) / (count + norm)
                scores[chunk_id] = scores.get(chunk_id, 0.0) + gain
        return sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:limit]
