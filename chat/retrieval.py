"""Finding the passages of a manual that answer an owner's question, and how sure we are.

Four ranked lists can be fused by reciprocal rank (RRF, Cormack et al. 2009: each list adds
``1 / (60 + rank)`` to a passage's score):

* **vector**: the chunks nearest to the question's embedding through the HNSW cosine index
  (``curation.selectors.chunks_nearest``); always on;
* **terms**: BM25 over the chunks' stemmed terms for the question's key terms
  (``chat.lexical``: the words that name its subject, without the owner's fillers and
  figures); on with ``method="hybrid"``, at a lower weight (:data:`LIST_WEIGHTS`);
* **question**: approved QA pairs whose *question* is nearly the owner's question point to
  their source chunk (a reviewer has confirmed that chunk answers it); on with
  ``match_questions``, and only for matches at or above :data:`QUESTION_MATCH_MIN`;
* **label**: chunks with a table cell that starts with two or three key words the question
  writes together ("whats the ground clearance": the row "|G|Ground Clearance|5.5 in|");
  always on, at most :data:`LABEL_MATCHES`. A table of figures reads little like a
  question, so the vector list left the dimensions table out of the top 20 for "whats the
  ground clearance on the model 3? my driveway has a nasty dip at the bottom". Measured on
  the development sets (quoted answers): must-include 0.765 -> 0.788, the two ground
  clearance questions, with no other answer changed there, on the blind set or on the
  held-out set.

The *confidence* used to decline is a similarity, not a rank: the best cosine similarity
between the question and a retrieved chunk, or a matched approved question, whichever is
higher. Ranks say which passage is best; only the similarity says whether any is good enough.

Measured (all-MiniLM-L6-v2; numbers in ``tests/chat/test_retrieval_quality.py``): on the
sample manual's 24 answerable questions vector and hybrid both put the right page in the top 4
for 24/24. On owner questions (bench/questions, development sets: 85 answerable), BM25 alone
puts the right page in the top 4 for 0.929 of them, vector 0.906, both fused at full weight
0.965 (top 1: 0.741, 0.765, 0.800); on the blind set (45) 0.822, 0.933, 0.956. Yet the
answers owners read gain little: quoted must-include 0.765 hybrid against 0.747 vector on the
development sets, 0.656 both on the blind set, where one more unanswerable question got an
answer (bench/answers.py, ``BENCH_ANSWERS_RETRIEVAL``). (PostgreSQL's ``ts_rank_cd`` over
any of the question's words, the keyword list before BM25, scored 0.706: without IDF, an
owner's common words outranked the one that names the subject.) So assistants default to
vector; hybrid is an option per assistant.

No similarity threshold separates the sample's answerable questions from its unanswerable
ones completely, so the confidence is only a gate for what is off the manual's topic: the
default 0.30 turns away the off-topic questions tried (0.11-0.30) and leaves everything on
topic (a dealer's loaner cars, insurance cost) to the later checks (``chat.declines``). It was
0.35, which also declined owners' answerable questions worded far from the manual ("how much
current can the 12v outlet in the console handle": 0.334, over its "Low Voltage Power
Socket ... up to 12A"); every unanswerable question of the development sets between 0.30 and
0.35 is declined by a later check, with a reason that names it ("The manual never mentions
'honda', 'civic'"). The confidence counts the vector
list's best similarity also when fusion leaves that passage out of the top ``k``: which
passages are shown must not decide whether the manual is close.

A passage that starts inside a procedure (at step 5) or a list, or ends on a step, an item or a
table row that the next chunk of its section goes on with, carries that neighbour's text too
(``chat.continuation``; ``chunk_ids`` then lists the chunks it spans): chunking splits a long
procedure, list or table, and an owner should not read half of one. For a question asking how
to do something (``wants_steps``), a passage with no step of its own also carries the next
chunk of its section when that one holds steps: a section tells what a feature does, then how
to turn it on, and the how is what was asked ("how do i turn on camp mode" found the Camp
paragraph, and the steps under "To operate Keep Climate On, Dog, or Camp:" were in the chunk
after it).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Least
from pgvector.django import CosineDistance

from chat.asking import key_terms, label_pattern, label_phrases
from chat.continuation import (
    MAX_CONTINUED,
    continued_from,
    continues_after,
    has_steps,
    joined,
    may_continue_after,
    may_continue_before,
    procedure_follows,
)
from chat.selectors import manual_term_index
from curation.models import DocumentChunk, Manual, ManualDocument, QAPair
from curation.selectors import chunks_nearest

__all__ = [
    "FOLLOW_UP_BELOW",
    "LIST_WEIGHTS",
    "METHODS",
    "QUESTION_MATCH_MIN",
    "RRF_K",
    "Passage",
    "Retrieval",
    "embed_question",
    "embed_texts",
    "refers_back",
    "retrieve",
]

METHODS: Final = ("vector", "hybrid")
RRF_K: Final = 60
#: An approved question this similar to the owner's asks the same thing. Measured with
#: all-MiniLM-L6-v2 on ten hand-made pairs about the sample manual: rewordings of one question
#: scored 0.48-0.93 (3 of 5 at 0.7 or more), different questions on one topic 0.27-0.54.
QUESTION_MATCH_MIN: Final = 0.7
#: How many candidates each ranked list contributes before fusion.
CANDIDATES: Final = 20
#: Weight of each ranked list in the fusion (others: 1). The BM25 list at 0.3 moves a passage
#: that both lists rank well above one only the vector list ranks a little higher; at full
#: weight its keyword matches ("washer" for a pressure washer) pushed the passages that answer
#: out of the top four (development sets, quoted answers: must-include 0.741 at 1.0, 0.753 at
#: 0.5, 0.765 at 0.3; vector alone 0.747).
LIST_WEIGHTS: Final = {"terms": 0.3}
#: How many chunks whose table names what the question asks ("ground clearance") join the
#: candidates (their list at full weight ranks the first of them second).
LABEL_MATCHES: Final = 2
#: A question whose best passage is at least this similar stands on its own; below it, the
#: previous question of the conversation is read with it (``retrieve(previous_question=...)``).
#: Measured by bench/followups.py on the Model 3 manual: 30 follow-ups (best similarity alone
#: 0.27-0.58) hit@5 0.433 alone, 0.733 with the previous question, MRR@5 0.297 -> 0.519,
#: declines 7 -> 1 (with :func:`refers_back`; 8 off-topic questions asked after a manual
#: question are all still declined, none would be without it); 60 owner questions each asked
#: after an unrelated one, where context can only hurt: always reading the previous question
#: cost hit@1 0.567 -> 0.517 and MRR@5 0.707 -> 0.667, with this gate nothing (0.567, 0.707).
#: Chosen on that same set (0.5 gained less on follow-ups, hit@5 0.700; 0.6 cost the others a
#: little, MRR@5 0.696), so it is a measured default, not a held-out one.
FOLLOW_UP_BELOW: Final = 0.55


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk with where it comes from and why it was retrieved.

    ``similarity`` is the cosine similarity of the chunk's embedding to the question's (or, in a
    conversation, to the previous and current question together, whichever is higher);
    ``found_by`` names the lists that retrieved it (``vector``, ``conversation``, ``terms``,
    ``question``); ``rerank_score`` is set when an assistant's reranker reordered them.
    """

    chunk_id: int
    document_id: int
    manual_id: int
    position: int
    source_name: str
    source_url: str
    title: str
    heading_path: str
    text: str
    body: str
    similarity: float
    fused_score: float
    found_by: tuple[str, ...]
    #: The assistant's reranker's score (0-1) that this passage answers the question; None
    #: without a reranker (``chat.reranking``).
    rerank_score: float | None = None
    #: The chunks ``body`` spans, in order, when it goes on into a neighbour of its section
    #: (a procedure or table the chunker split; ``chat.continuation``); empty when it is
    #: ``chunk_id``'s text alone.
    chunk_ids: tuple[int, ...] = ()

    @property
    def spanned(self) -> tuple[int, ...]:
        """The chunks ``body`` holds text of: ``chunk_ids``, or ``chunk_id`` alone."""
        return self.chunk_ids or (self.chunk_id,)


@dataclass(frozen=True)
class Retrieval:
    """The passages for a question, best first, and the confidence to answer from them."""

    passages: list[Passage]
    confidence: float | None
    method: str
    matched_pair_id: int | None = None
    notes: list[str] = field(default_factory=list)
    #: With a reranker: the best passage's reranker score, the answerability signal of the
    #: decline decision (``chat.reranking``); None without one.
    answerability: float | None = None

    def confident(self, min_score: float) -> bool:
        return self.confidence is not None and self.confidence >= min_score and bool(self.passages)


def embed_question(question: str, *, model: str | None = None) -> list[float]:
    """The question's unit-length embedding with ``model`` (a tuned embedder's folder; None:
    the configured embedding model)."""
    return embed_texts([question], model=model)[0].tolist()


# Sentences of the same passages are embedded again and again (every question that retrieves
# a passage quotes from it and checks answers against it), so vectors are kept per text.
_VECTORS: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_VECTORS_LOCK = threading.Lock()
_VECTORS_MAX = 50_000


def embed_texts(texts: Sequence[str], *, model: str | None = None) -> np.ndarray:
    """Unit-length embeddings of ``texts`` (one row each) with ``model`` (None: the configured
    embedding model), remembered per model and text in this process (the last 50,000)."""
    from manualqa.embedding import embed as embed_default
    from manualqa.lib.embeddings import encode

    model = model or settings.EMBEDDING_MODEL

    def embed(batch: list[str]) -> np.ndarray:
        # EMBEDDING_BATCH_SIZE texts per pass: a quote's candidate spans (10-16 texts of 40 to
        # 220 words) embed in 4.6 s per 60 at 8 against 6.0 s at 16, which pads more.
        if model == settings.EMBEDDING_MODEL:
            return embed_default(batch)
        return encode(
            batch,
            model_name=model,
            device=settings.EMBEDDING_DEVICE,
            batch_size=settings.EMBEDDING_BATCH_SIZE,
        )

    with _VECTORS_LOCK:
        missing = list(dict.fromkeys(t for t in texts if (model, t) not in _VECTORS))
    if missing:
        vectors = embed(missing)
        with _VECTORS_LOCK:
            for text, vector in zip(missing, vectors, strict=True):
                _VECTORS[(model, text)] = vector
            while len(_VECTORS) > _VECTORS_MAX:
                _VECTORS.popitem(last=False)
    with _VECTORS_LOCK:
        rows = []
        for text in texts:
            vector = _VECTORS.get((model, text))
            if vector is None:  # evicted by another thread meanwhile
                vector = embed([text])[0]
            rows.append(vector)
    if not rows:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    return np.stack(rows)


def retrieve(
    *,
    question: str,
    manual_ids: Sequence[int],
    k: int = 4,
    method: str = "vector",
    match_questions: bool = True,
    query_embedding: Sequence[float] | None = None,
    previous_question: str = "",
    embedded_as: str = "",
    wants_steps: bool = False,
) -> Retrieval:
    """The ``k`` best passages of ``manual_ids`` for ``question`` (see the module docstring).

    ``previous_question``: the owner's question before this one in the conversation. A
    follow-up ("and if the car has no power?") rarely names its subject, so when the question
    alone finds nothing closer than :data:`FOLLOW_UP_BELOW`, the previous and the current
    question are also embedded together as one more ranked list ("conversation"); and when
    the question :func:`refers_back` ("what should I do about it?"), a passage's similarity,
    and so the confidence to answer, is the higher of the two.

    ``query_embedding``: the question's vector under the configured model (it serves manuals
    that use that model, and the approved-question match); a manual with a tuned embedder has
    the question embedded with that embedder.

    ``embedded_as``: the text the question is embedded as, when not its own words: the
    question with the manual's names after an owner's words ("frunk (front trunk) wont open",
    ``chat.owner_words.with_manual_names``). The lists that read words (terms, labels) read the
    question as written: a name added to it is no table label the owner asked about.
    """
    if method not in METHODS:
        raise ValueError(f"unknown retrieval method {method!r}; expected one of {METHODS}")
    manual_ids = list(manual_ids)
    if not manual_ids:
        return Retrieval(passages=[], confidence=None, method=method)
    searched = embedded_as.strip() or question
    candidates = max(k, CANDIDATES)
    default_vector = list(query_embedding) if query_embedding is not None else None
    # Each manual's chunks carry one model's vectors (its tuned embedder, or the configured
    # model): the question is embedded with each model in use and compared with that model's
    # vectors only. Across models, the nearest lists merge by similarity.
    for attempt in range(2):
        groups = _embedder_groups(manual_ids)
        vectors = {
            embedder_id: default_vector
            if embedder_id is None and default_vector is not None
            else embed_question(searched, model=model)
            for embedder_id, (model, _) in groups.items()
        }
        nearest = _merged_nearest(vectors, groups, candidates)
        # A manual that switched embedders between reading its model and its vectors finds
        # none of the old model's vectors (never a mix): read its model again, once.
        if nearest or attempt or not _switched(groups, manual_ids):
            break
    if default_vector is None and None in vectors:
        default_vector = vectors[None]
    ranked: dict[str, list[int]] = {"vector": [chunk.pk for chunk in nearest]}
    alone_best = 1.0 - float(nearest[0].distance) if nearest else 0.0
    context_vectors = None
    if previous_question.strip() and alone_best < FOLLOW_UP_BELOW:
        both = f"{previous_question.strip()} {searched.strip()}"
        context_vectors = {
            embedder_id: embed_question(both, model=model)
            for embedder_id, (model, _) in groups.items()
        }
        ranked["conversation"] = [
            chunk.pk for chunk in _merged_nearest(context_vectors, groups, candidates)
        ]
    if method == "hybrid":
        ranked["terms"] = _terms_ranked(question, manual_ids, CANDIDATES)
    labelled = _labels_ranked(question, manual_ids)
    if labelled:
        ranked["label"] = labelled
    matched_pair_id, question_similarity = None, None
    if match_questions:
        # Approved questions are embedded with the configured model (curation), so they are
        # matched with the question's vector under that model.
        if default_vector is None:
            default_vector = embed_question(searched)
        matches = _question_matches(default_vector, manual_ids)
        if matches:
            ranked["question"] = [chunk_id for _, chunk_id, _ in matches]
            matched_pair_id, _, question_similarity = matches[0]

    fused: dict[int, float] = {}
    found_by: dict[int, list[str]] = {}
    for name, chunk_ids in ranked.items():
        for rank, chunk_id in enumerate(chunk_ids, start=1):
            weight = LIST_WEIGHTS.get(name, 1.0)
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (RRF_K + rank)
            found_by.setdefault(chunk_id, []).append(name)
    # Ties (a chunk found by one list only, at the same rank as another) go to the earlier
    # list's order, which the stable sort keeps.
    best_ids = sorted(fused, key=lambda chunk_id: -fused[chunk_id])[:k]
    # Read with the previous question, any question would resemble the manual, an off-topic
    # one too; so that similarity counts toward declining only for a question that refers
    # back to something (ranking uses the conversation list either way).
    with_context = context_vectors is not None and refers_back(question)
    chunks: dict[int, DocumentChunk] = {}
    for embedder_id, (_, ids) in groups.items():
        distance = CosineDistance("embedding", vectors[embedder_id])
        if with_context:
            distance = Least(distance, CosineDistance("embedding", context_vectors[embedder_id]))
        chunks.update(
            (chunk.pk, chunk)
            for chunk in DocumentChunk.objects.filter(
                pk__in=best_ids, document__manual_id__in=ids, embedder_id=embedder_id
            )
            .select_related("document")
            .defer("embedding", "document__markdown")
            .annotate(distance=distance)
        )
    passages = _continued(
        [
            _passage(chunks[chunk_id], fused[chunk_id], found_by[chunk_id])
            for chunk_id in best_ids
            if chunk_id in chunks
        ],
        chunks,
        wants_steps=wants_steps,
    )
    similarities = [p.similarity for p in passages]
    if nearest:
        similarities.append(round(alone_best, 4))  # rounded as passages' similarities are
    if question_similarity is not None:
        similarities.append(question_similarity)
    return Retrieval(
        passages=passages,
        confidence=max(similarities) if similarities else None,
        method=method,
        matched_pair_id=matched_pair_id,
    )


def _embedder_groups(manual_ids: list[int]) -> dict[int | None, tuple[str, list[int]]]:
    """The manuals by the embedder their chunks carry: ``{embedder_id: (model, manual_ids)}``
    (``None``: the configured model)."""
    groups: dict[int | None, tuple[str, list[int]]] = {}
    rows = Manual.objects.filter(pk__in=manual_ids).values_list(
        "pk", "embedder_id", "embedder__path"
    )
    for manual_id, embedder_id, path in rows:
        model = path if embedder_id is not None else settings.EMBEDDING_MODEL
        groups.setdefault(embedder_id, (model, []))[1].append(manual_id)
    return groups


def _switched(groups: dict[int | None, tuple[str, list[int]]], manual_ids: list[int]) -> bool:
    """Whether a manual's embedder changed since ``groups`` was read."""

    def by_embedder(found):
        return {key: sorted(ids) for key, (_, ids) in found.items()}

    return by_embedder(_embedder_groups(manual_ids)) != by_embedder(groups)


def _merged_nearest(
    vectors: dict[int | None, list[float]],
    groups: dict[int | None, tuple[str, list[int]]],
    k: int,
) -> list[DocumentChunk]:
    """The ``k`` nearest chunks over every group, each searched with its own model's vector."""
    nearest: list[DocumentChunk] = []
    for embedder_id, (_, ids) in groups.items():
        nearest += chunks_nearest(
            query_embedding=vectors[embedder_id], manual_ids=ids, k=k, embedder_id=embedder_id
        )
    if len(groups) > 1:
        nearest.sort(key=lambda chunk: float(chunk.distance))
    return nearest[:k]


def _passage(chunk: DocumentChunk, fused_score: float, found_by: list[str]) -> Passage:
    document: ManualDocument = chunk.document
    return Passage(
        chunk_id=chunk.pk,
        document_id=document.pk,
        manual_id=document.manual_id,
        position=chunk.position,
        source_name=document.source_name,
        source_url=document.source_url,
        title=document.title,
        heading_path=chunk.heading_path,
        text=chunk.text,
        body=chunk.body,
        similarity=round(1.0 - float(chunk.distance), 4),
        fused_score=fused_score,
        found_by=tuple(found_by),
    )


def _continued(
    passages: list[Passage], chunks: dict[int, DocumentChunk], *, wants_steps: bool = False
) -> list[Passage]:
    """``passages``, each that a procedure or table goes on from or into with the text of its
    neighbours in its section, up to :data:`MAX_CONTINUED` on each side (one query for all of
    them; ``chunks``: the retrieved chunks, by id); a passage that another, better ranked, now
    holds whole is left out. With ``wants_steps``, a passage with no step of its own also
    takes the next chunk of its section that holds one (``procedure_follows``)."""
    wanted = {
        p.chunk_id: (
            may_continue_before(p.body),
            may_continue_after(p.body) or (wants_steps and not has_steps(p.body)),
        )
        for p in passages
    }
    wanted = {chunk_id: sides for chunk_id, sides in wanted.items() if any(sides)}
    if not wanted:
        return passages

    def place(chunk: DocumentChunk, step: int = 0) -> tuple[int, int, int, str]:
        # A neighbour fetched for one passage stands next to another, of another section, too.
        return (chunk.document_id, chunk.version, chunk.position + step, chunk.heading_path)

    around = Q()
    for chunk_id, (before, after) in wanted.items():
        chunk = chunks[chunk_id]
        around |= Q(
            document_id=chunk.document_id,
            version=chunk.version,
            heading_path=chunk.heading_path,
            position__in=[
                chunk.position + side * step
                for side, wants in ((-1, before), (1, after))
                if wants
                for step in range(1, MAX_CONTINUED + 1)
            ],
        )
    neighbours = {
        place(chunk): chunk
        for chunk in DocumentChunk.objects.filter(around).only(
            "document_id", "version", "position", "heading_path", "text"
        )
    }
    continued = []
    for passage in passages:
        body, ids = passage.body, [passage.chunk_id]
        if passage.chunk_id in wanted:
            chunk = chunks[passage.chunk_id]
            for step in range(1, MAX_CONTINUED + 1):
                before = neighbours.get(place(chunk, -step))
                if before is None or not continued_from(before.body, body):
                    break
                body, ids = joined(before.body, body), [before.pk, *ids]
            tail = passage.body
            for step in range(1, MAX_CONTINUED + 1):
                after = neighbours.get(place(chunk, step))
                if after is None or not (
                    continues_after(tail, after.body)
                    or (wants_steps and step == 1 and procedure_follows(tail, after.body))
                ):
                    break
                body, ids, tail = joined(body, after.body), [*ids, after.pk], after.body
        if len(ids) > 1:
            passage = dataclasses.replace(
                passage, body=body, text=f"{passage.heading_path}\n\n{body}", chunk_ids=tuple(ids)
            )
        continued.append(passage)
    # Two retrieved halves of one procedure become the same passage: it is shown once, where
    # the better of them ranked.
    shown: list[Passage] = []
    for passage in continued:
        if not any(set(passage.spanned) <= set(other.spanned) for other in shown):
            shown.append(passage)
    return shown


# Words by which an English question leans on an earlier one ("can it...", "what about...").
_REFERS_BACK: Final = re.compile(
    r"\b(it|its|it's|itself|that|this|them|they|their|themselves|those|these|there|both|either|"
    r"one|ones|he|she|him|her|same)\b|^\s*(and|also|so|then|but|or|what about|how about)\b",
    re.IGNORECASE,
)


def refers_back(question: str) -> bool:
    """Whether ``question`` refers back to something said before (a pronoun such as "it" or
    "them", or an opening "and ...", "what about ..."): then it may be a follow-up.

    Measured on bench/followups.py's sets: true for 26 of the 30 follow-ups and for 2 of 16
    off-topic questions ("what time is it in tokyo?", "is it going to rain today": a dummy
    "it"). English only, like the default embedding model.
    """
    return bool(_REFERS_BACK.search(question))


def _terms_ranked(question: str, manual_ids: list[int], limit: int) -> list[int]:
    """Chunk ids by BM25 over the question's key terms (``chat.lexical``): the words that say
    what it is about, without the owner's fillers and figures (``chat.asking.key_terms``)."""
    return manual_term_index(manual_ids=manual_ids).search(list(key_terms(question)), limit)


def _labels_ranked(question: str, manual_ids: list[int]) -> list[int]:
    """Chunk ids whose table has a cell that starts with two or three of the question's key
    words as it writes them together ("ground clearance", "turning circle"), at most
    :data:`LABEL_MATCHES`: a table of figures reads little like a question, however exactly
    one of its rows names what is asked."""
    phrases = label_phrases(question)
    if not phrases:
        return []
    pattern = label_pattern(phrases, word_end=r"\M")
    return list(
        DocumentChunk.objects.filter(document__manual_id__in=manual_ids, text__iregex=pattern)
        .served()
        .order_by("document_id", "position")
        .values_list("pk", flat=True)[:LABEL_MATCHES]
    )


def _question_matches(vector: list[float], manual_ids: list[int]) -> list[tuple[int, int, float]]:
    """``(pair_id, chunk_id, similarity)`` of approved pairs asking nearly the same question."""
    pairs = (
        QAPair.objects.filter(
            manual_id__in=manual_ids,
            status=QAPair.Status.APPROVED,
            question_embedding__isnull=False,
            chunk__embedding__isnull=False,  # a served chunk (see DocumentChunk.version)
        )
        .annotate(distance=CosineDistance("question_embedding", vector))
        .order_by("distance")
        .values_list("id", "chunk_id", "distance")[:5]
    )
    matches = []
    seen: set[int] = set()
    for pair_id, chunk_id, distance in pairs:
        similarity = 1.0 - float(distance)
        if similarity < QUESTION_MATCH_MIN or chunk_id in seen:
            continue
        seen.add(chunk_id)
        matches.append((pair_id, chunk_id, round(similarity, 4)))
    return matches
