"""The embeddings of a manual's quotable units, stored once instead of computed per question.

Composing a quote (``chat.quoting``) scores every sentence, step, list item and table row of
the retrieved passages by its embedding's similarity to the question. Those texts are the
manual's, the same for every question: embedding them again for each question was most of an
answer's time on a CPU (1-3 s of the 1.5-3 s on a 2-core AMD EPYC VM). They are embedded once
when a manual has been embedded (``curation.signals.manual_embedded``, received in
``chat.receivers``; ``manage.py store_sentence_vectors`` for manuals embedded before), and an
answer reads them with one query before it composes; only the question, the candidate spans
and any unit not stored (a procedure joined across two chunks) are embedded then.

The vectors are the configured model's (``EMBEDDING_MODEL``), as ``chat.retrieval.embed_texts``
computes them, so a quote is composed the same with or without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from django.conf import settings

from chat.models import SentenceVector
from chat.quoting import unit_texts
from chat.retrieval import embed_texts
from curation.models import DocumentChunk
from curation.services.documents import content_hash as _digest

__all__ = ["embedder", "sentence_vectors_store", "stored_vectors"]

#: Texts embedded and written per step of :func:`sentence_vectors_store`: a crash loses at
#: most this many, and progress is reported as often.
STORE_BATCH = 256


def sentence_vectors_store(
    *, manual_ids: Sequence[int], on_batch: Callable[[int, int], None] | None = None
) -> int:
    """Embed and store the units of the chunks of ``manual_ids`` that have no stored vector
    under the configured model; how many were stored. ``on_batch(done, total)`` is called
    after each batch. Run again, it stores only what is new."""
    model = settings.EMBEDDING_MODEL
    texts: dict[str, str] = {}
    bodies = DocumentChunk.objects.filter(document__manual_id__in=list(manual_ids)).only(
        "text", "heading_path"
    )
    for chunk in bodies.iterator(chunk_size=500):
        for text in unit_texts(chunk.body, chunk.heading_path):
            texts.setdefault(_digest(text), text)
    stored = _stored_digests(model, list(texts))
    missing = [digest for digest in texts if digest not in stored]
    from manualqa.embedding import embed  # the model itself: these need no process cache

    for start in range(0, len(missing), STORE_BATCH):
        batch = missing[start : start + STORE_BATCH]
        vectors = embed([texts[digest] for digest in batch])
        SentenceVector.objects.bulk_create(
            [
                SentenceVector(model=model, digest=digest, vector=_bytes(vector))
                for digest, vector in zip(batch, vectors, strict=True)
            ],
            ignore_conflicts=True,  # another worker stored the same text meanwhile
        )
        if on_batch is not None:
            on_batch(start + len(batch), len(missing))
    return len(missing)


def stored_vectors(passages: Iterable[tuple[str, str]]) -> dict[str, np.ndarray]:
    """The stored vectors of the units of ``passages`` (``(body, heading_path)`` pairs), by
    text (one query)."""
    by_digest = {
        _digest(text): text for body, heading in passages for text in unit_texts(body, heading)
    }
    rows = SentenceVector.objects.filter(
        model=settings.EMBEDDING_MODEL, digest__in=list(by_digest)
    ).values_list("digest", "vector")
    return {by_digest[digest]: np.frombuffer(vector, dtype=np.float32) for digest, vector in rows}


def embedder(known: dict[str, np.ndarray]) -> Callable[[list[str]], np.ndarray]:
    """``chat.retrieval.embed_texts`` that takes the vectors of ``known`` texts as they are
    and embeds only the others (no database access: it runs while the quote is composed)."""

    def embed(texts: list[str]) -> np.ndarray:
        if not known.keys() & set(texts):  # nothing stored (or nothing asked)
            return embed_texts(texts)
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        fresh = dict(zip(missing, embed_texts(missing), strict=True)) if missing else {}
        return np.stack([known[text] if text in known else fresh[text] for text in texts])

    return embed


def _stored_digests(model: str, digests: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(digests), 5000):
        found.update(
            SentenceVector.objects.filter(
                model=model, digest__in=digests[start : start + 5000]
            ).values_list("digest", flat=True)
        )
    return found


def _bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()
