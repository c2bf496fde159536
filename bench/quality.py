"""Benchmark: answer quality of the base model, the fine-tuned model and RAG on Model 3.

End to end on the Tesla Model 3 manual (``../shared/data/model3-manual``), through the same
services the pages and commands use:

1. ingest the 128 markdown pages into the manual "Model 3 (quality bench)" (re-running skips
   unchanged pages);
2. import the 2,078 generated pairs of ``qa_pairs.json`` and **approve them all without review**:
   they are approved by the user ``quality-bench-unreviewed``, and the snapshot says so in its
   name and description. Their answers were written by GPT-3.5 from the pages and nobody has
   checked them, so the "reference answers" below are unreviewed too;
3. build a dataset snapshot (80/10/10 by section, seed 42);
4. train the default model (SmolLM2-135M-Instruct) with the "CPU quick" preset, bounded to
   ``BENCH_QUALITY_MAX_STEPS`` steps (default 100: about 10 minutes of training plus loading,
   merging and registering on a 2-core CPU, within 20 minutes);
5. evaluate three assistants on the snapshot's test split: *base* (the bundled model, direct),
   *fine-tuned* (the job's registered model, direct, in the format it was trained on) and *RAG*
   (the bundled model answering from retrieved passages). The RAG assistant does not match
   approved questions (``match_questions`` off): every test question is itself an approved
   pair, so matching would hand it the answer's passage;
6. measure retrieval alone on ``bench/questions/model3-owners.jsonl`` (68 hand-written owner
   questions, 8 of them unanswerable): the manual's default retrieval, and the RAG assistant's.

It prints each summary table, then one JSON line: {"pairs", "approved_unreviewed", "snapshot",
"job", "train_steps", "train_s", "test_questions", "quality": {assistant: {metric: value}},
"retrieval": {...}, "seconds"}.

Usage (the database and Redis must be reachable: ``make services``)::

    python bench/quality.py                   # everything: about 45-60 minutes on 2 cores
    python bench/quality.py --retrieval-only  # steps 1 and 6 only: a few minutes

Time on a 2-core CPU: ingesting and embedding the pages 1-4 minutes the first time (seconds
when they are unchanged); importing the pairs 1-2; training 100 steps about 10 at the preset's
~125 tokens/s, plus 2-3 for loading, the eval loss, samples and the merge (the CPU-quick preset
slows to a quarter of that when the machine is busy); answering 60 questions with three
assistants 15-30 (SmolLM2-135M on the CPU, 128 tokens at most); retrieval on the owner questions
under a minute. A smoke run (``BENCH_QUALITY_PAIRS=80 BENCH_QUALITY_MAX_STEPS=2
BENCH_QUALITY_QUESTIONS=3 BENCH_QUALITY_MAX_TOKENS=24``) takes about 5 minutes.

Knobs (environment): ``BENCH_QUALITY_PAIRS`` (pairs imported and approved; default all),
``BENCH_QUALITY_MAX_STEPS`` (training steps, default 100), ``BENCH_QUALITY_QUESTIONS`` (test
questions evaluated, default 60; 0 means all), ``BENCH_QUALITY_MAX_TOKENS`` (answer length, 128),
``BENCH_QUALITY_JOB`` (the id of a finished job to evaluate instead of training a new one),
``BENCH_QUALITY_MANUAL`` (the manual's name, to reuse one already ingested).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import _django

_django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402

from chat import services as chat_services  # noqa: E402
from chat.models import Assistant  # noqa: E402
from curation import services as curation_services  # noqa: E402
from curation.models import LLMEndpoint, Manual, QAPair  # noqa: E402
from manualqa import roles  # noqa: E402
from training import evaluation, jobs  # noqa: E402
from training import services as training_services  # noqa: E402
from training.models import DatasetSnapshot, EvaluationRun, TrainingJob  # noqa: E402

MANUAL = os.environ.get("BENCH_QUALITY_MANUAL", "").strip() or "Model 3 (quality bench)"
BENCH_USER = "quality-bench-unreviewed"
OWNER_QUESTIONS = _django.BASE_DIR / "bench" / "questions" / "model3-owners.jsonl"
SNAPSHOT_NAME = "Model 3 quality bench (UNREVIEWED pairs)"
UNREVIEWED_NOTE = (
    "UNREVIEWED: every imported pair was approved in bulk by bench/quality.py "
    f"(user {BENCH_USER}) without anyone reading it. For benchmarking only."
)


def knob(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def say(message: str) -> None:
    print(message, flush=True)


def ingest(docs: Path) -> Manual:
    manual = curation_services.manual_get_or_create(name=MANUAL)
    started = time.perf_counter()
    run = curation_services.ingestion_run_create(manual=manual, source=str(docs), enqueue=False)
    run = curation_services.ingestion_run_execute(run_id=run.pk)
    say(
        f"Ingested {run.pages_done} pages ({run.documents_created} new, "
        f"{run.documents_unchanged} unchanged, {run.pages_failed} failed) in "
        f"{time.perf_counter() - started:.0f} s: {run.status}"
    )
    if run.status != "succeeded":
        raise SystemExit(f"ingestion {run.status}: {run.message}")
    return manual


def bench_user() -> User:
    roles.roles_ensure()
    user, _ = User.objects.get_or_create(
        username=BENCH_USER, defaults={"first_name": "Unreviewed", "last_name": "bulk approval"}
    )
    user.groups.add(Group.objects.get(name=roles.TRAINER_GROUP))
    return User.objects.get(pk=user.pk)  # a fresh instance: no stale permission cache


def import_and_approve(manual: Manual, qa_file: Path, pairs: int, user: User) -> int:
    records = json.loads(qa_file.read_text(encoding="utf-8"))
    if pairs:
        records = records[:pairs]
    started = time.perf_counter()
    report = curation_services.qa_pairs_import(manual=manual, raw=json.dumps(records))
    say(
        f"Imported {report.created} pairs ({report.already_present} already there, "
        f"{len(report.problems)} refused) in {time.perf_counter() - started:.0f} s"
    )
    approved = curation_services.qa_pairs_bulk_set_status(
        pairs=QAPair.objects.filter(manual=manual, status=QAPair.Status.PENDING),
        status=QAPair.Status.APPROVED,
        reviewer=user,
    )
    total = QAPair.objects.filter(manual=manual, status=QAPair.Status.APPROVED).count()
    say(f"NOTE: {UNREVIEWED_NOTE} ({approved} approved now, {total} approved in all)")
    return total


def snapshot_for(manual: Manual, user: User) -> DatasetSnapshot:
    snapshot = training_services.snapshot_create(
        manual=manual, user=user, name=SNAPSHOT_NAME, description=UNREVIEWED_NOTE, seed=42
    )
    say(
        f"Snapshot {snapshot} #{snapshot.pk}: {snapshot.train_count} train, "
        f"{snapshot.eval_count} eval, {snapshot.test_count} test"
    )
    return snapshot


def train(
    snapshot: DatasetSnapshot,
    user: User,
    max_steps: int,
    *,
    preset: str = "cpu_quick",
    reuse_knob: str = "BENCH_QUALITY_JOB",
    label: str = "Quality bench: CPU quick",
    overrides: dict | None = None,
) -> tuple[TrainingJob, float]:
    """A ``preset`` job trained here for ``max_steps`` (or the finished one ``reuse_knob``
    names), with its seconds; exits when it does not succeed with a registered model."""
    reuse = knob(reuse_knob, 0)
    if reuse:
        job = TrainingJob.objects.get(pk=reuse)
        if job.registered_endpoint is None:
            raise SystemExit(f"job #{reuse} has no registered model ({job.status})")
        say(f"Reusing training job #{job.pk} ({job.name})")
        return job, 0.0
    job = jobs.training_job_create(
        snapshot=snapshot,
        user=user,
        name=f"{label}, {max_steps} steps",
        preset=preset,
        overrides={"max_steps": max_steps, **(overrides or {})},
        enqueue=False,
    )
    say(f"Training job #{job.pk}: {preset}, max_steps {max_steps}")
    started = time.perf_counter()
    jobs.training_job_claim(job_id=job.pk)
    job = jobs.training_job_execute(job_id=job.pk)
    seconds = time.perf_counter() - started
    say(
        f"  {job.status} in {seconds:.0f} s: step {job.step}/{job.total_steps}, train loss "
        f"{job.final_train_loss}, eval loss {job.eval_loss}, {job.tokens_per_s} tokens/s"
    )
    if job.status != TrainingJob.Status.SUCCEEDED or job.registered_endpoint is None:
        raise SystemExit(f"training {job.status}: {job.message}")
    return job, seconds


def bench_assistant(name: str, slug: str, manual: Manual, **fields) -> Assistant:
    """One of the bench's assistants, created or brought up to date; never offered to owners."""
    fields = {"is_active": False, "temperature": 0.0, **fields}
    existing = Assistant.objects.filter(slug=slug).first()
    if existing is None:
        return chat_services.assistant_create(name=name, slug=slug, manuals=[manual], **fields)
    Assistant.objects.filter(pk=existing.pk).update(name=name, **fields)
    existing.manuals.set([manual])
    existing.refresh_from_db()
    return existing


def base_endpoint() -> LLMEndpoint:
    endpoint = LLMEndpoint.objects.filter(kind=LLMEndpoint.Kind.LOCAL, model="").first()
    if endpoint is None:
        raise SystemExit("no local endpoint for the bundled model (run migrate)")
    return endpoint


def evaluate(label: str, **options) -> EvaluationRun:
    run = evaluation.evaluation_run_create(user=None, enqueue=False, **options)
    say(f"{label}: evaluation run #{run.pk}, {run.total} answers")
    evaluation.evaluation_run_claim(run_id=run.pk)
    started = time.perf_counter()
    count = 0

    def progress(item) -> None:
        nonlocal count
        count += 1
        if count % 10 == 0 or count == run.total:
            say(f"  {count}/{run.total} ({time.perf_counter() - started:.0f} s)")

    run = evaluation.evaluation_run_execute(run_id=run.pk, on_item=progress)
    say(f"  {run.status} in {time.perf_counter() - started:.0f} s {run.message}".rstrip())
    say(evaluation.summary_table(run.summary))
    return run


def rounded(summary: dict) -> dict:
    return {
        subject: {key: round(value, 4) for key, value in figures.items()}
        for subject, figures in summary.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--retrieval-only", action="store_true", help="ingest and measure retrieval only"
    )
    args = parser.parse_args()
    docs = _django.MODEL3_DIR / "docs"
    qa_file = _django.MODEL3_DIR / "qa_pairs.json"
    if not docs.is_dir() or not qa_file.is_file():
        say(f"skipped: the Model 3 data is not at {_django.MODEL3_DIR} (it lives in ../shared)")
        print(json.dumps({"skipped": True}))
        return 0
    started = time.perf_counter()
    result: dict = {}
    manual = ingest(docs)
    rag = None
    if not args.retrieval_only:
        pairs = knob("BENCH_QUALITY_PAIRS", 0)
        max_steps = knob("BENCH_QUALITY_MAX_STEPS", 100)
        questions = knob("BENCH_QUALITY_QUESTIONS", 60)
        max_tokens = knob("BENCH_QUALITY_MAX_TOKENS", 128)
        user = bench_user()
        result["approved_unreviewed"] = import_and_approve(manual, qa_file, pairs, user)
        snapshot = snapshot_for(manual, user)
        job, train_s = train(snapshot, user, max_steps)
        base = base_endpoint()
        common = {"max_tokens": max_tokens}
        assistants = [
            bench_assistant(
                "Quality bench: base (direct)",
                "quality-bench-base",
                manual,
                mode=Assistant.Mode.DIRECT,
                endpoint=base,
                **common,
            ),
            bench_assistant(
                "Quality bench: fine-tuned (direct)",
                "quality-bench-tuned",
                manual,
                mode=Assistant.Mode.DIRECT,
                endpoint=job.registered_endpoint,
                **common,
            ),
            rag := bench_assistant(
                "Quality bench: RAG (base model)",
                "quality-bench-rag",
                manual,
                mode=Assistant.Mode.RAG,
                endpoint=base,
                match_questions=False,
                **common,
            ),
        ]
        run = evaluate(
            "Quality on the test split",
            snapshot=snapshot,
            assistants=assistants,
            max_questions=questions or None,
            training_job=job,
            name=f"Quality bench: base vs fine-tuned vs RAG ({SNAPSHOT_NAME})",
        )
        result.update(
            pairs=snapshot.pair_count,
            snapshot=snapshot.pk,
            job=job.pk,
            train_steps=job.step,
            train_s=round(train_s, 1),
            final_train_loss=job.final_train_loss,
            eval_loss=job.eval_loss,
            test_questions=len(run.questions),
            quality=rounded(run.summary),
            quality_run=run.pk,
        )
    retrieval_run = evaluate(
        "Retrieval only on model3-owners.jsonl",
        questions_jsonl=OWNER_QUESTIONS.read_bytes(),
        questions_name=OWNER_QUESTIONS.name,
        manual=manual,
        assistants=[rag] if rag is not None else [],
        retrieval_only=True,
        name="Quality bench: retrieval on model3-owners.jsonl",
    )
    result.update(retrieval=rounded(retrieval_run.summary), retrieval_run=retrieval_run.pk)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
