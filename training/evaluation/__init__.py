"""Evaluating assistants on a question set: create, claim, execute, cancel, report, export.

An :class:`~training.models.EvaluationRun` puts every *subject* (an assistant, or a manual's
default retrieval) to every question of a set and stores one
:class:`~training.models.EvaluationItem` per answer, with the per-answer metrics of
:mod:`training.metrics` (pure functions); :func:`summarize` turns them into the run's summary,
``{subject: {metric: value}}``, with a key left out wherever it does not apply.

Question sets
    The test split of a dataset snapshot (the approved answers are the references, the pair's
    document its source), or JSON Lines with ``{"id"?, "question", "answer"?, "sources"?,
    "must_include"?, "kind"?}`` per line (:func:`questions_parse_jsonl`; a bad line is refused
    with its number and nothing is stored). The questions are frozen on the run when it is
    created.

How each answer is made
    Generators answer through the chat's own answering (``chat.services``), as an owner of
    their own: the session ``evaluation-run-<id>``, which no browser session can have (Django's
    keys are 32 letters and digits), so the conversations never show up for a real owner. Each
    question starts a new conversation, so no answer sees another's history. The chat's
    per-owner rate limit is for people, not for a batch: :func:`_chat_answer` asks
    ``chat.services.answer(..., batch=True)``, the same checks and pipeline without the rate
    limit. Inactive assistants can be evaluated too (a model not offered to owners yet).

What is measured (``EvaluationItem.metrics``)
    * ``token_f1``, ``rouge_l`` and ``semantic_similarity`` (cosine of the answer's and the
      reference's embeddings with ``EMBEDDING_MODEL``) against the reference answer, when the
      question has one;
    * ``must_include_rate``: the share of the question's ``must_include`` strings in the answer;
    * ``refused`` (the assistant declined, by its own flag or :func:`training.metrics.is_refusal`)
      and ``unanswerable``, from which the summary computes ``refusal_accuracy`` and
      ``false_refusal_rate``;
    * ``rank``, for RAG assistants and in retrieval-only runs, when the question names its
      sources: the rank of the first expected page among the *documents* retrieval returned, best
      first (several chunks of one page count once), over the top :data:`RETRIEVAL_DEPTH`
      chunks, so that hit@5 means something even for an assistant that puts 4 passages in its
      prompt. The ranking is the assistant's own (its manuals, method and question matching);
      its first ``top_k`` chunks are exactly the passages it answers from;
    * ``citation_hit`` (RAG): 1.0 when a document the answer cites is an expected page, 0.0 when
      it cites only others (absent when it cites nothing);
    * ``context_recall``: the share of ``must_include`` strings found in the ``top_k`` passages,
      i.e. whether the generator was given what it needed;
    * ``latency_ms`` (question to last token, retrieval included), ``prompt_tokens`` and
      ``completion_tokens``;
    * with a judge, ``judge_correctness`` and ``judge_faithfulness`` (to the retrieved passages;
      RAG only), each a 1-5 grade mapped onto 0-1.

    A failed answer (the model's endpoint failed) scores 0 on the answer-quality metrics (a
    failed answer is a wrong one), and counts in ``errors``; it has no latency or refusal.

Retrieval only
    No generator runs: each subject's retrieval ranks the pages (hit@k, MRR), and ``refused``
    is whether the chat would decline on what it found before quoting, without a model: a
    confidence below the assistant's ``min_score``, or the checks after it (key terms the
    manual never uses, another product, a price, a unit; ``chat.declines.decline_reason``).
    With a manual instead of assistants the subject is the retrieval RAG assistants get by
    default (the ``Assistant`` model's defaults: vector, question matching on, top 4,
    ``min_score`` 0.30, ``min_coverage`` 0.45).

Matching sources
    Expected sources are page file names (``charging_instructions.md``, ``charging.html``);
    documents are named by the ingestion (a path relative to the manual's root, or for a crawl
    the URL path under the start page). :func:`page_key` reduces both to the page's base name
    without its extension, through :func:`training.metrics.source_key`, so
    ``data_gpt35_v2/docs/keys.md/##Key Card``, ``manual/charging.html`` and ``charging.md``
    match the names a question set uses.

Categories, uncertainty, baselines, the judge against people
    A question's ``kind`` is a category (any short label; only ``unanswerable`` has a meaning
    of its own), and every metric is also given per category. Every mean has a seeded 95%
    bootstrap interval; two subjects are compared question by question (McNemar for 0/1
    metrics, a sign-flip test otherwise) and a winner is marked only where the difference is
    significant. A run can be an assistant's baseline, which the regression gate and the
    report compare later runs with. A run with a judge first checks it against what reviewers
    and owners already judged (agreement and Cohen's kappa).

Layout
    :mod:`.questions` (question sets), :mod:`.scoring` (metrics table, ranks, judge, summary;
    no database), :mod:`.stats` (intervals, paired tests, kappa; no database), :mod:`.runs`
    (create, claim, cancel, reap), :mod:`.runner` (execute a run), :mod:`.judge_check` (the
    judge against people), :mod:`.compare` (per-category summaries, comparisons, the gate),
    :mod:`.baselines` and :mod:`.report` (report, chart, exports). This package re-exports
    their public names.
"""

from training.evaluation.baselines import evaluation_baseline_set, evaluation_gates
from training.evaluation.compare import (
    GATE_METRICS,
    GateError,
    GateResult,
    evaluation_gate,
    run_comparisons,
    summary_by_kind,
    winners,
)
from training.evaluation.questions import (
    KINDS,
    MAX_QUESTIONS_BYTES,
    questions_from_snapshot,
    questions_parse_jsonl,
)
from training.evaluation.report import (
    evaluation_item_failures,
    evaluation_item_record,
    evaluation_report,
    evaluation_run_csv,
    evaluation_run_export,
    evaluation_run_statistics,
    evaluation_run_summary_csv,
    evaluation_runs_for_job,
    run_summary,
)
from training.evaluation.runner import (
    RETRIEVAL_DEPTH,
    answer_checks,
    evaluation_run_execute,
)
from training.evaluation.runs import (
    evaluation_run_cancel,
    evaluation_run_claim,
    evaluation_run_create,
    evaluation_runs_fail_stale,
)
from training.evaluation.scoring import (
    DEFAULT_JUDGE_PROMPT,
    HEADLINE_METRICS,
    METRICS,
    citation_hit,
    document_rank,
    format_metric,
    judge_prompt_render,
    judge_scores_parse,
    page_key,
    ranked_documents,
    summarize,
    summary_table,
)

__all__ = [
    "GATE_METRICS",
    "GateError",
    "GateResult",
    "evaluation_baseline_set",
    "evaluation_gate",
    "evaluation_gates",
    "evaluation_run_statistics",
    "evaluation_run_summary_csv",
    "run_comparisons",
    "run_summary",
    "summary_by_kind",
    "winners",
    "DEFAULT_JUDGE_PROMPT",
    "HEADLINE_METRICS",
    "KINDS",
    "MAX_QUESTIONS_BYTES",
    "METRICS",
    "RETRIEVAL_DEPTH",
    "answer_checks",
    "citation_hit",
    "document_rank",
    "evaluation_item_failures",
    "evaluation_item_record",
    "evaluation_report",
    "evaluation_run_cancel",
    "evaluation_run_claim",
    "evaluation_run_create",
    "evaluation_run_csv",
    "evaluation_run_execute",
    "evaluation_run_export",
    "evaluation_runs_fail_stale",
    "evaluation_runs_for_job",
    "format_metric",
    "judge_prompt_render",
    "judge_scores_parse",
    "page_key",
    "questions_from_snapshot",
    "questions_parse_jsonl",
    "ranked_documents",
    "summarize",
    "summary_table",
]
