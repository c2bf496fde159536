"""Executing a claimed evaluation run: each subject answers each question, one item at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from manualqa.embedding import embed, embedding_model
from manualqa.jobs import lifecycle, runner
from training import metrics
from training.evaluation import judge_check
from training.evaluation.runs import _manual_label
from training.evaluation.scoring import (
    citation_hit,
    document_rank,
    judge_prompt_render,
    judge_scores_parse,
    ranked_documents,
)
from training.evaluation.stats import summary_with_intervals
from training.models import EvaluationItem, EvaluationRun

#: Chunks retrieved to rank pages (the fusion's candidate count in ``chat.retrieval``).
RETRIEVAL_DEPTH: Final = 20
#: The session key prefix of the owner that evaluation answers belong to.
EVALUATION_SESSION_PREFIX: Final = "evaluation-run-"


# --------------------------------------------------------------------------------------------
# Executing a run


@dataclass(frozen=True)
class Subject:
    """Who answers: an assistant, or (``assistant`` None) a manual's default retrieval."""

    label: str
    assistant: Any
    manual_ids: tuple[int, ...]
    method: str
    match_questions: bool
    top_k: int
    min_score: float
    min_coverage: float
    rag: bool
    #: The assistant's reranker (``curation.RetrievalModel``), or None.
    reranker: Any = None


def _subjects(run: EvaluationRun) -> list[Subject]:
    from chat.models import Assistant

    subjects = []
    for assistant in run.assistants.select_related("endpoint", "reranker").order_by("name"):
        subjects.append(
            Subject(
                label=assistant.name,
                assistant=assistant,
                manual_ids=tuple(assistant.manuals.order_by("name").values_list("pk", flat=True)),
                method=assistant.retrieval,
                match_questions=assistant.match_questions,
                top_k=assistant.top_k,
                min_score=assistant.min_score,
                min_coverage=assistant.min_coverage,
                rag=assistant.mode == Assistant.Mode.RAG,
                reranker=assistant.reranker,
            )
        )
    if run.manual_id is not None:

        def default(field: str):
            return Assistant._meta.get_field(field).default

        subjects.append(
            Subject(
                label=_manual_label(run.manual),
                assistant=None,
                manual_ids=(run.manual_id,),
                method=default("retrieval"),
                match_questions=default("match_questions"),
                top_k=default("top_k"),
                min_score=default("min_score"),
                min_coverage=default("min_coverage"),
                rag=True,
            )
        )
    return subjects


def evaluation_run_execute(
    *, run_id: int, on_item: Callable[[EvaluationItem], None] | None = None
) -> EvaluationRun:
    """Run a claimed evaluation to the end (or to a cancel) and store its summary.

    An expected failure (every answer failed, e.g. an endpoint that is down) ends FAILED with
    the reason; a crash ends ERRORED with the traceback on the row. ``on_item`` is called after
    each stored answer (the management command prints progress with it).
    """
    run = EvaluationRun.objects.select_related("manual", "judge_endpoint").get(pk=run_id)
    if run.status != EvaluationRun.Status.RUNNING:
        return run  # only a claimed run is executed
    with runner.beating(run, settings.EVALUATION_HEARTBEAT_S):
        try:
            return _execute(run, on_item)
        except Exception as exc:
            return runner.errored(
                run, exc, doing="The evaluation crashed: ", summary=_summary_of(run)
            )


def _summary_of(run: EvaluationRun) -> dict[str, dict[str, float | int]]:
    """The run's summary from its stored items, subjects in the order they ran."""
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for subject, item_metrics, error in run.items.order_by("id").values_list(
        "subject", "metrics", "error"
    ):
        by_subject.setdefault(subject, []).append({**item_metrics, "error": error})
    return {subject: summary_with_intervals(items) for subject, items in by_subject.items()}


def _execute(run: EvaluationRun, on_item) -> EvaluationRun:
    subjects = _subjects(run)
    done = set(run.items.values_list("subject", "position"))
    EvaluationRun.objects.filter(pk=run.pk).update(
        done=len(done), total=len(subjects) * len(run.questions)
    )
    evaluator = _Evaluator(run)
    for subject in subjects:
        for position, question in enumerate(run.questions):
            if (subject.label, position) in done:
                continue
            if EvaluationRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
                return lifecycle.finish(
                    run,
                    EvaluationRun.Status.CANCELLED,
                    message=f"Cancelled after {run.items.count()} of {run.total} answers.",
                    summary=_summary_of(run),
                )
            item = evaluator.evaluate(subject, position, question)
            progress: dict[str, Any] = {"done": F("done") + 1, "heartbeat_at": timezone.now()}
            if evaluator.judge_calls:
                progress.update(
                    judge_prompt_tokens=evaluator.judge_tokens_in,
                    judge_completion_tokens=evaluator.judge_tokens_out,
                    judge_cost=evaluator.judge_cost,
                )
            EvaluationRun.objects.filter(pk=run.pk).update(**progress)
            if on_item is not None:
                on_item(item)
    if evaluator.judge_client is not None and not run.judge_check:
        _check_judge(run, evaluator)
    summary = _summary_of(run)
    items = run.items.count()
    failed = run.items.exclude(error="").count()
    if items and failed == items:
        first = run.items.exclude(error="").order_by("id").first()
        return lifecycle.finish(
            run,
            EvaluationRun.Status.FAILED,
            message=f"Every answer failed; the first said: {first.error}",
            summary=summary,
        )
    message = f"{failed} of {items} answers failed." if failed else ""
    return lifecycle.finish(run, EvaluationRun.Status.SUCCEEDED, message=message, summary=summary)


def _check_judge(run: EvaluationRun, evaluator: _Evaluator) -> None:
    """Grade what people already judged with the run's judge and prompt, and store how well
    it agrees with them (``run.judge_check``), counting its tokens and cost with the run's."""
    manual_ids = set(run.assistants.values_list("manuals__id", flat=True).exclude(manuals__id=None))
    if run.manual_id is not None:
        manual_ids.add(run.manual_id)
    items = judge_check.labelled_items(manual_ids=manual_ids or None)
    check = judge_check.judge_agreement(
        lambda item: evaluator.judge_prompt(judge_check.judge_item_prompt(run.judge_prompt, item)),
        items,
    )
    EvaluationRun.objects.filter(pk=run.pk).update(
        judge_check=check,
        judge_prompt_tokens=evaluator.judge_tokens_in,
        judge_completion_tokens=evaluator.judge_tokens_out,
        judge_cost=evaluator.judge_cost,
    )
    run.judge_check = check


def _embed(texts: list[str]) -> list[list[float]]:
    return [vector.tolist() for vector in embed(texts)]


def answer_checks(message, answer: str, passages: Sequence, *, declined: bool) -> dict[str, Any]:
    """The judge-free checks of one answer: ``answer_words``, ``loops`` (0/1: it repeats
    itself), ``supported_sentence_rate`` (share of its sentences that the passages it rests on
    support, ``chat.verification``; not for a decline, which states nothing) and
    ``model_supported_rate`` (the same for the model's own sentences before unsupported ones
    were cut, from the answer's record; only where a model wrote text)."""
    from chat.retrieval import embed_texts
    from chat.selectors import message_resting_texts
    from chat.verification import verify

    checks: dict[str, Any] = {"answer_words": metrics.answer_words(answer)}
    texts = message_resting_texts(message=message) or [passage.text for passage in passages]
    checks["loops"] = metrics.loops(answer, texts)
    if not declined and answer.strip() and texts:
        rate = verify(answer, list(enumerate(texts, start=1)), embed=embed_texts).supported_rate
        if rate is not None:
            checks["supported_sentence_rate"] = rate
    counted = [v for v in message.verification or [] if v.get("reason") not in ("empty", "decline")]
    if counted:
        checks["model_supported_rate"] = sum(bool(v.get("supported")) for v in counted) / len(
            counted
        )
    return checks


def _chat_answer(*, assistant, question: str, owner):
    """The chat's own answer in batch mode: no per-owner rate limit (it is for people), and an
    inactive assistant answers too. The stored answer message (``error`` set when it failed)."""
    from chat import services as chat_services

    return chat_services.answer(assistant=assistant, question=question, owner=owner, batch=True)


class _Evaluator:
    """Answers and scores one (subject, question) at a time for one run, caching what repeats:
    the reference embeddings, the judge's client, the judge's running cost."""

    def __init__(self, run: EvaluationRun) -> None:
        from chat.owners import Owner

        self.run = run
        self.owner = Owner.for_session(f"{EVALUATION_SESSION_PREFIX}{run.pk}")
        # Loaded before the first question, so that its latency is not the model's load time.
        embedding_model()
        self.reference_vectors: dict[int, list[float]] = {}
        self.judge_client = None
        if run.judge_endpoint is not None and not run.retrieval_only:
            from manualqa.lib.llm import make_client

            self.judge_client = make_client(run.judge_endpoint.config())
        self.judge_calls = 0
        self.judge_tokens_in = run.judge_prompt_tokens
        self.judge_tokens_out = run.judge_completion_tokens
        self.judge_cost: float | None = run.judge_cost

    def evaluate(self, subject: Subject, position: int, question: Mapping[str, Any]):
        if self.run.retrieval_only:
            values = self._retrieval_only(subject, question)
        else:
            values = self._answered(subject, position, question)
        return EvaluationItem.objects.create(
            run=self.run,
            position=position,
            assistant=subject.assistant,
            subject=subject.label,
            question_id=question["id"],
            question=question["question"],
            reference=question.get("answer", ""),
            kind=question["kind"],
            sources=question["sources"],
            must_include=question["must_include"],
            **values,
        )

    # -- retrieval ---------------------------------------------------------------------------

    def _retrieve(self, subject: Subject, question: str):
        """(the ranked documents over RETRIEVAL_DEPTH chunks, the passages the subject answers
        from, whether it is confident enough to answer, seconds it took).

        With a reranker, as the chat does (``chat.reranking``): its candidates are reordered
        by their scores, the best ``top_k`` answer, pages are ranked in the reranked order
        first, and a best score under the reranker's threshold is not confident."""
        from chat import reranking
        from chat.retrieval import embed_question, retrieve

        started = time.monotonic()
        vector = embed_question(question)
        own = retrieve(
            question=question,
            manual_ids=subject.manual_ids,
            k=reranking.candidates_for(subject.top_k, subject.reranker),
            method=subject.method,
            match_questions=subject.match_questions,
            query_embedding=vector,
        )
        confident = own.confident(subject.min_score)
        reranked = []
        if subject.reranker is not None:
            candidates = len(own.passages)
            own = reranking.rerank(own, question, subject.reranker, candidates)
            reranked = [passage.source_name for passage in own.passages]
            threshold = subject.reranker.decline_below
            if threshold is not None and own.answerability is not None:
                confident = confident and own.answerability >= threshold
            own = replace(own, passages=own.passages[: subject.top_k])
        seconds = time.monotonic() - started
        deep = retrieve(
            question=question,
            manual_ids=subject.manual_ids,
            k=max(RETRIEVAL_DEPTH, subject.top_k),
            method=subject.method,
            match_questions=subject.match_questions,
            query_embedding=vector,
        )
        documents = ranked_documents(
            [*reranked, *(passage.source_name for passage in deep.passages)]
        )
        return documents, own.passages, confident, seconds

    @staticmethod
    def _retrieval_metrics(question, documents, passages) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if question["sources"]:
            values["rank"] = document_rank(documents, question["sources"])
        if question["must_include"] and question["kind"] != "unanswerable":
            context = "\n".join(passage.text for passage in passages)
            values["context_recall"] = metrics.must_include_rate(context, question["must_include"])
        return values

    def _retrieval_only(self, subject: Subject, question: Mapping[str, Any]) -> dict[str, Any]:
        documents, passages, confident, seconds = self._retrieve(subject, question["question"])
        unanswerable = question["kind"] == "unanswerable"
        latency_ms = round(1000 * seconds)
        refused = not confident or self._declines(subject, question["question"], passages)
        item_metrics = {
            **self._retrieval_metrics(question, documents, passages),
            "refused": refused,
            "unanswerable": unanswerable,
            "latency_ms": latency_ms,
        }
        return {
            "retrieved_sources": documents[:10],
            "metrics": item_metrics,
            "latency_ms": latency_ms,
            "refused": refused,
        }

    @staticmethod
    def _declines(subject: Subject, question: str, passages: Sequence) -> bool:
        """Whether the chat declines ``question`` on what retrieval found, before it quotes:
        key terms the manual never uses, another product, a price, a unit it has no figure in
        (``chat.declines.decline_reason``, the checks after the similarity gate)."""
        from chat import selectors
        from chat.declines import decline_reason
        from chat.retrieval import embed_texts

        return (
            decline_reason(
                question,
                [f"{passage.heading_path}\n{passage.body}" for passage in passages],
                selectors.manual_vocabulary(manual_ids=list(subject.manual_ids)),
                embed=embed_texts,
                min_coverage=subject.min_coverage,
            )
            is not None
        )

    # -- answering ---------------------------------------------------------------------------

    def _answered(
        self, subject: Subject, position: int, question: Mapping[str, Any]
    ) -> dict[str, Any]:
        documents: list[str] = []
        passages: list = []
        item_metrics: dict[str, Any] = {}
        if subject.rag and subject.manual_ids:
            documents, passages, _, _ = self._retrieve(subject, question["question"])
            item_metrics.update(self._retrieval_metrics(question, documents, passages))
        message = _chat_answer(
            assistant=subject.assistant, question=question["question"], owner=self.owner
        )
        # What the owner reads: the answer, and the quote from the manual shown under it.
        answer = message.visible_text if not message.error else ""
        cited = ranked_documents(
            citation.get("source_name", "")
            for citation in message.citations
            if citation.get("in_prompt", True)
        )
        reference = question.get("answer", "")
        unanswerable = question["kind"] == "unanswerable"
        values: dict[str, Any] = {
            "answer": answer,
            "retrieved_sources": documents[:10],
            "cited_sources": cited,
            # The report is for staff: the failure's detail, not the owner's reference.
            "error": (message.checks or {}).get("error_detail", message.error)
            if message.error
            else "",
            "chat_message_id": message.pk,
        }
        if reference and not unanswerable:
            item_metrics["token_f1"] = metrics.token_f1(answer, reference)
            item_metrics["rouge_l"] = metrics.rouge_l(answer, reference)
            item_metrics["semantic_similarity"] = self._similarity(position, answer, reference)
        rate = metrics.must_include_rate(answer, question["must_include"])
        if rate is not None and not unanswerable:
            item_metrics["must_include_rate"] = rate
        if subject.rag and subject.manual_ids:
            hit = citation_hit(cited, question["sources"])
            if hit is not None:
                item_metrics["citation_hit"] = hit
        if message.error:
            values["metrics"] = item_metrics
            return values

        outcome = metrics.refusal_outcome(answer, unanswerable)
        refused = bool(message.declined or outcome["refused"])
        item_metrics.update(
            refused=refused,
            unanswerable=unanswerable,
            latency_ms=message.latency_ms,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            **answer_checks(message, answer, passages, declined=refused),
        )
        if self.judge_client is not None:
            context = "\n\n".join(
                f"[{number}] {passage.heading_path}\n{passage.text}"
                for number, passage in enumerate(passages if subject.rag else [], start=1)
            )
            values["judge"] = self._judge(question, answer, context)
            for key in ("correctness", "faithfulness"):
                if values["judge"].get(key) is not None:
                    item_metrics[f"judge_{key}"] = values["judge"][key]
        values.update(
            metrics=item_metrics,
            latency_ms=message.latency_ms,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            refused=refused,
        )
        return values

    def _similarity(self, position: int, answer: str, reference: str) -> float:
        if not answer.strip():
            return 0.0  # an empty text against a non-empty one (metrics' convention)
        if position not in self.reference_vectors:
            self.reference_vectors[position] = _embed([reference])[0]
        return metrics.cosine(_embed([answer])[0], self.reference_vectors[position])

    def _judge(self, question: Mapping[str, Any], answer: str, context: str) -> dict[str, Any]:
        """The judge's grades for one answer, with its raw reply, tokens and cost; a judge
        that fails or answers unreadably leaves the grades out and says why in ``error``."""
        prompt = judge_prompt_render(
            self.run.judge_prompt,
            question=question["question"],
            reference=question.get("answer", ""),
            context=context,
            answer=answer,
        )
        record = self.judge_prompt(prompt)
        if not context:
            record["faithfulness"] = None  # nothing to be faithful to (a direct answer)
        return record

    def judge_prompt(self, prompt: str) -> dict[str, Any]:
        """The judge's reply to ``prompt``: its grades, raw reply, tokens and cost, or why
        there are none (``error``)."""
        from manualqa.lib.llm import LLMError

        self.judge_calls += 1
        try:
            completion = self.judge_client.complete(
                [{"role": "user", "content": prompt}], temperature=0.0
            )
        except LLMError as exc:
            return {"error": f"The judge failed: {exc.message}"}
        self.judge_tokens_in += completion.tokens_in
        self.judge_tokens_out += completion.tokens_out
        cost = completion.cost(self.judge_client.config)
        if cost is not None:
            self.judge_cost = (self.judge_cost or 0.0) + cost
        record: dict[str, Any] = {
            "raw": completion.text[:2000],
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "cost": cost,
        }
        try:
            record.update(judge_scores_parse(completion.text))
        except ValueError as exc:
            record["error"] = f"The judge's reply could not be read: {exc}"
        return record
