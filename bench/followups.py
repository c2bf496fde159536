"""Benchmark: retrieval for follow-up questions, with and without the previous question.

An owner's second question often leans on the first ("how do I open the charge port?" then
"what if the car has no power at all?"). The chat's retrieval (``chat.retrieval.retrieve``)
can read the follow-up together with the previous question (``previous_question``: one more
ranked list, fused by reciprocal rank, and a passage's similarity the higher of the two). This
measures whether that helps, and what it costs when the owner changes the subject:

1. **follow-ups**: ``bench/questions/model3-followups.jsonl`` (two-turn conversations; the
   expected pages answer the second question), each follow-up retrieved alone and with its
   previous question;
2. **topic shifts**: the answerable questions of ``bench/questions/model3-owners.jsonl``, each
   asked after an unrelated question (the previous one in a fixed shuffle), alone and with that
   unrelated previous question: context must not hurt here;
3. **unanswerable**: the owner set's unanswerable questions after an unrelated question: how
   many of them the 0.35 confidence threshold declines either way;
4. **off-topic**: questions no car manual answers (:data:`OFF_TOPIC`), each asked after a
   manual question: how many are still declined when read with it.

For each: hit@1, hit@3, hit@5 and MRR@5 of the expected page among the pages of the top 5
passages (vector retrieval, no approved-question matching), and how many questions fall below
the default assistant's decline threshold (0.35).

Runs on the quality bench's Model 3 manual (``bench/quality.py``'s ``ingest``: its name,
``BENCH_QUALITY_MANUAL``; pages already ingested and unchanged are skipped). The database and
Redis must be reachable (``make services``). About a minute.

The last line is one JSON object: {"followup": {"alone": {...}, "with_previous": {...}},
"topic_shift": {...}, "unanswerable_declined": {...}, "off_topic_declined": {...},
"questions": {...}, "seconds"}; null values when
the Model 3 data is missing (then it is skipped, exit 0).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

import _django

_django.setup()

import quality  # noqa: E402

from chat.retrieval import retrieve  # noqa: E402
from curation.models import Manual  # noqa: E402
from training import metrics  # noqa: E402
from training.evaluation import document_rank, ranked_documents  # noqa: E402

QUESTIONS = Path(__file__).resolve().parent / "questions"
K = 5
THRESHOLD = 0.35  # the default assistant's min_score
SHUFFLE_SEED = 7
# Questions no car manual answers, asked in the middle of a conversation about the car: the
# previous question must not talk the assistant into answering them.
OFF_TOPIC = [
    "What is the capital of France?",
    "How do I bake sourdough bread?",
    "Who won the 2022 football world cup?",
    "Can you recommend a good pizza place nearby?",
    "How do I file my taxes as a rideshare driver?",
    "write me a short poem about the sea",
    "what's the weather going to be like tomorrow?",
    "how many calories are in a banana?",
]


def load(name: str) -> list[dict]:
    lines = (QUESTIONS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def ask(manual: Manual, question: str, previous: str = "") -> tuple[list[str], float | None]:
    found = retrieve(
        question=question,
        manual_ids=[manual.pk],
        k=K,
        match_questions=False,
        previous_question=previous,
    )
    return [p.source_name for p in found.passages], found.confidence


def scores(rows: list[tuple[list[str], float | None, list[str]]]) -> dict:
    """hit@1/3/5 and MRR of the expected page (ranks are at most K: K passages were retrieved)
    and how many questions fall below the decline threshold."""
    ranks = [document_rank(ranked_documents(sources), expected) for sources, _, expected in rows]

    def mean(values: list[float]) -> float:
        return round(statistics.fmean(values), 3)

    return {
        **{f"hit@{n}": mean([metrics.hit_at(rank, n) for rank in ranks]) for n in (1, 3, 5)},
        "mrr@5": mean([metrics.reciprocal_rank(rank) for rank in ranks]),
        "declined": sum(1 for _, confidence, _ in rows if (confidence or 0.0) < THRESHOLD),
        "n": len(rows),
    }


def main() -> int:
    docs = _django.MODEL3_DIR / "docs"
    if not docs.is_dir():
        print(f"Skipped: no Model 3 data at {_django.MODEL3_DIR} (see its README.md).")
        print(json.dumps(dict.fromkeys(("followup", "topic_shift", "unanswerable_declined"))))
        return 0
    started = time.perf_counter()
    manual = quality.ingest(docs)  # the quality bench's manual; unchanged pages are skipped
    followups = load("model3-followups.jsonl")
    owners = load("model3-owners.jsonl")
    answerable = [q for q in owners if q.get("kind") != "unanswerable"]
    unanswerable = [q for q in owners if q.get("kind") == "unanswerable"]

    alone, with_previous = [], []
    for item in followups:
        previous = item["history"][-1]
        sources, confidence = ask(manual, item["question"])
        alone.append((sources, confidence, item["sources"]))
        sources, confidence = ask(manual, item["question"], previous)
        with_previous.append((sources, confidence, item["sources"]))

    # Each owner question after an unrelated one: the next question in a fixed shuffle.
    order = answerable[:]
    random.Random(SHUFFLE_SEED).shuffle(order)
    shift_alone, shift_context = [], []
    for i, item in enumerate(order):
        previous = order[i - 1]["question"]
        sources, confidence = ask(manual, item["question"])
        shift_alone.append((sources, confidence, item["sources"]))
        sources, confidence = ask(manual, item["question"], previous)
        shift_context.append((sources, confidence, item["sources"]))

    declined_alone = declined_context = 0
    for i, item in enumerate(unanswerable):
        previous = answerable[i]["question"]
        declined_alone += (ask(manual, item["question"])[1] or 0.0) < THRESHOLD
        declined_context += (ask(manual, item["question"], previous)[1] or 0.0) < THRESHOLD

    off_alone = off_context = 0
    for i, question in enumerate(OFF_TOPIC):
        previous = answerable[i]["question"]
        off_alone += (ask(manual, question)[1] or 0.0) < THRESHOLD
        off_context += (ask(manual, question, previous)[1] or 0.0) < THRESHOLD

    result = {
        "followup": {"alone": scores(alone), "with_previous": scores(with_previous)},
        "topic_shift": {"alone": scores(shift_alone), "with_previous": scores(shift_context)},
        "unanswerable_declined": {
            "alone": declined_alone,
            "with_previous": declined_context,
            "n": len(unanswerable),
        },
        "off_topic_declined": {
            "alone": off_alone,
            "with_previous": off_context,
            "n": len(OFF_TOPIC),
        },
        "questions": {"followups": len(followups), "owners_answerable": len(answerable)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    for name in ("followup", "topic_shift"):
        for mode, figures in result[name].items():
            print(f"{name:12} {mode:14} " + "  ".join(f"{k} {v}" for k, v in figures.items()))
    print(
        f"unanswerable declined (< {THRESHOLD}): alone {declined_alone}/{len(unanswerable)}, "
        f"after an unrelated question {declined_context}/{len(unanswerable)}"
    )
    print(
        f"off-topic declined: alone {off_alone}/{len(OFF_TOPIC)}, after a manual question "
        f"{off_context}/{len(OFF_TOPIC)}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
