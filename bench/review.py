"""Benchmark: review and datasets at 100,000 QA pairs.

Loads 100,000 pairs over 500 sections of a throwaway manual ("Review bench") in the dev
database, then measures:

(a) the QA pair admin list page (GET /admin/curation/qapair/, 50 rows a page), unfiltered and
    filtered by status and manual: median ms of 5 after a warm-up, and its query count, which
    must equal the count with only 50 pairs loaded;
(b) approving 10,000 filtered pairs with ``qa_pairs_bulk_set_status``, against approving 200
    one by one with ``qa_pair_set_status`` (extrapolated to 10,000);
(c) building a snapshot of 100,000 approved pairs with ``snapshot_create`` (one INSERT ...
    SELECT), against a Python snapshot of 20,000 pairs (ORM read + bulk_create, extrapolated).

The manual, its pairs, snapshots and the bench user are deleted at the end, even on failure.
The last line is one JSON object.

Usage: python bench/review.py  (the database must be reachable: `make services`).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time

import _django

_django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from curation import services  # noqa: E402
from curation.models import DocumentChunk, Manual, QAPair, QAPairRevision  # noqa: E402
from curation.services import CleanDocument  # noqa: E402
from training import services as training_services  # noqa: E402
from training.models import DatasetSnapshot, SnapshotPair  # noqa: E402

BENCH_MANUAL = "Review bench"
BENCH_USER = "review-bench-admin"
PAGES, SECTIONS_PER_PAGE = 10, 50  # 500 sections, one chunk each
TOTAL_PAIRS = 100_000
FIRST_PAIRS = 50
BULK_APPROVE = 10_000
NAIVE_APPROVE = 200
NAIVE_SNAPSHOT = 20_000
LIST_URL = "/admin/curation/qapair/"

_COLUMNS = (
    "manual_id", "document_id", "chunk_id", "document_version", "source_text", "question",
    "answer", "question_hash", "original_question", "original_answer", "status", "origin",
    "grounding_score", "lexical_grounding", "semantic_grounding", "flags", "created_at",
    "updated_at",
)  # fmt: skip


# -- data ----------------------------------------------------------------------------------------


def make_manual() -> tuple[Manual, list[DocumentChunk]]:
    manual = services.manual_get_or_create(name=BENCH_MANUAL)
    for page in range(PAGES):
        markdown = f"# Bench page {page}\n\n" + "".join(
            f"## Topic {page}-{section}\n\nHow the vehicle handles topic {page}-{section}: "
            f"press the button, wait for the chime, then check the display.\n\n"
            for section in range(SECTIONS_PER_PAGE)
        )
        services.document_upsert(
            manual=manual,
            clean=CleanDocument(
                f"bench-{page}.md", "", f"Bench page {page}", markdown, len(markdown.split())
            ),
        )
    chunks = list(
        DocumentChunk.objects.filter(document__manual=manual)
        .select_related("document")
        .order_by("id")
    )
    return manual, chunks


def pair_row(manual: Manual, chunks: list[DocumentChunk], number: int, now) -> tuple:
    """Pair ``number``: pairs fill chunk by chunk, 200 to a chunk; statuses and flags mixed."""
    chunk = chunks[number * len(chunks) // TOTAL_PAIRS]
    question = f"What should I know about {chunk.heading_path}, case {number}?"
    answer = f"Press the button, wait for the chime, then check the display ({number})."
    kind = number % 20
    status = "pending" if kind < 12 else "approved" if kind < 17 else "rejected"
    score = (number * 7919 % 1000) / 1000
    flags = []
    if score < 0.2:
        flags.append("low_grounding")
    if number % 37 == 0:
        flags.append("too_short")
    return (
        manual.pk, chunk.document_id, chunk.pk, 1, chunk.text[:200], question, answer,
        hashlib.sha256(question.encode()).hexdigest(), question, answer, status, "generated",
        score, score, score, flags, now, now,
    )  # fmt: skip


def copy_pairs(manual: Manual, chunks: list[DocumentChunk], numbers: range) -> None:
    now = timezone.now()
    with connection.cursor() as cursor, transaction.atomic():
        sql = f"COPY curation_qapair ({', '.join(_COLUMNS)}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for number in numbers:
                copy.write_row(pair_row(manual, chunks, number, now))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE curation_qapair")


def link_near_duplicates(manual: Manual) -> int:
    """One pair in 100 becomes a near-duplicate of a pair five sections further on."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH bench AS (
                SELECT id, row_number() OVER (ORDER BY id) - 1 AS n, count(*) OVER () AS total
                FROM curation_qapair WHERE manual_id = %(manual)s
            )
            UPDATE curation_qapair p
            SET duplicate_of_id = canon.id, flags = array_append(p.flags, 'duplicate')
            FROM bench me JOIN bench canon ON canon.n = (me.n + 1000) %% me.total
            WHERE p.id = me.id AND me.n %% 100 = 7
            """,
            {"manual": manual.pk},
        )
        return cursor.rowcount


def cleanup() -> None:
    """Delete everything the bench made, with set-based SQL (the ORM would load 100k rows)."""
    manual_ids = list(Manual.objects.filter(name=BENCH_MANUAL).values_list("pk", flat=True))
    with transaction.atomic(), connection.cursor() as cursor:
        for manual_id in manual_ids:
            cursor.execute(
                "DELETE FROM training_snapshotpair WHERE snapshot_id IN "
                "(SELECT id FROM training_datasetsnapshot WHERE manual_id = %s)",
                [manual_id],
            )
            cursor.execute("DELETE FROM training_datasetsnapshot WHERE manual_id = %s", [manual_id])
            cursor.execute(
                "UPDATE training_snapshotpair SET qa_pair_id = NULL WHERE qa_pair_id IN "
                "(SELECT id FROM curation_qapair WHERE manual_id = %s)",
                [manual_id],
            )
            cursor.execute(
                "DELETE FROM curation_qapairrevision WHERE pair_id IN "
                "(SELECT id FROM curation_qapair WHERE manual_id = %s)",
                [manual_id],
            )
            cursor.execute(
                "UPDATE curation_qapair SET duplicate_of_id = NULL WHERE duplicate_of_id IN "
                "(SELECT id FROM curation_qapair WHERE manual_id = %s)",
                [manual_id],
            )
            cursor.execute("DELETE FROM curation_qapair WHERE manual_id = %s", [manual_id])
        Manual.objects.filter(pk__in=manual_ids).delete()
        User.objects.filter(username=BENCH_USER).delete()


# -- measurements --------------------------------------------------------------------------------


def measure_page(client: Client, url: str, *, runs: int = 5) -> tuple[float, int]:
    """Median milliseconds of ``runs`` GETs after one warm-up, and the page's query count."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    timings = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(timings), len(queries)


def naive_snapshot(manual: Manual, user: User, limit: int) -> float:
    """The obvious Python way: read approved pairs with the ORM, split, bulk_create rows."""
    started = time.perf_counter()
    with transaction.atomic():
        snapshot = DatasetSnapshot.objects.create(
            manual=manual, name="naive", version=1_000_000, content_hash="", created_by=user
        )
        pairs = (
            QAPair.objects.filter(manual=manual, status=QAPair.Status.APPROVED)
            .select_related("document", "chunk", "duplicate_of__document", "duplicate_of__chunk")
            .only(
                "question", "answer", "document__source_name", "chunk__heading_path",
                "duplicate_of__document__source_name", "duplicate_of__chunk__heading_path",
            )
            .order_by("id")[:limit]
        )  # fmt: skip
        rows, digest = [], hashlib.sha256()
        for pair in pairs:
            group = pair.duplicate_of or pair
            section = group.chunk.heading_path if group.chunk else ""
            key = f"{group.document.source_name}|{(section.split(' > ') + [''])[1]}"
            draw = int(hashlib.md5(f"42:{key}".encode()).hexdigest()[:8], 16) / 2**32  # noqa: S324
            split = "train" if draw < 0.8 else "eval" if draw < 0.9 else "test"
            rows.append(
                SnapshotPair(
                    snapshot=snapshot,
                    qa_pair_id=pair.pk,
                    question=pair.question,
                    answer=pair.answer,
                    source_name=pair.document.source_name,
                    section=pair.chunk.heading_path if pair.chunk else "",
                    split=split,
                )
            )
            digest.update(f"{pair.question}\x1f{pair.answer}\x1f{split}\x1e".encode())
        SnapshotPair.objects.bulk_create(rows, batch_size=5000)
        snapshot.content_hash = digest.hexdigest()
        snapshot.save(update_fields=["content_hash"])
    seconds = time.perf_counter() - started
    SnapshotPair.objects.filter(snapshot=snapshot)._raw_delete(connection.alias)
    snapshot.delete()
    return seconds


def main() -> int:
    setup_test_environment()  # lets the test client through ALLOWED_HOSTS
    bench_started = time.perf_counter()
    cleanup()  # a run killed earlier may have left its manual behind
    try:
        result = run()
    finally:
        cleaned = time.perf_counter()
        cleanup()
        print(f"Cleaned up the bench data in {time.perf_counter() - cleaned:.1f} s")
    result["bench_total_s"] = round(time.perf_counter() - bench_started, 1)
    print(json.dumps(result))
    return 0


def run() -> dict:
    user = User.objects.create_superuser(BENCH_USER, "bench@example.invalid", None)
    client = Client()
    client.force_login(user)
    manual, chunks = make_manual()
    filtered_url = f"{LIST_URL}?status__exact=pending&manual__id__exact={manual.pk}"

    # (a) baseline: the page with only FIRST_PAIRS bench pairs.
    copy_pairs(manual, chunks, range(FIRST_PAIRS))
    small_ms, small_queries = measure_page(client, LIST_URL)
    small_filtered_ms, small_filtered_queries = measure_page(client, filtered_url)

    started = time.perf_counter()
    copy_pairs(manual, chunks, range(FIRST_PAIRS, TOTAL_PAIRS))
    duplicates = link_near_duplicates(manual)
    load_s = time.perf_counter() - started
    pairs = QAPair.objects.filter(manual=manual)
    print(
        f"Loaded {pairs.count():,} pairs over {len(chunks)} sections in {load_s:.1f} s "
        f"({duplicates:,} near-duplicates)"
    )

    # (a) the list page at 100,000 pairs.
    list_ms, list_queries = measure_page(client, LIST_URL)
    filtered_ms, filtered_queries = measure_page(client, filtered_url)
    print(
        f"(a) QA pair list: {list_ms:.0f} ms, {list_queries} queries "
        f"(with {FIRST_PAIRS} pairs: {small_ms:.0f} ms, {small_queries} queries)"
    )
    print(
        f"    filtered by status+manual: {filtered_ms:.0f} ms, {filtered_queries} queries "
        f"(with {FIRST_PAIRS} pairs: {small_filtered_queries} queries)"
    )

    # (b) bulk approve the first 10,000 pending pairs, by id.
    pending = pairs.filter(status=QAPair.Status.PENDING).order_by("id")
    cutoff = pending.values_list("id", flat=True)[BULK_APPROVE - 1]
    chosen = pending.filter(id__lte=cutoff)
    assert chosen.count() == BULK_APPROVE
    revisions = QAPairRevision.objects.filter(pair__manual=manual)
    revisions_before = revisions.count()
    started = time.perf_counter()
    approved = services.qa_pairs_bulk_set_status(
        pairs=chosen, status=QAPair.Status.APPROVED, reviewer=user
    )
    bulk_s = time.perf_counter() - started
    revisions_added = revisions.count() - revisions_before
    assert approved == BULK_APPROVE, approved
    assert revisions_added == BULK_APPROVE, revisions_added

    naive_pairs = list(pairs.filter(status=QAPair.Status.PENDING).order_by("id")[:NAIVE_APPROVE])
    started = time.perf_counter()
    for pair in naive_pairs:
        services.qa_pair_set_status(pair=pair, status=QAPair.Status.APPROVED, reviewer=user)
    naive_approve_s = (time.perf_counter() - started) * BULK_APPROVE / NAIVE_APPROVE
    print(
        f"(b) bulk approve {BULK_APPROVE:,}: {bulk_s:.2f} s, +{revisions_added:,} revisions; "
        f"one by one ({NAIVE_APPROVE} timed, extrapolated): {naive_approve_s:.1f} s, "
        f"{naive_approve_s / bulk_s:.0f}x slower"
    )

    # (c) snapshot of every pair, approved by one update (setup, not measured).
    pairs.exclude(status=QAPair.Status.APPROVED).update(status=QAPair.Status.APPROVED)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE curation_qapair")
    started = time.perf_counter()
    snapshot = training_services.snapshot_create(manual=manual, user=user, name="Bench")
    snapshot_s = time.perf_counter() - started
    assert snapshot.pair_count == TOTAL_PAIRS, snapshot.pair_count
    naive_snapshot_s = naive_snapshot(manual, user, NAIVE_SNAPSHOT) * TOTAL_PAIRS / NAIVE_SNAPSHOT
    print(
        f"(c) snapshot of {snapshot.pair_count:,} pairs: {snapshot_s:.2f} s (train "
        f"{snapshot.train_count:,} / eval {snapshot.eval_count:,} / test "
        f"{snapshot.test_count:,}); Python snapshot ({NAIVE_SNAPSHOT:,} timed, extrapolated): "
        f"{naive_snapshot_s:.1f} s, {naive_snapshot_s / snapshot_s:.1f}x slower"
    )

    # Extras: browsing the snapshot's pairs in the admin, right after the build (the planner
    # has no statistics for the new rows yet) and once autovacuum has analysed the table.
    pairs_url = f"/admin/training/snapshotpair/?snapshot__id__exact={snapshot.pk}"
    fresh_pairs_ms, _ = measure_page(client, pairs_url, runs=3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE training_snapshotpair")
    snapshot_pairs_ms, snapshot_pairs_queries = measure_page(client, pairs_url, runs=3)
    snapshot_list_ms, snapshot_list_queries = measure_page(
        client, "/admin/training/datasetsnapshot/", runs=3
    )
    print(
        f"    snapshot pairs list: {snapshot_pairs_ms:.0f} ms, {snapshot_pairs_queries} "
        f"queries ({fresh_pairs_ms:.0f} ms before ANALYZE); snapshot list: "
        f"{snapshot_list_ms:.0f} ms, {snapshot_list_queries} queries"
    )
    started = time.perf_counter()
    response = client.post(
        f"/admin/training/datasetsnapshot/{snapshot.pk}/export/", {"format": "chat_template"}
    )
    zip_bytes = sum(len(part) for part in response.streaming_content)
    export_zip_s = time.perf_counter() - started
    # A second version after 100 edits, and the comparison page between the two.
    edited_ids = list(pairs.order_by("id").values_list("id", flat=True)[:: TOTAL_PAIRS // 100])
    QAPair.objects.filter(id__in=edited_ids).update(answer="Edited after the first snapshot.")
    second = training_services.snapshot_create(manual=manual, user=user, name="Bench")
    compare_url = f"/admin/training/datasetsnapshot/{second.pk}/compare/?other={snapshot.pk}"
    compare_ms, compare_queries = measure_page(client, compare_url, runs=3)
    diff = training_services.snapshot_diff(old=snapshot, new=second)
    assert len(diff.edited) == len(edited_ids), len(diff.edited)
    print(
        f"    export .zip of {snapshot.pair_count:,} pairs: {export_zip_s:.2f} s "
        f"({zip_bytes / 1e6:.1f} MB); compare page (100k vs 100k, {len(diff.edited)} edited): "
        f"{compare_ms:.0f} ms, {compare_queries} queries"
    )

    goals = {
        "list_under_300ms": list_ms < 300 and filtered_ms < 300,
        "list_queries_constant": list_queries == small_queries
        and filtered_queries == small_filtered_queries,
        "bulk_approve_under_2s": bulk_s < 2,
        "snapshot_under_10s": snapshot_s < 10,
    }
    print("Goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in goals.items()))
    return {
        "pairs": TOTAL_PAIRS,
        "sections": len(chunks),
        "load_s": round(load_s, 2),
        "list_ms": round(list_ms, 1),
        "list_queries": list_queries,
        "list_queries_at_50_pairs": small_queries,
        "list_ms_at_50_pairs": round(small_ms, 1),
        "list_filtered_ms": round(filtered_ms, 1),
        "list_filtered_queries": filtered_queries,
        "list_filtered_queries_at_50_pairs": small_filtered_queries,
        "list_filtered_ms_at_50_pairs": round(small_filtered_ms, 1),
        "bulk_approve_10k_s": round(bulk_s, 3),
        "bulk_approve_revisions_added": revisions_added,
        "naive_approve_10k_s": round(naive_approve_s, 2),
        "bulk_approve_speedup": round(naive_approve_s / bulk_s, 1),
        "snapshot_100k_s": round(snapshot_s, 3),
        "snapshot_train_eval_test": [
            snapshot.train_count,
            snapshot.eval_count,
            snapshot.test_count,
        ],
        "naive_snapshot_100k_s": round(naive_snapshot_s, 2),
        "snapshot_speedup": round(naive_snapshot_s / snapshot_s, 1),
        "snapshot_pairs_list_ms": round(snapshot_pairs_ms, 1),
        "snapshot_pairs_list_queries": snapshot_pairs_queries,
        "snapshot_pairs_list_before_analyze_ms": round(fresh_pairs_ms, 1),
        "snapshot_list_ms": round(snapshot_list_ms, 1),
        "export_zip_100k_s": round(export_zip_s, 2),
        "compare_page_100k_ms": round(compare_ms, 1),
        "goals_met": goals,
    }


if __name__ == "__main__":
    sys.exit(main())
