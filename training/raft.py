"""RAFT records: each reviewed pair as the chat's grounded prompt over retrieved passages.

RAFT (Zhang et al., 2024, "RAFT: Adapting Language Model to Domain Specific RAG") trains a model
to answer from the passages it is given rather than from memory: every question comes with ``k``
passages; with probability ``P`` one of them is the pair's source chunk (the "oracle") and the
answer cites it by its number, otherwise all of them are distractors and the answer is the
chat's decline. The model thus learns to read the passages, to ignore the distractors and to
say so when the right passage is missing.

The prompt is built by the chat's own code (:func:`chat.prompts.grounded_messages`, as
``chat.answering.build_prompt`` builds it for an assistant in the ``generated`` style) and
written in the snapshot's prompt format by :func:`manualqa.lib.prompt_formats.to_training_record`,
so a RAFT-tuned model is served exactly the text it was trained on (a test holds them together).

Distractors come from ManualQA's own retrieval (``retrieved``: the passages retrieval ranks
highest for the question, hard negatives) or are drawn at random (``random``); either way they
come from other pages than the source chunk's, since another chunk of the same page may answer
the question too. Each pair's draw is seeded by the snapshot's seed and the pair, so an export
and a training run of the same snapshot and options hold the same records.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Any, Final

from chat import prompts, text_units
from manualqa.lib import prompt_formats

__all__ = [
    "DISTRACTOR_SOURCES",
    "RaftOptions",
    "RaftRecords",
    "cite",
    "raft_problems",
    "raft_records",
]

#: Where distractor passages come from.
DISTRACTOR_SOURCES: Final = ("retrieved", "random")
#: The answer when the oracle was left out: what the grounded prompt asks a model to reply.
DECLINE_ANSWER: Final = f"{prompts.DECLINE_PREFIX}."
#: How many more passages than needed retrieval is asked for: some are dropped for sharing
#: the source chunk's page.
_RETRIEVE_SPARE: Final = 8


@dataclass(frozen=True)
class RaftOptions:
    """``oracle_p``: the chance that a record holds its source chunk (RAFT's P; the paper's
    best was 0.8 on most sets). ``passages``: how many passages each prompt holds (k; the
    chat's default ``top_k`` is 4). ``distractors``: one of :data:`DISTRACTOR_SOURCES`."""

    oracle_p: float = 0.8
    passages: int = 4
    distractors: str = "retrieved"

    def problems(self) -> list[str]:
        """Every reason these options cannot build records, as sentences naming them."""
        found = []
        if not 0.0 <= self.oracle_p <= 1.0:
            found.append(f"raft_oracle_p must be between 0 and 1 (got {self.oracle_p}).")
        if not 1 <= self.passages <= 10:
            found.append(f"raft_passages must be from 1 to 10 (got {self.passages}).")
        if self.distractors not in DISTRACTOR_SOURCES:
            found.append(
                f"raft_distractors must be one of {', '.join(DISTRACTOR_SOURCES)} "
                f"(got {self.distractors!r})."
            )
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SENTENCE_END: Final = re.compile(r"([.!?:;])\s*$")


def cite(answer: str, number: int) -> str:
    """``answer`` with ``[number]`` after each of its sentences, steps and list items, in the
    form the grounded prompt asks for ("After each fact, cite the passage ... like [1]")."""
    mark = f"[{number}]"
    lines = []
    for line in answer.strip().splitlines():
        if not line.strip():
            lines.append(line)
            continue
        sentences = text_units.split_sentences(line) or [line.strip()]
        cited = []
        for sentence in sentences:
            if mark in sentence:
                cited.append(sentence)
            elif _SENTENCE_END.search(sentence):
                cited.append(_SENTENCE_END.sub(rf" {mark}\1", sentence))
            else:
                cited.append(f"{sentence} {mark}")
        indent = line[: len(line) - len(line.lstrip())]
        lines.append(indent + " ".join(cited))
    return "\n".join(lines)


@dataclass
class RaftRecords:
    """The records of one split, and the pairs left out because no source chunk is known
    (a pair imported without one, or whose chunk was re-ingested away): without it there is
    no telling an oracle from a distractor."""

    records: list[dict[str, Any]]
    skipped_pair_ids: list[int]

    @property
    def with_oracle(self) -> int:
        return sum(1 for record in self.records if record["raft"]["oracle"] is not None)


def _distractors(
    *,
    question: str,
    manual_id: int,
    exclude_documents: set[int],
    count: int,
    source: str,
    rng: random.Random,
    chunk_documents: dict[int, int],
) -> list[int]:
    """``count`` chunk ids from other pages than ``exclude_documents``, best first for
    ``retrieved`` (topped up at random where retrieval found too few), at random for ``random``."""
    from chat.retrieval import retrieve

    chosen: list[int] = []
    if source == "retrieved" and count:
        found = retrieve(
            question=question,
            manual_ids=[manual_id],
            k=count + _RETRIEVE_SPARE,
            match_questions=False,
        )
        chosen = [p.chunk_id for p in found.passages if p.document_id not in exclude_documents]
        chosen = chosen[:count]
    if len(chosen) < count:
        pool = [
            pk
            for pk, document_id in chunk_documents.items()
            if pk not in chosen and document_id not in exclude_documents
        ]
        chosen += rng.sample(pool, min(count - len(chosen), len(pool)))
    return chosen


def raft_problems(snapshot, *, split: str | None = "train") -> list[str]:
    """Why RAFT records cannot be built for ``snapshot`` (its ``split``, or every split for
    None): they need the pairs' source chunks, embedded for retrieval."""
    from curation.models import DocumentChunk

    pairs = snapshot.pairs.filter(qa_pair__chunk__document__manual=snapshot.manual_id)
    if split is not None:
        pairs = pairs.filter(split=split)
    if not pairs.exists():
        which = f"{split} pairs" if split else "pairs"
        return [
            f"RAFT needs to know each pair's source passage, and none of the snapshot's {which} "
            "has one (their chunks were re-ingested, or the pairs were imported without one). "
            "Use plain pairs, or regenerate the pairs from this manual."
        ]
    embedded = DocumentChunk.objects.filter(
        document__manual=snapshot.manual_id, embedding__isnull=False
    ).exists()
    if not embedded:
        return [
            f"RAFT retrieves passages from {snapshot.manual}, and its chunks are not embedded "
            "yet. Embed the manual first."
        ]
    return []


def raft_records(
    snapshot, *, split: str, options: RaftOptions, fmt: str | None = None
) -> RaftRecords:
    """The RAFT records of one split of ``snapshot`` in ``fmt`` (default: its prompt format).

    Each record is :func:`~manualqa.lib.prompt_formats.to_training_record`'s for the grounded
    prompt's user message and the cited answer (or the decline), with the grounded system
    prompt, plus a ``raft`` object saying which chunks it shows and which number is the
    oracle (None when it is left out). Raises ``ValueError`` for bad options, and naming the
    pair whose text cannot be written in ``fmt``.
    """
    from curation.models import DocumentChunk

    if problems := options.problems():
        raise ValueError(" ".join(problems))
    fmt = prompt_formats.canonical(fmt or snapshot.prompt_format)
    # Every chunk of the manual with its page, read once: random distractors are drawn from it.
    chunk_documents = dict(
        DocumentChunk.objects.filter(document__manual=snapshot.manual_id)
        .order_by("pk")
        .values_list("pk", "document_id")
    )
    pairs = snapshot.pairs.filter(split=split).select_related("qa_pair").order_by("pk")
    out = RaftRecords(records=[], skipped_pair_ids=[])
    for pair in pairs:
        source_id = pair.qa_pair.chunk_id if pair.qa_pair is not None else None
        # The source chunk counts only while it is still a chunk of the snapshot's manual.
        source_document = chunk_documents.get(source_id) if source_id else None
        if source_document is None:
            out.skipped_pair_ids.append(pair.pk)
            continue
        rng = random.Random(f"raft:{snapshot.seed}:{pair.pk}")
        keep_oracle = rng.random() < options.oracle_p
        distractor_ids = _distractors(
            question=pair.question,
            manual_id=snapshot.manual_id,
            exclude_documents={source_document},
            count=options.passages - 1 if keep_oracle else options.passages,
            source=options.distractors,
            rng=rng,
            chunk_documents=chunk_documents,
        )
        chunk_ids = list(distractor_ids)
        if keep_oracle:
            chunk_ids.insert(rng.randint(0, len(chunk_ids)), source_id)
        chunks = DocumentChunk.objects.in_bulk(chunk_ids)
        passages = [
            prompts.PromptPassage(
                number=number, heading_path=chunks[pk].heading_path, text=chunks[pk].body
            )
            for number, pk in enumerate(chunk_ids, start=1)
        ]
        oracle = chunk_ids.index(source_id) + 1 if keep_oracle else None
        system, user = prompts.grounded_messages(question=pair.question, passages=passages)
        answer = cite(pair.answer, oracle) if oracle else DECLINE_ANSWER
        try:
            record = prompt_formats.to_training_record(
                user["content"], answer, fmt=fmt, system_prompt=system["content"]
            )
        except ValueError as exc:
            raise ValueError(
                f"Snapshot pair #{pair.pk} cannot be written as {fmt}: {exc}"
            ) from None
        record["raft"] = {"pair_id": pair.pk, "chunk_ids": chunk_ids, "oracle": oracle}
        out.records.append(record)
    return out
