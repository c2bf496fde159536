"""Benchmark: chat retrieval at 100,000 chunks, local time to first token, 32 concurrent owners.

Runs against the Model 3 manual in the dev database (ingested once under "Model 3 (chat
bench)" and reused; the bundled sample manual stands in, and the output says so, where
``../shared/data/model3-manual`` is missing), and measures:

(a) retrieval at 100,000 chunks: a second manual, "Model 3 x100k (chat bench)", holds the real
    chunks repeated until there are 100,000, each copy's embedding moved by Gaussian noise
    (sigma 0.01 per dimension) and renormalised, loaded with a binary COPY into the table and
    its HNSW index (the insert time is printed; a rerun reuses the rows). 200 questions from
    ``qa_pairs.json`` are embedded first (embedding is reported apart: it is not retrieval),
    then the top-5 query over that manual is timed through the HNSW index
    (``curation.selectors.chunks_nearest``, what the chat uses, default ef_search) and as an
    exact scan (the same query ordered by ``distance + 0``, which no index can serve); EXPLAIN
    shows which plan each one got. Also: recall@5 of HNSW against exact, the whole
    ``chat.retrieval.retrieve()``, and the small Model 3 manual queried in the same 101k-row
    table, where pgvector 0.6's HNSW scan filters *after* the index (fewer than k rows come
    back); for both manuals, recall and latency by ef_search (50 questions); and how long
    embedding one question takes with torch's threads and with one;
(b) time to first token of the bundled local model (SmolLM2-135M) streamed through
    ``LocalClient.stream``, after it is loaded (load time apart): median of 5 short prompts,
    16 new tokens; and the same through ``chat.services.answer_stream`` with a RAG prompt;
(c) 32 concurrent clients for 30 s against a real gunicorn (the uvicorn workers of
    ``manualqa.stack``) on a free loopback port, ``CHAT_RATE_LIMIT=0/min``: each client opens
    the chat page for its CSRF cookie, then POSTs questions to ``/api/chat/`` asking a RAG
    assistant over the 100k-chunk manual whose generator is the loopback fake OpenAI server
    (``tests.fakeopenai``, no added latency, streamed). Requests/s, latency and every error.

Goals: retrieval p95 under 50 ms at 100,000 chunks, and no errors under the concurrent load.
The machine's other work shows in the numbers; run it on a quiet machine to compare runs.

The last line is one JSON object: {..., "retrieval_p95_ms_hnsw", "retrieval_p95_ms_exact",
"ttft_ms_local", "concurrent_rps", "errors"}.

Usage: python bench/chat.py [--clean]  (the database and Redis must be reachable: `make
services`). The two bench manuals stay in the dev database for quick reruns (they make the
dev database's HNSW index 100,000 rows bigger); ``--clean`` deletes them after the run.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

import _django
from _servers import ASGI, FakeOpenAIProcess, Gunicorn

_django.setup()

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import FloatField, QuerySet, Value  # noqa: E402
from django.db.models.expressions import ExpressionWrapper  # noqa: E402
from django.utils import timezone  # noqa: E402
from pgvector.django import CosineDistance  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402

from chat import services as chat_services  # noqa: E402
from chat.events import Done, Failed, Token  # noqa: E402
from chat.models import Assistant, Conversation, Message  # noqa: E402
from chat.owners import Owner  # noqa: E402
from chat.retrieval import retrieve  # noqa: E402
from curation import services  # noqa: E402
from curation.models import (  # noqa: E402
    DocumentChunk,
    IngestionRun,
    LLMEndpoint,
    Manual,
    ManualDocument,
)
from curation.selectors import chunks_nearest  # noqa: E402
from manualqa.lib.embeddings import encode, load_model  # noqa: E402
from manualqa.lib.llm import StreamDelta, make_client  # noqa: E402
from manualqa.lib.local_models import ensure_default_model, load_local  # noqa: E402

REAL_MANUAL = "Model 3 (chat bench)"
SAMPLE_MANUAL = "Sample manual (chat bench)"
#: The 100,000-chunk manual made from each real one.
SYNTH_MANUALS = {
    REAL_MANUAL: "Model 3 x100k (chat bench)",
    SAMPLE_MANUAL: "Sample manual x100k (chat bench)",
}
SYNTH_CHUNKS = 100_000
NOISE_SIGMA = 0.01
COPY_BATCH = 5_000
QUESTIONS = 200
TOP_K = 5
WARMUP_QUERIES = 20
HYBRID_QUESTIONS = 5
SWEEP_QUESTIONS = 50
TTFT_PROMPTS = (
    "How do I open the charge port?",
    "What tire pressure should I use?",
    "How do I turn on the headlights?",
    "Can I tow a trailer?",
    "How do I reset the touchscreen?",
)
TTFT_MAX_TOKENS = 16
CLIENTS = 32
LOAD_SECONDS = 30
REQUEST_TIMEOUT_S = 60
GOAL_P95_MS = 50
LOCAL_ASSISTANT = ("Chat bench (local model)", "chat-bench-local")
LOOPBACK_ASSISTANT = ("Chat bench (loopback)", "chat-bench-loopback")
LOOPBACK_ENDPOINT = "Chat bench loopback"
GUNICORN_LOG = settings.VAR_DIR / "bench-chat-gunicorn.log"

_CHUNK_COLUMNS = (
    "document_id", "position", "heading_path", "text", "token_count", "embedding",
    "embedding_model", "created_at",
)  # fmt: skip
_CHUNK_TYPES = (
    "bigint", "integer", "character varying", "text", "integer", "vector",
    "character varying", "timestamp with time zone",
)  # fmt: skip


def percentile(values: Sequence[float], q: int) -> float:
    """The ``q``-th percentile (inclusive method: p50 of two values is their mean)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def ms(seconds: Sequence[float]) -> dict[str, float]:
    values = [s * 1000 for s in seconds]
    return {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1)}


# -- data ----------------------------------------------------------------------------------------


def real_manual() -> tuple[Manual, str, float | None]:
    """The Model 3 manual ingested by the ingestion service (or the sample), and the seconds
    that took (None when an earlier run's is reused)."""
    docs = _django.MODEL3_DIR / "docs"
    if docs.is_dir():
        name, source, label = REAL_MANUAL, docs, "Model 3"
    else:
        name, source = SAMPLE_MANUAL, settings.SAMPLE_MANUAL_DIR / "manual"
        label = "sample manual (../shared/data/model3-manual is missing)"
    manual = Manual.objects.filter(name=name).first()
    if manual is not None:
        chunks = DocumentChunk.objects.filter(document__manual=manual)
        if chunks.exists() and not chunks.filter(embedding__isnull=True).exists():
            return manual, label, None
        manual.delete()
    manual = services.manual_get_or_create(name=name)
    run = services.ingestion_run_create(manual=manual, source=str(source), enqueue=False)
    started = time.perf_counter()
    run = services.ingestion_run_execute(run_id=run.pk)
    seconds = time.perf_counter() - started
    if run.status != IngestionRun.Status.SUCCEEDED:
        raise SystemExit(f"ingesting {source} {run.status}: {run.message}")
    return manual, label, seconds


def raw_connection() -> psycopg.Connection:
    """A psycopg connection of our own with pgvector's adapters, for the binary COPY (Django's
    connection keeps its own adapters)."""
    db = connection.settings_dict
    raw = psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
    )
    register_vector(raw)
    return raw


def synthetic_manual(real: Manual) -> tuple[Manual, float | None]:
    """A manual of SYNTH_CHUNKS chunks: the real ones repeated, embeddings perturbed.

    Each copy gets its own documents (same title and markdown, ``copy-NNN/`` before the source
    name), so the manual filter goes through the same join as for a real manual. Returns the
    manual and the seconds the chunk COPY took (None when an earlier run's rows are reused).
    """
    name = SYNTH_MANUALS[real.name]
    manual = Manual.objects.filter(name=name).first()
    if manual is not None:
        if DocumentChunk.objects.filter(document__manual=manual).count() >= SYNTH_CHUNKS:
            return manual, None
        print("  an earlier, unfinished synthetic manual is deleted first")
        manual.delete()
    manual = services.manual_get_or_create(name=name)

    documents = list(ManualDocument.objects.filter(manual=real).order_by("id"))
    chunks = list(
        DocumentChunk.objects.filter(document__manual=real)
        .order_by("document_id", "position")
        .values_list("document_id", "position", "heading_path", "text", "token_count", "embedding")
    )
    base = np.array([row[5] for row in chunks], dtype=np.float32)
    copies = math.ceil(SYNTH_CHUNKS / len(chunks))
    print(
        f"  {len(chunks):,} real chunks x {copies} copies, noise sigma {NOISE_SIGMA} per "
        f"dimension, {len(documents) * copies:,} documents"
    )
    rng = np.random.default_rng(20240601)
    now = timezone.now()
    started = time.perf_counter()
    document_ids: dict[tuple[int, int], int] = {}
    for copy in range(copies):
        created = ManualDocument.objects.bulk_create(
            [
                ManualDocument(
                    manual=manual,
                    title=document.title,
                    source_name=f"copy-{copy:03d}/{document.source_name}",
                    source_url=document.source_url,
                    markdown=document.markdown,
                    content_hash=document.content_hash,
                    word_count=document.word_count,
                    fetched_at=now,
                    updated_at=now,
                )
                for document in documents
            ],
            batch_size=1000,
        )
        for original, new in zip(documents, created, strict=True):
            document_ids[(copy, original.pk)] = new.pk
    documents_s = time.perf_counter() - started

    rows = []
    for copy in range(copies):
        noisy = base + rng.normal(0.0, NOISE_SIGMA, base.shape).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        for (document_id, position, heading_path, text, tokens, _), vector in zip(
            chunks, noisy, strict=True
        ):
            rows.append(
                (
                    document_ids[(copy, document_id)],
                    position,
                    heading_path,
                    text,
                    tokens,
                    vector,
                    settings.EMBEDDING_MODEL[:300],
                    now,
                )
            )
            if len(rows) == SYNTH_CHUNKS:
                break
        if len(rows) == SYNTH_CHUNKS:
            break
    # The extra documents of the last, partial copy hold no chunks; they are harmless.
    sql = (
        f"COPY {DocumentChunk._meta.db_table} ({', '.join(_CHUNK_COLUMNS)}) "
        "FROM STDIN WITH (FORMAT BINARY)"
    )
    started = time.perf_counter()
    with raw_connection() as raw:
        for first in range(0, len(rows), COPY_BATCH):
            batch_started = time.perf_counter()
            with raw.transaction(), raw.cursor() as cursor, cursor.copy(sql) as copy_:
                copy_.set_types(list(_CHUNK_TYPES))
                for row in rows[first : first + COPY_BATCH]:
                    copy_.write_row(row)
            done = first + len(rows[first : first + COPY_BATCH])
            print(
                f"  {done:>7,} chunks ({time.perf_counter() - batch_started:.1f} s for this "
                f"batch, {time.perf_counter() - started:.0f} s so far)",
                flush=True,
            )
        with raw.cursor() as cursor:
            cursor.execute(
                f"ANALYZE {DocumentChunk._meta.db_table}; ANALYZE {ManualDocument._meta.db_table}"
            )
    insert_s = time.perf_counter() - started
    print(f"  documents {documents_s:.1f} s; chunks COPY into table + HNSW index {insert_s:.1f} s")
    return manual, insert_s


def questions() -> tuple[list[str], str]:
    """QUESTIONS real questions, a fixed sample, and where they come from."""
    path = _django.MODEL3_DIR / "qa_pairs.json"
    if path.is_file():
        pairs = json.loads(path.read_text(encoding="utf-8"))
        texts = sorted({pair["question"].strip() for pair in pairs if pair["question"].strip()})
        return random.Random(7).sample(texts, QUESTIONS), path.name
    path = settings.SAMPLE_MANUAL_DIR.parent / "questions.jsonl"
    texts = [json.loads(line)["question"] for line in path.read_text().splitlines() if line]
    return [texts[i % len(texts)] for i in range(QUESTIONS)], f"{path.name} (repeated)"


# -- retrieval -----------------------------------------------------------------------------------


def nearest_queryset(vector: list[float], manual_ids: list[int], k: int) -> QuerySet:
    """The query ``chunks_nearest`` runs (curation/selectors.py), for EXPLAIN."""
    return (
        DocumentChunk.objects.filter(embedding__isnull=False, document__manual_id__in=manual_ids)
        .select_related("document", "document__manual")
        .defer("embedding")
        .annotate(distance=CosineDistance("embedding", vector))
        .order_by("distance")[:k]
    )


def exact_queryset(vector: list[float], manual_ids: list[int], k: int) -> QuerySet:
    """The same query ordered by ``distance + 0``: no index can serve that order, so the
    planner scans every chunk of the manual and sorts (the exact answer)."""
    return (
        DocumentChunk.objects.filter(embedding__isnull=False, document__manual_id__in=manual_ids)
        .select_related("document", "document__manual")
        .defer("embedding")
        .annotate(
            distance=ExpressionWrapper(
                CosineDistance("embedding", vector) + Value(0.0), output_field=FloatField()
            )
        )
        .order_by("distance")[:k]
    )


def plan(queryset: QuerySet, *, ef_search: int = 40, analyze: bool = False) -> dict:
    """The plan's node names (with index or table), and with ``analyze`` its timing."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef_search])
        document = json.loads(queryset.explain(format="json", analyze=analyze))[0]
    names: list[str] = []

    def walk(node: dict) -> None:
        name = node["Node Type"]
        if "Index Name" in node:
            name += f" using {node['Index Name']}"
        elif "Relation Name" in node:
            name += f" on {node['Relation Name']}"
        if analyze:
            name += f" ({node['Actual Rows']} rows, {node['Actual Total Time']:.1f} ms)"
        names.append(name)
        for child in node.get("Plans", []):
            walk(child)

    walk(document["Plan"])
    return {"nodes": names, "execution_ms": document.get("Execution Time")}


def pgvector_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        return cursor.fetchone()[0]


def uses_hnsw(nodes: list[str]) -> bool:
    return any("chunk_embedding_hnsw_cosine" in node for node in nodes)


def timed(function: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def exact_top(vector: list[float], manual_ids: list[int], k: int) -> list[DocumentChunk]:
    return list(exact_queryset(vector, manual_ids, k))


def embed_one_by_one(texts: list[str]) -> list[float]:
    """Seconds to embed each question on its own, as ``chat.retrieval`` does per request."""
    return [
        timed(lambda t=text: encode([t], model_name=settings.EMBEDDING_MODEL))[0] for text in texts
    ]


def measure_retrieval(manual: Manual, vectors: list[list[float]]) -> dict:
    """HNSW (the chat's selector) and exact top-5 over ``manual``: latency and recall."""
    ids = [manual.pk]
    for vector in vectors[:WARMUP_QUERIES]:  # caches warm, as in a serving process
        chunks_nearest(query_embedding=vector, manual_ids=ids, k=TOP_K)
        exact_top(vector, ids, TOP_K)
    hnsw_s, exact_s, recalls, text_recalls, short = [], [], [], [], 0
    for vector in vectors:
        seconds, approximate = timed(
            lambda v=vector: chunks_nearest(query_embedding=v, manual_ids=ids, k=TOP_K)
        )
        hnsw_s.append(seconds)
        seconds, exact = timed(lambda v=vector: exact_top(v, ids, TOP_K))
        exact_s.append(seconds)
        short += len(approximate) < TOP_K
        recalls.append(len({c.pk for c in approximate} & {c.pk for c in exact}) / TOP_K)
        # The copies of one real chunk share its text: did HNSW find the same passages?
        texts = {c.text for c in exact}
        text_recalls.append(len({c.text for c in approximate} & texts) / len(texts))
    return {
        "hnsw": ms(hnsw_s),
        "exact": ms(exact_s),
        "recall_at_5": round(statistics.fmean(recalls), 3),
        "passage_recall_at_5": round(statistics.fmean(text_recalls), 3),
        "short_results": short,
    }


def measure_retrieve(
    manual: Manual,
    texts: list[str],
    vectors: list[list[float]],
    method: str,
    count: int,
    warmup: int = 5,
) -> dict:
    """``chat.retrieval.retrieve`` as a chat answer calls it (top_k 4), question embedded."""
    for text, vector in list(zip(texts, vectors, strict=True))[:warmup]:
        retrieve(question=text, manual_ids=[manual.pk], method=method, query_embedding=vector)
    seconds = []
    for text, vector in list(zip(texts, vectors, strict=True))[:count]:
        elapsed, _ = timed(
            lambda t=text, v=vector: retrieve(
                question=t, manual_ids=[manual.pk], method=method, query_embedding=v
            )
        )
        seconds.append(elapsed)
    return ms(seconds)


def ef_sweep(
    manual: Manual, vectors: list[list[float]], *, ks: Sequence[int], ef_searches: Sequence[int]
) -> dict:
    """``chunks_nearest`` over ``manual`` by ef_search and k: rows returned, recall against the
    exact answer, latency; and the exact query's own latency for each k."""
    ids = [manual.pk]
    exact: dict[int, list[list[DocumentChunk]]] = {}
    exact_ms: dict[int, dict[str, float]] = {}
    for k in ks:
        seconds = []
        exact[k] = []
        for vector in vectors:
            elapsed, found = timed(lambda v=vector, k=k: exact_top(v, ids, k))
            seconds.append(elapsed)
            exact[k].append(found)
        exact_ms[k] = ms(seconds)
    rows = []
    for ef in ef_searches:
        for k in ks:
            seconds, returned, recalls, passage_recalls = [], [], [], []
            for vector, truth in zip(vectors, exact[k], strict=True):
                elapsed, found = timed(
                    lambda v=vector, k=k, ef=ef: chunks_nearest(
                        query_embedding=v, manual_ids=ids, k=k, ef_search=ef
                    )
                )
                seconds.append(elapsed)
                returned.append(len(found))
                recalls.append(len({c.pk for c in found} & {c.pk for c in truth}) / len(truth))
                texts = {c.text for c in truth}
                passage_recalls.append(len({c.text for c in found} & texts) / len(texts))
            rows.append(
                {
                    "ef_search": ef,
                    "k": k,
                    "mean_rows": round(statistics.fmean(returned), 2),
                    "short_results": sum(n < k for n in returned),
                    "recall": round(statistics.fmean(recalls), 3),
                    "passage_recall": round(statistics.fmean(passage_recalls), 3),
                    **ms(seconds),
                }
            )
    return {"questions": len(vectors), "exact": exact_ms, "rows": rows}


def print_sweep(sweep: dict) -> None:
    for k, timing in sweep["exact"].items():
        print(f"    exact scan, k {k:>2}: p50 {timing['p50']} ms, p95 {timing['p95']} ms")
    for row in sweep["rows"]:
        print(
            f"    ef_search {row['ef_search']:>4}, k {row['k']:>2}: {row['mean_rows']:>5} rows "
            f"on average, {row['short_results']:>2}/{sweep['questions']} short, recall "
            f"{row['recall']} (passages {row['passage_recall']}), p50 {row['p50']} ms, "
            f"p95 {row['p95']} ms"
        )


# -- local model ---------------------------------------------------------------------------------


def local_endpoint() -> LLMEndpoint:
    endpoint = LLMEndpoint.objects.filter(kind=LLMEndpoint.Kind.LOCAL, model="").first()
    if endpoint is None:
        raise SystemExit("no local endpoint for the bundled model (run migrate)")
    return endpoint


def measure_ttft(endpoint: LLMEndpoint, rag_manual: Manual, rag_questions: list[str]) -> dict:
    """Time to first token of the local model, loaded first; then through a RAG answer."""
    started = time.perf_counter()
    ensure_default_model(settings.MODELS_DIR)
    convert_s = time.perf_counter() - started
    started = time.perf_counter()
    load_local("", settings.MODELS_DIR)
    load_s = time.perf_counter() - started
    client = make_client(endpoint.config())
    # One untimed generation: the first one in a process also pays for lazy initialisation.
    started = time.perf_counter()
    for _event in client.stream([{"role": "user", "content": "Hello"}], max_tokens=2):
        pass
    first_generation_s = time.perf_counter() - started
    ttfts, totals, tokens = [], [], []
    for prompt in TTFT_PROMPTS:
        started = time.perf_counter()
        first = None
        pieces = 0
        for event in client.stream(
            [{"role": "user", "content": prompt}], max_tokens=TTFT_MAX_TOKENS, temperature=0.0
        ):
            if isinstance(event, StreamDelta):
                pieces += 1
                if first is None:
                    first = time.perf_counter() - started
        ttfts.append(first if first is not None else float("nan"))
        totals.append(time.perf_counter() - started)
        tokens.append(pieces)

    assistant = bench_assistant(LOCAL_ASSISTANT, rag_manual, endpoint)
    owner = Owner.for_session("chat-bench-local")
    rag_ttfts, rag_recorded, passages = [], [], []
    for question in rag_questions[: len(TTFT_PROMPTS)]:
        started = time.perf_counter()
        first = None
        message = None
        for event in chat_services.answer_stream(
            assistant=assistant, question=question, owner=owner
        ):
            if isinstance(event, Token) and first is None:
                first = time.perf_counter() - started
            if isinstance(event, Done | Failed):
                message = event.message
        rag_ttfts.append(first if first is not None else float("nan"))
        if message is not None:
            rag_recorded.append(message.ttft_ms)
            passages.append(len(message.citations))
    return {
        "convert_s": round(convert_s, 2),
        "load_s": round(load_s, 2),
        "first_generation_s": round(first_generation_s, 2),
        "ttft_ms": round(statistics.median(ttfts) * 1000, 1),
        "ttft_all_ms": [round(t * 1000) for t in ttfts],
        "total_ms": round(statistics.median(totals) * 1000, 1),
        "pieces": tokens,
        "rag_ttft_ms": round(statistics.median(rag_ttfts) * 1000, 1),
        "rag_ttft_recorded_ms": rag_recorded,
        "rag_citations": passages,
    }


def bench_assistant(
    name_slug: tuple[str, str], manual: Manual, endpoint: LLMEndpoint | None
) -> Assistant:
    """A RAG assistant that always calls its model (min_score 0), 16 tokens at most."""
    name, slug = name_slug
    Conversation.objects.filter(assistant__slug=slug).delete()
    Assistant.objects.filter(slug=slug).delete()
    return chat_services.assistant_create(
        name=name,
        slug=slug,
        manuals=[manual],
        mode=Assistant.Mode.RAG,
        endpoint=endpoint,
        min_score=0.0,
        max_tokens=TTFT_MAX_TOKENS if endpoint and endpoint.kind == "local" else None,
    )


# -- concurrent load -----------------------------------------------------------------------------


class LoadRun:
    """What the clients saw: latencies of successes, errors by kind, in the timed window."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.warmup_errors: Counter[str] = Counter()
        self.started_wall = timezone.now()
        self.started_at = 0.0
        self.stop_at = 0.0
        self.last_done = 0.0

    def start_window(self) -> None:
        self.started_wall = timezone.now()
        self.started_at = time.monotonic()
        self.stop_at = self.started_at + LOAD_SECONDS

    def record(self, seconds: float, error: str | None, *, warmup: bool) -> None:
        with self.lock:
            if warmup:
                if error:
                    self.warmup_errors[error] += 1
                return
            self.last_done = max(self.last_done, time.monotonic())
            if error:
                self.errors[error] += 1
            else:
                self.latencies.append(seconds)


def ask(
    session: requests.Session, base: str, token: str, question: str
) -> tuple[float, str | None]:
    """One question to /api/chat/ as a browser owner: seconds, and what went wrong if anything."""
    started = time.perf_counter()
    try:
        response = session.post(
            f"{base}/api/chat/",
            json={"assistant": LOOPBACK_ASSISTANT[1], "question": question},
            headers={"X-CSRFToken": token},
            timeout=REQUEST_TIMEOUT_S,
        )
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            return seconds, f"HTTP {response.status_code}"
        payload = response.json()
        if payload.get("error") or not payload.get("answer"):
            return seconds, "answer with an error or empty"
        return seconds, None
    except (requests.RequestException, ValueError) as exc:
        return time.perf_counter() - started, type(exc).__name__


def client(number: int, base: str, texts: list[str], run: LoadRun, barrier: threading.Barrier):
    session = requests.Session()
    token = ""
    try:
        session.get(f"{base}/chat/", timeout=REQUEST_TIMEOUT_S)
        token = session.cookies.get("csrftoken", "")
    except requests.RequestException as exc:
        run.record(0.0, f"chat page: {type(exc).__name__}", warmup=True)
    # One untimed question each first: both gunicorn workers load the embedding model.
    seconds, error = ask(session, base, token, texts[number % len(texts)])
    run.record(seconds, error, warmup=True)
    barrier.wait()
    asked = 1
    while time.monotonic() < run.stop_at:
        question = texts[(number * 37 + asked) % len(texts)]
        seconds, error = ask(session, base, token, question)
        run.record(seconds, error, warmup=False)
        asked += 1
    session.close()


def measure_load(manual: Manual, texts: list[str]) -> dict:
    with FakeOpenAIProcess("--latency", "0") as fake:
        endpoint, _ = LLMEndpoint.objects.update_or_create(
            name=LOOPBACK_ENDPOINT,
            defaults={
                "kind": LLMEndpoint.Kind.OPENAI,
                "model": "fake-model",
                "base_url": fake.base_url,
                # The client's own limit must not be what is measured here.
                "max_concurrency": 64,
                "max_retries": 2,
                "timeout_s": 30,
            },
        )
        bench_assistant(LOOPBACK_ASSISTANT, manual, endpoint)
        with Gunicorn(ASGI, {"CHAT_RATE_LIMIT": "0/min"}, GUNICORN_LOG) as server:
            run = LoadRun()
            barrier = threading.Barrier(CLIENTS, action=run.start_window)
            threads = [
                threading.Thread(target=client, args=(n, server.base_url, texts, run, barrier))
                for n in range(CLIENTS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            in_flight = fake.max_in_flight
    # What the server itself recorded per answer (question stored to answer stored), to tell
    # time spent answering from time spent queueing for a worker thread.
    recorded = [
        latency / 1000
        for latency in Message.objects.filter(
            assistant__slug=LOOPBACK_ASSISTANT[1],
            latency_ms__isnull=False,
            created_at__gte=run.started_wall,
        ).values_list("latency_ms", flat=True)
    ]
    elapsed = run.last_done - run.started_at
    successes = len(run.latencies)
    return {
        "clients": CLIENTS,
        "seconds": round(elapsed, 1),
        "requests": successes + sum(run.errors.values()),
        "successes": successes,
        "rps": round(successes / elapsed, 2) if elapsed > 0 else 0.0,
        "latency": ms(run.latencies) if run.latencies else {"p50": None, "p95": None},
        "errors": dict(run.errors),
        "warmup_errors": dict(run.warmup_errors),
        "generator_max_in_flight": in_flight,
        "server_answer": ms(recorded) if recorded else {"p50": None, "p95": None},
    }


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    wall_started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    load_model(settings.EMBEDDING_MODEL, settings.EMBEDDING_DEVICE)

    real, label, ingest_s = real_manual()
    real_chunks = DocumentChunk.objects.filter(document__manual=real).count()
    print(
        f"Real manual: {label}, {real_chunks:,} chunks "
        + (f"(ingested now in {ingest_s:.0f} s)" if ingest_s else "(reused)")
    )
    print(f"Synthetic manual {SYNTH_MANUALS[real.name]!r}:")
    synth, insert_s = synthetic_manual(real)
    synth_chunks = DocumentChunk.objects.filter(document__manual=synth).count()
    table_chunks = DocumentChunk.objects.count()
    print(
        f"  {synth_chunks:,} chunks "
        + (f"inserted in {insert_s:.0f} s" if insert_s else "(reused)")
        + f"; {table_chunks:,} chunks in the table"
    )

    texts, source = questions()
    started = time.perf_counter()
    vectors = [v.tolist() for v in encode(texts, model_name=settings.EMBEDDING_MODEL)]
    embed_batch_s = time.perf_counter() - started
    single = embed_one_by_one(texts[:20])
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single_one_thread = embed_one_by_one(texts[20:40])
    torch.set_num_threads(torch_threads)
    print(
        f"{len(texts)} questions from {source}, embedded in {embed_batch_s:.1f} s (not counted "
        f"as retrieval). One question alone, as a chat request embeds it: p50 "
        f"{ms(single)['p50']} ms with torch's {torch_threads} threads, "
        f"{ms(single_one_thread)['p50']} ms with 1 thread"
    )

    print("\n(a) Retrieval, top 5 over the 100k-chunk manual")
    hnsw_plan = plan(nearest_queryset(vectors[0], [synth.pk], TOP_K), analyze=True)
    exact_plan = plan(exact_queryset(vectors[0], [synth.pk], TOP_K), analyze=True)
    print(f"  HNSW plan:  {' > '.join(hnsw_plan['nodes'])}")
    print(f"  exact plan: {' > '.join(exact_plan['nodes'])}")
    assert uses_hnsw(hnsw_plan["nodes"]), "the chat's query does not use the HNSW index"
    assert not uses_hnsw(exact_plan["nodes"]), "the exact query used the HNSW index"
    retrieval = measure_retrieval(synth, vectors)
    print(
        f"  HNSW (chunks_nearest, ef_search 40): p50 {retrieval['hnsw']['p50']} ms, "
        f"p95 {retrieval['hnsw']['p95']} ms; exact scan: p50 {retrieval['exact']['p50']} ms, "
        f"p95 {retrieval['exact']['p95']} ms"
    )
    print(
        f"  recall@5 of HNSW vs exact: {retrieval['recall_at_5']} by chunk id, "
        f"{retrieval['passage_recall_at_5']} by passage text (copies share a text); "
        f"{retrieval['short_results']} of {len(vectors)} queries returned fewer than 5 rows"
    )
    vector_retrieve = measure_retrieve(synth, texts, vectors, "vector", len(texts))
    hybrid_retrieve = measure_retrieve(synth, texts, vectors, "hybrid", HYBRID_QUESTIONS, warmup=1)
    print(
        f"  chat.retrieval.retrieve() (20 candidates, question matches, passages): vector p50 "
        f"{vector_retrieve['p50']} ms, p95 {vector_retrieve['p95']} ms; hybrid "
        f"({HYBRID_QUESTIONS} questions) p50 {hybrid_retrieve['p50']} ms, "
        f"p95 {hybrid_retrieve['p95']} ms"
    )
    small_plan = plan(nearest_queryset(vectors[0], [real.pk], TOP_K), analyze=True)
    small_exact_plan = plan(exact_queryset(vectors[0], [real.pk], TOP_K), analyze=True)
    small_passages = [
        len(retrieve(question=t, manual_ids=[real.pk], query_embedding=v).passages)
        for t, v in list(zip(texts, vectors, strict=True))[:SWEEP_QUESTIONS]
    ]
    print(
        f"  the {real_chunks:,}-chunk real manual in the same {table_chunks:,}-row table "
        f"(pgvector {pgvector_version()} filters HNSW results after the index scan):"
    )
    print(f"    HNSW plan:  {' > '.join(small_plan['nodes'])}")
    print(f"    exact plan: {' > '.join(small_exact_plan['nodes'])}")
    print(
        f"    chat.retrieval.retrieve() there gives {statistics.fmean(small_passages):.2f} "
        f"passages on average where the assistant asks for 4 ({SWEEP_QUESTIONS} questions)"
    )
    print(f"  by ef_search, 100k-chunk manual ({SWEEP_QUESTIONS} questions):")
    big_sweep = ef_sweep(
        synth, vectors[:SWEEP_QUESTIONS], ks=(TOP_K,), ef_searches=(40, 100, 200, 400)
    )
    print_sweep(big_sweep)
    print(f"  by ef_search, the {real_chunks:,}-chunk manual ({SWEEP_QUESTIONS} questions):")
    small_sweep = ef_sweep(
        real, vectors[:SWEEP_QUESTIONS], ks=(TOP_K, 20), ef_searches=(40, 100, 200, 400, 1000)
    )
    print_sweep(small_sweep)

    print("\n(b) Local model (SmolLM2-135M), streamed")
    endpoint = local_endpoint()
    ttft = measure_ttft(endpoint, synth, texts)
    print(
        f"  conversion check {ttft['convert_s']} s, load {ttft['load_s']} s, first generation "
        f"{ttft['first_generation_s']} s (untimed); time to first "
        f"token: median {ttft['ttft_ms']} ms of {ttft['ttft_all_ms']}, whole answer "
        f"({TTFT_MAX_TOKENS} tokens) {ttft['total_ms']} ms"
    )
    print(
        f"  through answer_stream (RAG over the 100k-chunk manual: embedding, retrieval, "
        f"passages in the prompt): median "
        f"{ttft['rag_ttft_ms']} ms (recorded on the rows: {ttft['rag_ttft_recorded_ms']} ms; "
        f"citations {ttft['rag_citations']})"
    )

    print(f"\n(c) {CLIENTS} clients for {LOAD_SECONDS} s, gunicorn with 2 uvicorn workers")
    load = measure_load(synth, texts)
    errors = sum(load["errors"].values()) + sum(load["warmup_errors"].values())
    print(
        f"  {load['successes']} answers in {load['seconds']} s: {load['rps']} requests/s, "
        f"latency p50 {load['latency']['p50']} ms, p95 {load['latency']['p95']} ms; "
        f"errors {errors} {load['errors'] or ''}{load['warmup_errors'] or ''}; generator "
        f"saw at most {load['generator_max_in_flight']} calls at once"
    )
    print(
        f"  answer time recorded by the server: p50 {load['server_answer']['p50']} ms, "
        f"p95 {load['server_answer']['p95']} ms (the rest is queueing and HTTP)"
    )
    if errors:
        print(f"  see {GUNICORN_LOG}")

    for slug in (LOCAL_ASSISTANT[1], LOOPBACK_ASSISTANT[1]):
        Conversation.objects.filter(assistant__slug=slug).delete()
        Assistant.objects.filter(slug=slug).delete()
    LLMEndpoint.objects.filter(name=LOOPBACK_ENDPOINT).delete()
    if "--clean" in sys.argv[1:]:
        Manual.objects.filter(name__in=[real.name, synth.name]).delete()

    wall_s = time.perf_counter() - wall_started
    p95_hnsw = retrieval["hnsw"]["p95"]
    print(
        f"\nGoals: retrieval p95 {p95_hnsw} ms at {synth_chunks:,} chunks "
        f"({'met' if p95_hnsw < GOAL_P95_MS else 'MISSED'}, goal < {GOAL_P95_MS} ms); "
        f"errors under load {errors} ({'met' if errors == 0 else 'MISSED'}). "
        f"Whole run {wall_s:.0f} s."
    )
    result = {
        "real_manual": label,
        "real_chunks": real_chunks,
        "synthetic_chunks": synth_chunks,
        "table_chunks": table_chunks,
        "insert_s": round(insert_s, 1) if insert_s else None,
        "ingest_s": round(ingest_s, 1) if ingest_s else None,
        "questions": len(texts),
        "embed_one_question_ms_p50": ms(single)["p50"],
        "embed_one_question_ms_p50_one_thread": ms(single_one_thread)["p50"],
        "retrieval_p50_ms_hnsw": retrieval["hnsw"]["p50"],
        "retrieval_p50_ms_exact": retrieval["exact"]["p50"],
        "recall_at_5": retrieval["recall_at_5"],
        "passage_recall_at_5": retrieval["passage_recall_at_5"],
        "retrieve_p50_ms": vector_retrieve["p50"],
        "retrieve_p95_ms": vector_retrieve["p95"],
        "retrieve_hybrid_p95_ms": hybrid_retrieve["p95"],
        "small_manual_passages": round(statistics.fmean(small_passages), 2),
        "small_manual_rows_at_ef40_k20": next(
            r["mean_rows"] for r in small_sweep["rows"] if r["ef_search"] == 40 and r["k"] == 20
        ),
        "local_load_s": ttft["load_s"],
        "ttft_ms_local_rag": ttft["rag_ttft_ms"],
        "concurrent_latency_p95_ms": load["latency"]["p95"],
        "concurrent_requests": load["requests"],
        "wall_s": round(wall_s, 1),
        "retrieval_p95_ms_hnsw": p95_hnsw,
        "retrieval_p95_ms_exact": retrieval["exact"]["p95"],
        "ttft_ms_local": ttft["ttft_ms"],
        "concurrent_rps": load["rps"],
        "errors": errors,
    }
    print(json.dumps(result))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
