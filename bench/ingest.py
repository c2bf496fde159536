"""Benchmark: ingest and embed the 128-page Model 3 manual.

Prints pages/s, chunks/s and total seconds for a fresh ingestion (read, clean, chunk, store,
embed) into a throwaway manual, then a baseline in the same process: the same chunks embedded one
at a time instead of in EMBEDDING_BATCH_SIZE batches. The last line is one JSON object:
{"pages", "chunks", "seconds", "pages_per_s", "chunks_per_s", ...}.

Usage: python bench/ingest.py  (the database and Redis must be reachable: `make services`).
"""

from __future__ import annotations

import json
import sys
import time

import _django

_django.setup()

from django.conf import settings  # noqa: E402

from curation import services  # noqa: E402
from curation.models import DocumentChunk, Manual  # noqa: E402
from manualqa.lib.embeddings import encode, load_model  # noqa: E402

BENCH_MANUAL = "Model 3 (bench)"
BASELINE_SAMPLE = 128


def main() -> int:
    docs = _django.MODEL3_DIR / "docs"
    if not docs.is_dir():
        print(f"skipped: {docs} not found (the Model 3 data lives in ../shared/data)")
        return 0
    Manual.objects.filter(name=BENCH_MANUAL).delete()
    # Load the model first: a long-running worker has it loaded already, and the load time is
    # not ingestion throughput. It is reported separately.
    started = time.perf_counter()
    load_model(settings.EMBEDDING_MODEL, settings.EMBEDDING_DEVICE)
    model_load_s = time.perf_counter() - started

    manual = services.manual_get_or_create(name=BENCH_MANUAL)
    run = services.ingestion_run_create(manual=manual, source=str(docs), enqueue=False)
    started = time.perf_counter()
    services.ingestion_run_claim(run_id=run.pk)
    run = services.ingestion_run_process_pages(run_id=run.pk)
    pages_s = time.perf_counter() - started
    run = services.ingestion_run_embed(run_id=run.pk)
    seconds = time.perf_counter() - started
    embed_s = seconds - pages_s
    assert run.status == "succeeded", (run.status, run.message)

    chunks = DocumentChunk.objects.filter(document__manual=manual)
    chunk_count = chunks.count()
    embedded = chunks.filter(embedding__isnull=False).count()
    tokens = [c.token_count for c in chunks.only("token_count")]

    # Baselines on the same sample of chunks, in this process: one chunk per forward pass, and
    # one big batch of 64 (the sentence-transformers habit), against the configured batch size.
    sample = [c.text for c in chunks.order_by("id").only("text")[:BASELINE_SAMPLE]]
    rates = {}
    for label, size in (("one_at_a_time", 1), ("batch_64", 64), ("configured", None)):
        size = size or settings.EMBEDDING_BATCH_SIZE
        t0 = time.perf_counter()
        encode(sample, model_name=settings.EMBEDDING_MODEL, batch_size=size)
        rates[label] = len(sample) / (time.perf_counter() - t0)

    result = {
        "pages": run.pages_done,
        "pages_failed": run.pages_failed,
        "chunks": chunk_count,
        "chunks_embedded": embedded,
        "mean_chunk_tokens": round(sum(tokens) / len(tokens), 1),
        "max_chunk_tokens": max(tokens),
        "seconds": round(seconds, 2),
        "clean_chunk_store_s": round(pages_s, 2),
        "embed_s": round(embed_s, 2),
        "model_load_s": round(model_load_s, 2),
        "pages_per_s": round(run.pages_done / seconds, 2),
        "chunks_per_s": round(chunk_count / seconds, 2),
        "embed_batch_size": settings.EMBEDDING_BATCH_SIZE,
        "sample_chunks_per_s_configured": round(rates["configured"], 2),
        "sample_chunks_per_s_one_at_a_time": round(rates["one_at_a_time"], 2),
        "sample_chunks_per_s_batch_64": round(rates["batch_64"], 2),
        "ratio_vs_one_at_a_time": round(rates["configured"] / rates["one_at_a_time"], 2),
        "ratio_vs_batch_64": round(rates["configured"] / rates["batch_64"], 2),
    }
    print(f"Ingested {result['pages']} pages into {chunk_count} chunks in {seconds:.1f} s")
    print(
        f"  clean+chunk+store {pages_s:.1f} s, embed {embed_s:.1f} s "
        f"(model load {model_load_s:.1f} s)"
    )
    print(f"  {result['pages_per_s']} pages/s, {result['chunks_per_s']} chunks/s")
    print(
        f"  embedding sample of {len(sample)}: batch {settings.EMBEDDING_BATCH_SIZE} "
        f"{rates['configured']:.1f} chunks/s, one at a time {rates['one_at_a_time']:.1f}, "
        f"batch 64 {rates['batch_64']:.1f}"
    )
    Manual.objects.filter(name=BENCH_MANUAL).delete()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
