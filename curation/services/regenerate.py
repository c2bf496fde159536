"""Writes for re-generating the answers of chosen QA pairs with an LLM endpoint.

A reviewer picks pairs whose answers are poor and an endpoint; the endpoint answers each pair's
question again from the pair's own source text (the chunk it was generated from), with the same
answer prompt generation uses. The new answer replaces ``answer`` with a ``regenerate`` revision;
``original_answer`` is never touched. A pair that was approved or rejected goes back to pending,
because that decision was about the old answer. A failed call leaves its pair as it was and is
logged: an error message is never stored as an answer.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from curation import qa
from curation.models import LLMEndpoint, QAPair, QAPairRevision
from curation.services.qa_pairs import qa_pair_text_changed
from curation.services.review import user_can_review
from manualqa.jobs import queues
from manualqa.lib.llm import LLMClient, LLMConfigError, LLMError, make_client

logger = logging.getLogger("curation.regenerate")

__all__ = ["RegenerateReport", "qa_pairs_regenerate_answers", "qa_pairs_regenerate_enqueue"]

# The flags ``qa.answer_flags`` derives from an answer's text; a new answer gets its own.


@dataclass
class RegenerateReport:
    """What a regeneration did: pairs whose answer changed, stayed the same, or failed."""

    regenerated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{len(self.regenerated)} regenerated, {len(self.unchanged)} unchanged, "
            f"{len(self.failed)} failed"
        )


def _check_endpoint(endpoint: LLMEndpoint) -> None:
    if not endpoint.is_active:
        raise ValidationError({"endpoint": f"The endpoint {endpoint.name} is switched off."})


@transaction.atomic
def qa_pairs_regenerate_enqueue(*, pairs: QuerySet[QAPair], endpoint: LLMEndpoint, reviewer) -> int:
    """Queue the regeneration of ``pairs``' answers with ``endpoint``; returns how many.

    Local endpoints go to the ``gpu`` queue (where the model fits), others to ``default``.
    The task is sent when the transaction commits.
    """
    from curation.tasks import generate_local_regenerate, regenerate_answers

    if not user_can_review(reviewer):
        raise PermissionDenied("Re-generating answers needs the Reviewer role.")
    _check_endpoint(endpoint)
    pair_ids = list(pairs.order_by("id").values_list("id", flat=True))
    if not pair_ids:
        return 0
    local = endpoint.kind == LLMEndpoint.Kind.LOCAL
    task = generate_local_regenerate if local else regenerate_answers
    # The batch names this request, so a redelivered task skips what it already did.
    queues.enqueue(task, pair_ids, endpoint.pk, reviewer.pk, uuid.uuid4().hex, gpu=local)
    return len(pair_ids)


def _prompt_parts(pair: QAPair) -> tuple[str, str, str]:
    """(title, heading path, text) for the answer prompt, built as generation built them.

    The text is the pair's own ``source_text`` (what it was generated from, even when its chunk
    was rebuilt since). That starts with the chunk's heading path, which the prompt gives on its
    own line, so the text sent is the body below it, as ``DocumentChunk.body`` does.
    """
    title = pair.document.title if pair.document_id else pair.manual.name
    text = pair.source_text or (pair.chunk.text if pair.chunk_id else "")
    heading_path = pair.chunk.heading_path if pair.chunk_id else ""
    first, _, rest = text.partition("\n\n")
    if heading_path and rest and heading_path.startswith(first.strip()):
        text = rest
    return title, heading_path, text.strip()


def _ask(client: LLMClient, messages: list[dict[str, str]]) -> str:
    return qa.clean_answer(client.complete(messages).text)


@transaction.atomic
def _store(*, pair_id: int, answer: str, reviewer, batch: str = "") -> bool:
    """Replace one pair's answer with a revision. False when it already says exactly that,
    or when ``batch`` already regenerated it (a second worker on the same batch)."""
    pair = QAPair.objects.select_for_update().get(pk=pair_id)
    if answer == pair.answer or (batch and pair.pk in _done_in(batch, [pair.pk])):
        return False
    changes = {"answer": [pair.answer, answer]}
    if batch:
        changes["regeneration"] = [None, batch]
    pair.answer = answer
    qa_pair_text_changed(pair)
    if pair.status != QAPair.Status.PENDING:
        # An approval or rejection was of the old answer; the new one needs its own review.
        changes["status"] = [pair.status, QAPair.Status.PENDING]
        pair.status = QAPair.Status.PENDING
    pair.reviewed_by = reviewer
    pair.reviewed_at = timezone.now()
    pair.save()
    QAPairRevision.objects.create(
        pair=pair, action=QAPairRevision.Action.REGENERATE, changes=changes, user=reviewer
    )
    return True


def _done_in(batch: str, pair_ids: list[int]) -> set[int]:
    """The pairs that ``batch`` already regenerated (their revision names it)."""
    return set(
        QAPairRevision.objects.filter(
            pair_id__in=pair_ids,
            action=QAPairRevision.Action.REGENERATE,
            changes__regeneration__1=batch,
        ).values_list("pair_id", flat=True)
    )


def qa_pairs_regenerate_answers(
    *, pair_ids: list[int], endpoint_id: int, reviewer_id: int, batch: str = ""
) -> RegenerateReport:
    """Ask the endpoint to answer each pair's question again from its source text.

    Calls run in parallel up to the endpoint's concurrency; each answer is stored in its own
    transaction as it arrives, so a crash halfway keeps the answers already written. A pair
    without source text, or whose call fails or returns nothing, is left unchanged and logged.
    Raises ``PermissionDenied`` when the reviewer may not review, ``ValidationError`` when the
    endpoint is switched off; an endpoint that cannot work at all (no API key) fails every pair.

    ``batch`` names the request (the enqueue gives each one): a task delivered again after its
    worker died (``acks_late``) skips the pairs the batch already regenerated, so the endpoint
    is asked once per pair and each pair gets one revision (security review M9).
    """
    reviewer = get_user_model().objects.get(pk=reviewer_id)
    if not user_can_review(reviewer):
        raise PermissionDenied("Re-generating answers needs the Reviewer role.")
    endpoint = LLMEndpoint.objects.get(pk=endpoint_id)
    _check_endpoint(endpoint)
    report = RegenerateReport()
    done = _done_in(batch, pair_ids) if batch else set()
    report.unchanged.extend(sorted(done))
    pairs = list(
        QAPair.objects.filter(pk__in=[pk for pk in pair_ids if pk not in done])
        .select_related("manual", "document", "chunk")
        .defer("question_embedding", "chunk__embedding", "document__markdown")
        .order_by("id")
    )
    jobs: dict[int, list[dict[str, str]]] = {}
    for pair in pairs:
        title, heading_path, text = _prompt_parts(pair)
        if not text:
            report.failed[pair.pk] = "the pair has no source text to answer from"
            continue
        jobs[pair.pk] = qa.answer_messages(
            title=title, heading_path=heading_path, text=text, question=pair.question
        )
    try:
        client = make_client(endpoint.config())
    except LLMConfigError as exc:
        for pk in jobs:
            report.failed[pk] = str(exc)
        jobs = {}
    if jobs:
        with ThreadPoolExecutor(max_workers=max(1, endpoint.max_concurrency)) as pool:
            futures = {pool.submit(_ask, client, messages): pk for pk, messages in jobs.items()}
            for future in as_completed(futures):
                pk = futures[future]
                try:
                    answer = future.result()
                except LLMError as exc:
                    report.failed[pk] = str(exc)
                    continue
                if not answer:
                    report.failed[pk] = "the endpoint returned an empty answer"
                    continue
                if _store(pair_id=pk, answer=answer, reviewer=reviewer, batch=batch):
                    report.regenerated.append(pk)
                else:
                    report.unchanged.append(pk)
    for pk, reason in sorted(report.failed.items()):
        logger.warning(
            "regenerating the answer of QA pair %s with %s failed: %s", pk, endpoint, reason
        )
    report.regenerated.sort()
    report.unchanged.sort()
    return report
