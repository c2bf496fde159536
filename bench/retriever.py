"""Benchmark: an embedder tuned on the Model 3 pairs, on the owners' questions it never saw.

End to end on the Tesla Model 3 manual (``../shared/data/model3-manual``), through the same
services the pages and commands use:

1. ingest the 128 markdown pages into the manual "Model 3 (retriever bench)" (a re-run skips
   unchanged pages) and switch it back to the default embedding model if a run left it tuned;
2. import the 2,078 generated pairs of ``qa_pairs.json`` and **approve them all without
   review** (user ``retriever-bench-unreviewed``, as bench/quality.py does: nobody checked them);
3. freeze a snapshot (80/10/10 by section, seed 42);
4. measure retrieval on ``bench/questions/model3-owners.jsonl`` (the 60 answerable hand-written
   owner questions; none of them is a pair, so none is trained on): the chat's vector
   retrieval (``chat.retrieval.retrieve``, approved-question matching off, so the embedder alone
   is measured), a hit when a retrieved chunk's page is one of the question's ``sources``;
5. train a retriever job on the snapshot's train split for ``BENCH_RETRIEVER_MAX_STEPS`` steps
   (default 50: about one epoch of the 1,569 train pairs) of ``BENCH_RETRIEVER_BATCH`` questions
   (default 32) with one hard negative each;
6. re-embed the manual with the tuned embedder (built beside the old vectors, switched in one
   transaction) and measure the owner questions again.

It prints the job's own measures on the snapshot's eval and test splits, then one JSON line:
``{"hit_at_1_before", "hit_at_1_after", "hit_at_3_before", "hit_at_3_after", "train_pairs",
"seconds", ...}``. The goal of issue 18 is owner-question hit@1 >= 0.90 and hit@3 >= 0.98.

Measured on this host (2 shared, busy cores; 26 minutes in all): owner questions hit@1 0.567 ->
0.633, hit@3 0.833 -> 0.850 after 50 steps of 32 (1,344 s with the before/after measures on the
snapshot; re-embedding the 1,142 chunks 152 s); the snapshot's test split (229 questions) page
hit@1 0.616 -> 0.734, hit@3 0.817 -> 0.860. The goal is not met.

Trained further on a GPU (2026-12-04, a device check on an H200: the job's examples and trainer
arguments, dumped here, with the product's ``measure``; the base widened from an fp16 copy),
page hit@1 / hit@3 on the test split, the 60 answerable owner questions and the 60 of
``model3-dev.jsonl`` (before: 0.616/0.817, 0.567/0.833, 0.733/0.850):

======================  =============  =============  =============
batch, epochs, lr       test           owners         dev
======================  =============  =============  =============
16, 1, 3e-5 (98 steps)  0.742 / 0.865  0.600 / 0.833  0.783 / 0.900
16, 3, 3e-5             0.760 / 0.865  0.567 / 0.783  0.717 / 0.883
64, 3, 3e-5             0.738 / 0.878  0.583 / 0.850  0.750 / 0.900
64, 10, 3e-5            0.738 / 0.856  0.583 / 0.850  0.750 / 0.900
64, 10, 1e-4            0.734 / 0.852  0.533 / 0.817  0.650 / 0.850
======================  =============  =============  =============

The generated questions of the test split gain; owners' questions do not, and lose with more
passes. More steps will not reach the goal: the pairs' questions (written by GPT-3.5 from the
page) are phrased like the manual, owners' are not, so what is left is training questions in
owners' words (reviewed paraphrases, or questions owners asked in the chat).

Usage (the database and Redis must be reachable: ``make services``)::

    python bench/retriever.py

Knobs (environment): ``BENCH_RETRIEVER_MAX_STEPS``, ``BENCH_RETRIEVER_BATCH``,
``BENCH_RETRIEVER_LR`` (learning rate, default 3e-5), ``BENCH_RETRIEVER_HARD_NEGATIVES``
(default 1), ``BENCH_RETRIEVER_KEEP=1`` (leave the manual on the tuned embedder afterwards; by
default it switches back, which embeds nothing).
"""

from __future__ import annotations

import json
import os
import sys
import time

import _django

_django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402

from chat.retrieval import retrieve  # noqa: E402
from curation import services as curation_services  # noqa: E402
from curation.models import Manual, QAPair  # noqa: E402
from curation.services import embedders  # noqa: E402
from manualqa import roles  # noqa: E402
from training import retrieval_jobs  # noqa: E402
from training import services as training_services  # noqa: E402
from training.models import DatasetSnapshot, RetrievalJob  # noqa: E402

MANUAL = "Model 3 (retriever bench)"
BENCH_USER = "retriever-bench-unreviewed"
OWNER_QUESTIONS = _django.BASE_DIR / "bench" / "questions" / "model3-owners.jsonl"
NOTE = (
    "UNREVIEWED: every imported pair was approved in bulk by bench/retriever.py "
    f"(user {BENCH_USER}) without anyone reading it. For benchmarking only."
)


def knob(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return type(default)(value) if value else default


def say(message: str) -> None:
    print(message, flush=True)


def prepare() -> tuple[Manual, User]:
    manual = curation_services.manual_get_or_create(name=MANUAL)
    if manual.embedder_id is not None:  # a previous run kept it tuned: back to the default
        embedders.embedder_use(manual, None)
        say("Switched the manual back to the default embedding model.")
    started = time.perf_counter()
    run = curation_services.ingestion_run_create(
        manual=manual, source=str(_django.MODEL3_DIR / "docs"), enqueue=False
    )
    run = curation_services.ingestion_run_execute(run_id=run.pk)
    if run.status != "succeeded":
        raise SystemExit(f"ingestion {run.status}: {run.message}")
    say(f"Ingested {run.pages_done} pages in {time.perf_counter() - started:.0f} s")
    roles.roles_ensure()
    user, _ = User.objects.get_or_create(username=BENCH_USER)
    user.groups.add(Group.objects.get(name=roles.TRAINER_GROUP))
    user = User.objects.get(pk=user.pk)
    if not QAPair.objects.filter(manual=manual).exists():
        raw = (_django.MODEL3_DIR / "qa_pairs.json").read_text(encoding="utf-8")
        report = curation_services.qa_pairs_import(manual=manual, raw=raw)
        say(f"Imported {report.created} pairs ({len(report.problems)} refused)")
    curation_services.qa_pairs_bulk_set_status(
        pairs=QAPair.objects.filter(manual=manual, status=QAPair.Status.PENDING),
        status=QAPair.Status.APPROVED,
        reviewer=user,
    )
    return Manual.objects.get(pk=manual.pk), user


def owner_hits(manual: Manual, questions: list[dict]) -> dict[str, float]:
    """Page-level hit@1 and hit@3 of the chat's vector retrieval on the owner questions."""
    hit1 = hit3 = 0
    for row in questions:
        found = retrieve(
            question=row["question"], manual_ids=[manual.pk], k=3, match_questions=False
        )
        pages = [passage.source_name for passage in found.passages]
        hit1 += bool(pages) and pages[0] in row["sources"]
        hit3 += any(page in row["sources"] for page in pages)
    return {
        "hit_at_1": round(hit1 / len(questions), 4),
        "hit_at_3": round(hit3 / len(questions), 4),
    }


def main() -> int:
    if not (_django.MODEL3_DIR / "docs").is_dir():
        say(f"skipped: the Model 3 data is not at {_django.MODEL3_DIR} (it lives in ../shared)")
        print(json.dumps({"skipped": True}))
        return 0
    started = time.perf_counter()
    manual, user = prepare()
    snapshot = DatasetSnapshot.objects.filter(manual=manual).order_by("-version").first()
    approved = QAPair.objects.filter(manual=manual, status=QAPair.Status.APPROVED).count()
    if snapshot is None or snapshot.pair_count != approved:
        snapshot = training_services.snapshot_create(
            manual=manual, user=user, name="Model 3 retriever bench", description=NOTE, seed=42
        )
    say(
        f"Snapshot {snapshot} #{snapshot.pk}: {snapshot.train_count} train, "
        f"{snapshot.eval_count} eval, {snapshot.test_count} test. NOTE: {NOTE}"
    )
    questions = [
        row
        for line in OWNER_QUESTIONS.read_text(encoding="utf-8").splitlines()
        if line.strip() and (row := json.loads(line))["kind"] != "unanswerable"
    ]
    before = owner_hits(manual, questions)
    say(f"Owner questions ({len(questions)}), default embedder: {before}")

    trained = time.perf_counter()
    job = retrieval_jobs.retrieval_job_create(
        snapshot=snapshot,
        user=user,
        name="Model 3 retriever bench",
        hyperparameters={
            "max_steps": knob("BENCH_RETRIEVER_MAX_STEPS", 50),
            "batch_size": knob("BENCH_RETRIEVER_BATCH", 32),
            "learning_rate": knob("BENCH_RETRIEVER_LR", 3e-5),
            "hard_negatives": knob("BENCH_RETRIEVER_HARD_NEGATIVES", 1),
            "epochs": 10,
        },
        enqueue=False,
    )
    retrieval_jobs.retrieval_job_claim(job_id=job.pk)
    job = retrieval_jobs.retrieval_job_execute(job_id=job.pk)
    train_s = time.perf_counter() - trained
    if job.status != RetrievalJob.Status.SUCCEEDED:
        raise SystemExit(f"retrieval job {job.status}: {job.message}")
    say(f"Job #{job.pk}: {job.step} steps in {train_s:.0f} s; snapshot splits: {job.metrics}")

    switched = time.perf_counter()
    embedders.embedder_use(manual, job.registered_model)
    reembed_s = time.perf_counter() - switched
    after = owner_hits(Manual.objects.get(pk=manual.pk), questions)
    say(f"Owner questions, tuned embedder: {after} (re-embedded in {reembed_s:.0f} s)")
    if not os.environ.get("BENCH_RETRIEVER_KEEP"):
        embedders.embedder_use(manual, None)
    result = {
        "hit_at_1_before": before["hit_at_1"],
        "hit_at_1_after": after["hit_at_1"],
        "hit_at_3_before": before["hit_at_3"],
        "hit_at_3_after": after["hit_at_3"],
        "train_pairs": job.train_examples,
        "train_steps": job.step,
        "train_s": round(train_s, 1),
        "reembed_s": round(reembed_s, 1),
        "owner_questions": len(questions),
        "snapshot_test": job.metrics.get("test", {}),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
