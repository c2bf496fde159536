"""What an answer cites: its passages as stored in ``Message.citations``, each with a plain
excerpt, the link to the passage on its document's page, and the figures of its chunk; and
where else the manual speaks of the question (:func:`see_also`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from chat.retrieval import Passage

#: Characters of a passage kept in a citation's excerpt.
EXCERPT_CHARS = 300
#: A citation shows at most this many figures of its passage, as thumbnails.
CITATION_FIGURES = 4
#: A quote lists at most this many other sections of the manual close to the question.
SEE_ALSO = 3


def plain_excerpt(body: str) -> str:
    """A passage as one line of plain words: table rules dropped, cells separated by dots."""
    text = re.sub(r"\|?\s*:?-{3,}:?\s*(?=\||$)", " ", body, flags=re.MULTILINE)
    text = re.sub(r"\s*\|\s*", " · ", text)
    text = " ".join(text.split())
    return re.sub(r"(?:\s*·\s*){2,}", " · ", text).strip(" ·")


def passage_url(passage: Passage) -> str:
    """The link to ``passage`` on its document's page, highlighted (a passage that goes on into
    its neighbours, ``chat.continuation``, highlights them all)."""
    from django.urls import reverse

    page = reverse("curation:document", args=[passage.manual_id, passage.document_id])
    spans = passage.spanned
    query = "&".join(f"chunk={pk}" for pk in spans)
    return f"{page}?{query}#chunk-{spans[0]}"


def passage_citations(
    passages: Sequence[Passage], *, in_prompt: bool, only: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """Passages as stored in ``Message.citations``, numbered as in the prompt (``only``: just
    those numbers), each with the figures of its chunk (``figures``: url, caption, width and
    height of at most ``CITATION_FIGURES``)."""
    from curation.selectors import chunk_figures

    wanted = set(only) if only is not None else None
    chosen = [
        (index, passage)
        for index, passage in enumerate(passages, start=1)
        if wanted is None or index in wanted
    ]
    figures = chunk_figures(
        chunk_ids=[pk for _, passage in chosen for pk in passage.spanned],
        per_chunk=CITATION_FIGURES,
    )
    citations = []
    for index, passage in chosen:
        spans = list(passage.spanned)
        excerpt = plain_excerpt(passage.body)
        citations.append(
            {
                "n": index,
                "chunk_id": passage.chunk_id,
                "chunk_ids": spans,
                "document_id": passage.document_id,
                "manual_id": passage.manual_id,
                "source_name": passage.source_name,
                # A local ingest's file:// path is the server's business (security review L1).
                "source_url": passage.source_url
                if passage.source_url.startswith(("http://", "https://"))
                else "",
                "title": passage.title,
                "heading_path": passage.heading_path,
                "score": passage.similarity,
                # The reranker's score, where the assistant has one (``chat.reranking``).
                **(
                    {"rerank_score": passage.rerank_score}
                    if passage.rerank_score is not None
                    else {}
                ),
                "url": passage_url(passage),
                "excerpt": excerpt[:EXCERPT_CHARS] + ("…" if len(excerpt) > EXCERPT_CHARS else ""),
                "in_prompt": in_prompt,
                "figures": [f for pk in spans for f in figures.get(pk, [])][:CITATION_FIGURES],
            }
        )
    return citations


def see_also(
    passages: Sequence[Passage], *, quoted: Iterable[int], min_score: float
) -> list[dict[str, Any]]:
    """Where else the manual speaks of the question: the retrieved ``passages`` a quote does
    not come from (``quoted``: its citation numbers) that are as close to the question as an
    answer must be (``min_score``), one per section and none of the quote's own sections, at
    most :data:`SEE_ALSO`, each as a link (``{"n", "chunk_id", "document_id", "heading_path",
    "title", "source_name", "url"}``). The quote is one span of one or two passages; when it
    is the wrong one, the section that answers is often the next passage retrieval found
    ("Car Wash Mode" under a car-wash caution), and the owner can open it from here."""
    quoted = set(quoted)
    seen = {passages[n - 1].heading_path for n in quoted if 0 < n <= len(passages)}
    links = []
    for number, passage in enumerate(passages, start=1):
        if number in quoted or passage.similarity < min_score or passage.heading_path in seen:
            continue
        seen.add(passage.heading_path)
        links.append(
            {
                "n": number,
                "chunk_id": passage.chunk_id,
                "document_id": passage.document_id,
                "heading_path": passage.heading_path,
                "title": passage.title,
                "source_name": passage.source_name,
                "url": passage_url(passage),
            }
        )
        if len(links) == SEE_ALSO:
            break
    return links
