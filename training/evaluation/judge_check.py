"""The LLM judge checked against people before its grades are believed.

People have already said which answers are right: reviewers approved or rejected QA pairs
(each with the manual passage it came from), and owners gave chat answers a thumbs up or down
(each with the passages it cited). The judge grades a balanced sample of those with the run's
own prompt, without a reference answer (the people had none either), and its verdict (a
correctness grade of 3 or more out of 5 counts as "right") is set against theirs: accuracy,
Cohen's kappa and the number of items. Kappa corrects for agreement by chance, which matters
because a judge that calls everything right agrees with an approval-heavy sample most of the
time.

The report shows the figure beside the judge's grades, and leaves those grades out of its
headline chart while agreement is below :data:`MIN_KAPPA` or measured on fewer than
:data:`MIN_ITEMS` items.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from chat.models import Feedback, Message
from curation.models import DocumentChunk, QAPair
from training.evaluation import stats
from training.evaluation.scoring import judge_prompt_render

#: Items the judge grades per check (half right, half wrong, where people labelled enough).
SAMPLE_SIZE: Final = 40
#: Agreement below this kappa ("moderate" on Landis and Koch's scale) is reported as low.
MIN_KAPPA: Final = 0.4
#: Fewer labelled items than this and agreement is reported as too thin to trust.
MIN_ITEMS: Final = 20
#: A correctness grade at or above this (0-1; 3 on the 1-5 scale) means "right".
RIGHT_FROM: Final = 0.5
#: Disagreements kept on the run for a reviewer to read.
MAX_DISAGREEMENTS: Final = 10
#: The sample's seed: the same labels give the same sample, so two checks compare.
SEED: Final = 15


@dataclass(frozen=True)
class Labelled:
    """Something people judged: ``right`` is their verdict."""

    source: str  # "qa_pair" or "chat_answer"
    ref: int
    question: str
    answer: str
    context: str
    right: bool


def _qa_pairs(manual_ids: Iterable[int] | None) -> list[Labelled]:
    pairs = QAPair.objects.filter(
        status__in=(QAPair.Status.APPROVED, QAPair.Status.REJECTED), reviewed_at__isnull=False
    )
    if manual_ids is not None:
        pairs = pairs.filter(manual_id__in=list(manual_ids))
    return [
        Labelled(
            "qa_pair",
            pair.pk,
            pair.question,
            pair.answer,
            pair.source_text,
            pair.status == QAPair.Status.APPROVED,
        )
        for pair in pairs.only("pk", "question", "answer", "source_text", "status")
    ]


def _rated_answers(manual_ids: Iterable[int] | None) -> list[Labelled]:
    feedback = Feedback.objects.select_related("message__reply_to").exclude(message__error__gt="")
    if manual_ids is not None:
        feedback = feedback.filter(
            message__conversation__assistant__manuals__in=list(manual_ids)
        ).distinct()
    found = []
    for rating in feedback:
        message: Message = rating.message
        if message.reply_to is None or not message.visible_text.strip():
            continue
        chunk_ids = [c.get("chunk_id") for c in message.citations or [] if c.get("chunk_id")]
        bodies = dict(DocumentChunk.objects.filter(pk__in=chunk_ids).values_list("pk", "text"))
        context = "\n\n".join(
            f"[{c.get('n', i)}] {bodies.get(c.get('chunk_id')) or c.get('excerpt', '')}"
            for i, c in enumerate(message.citations or [], start=1)
        )
        found.append(
            Labelled(
                "chat_answer",
                message.pk,
                message.reply_to.content,
                message.visible_text,
                context,
                rating.rating == Feedback.Rating.UP,
            )
        )
    return found


def labelled_items(
    *, manual_ids: Iterable[int] | None = None, size: int = SAMPLE_SIZE
) -> list[Labelled]:
    """A seeded sample of what people judged, as balanced between right and wrong as the
    labels allow (``manual_ids``: only those manuals' pairs and answers)."""
    manual_ids = list(manual_ids) if manual_ids is not None else None
    pool = _qa_pairs(manual_ids) + _rated_answers(manual_ids)
    pool.sort(key=lambda item: (item.source, item.ref))
    rng = random.Random(SEED)
    rng.shuffle(pool)
    right = [item for item in pool if item.right]
    wrong = [item for item in pool if not item.right]
    half = size // 2
    take_wrong = min(len(wrong), max(half, size - len(right)))
    take_right = min(len(right), size - take_wrong)
    return right[:take_right] + wrong[:take_wrong]


def judge_agreement(
    grade: Callable[[Labelled], dict[str, Any]], items: Sequence[Labelled]
) -> dict[str, Any]:
    """Grade ``items`` with ``grade`` (the judge: a dict with ``correctness`` 0-1, or an
    ``error``) and measure its agreement with people.

    Returns ``{"n", "accuracy", "kappa", "errors", "sources": {source: n}, "people_right",
    "judge_right", "status", "disagreements": [...]}``; ``status`` is "unmeasured" (no
    labelled item could be graded), "thin" (fewer than :data:`MIN_ITEMS`), "low" (kappa below
    :data:`MIN_KAPPA`) or "ok". A judge that failed on an item leaves it out and counts it in
    ``errors``.
    """
    people: list[bool] = []
    judge: list[bool] = []
    sources: dict[str, int] = {}
    errors = 0
    disagreements = []
    for item in items:
        verdict = grade(item)
        correctness = verdict.get("correctness")
        if verdict.get("error") or correctness is None:
            errors += 1
            continue
        says_right = correctness >= RIGHT_FROM
        people.append(item.right)
        judge.append(says_right)
        sources[item.source] = sources.get(item.source, 0) + 1
        if says_right != item.right and len(disagreements) < MAX_DISAGREEMENTS:
            disagreements.append(
                {
                    "source": item.source,
                    "id": item.ref,
                    "question": item.question[:300],
                    "answer": item.answer[:500],
                    "people": "right" if item.right else "wrong",
                    "judge_correctness": correctness,
                }
            )
    n = len(people)
    accuracy = sum(1 for a, b in zip(people, judge, strict=True) if a == b) / n if n else None
    kappa = stats.cohen_kappa(people, judge)
    if n == 0:
        status = "unmeasured"
    elif n < MIN_ITEMS:
        status = "thin"
    elif kappa is not None and kappa < MIN_KAPPA:
        status = "low"
    else:
        status = "ok"
    return {
        "n": n,
        "accuracy": accuracy,
        "kappa": kappa,
        "errors": errors,
        "sources": sources,
        "people_right": sum(people),
        "judge_right": sum(judge),
        "status": status,
        "disagreements": disagreements,
    }


def judge_item_prompt(template: str, item: Labelled) -> str:
    """The judge's prompt for a labelled item: no reference answer, the item's passages."""
    return judge_prompt_render(
        template, question=item.question, reference="", context=item.context, answer=item.answer
    )


def trusted(check: dict[str, Any] | None) -> bool:
    """Whether the judge's grades may be a headline: agreement measured and not low."""
    return bool(check) and check.get("status") == "ok"


def describe(check: dict[str, Any] | None) -> str:
    """One sentence on the check, for the report and the command line."""
    if not check or not check.get("n"):
        return (
            "The judge has not been checked against people: no reviewed QA pair or rated "
            "answer could be graded. Read its grades as unverified."
        )
    kappa = check["kappa"]
    text = (
        f"Judge against people: agreement {check['accuracy']:.0%}, Cohen's kappa "
        f"{kappa:.2f} on {check['n']} items"
    )
    parts = ", ".join(f"{n} {source.replace('_', ' ')}s" for source, n in check["sources"].items())
    text += f" ({parts})."
    if check["status"] == "thin":
        text += f" Too few items (under {MIN_ITEMS}) to trust its grades."
    elif check["status"] == "low":
        text += f" Agreement is low (kappa under {MIN_KAPPA}): do not trust its grades."
    return text
