"""Benchmark: QA generation over 200 chunks against a loopback OpenAI-compatible server.

Every call to the server takes a fixed 300 ms. With a concurrency limit of 32, the best any
pipeline can do is ``calls x 0.3 s / 32``; the figure that matters is how close the real run
(prompt building, parsing, one transaction per chunk) gets to that ideal. A baseline in the same
process runs 50 chunks at the endpoint default concurrency (4) for the scaling ratio. Scoring
(embeddings, near-duplicates) is a later phase on the gpu queue and is not part of this figure.

The last line is one JSON object: {"pairs", "pairs_per_s", "ratio_to_ideal", "errors", ...}.
Usage: python bench/generation.py  (the database must be reachable: `make services`).
"""

from __future__ import annotations

import json
import sys
import time

import _django
from _servers import FakeOpenAIProcess

_django.setup()

from django.conf import settings  # noqa: E402

from curation import services  # noqa: E402
from curation.models import DocumentChunk, GenerationRun, LLMEndpoint, Manual  # noqa: E402
from curation.services import CleanDocument  # noqa: E402
from curation.sources import iter_html_folder  # noqa: E402

BENCH_MANUAL = "Generation bench"
CHUNKS = 200
LATENCY_S = 0.3
CONCURRENCY = 32
QUESTIONS = 3


def build_manual() -> Manual:
    """A manual with exactly CHUNKS chunks, from the Model 3 pages or the bundled sample."""
    Manual.objects.filter(name=BENCH_MANUAL).delete()
    manual = services.manual_get_or_create(name=BENCH_MANUAL)
    docs = _django.MODEL3_DIR / "docs"
    if docs.is_dir():
        pages = [
            (path.name, path.read_text(encoding="utf-8")) for path in sorted(docs.glob("*.md"))
        ]
    else:  # no Model 3 data here: the bundled sample's pages, repeated under new names
        pages = []
        for page in iter_html_folder(settings.SAMPLE_MANUAL_DIR / "manual"):
            clean = services.clean_page(page)
            pages.append((clean.source_name, clean.markdown))
    copy = 0
    while DocumentChunk.objects.filter(document__manual=manual).count() < CHUNKS:
        for name, markdown in pages:
            title = markdown.splitlines()[0].lstrip("# ").strip()
            services.document_upsert(
                manual=manual,
                clean=CleanDocument(f"{copy}-{name}", "", title, markdown, len(markdown.split())),
            )
            if DocumentChunk.objects.filter(document__manual=manual).count() >= CHUNKS:
                break
        copy += 1
    return manual


def generate(manual: Manual, endpoint: LLMEndpoint, chunk_ids: list[int]) -> dict:
    documents = list(manual.documents.filter(chunks__id__in=chunk_ids).distinct())
    run = services.generation_run_create(
        manual=manual,
        endpoint=endpoint,
        documents=documents,
        questions_per_chunk=QUESTIONS,
        enqueue=False,
    )
    # Keep exactly the wanted chunks: the documents may hold a few more.
    run.chunk_results.exclude(chunk_id__in=chunk_ids).delete()
    GenerationRun.objects.filter(pk=run.pk).update(chunks_total=len(chunk_ids))
    services.generation_run_claim(run_id=run.pk)
    started = time.perf_counter()
    run = services.generation_run_execute(run_id=run.pk)
    seconds = time.perf_counter() - started
    ideal = run.llm_calls * LATENCY_S / endpoint.max_concurrency
    return {
        "run": run,
        "seconds": seconds,
        "ideal_seconds": ideal,
        "pairs_per_s": run.pairs_created / seconds,
        "ratio_to_ideal": ideal / seconds,
    }


def main() -> int:
    manual = build_manual()
    chunk_ids = list(
        DocumentChunk.objects.filter(document__manual=manual)
        .order_by("id")
        .values_list("id", flat=True)[:CHUNKS]
    )
    with FakeOpenAIProcess("--latency", str(LATENCY_S)) as server:
        endpoint, _ = LLMEndpoint.objects.update_or_create(
            name="Generation bench loopback",
            defaults={
                "kind": LLMEndpoint.Kind.OPENAI,
                "model": "fake-model",
                "base_url": server.base_url,
                "max_concurrency": CONCURRENCY,
                "max_retries": 2,
                "timeout_s": 30,
            },
        )
        ours = generate(manual, endpoint, chunk_ids)
        max_in_flight = server.max_in_flight

        # Baseline, same process: the endpoint's default concurrency on a quarter of the work.
        Manual.objects.filter(name=BENCH_MANUAL).delete()
        manual = build_manual()
        baseline_ids = list(
            DocumentChunk.objects.filter(document__manual=manual)
            .order_by("id")
            .values_list("id", flat=True)[: CHUNKS // 4]
        )
        endpoint.max_concurrency = LLMEndpoint._meta.get_field("max_concurrency").default
        endpoint.save()
        baseline = generate(manual, endpoint, baseline_ids)

    run = ours["run"]
    errors = run.chunks_failed
    result = {
        "chunks": len(chunk_ids),
        "llm_calls": run.llm_calls,
        "pairs": run.pairs_created,
        "seconds": round(ours["seconds"], 2),
        "ideal_seconds": round(ours["ideal_seconds"], 2),
        "pairs_per_s": round(ours["pairs_per_s"], 2),
        "ratio_to_ideal": round(ours["ratio_to_ideal"], 3),
        "errors": errors,
        "concurrency": CONCURRENCY,
        "server_max_in_flight": max_in_flight,
        "latency_s": LATENCY_S,
        "baseline_concurrency": baseline["run"].endpoint.max_concurrency,
        "baseline_pairs_per_s": round(baseline["pairs_per_s"], 2),
        "baseline_ratio_to_ideal": round(baseline["ratio_to_ideal"], 3),
        "speedup_vs_baseline": round(ours["pairs_per_s"] / baseline["pairs_per_s"], 2),
    }
    print(
        f"{result['pairs']} pairs from {result['chunks']} chunks in {result['seconds']} s "
        f"({result['llm_calls']} calls at {LATENCY_S * 1000:.0f} ms, concurrency {CONCURRENCY})"
    )
    print(
        f"  {result['pairs_per_s']} pairs/s; ideal {result['ideal_seconds']} s, "
        f"ratio to ideal {result['ratio_to_ideal']}; errors {errors}; "
        f"server saw at most {max_in_flight} calls at once"
    )
    print(
        f"  baseline (concurrency {result['baseline_concurrency']}): "
        f"{result['baseline_pairs_per_s']} pairs/s, ratio to its ideal "
        f"{result['baseline_ratio_to_ideal']}; speedup {result['speedup_vs_baseline']}x"
    )
    Manual.objects.filter(name=BENCH_MANUAL).delete()
    LLMEndpoint.objects.filter(name="Generation bench loopback").delete()
    print(json.dumps(result))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
