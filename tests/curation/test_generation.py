"""QA generation end to end: real database, real embedder, a real OpenAI-compatible server."""

from __future__ import annotations

import time

import pytest

from chat.retrieval import retrieve
from curation import qa, services
from curation.models import ChunkGeneration, DocumentChunk, GenerationRun, QAPair
from curation.services import CleanDocument
from tests.curation.generation_support import (
    PAGES,
    make_manual,
    openai_endpoint,
    scripted_responder,
)
from tests.fakeopenai import FakeOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_llm():
    with FakeOpenAI(responder=scripted_responder) as server:
        yield server


@pytest.fixture
def manual():
    return make_manual()


def run_to_end(run: GenerationRun) -> GenerationRun:
    assert services.generation_run_claim(run_id=run.pk)
    run = services.generation_run_execute(run_id=run.pk)
    if run.status == GenerationRun.Status.SCORING:
        run = services.generation_run_score(run_id=run.pk)
    return run


def test_generation_stores_scored_pending_pairs_for_every_chunk(manual, fake_llm):
    endpoint = openai_endpoint(fake_llm.base_url)
    run = services.generation_run_create(
        manual=manual, endpoint=endpoint, questions_per_chunk=3, enqueue=False
    )

    run = run_to_end(run)

    chunks = DocumentChunk.objects.filter(document__manual=manual).count()
    assert run.status == GenerationRun.Status.SUCCEEDED, run.message
    assert (run.chunks_total, run.chunks_done, run.chunks_failed) == (chunks, chunks, 0)
    assert run.pairs_created == run.pairs_scored == 3 * chunks
    assert run.llm_calls == chunks * (1 + 3)
    assert run.tokens_in > 0 and run.tokens_out > 0
    assert run.estimated_cost is not None and run.estimated_cost > 0
    for pair in QAPair.objects.select_related("chunk", "document"):
        assert pair.status == QAPair.Status.PENDING
        assert pair.origin == QAPair.Origin.GENERATED
        assert pair.generation_run_id == run.pk
        assert (pair.original_question, pair.original_answer) == (pair.question, pair.answer)
        assert pair.document_version == pair.document.version
        assert pair.source_text == pair.chunk.text
        assert pair.grounding_score is not None and 0 <= pair.grounding_score <= 1
        assert pair.question_embedding is not None
        assert "ERROR" not in pair.answer
    # The quoted answers come straight from their chunk, so they are well grounded.
    assert QAPair.objects.filter(grounding_score__gte=qa.LOW_GROUNDING_THRESHOLD).count() > 0


def test_repeating_a_run_never_duplicates_pairs(manual, fake_llm):
    endpoint = openai_endpoint(fake_llm.base_url)
    run_to_end(services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False))
    count = QAPair.objects.count()

    again = run_to_end(
        services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False)
    )

    assert again.status == GenerationRun.Status.SUCCEEDED
    assert again.pairs_created == 0
    assert QAPair.objects.count() == count


def test_a_chunk_that_keeps_failing_is_recorded_and_retry_regenerates_only_it(manual, fake_llm):
    endpoint = openai_endpoint(fake_llm.base_url, max_concurrency=1, max_retries=1)
    fake_llm.fail_next(2, status=500)  # the first chunk's question call, and its one retry
    run = services.generation_run_create(
        manual=manual, endpoint=endpoint, questions_per_chunk=2, enqueue=False
    )

    run = run_to_end(run)

    assert run.status == GenerationRun.Status.SUCCEEDED
    assert run.chunks_failed == 1
    assert "1 chunk(s) failed" in run.message
    failed = ChunkGeneration.objects.get(run=run, status=ChunkGeneration.Status.FAILED)
    assert "500" in failed.error and "2 attempts" in failed.error
    assert not QAPair.objects.filter(chunk=failed.chunk).exists()
    before = QAPair.objects.count()

    services.generation_run_retry_failed(run=run)
    run = run_to_end(run)

    assert run.status == GenerationRun.Status.SUCCEEDED and run.chunks_failed == 0
    assert QAPair.objects.filter(chunk=failed.chunk).count() == 2
    assert QAPair.objects.count() == before + 2


def test_rate_limited_calls_wait_for_retry_after_and_succeed(manual, fake_llm):
    endpoint = openai_endpoint(fake_llm.base_url, max_concurrency=1)
    fake_llm.fail_next(1, status=429, retry_after=1)
    started = time.monotonic()

    run = run_to_end(
        services.generation_run_create(
            manual=manual, endpoint=endpoint, questions_per_chunk=1, enqueue=False
        )
    )

    assert time.monotonic() - started >= 1.0
    assert run.status == GenerationRun.Status.SUCCEEDED
    assert run.chunks_failed == 0


def test_a_malformed_question_list_fails_that_chunk_with_the_reason(manual, fake_llm):
    def responder(messages):
        if (
            "Tire Pressure" in messages[-1]["content"]
            and "numbered list" in messages[-1]["content"]
        ):
            return "Sorry, I cannot help with that."
        return scripted_responder(messages)

    fake_llm.responder = responder
    endpoint = openai_endpoint(fake_llm.base_url)

    run = run_to_end(
        services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False)
    )

    failed = ChunkGeneration.objects.select_related("chunk").get(run=run, status="failed")
    assert failed.chunk.heading_path.endswith("Tire Pressure")
    assert failed.error.startswith("malformed question list")
    assert run.chunks_done == run.chunks_total - 1


def test_a_truncated_stream_or_dropped_connection_is_retried(manual, fake_llm):
    endpoint = openai_endpoint(fake_llm.base_url, max_concurrency=1)
    fake_llm.drop_next(1)

    run = run_to_end(
        services.generation_run_create(
            manual=manual, endpoint=endpoint, questions_per_chunk=1, enqueue=False
        )
    )

    assert run.status == GenerationRun.Status.SUCCEEDED and run.chunks_failed == 0


def test_an_endpoint_without_its_api_key_fails_the_run_naming_the_variable(manual, monkeypatch):
    monkeypatch.delenv("MANUALQA_TEST_MISSING_KEY", raising=False)
    endpoint = openai_endpoint("", api_key_env="MANUALQA_TEST_MISSING_KEY")

    run = run_to_end(
        services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False)
    )

    assert run.status == GenerationRun.Status.FAILED
    assert "MANUALQA_TEST_MISSING_KEY" in run.message
    assert not QAPair.objects.exists()


def test_cancelling_a_queued_run_stops_it_before_it_starts(manual, fake_llm):
    endpoint = openai_endpoint(fake_llm.base_url)
    run = services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False)

    services.generation_run_cancel(run=run)

    run.refresh_from_db()
    assert run.status == GenerationRun.Status.CANCELLED
    assert services.generation_run_claim(run_id=run.pk) is False


def test_bad_prompt_templates_are_refused_naming_the_field(manual, fake_llm):
    endpoint = openai_endpoint(fake_llm.base_url)
    with pytest.raises(Exception) as info:
        services.generation_run_create(
            manual=manual,
            endpoint=endpoint,
            prompts={"answer_user_template": "Answer {question} about {nonsense}"},
            enqueue=False,
        )
    assert "answer_user_template" in str(info.value.message_dict)
    assert not GenerationRun.objects.exists()


def test_changing_a_document_flags_the_pairs_made_from_it(manual, fake_llm):
    endpoint = openai_endpoint(fake_llm.base_url)
    run_to_end(services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False))
    tires = manual.documents.get(source_name="tires.md")
    made_from = dict(QAPair.objects.filter(document=tires).values_list("pk", "source_text"))

    services.document_upsert(
        manual=manual,
        clean=CleanDocument(
            "tires.md", "", "Tires", tires.markdown.replace("42 PSI", "44 PSI"), 40
        ),
    )
    services.chunks_embed_pending(manual=manual)

    changed = QAPair.objects.filter(document=tires).select_related("chunk")
    assert changed.exists()
    for pair in changed:
        assert qa.FLAG_SOURCE_CHANGED in pair.flags
        assert pair.source_changed
        # The snapshot of what it was made from stays; its chunk is the new one of its section.
        assert pair.source_text == made_from[pair.pk]
        assert pair.source_text.startswith(pair.chunk.heading_path)
    assert (
        not QAPair.objects.exclude(document=tires)
        .filter(flags__contains=[qa.FLAG_SOURCE_CHANGED])
        .exists()
    )


def test_near_duplicate_questions_link_to_the_oldest_pair(manual, fake_llm):
    endpoint = openai_endpoint(fake_llm.base_url)
    run_to_end(
        services.generation_run_create(
            manual=manual, endpoint=endpoint, questions_per_chunk=2, enqueue=False
        )
    )

    # "point 1" and "point 2" of one section differ by one word: near-duplicates.
    duplicates = QAPair.objects.exclude(duplicate_of=None)
    assert duplicates.exists()
    for pair in duplicates.select_related("duplicate_of"):
        assert pair.duplicate_of.duplicate_of_id is None
        assert pair.duplicate_of.pk < pair.pk
        assert qa.FLAG_DUPLICATE in pair.flags


def changed_page(manual) -> None:
    """Re-ingest the first page with new text: its chunks are rebuilt, and once the new ones
    are embedded the old ones are retired."""
    document = manual.documents.order_by("source_name").first()
    markdown = document.markdown + "\n\n## Added later\n\nA section the run never saw.\n"
    services.document_upsert(
        manual=manual,
        clean=CleanDocument(
            document.source_name, "", document.title, markdown, len(markdown.split())
        ),
    )
    services.chunks_embed_pending(manual=manual)


def test_reingesting_a_page_mid_generation_does_not_crash_the_run(manual, fake_llm):
    """Security review M7: the replaced chunks' rows stay, marked superseded, the run ends
    well, and the counters add up."""
    endpoint = openai_endpoint(fake_llm.base_url)
    run = services.generation_run_create(
        manual=manual, endpoint=endpoint, questions_per_chunk=2, enqueue=False
    )
    replaced = run.chunk_results.filter(
        chunk__document=manual.documents.order_by("source_name").first()
    ).count()

    changed_page(manual)
    run = run_to_end(run)

    assert run.status == GenerationRun.Status.SUCCEEDED, run.message
    results = run.chunk_results.all()
    assert results.count() == run.chunks_total  # no row was lost
    superseded = results.filter(status=ChunkGeneration.Status.SUPERSEDED)
    assert superseded.count() == replaced > 0
    assert all(result.chunk_id is None and "page changed" in result.error for result in superseded)
    assert run.chunks_done + run.chunks_failed == run.chunks_total
    assert run.pairs_created == 2 * (run.chunks_total - replaced)


def test_a_rebuilt_page_keeps_its_pairs_on_the_new_chunks_of_their_sections(manual, fake_llm):
    run = run_to_end(
        services.generation_run_create(
            manual=manual, endpoint=openai_endpoint(fake_llm.base_url), enqueue=False
        )
    )
    document = manual.documents.order_by("source_name").first()
    before = {
        pair.pk: pair.chunk.heading_path for pair in document.qa_pairs.select_related("chunk")
    }

    changed_page(manual)

    after = {pair.pk: pair.chunk for pair in document.qa_pairs.select_related("chunk")}
    assert run.pairs_created and set(after) == set(before)
    assert all(chunk is not None for chunk in after.values())  # linked to the new chunks
    assert {pk: chunk.heading_path for pk, chunk in after.items()} == before
    assert all(qa.FLAG_SOURCE_CHANGED in pair.flags for pair in document.qa_pairs.all())


def tires_change(manual, pressure: str) -> None:
    tires = manual.documents.get(source_name="tires.md")
    markdown = PAGES["tires.md"][1].replace("42 PSI", pressure)
    services.document_upsert(
        manual=manual,
        clean=CleanDocument("tires.md", "", "Tires", markdown, len(markdown.split())),
    )
    tires.refresh_from_db()


def test_changed_page_stays_retrievable_until_new_chunks_are_embedded(manual):
    """Security review M7: between a page's change and the embedding of its new chunks, chat
    answers from the old text; it never sees both versions, nor neither."""
    tires = manual.documents.get(source_name="tires.md")
    question = "What tire pressure should I use for 18 inch tires?"

    def passages() -> str:
        found = retrieve(question=question, manual_ids=[manual.pk], k=4, method="hybrid")
        return " ".join(passage.text for passage in found.passages if "Tire" in passage.title)

    def embedded_versions() -> set[int]:
        embedded = tires.chunks.filter(embedding__isnull=False)
        return set(embedded.values_list("version", flat=True))

    tires_change(manual, "44 PSI")
    assert "42 PSI" in passages() and "44 PSI" not in passages()
    # Generation and the pages already read the new text.
    current = DocumentChunk.objects.current().filter(document=tires)
    assert set(current.values_list("version", flat=True)) == {2}
    assert "44 PSI" in " ".join(current.values_list("text", flat=True))

    tires_change(manual, "45 PSI")  # changed again before anything was embedded
    assert set(tires.chunks.values_list("version", flat=True)) == {1, 3}
    assert "42 PSI" in passages()

    seen = []
    services.chunks_embed_pending(
        manual=manual, batch_size=1, on_batch=lambda _: seen.append(embedded_versions())
    )
    assert seen and all(len(versions) == 1 for versions in seen)  # one version at a time
    assert "45 PSI" in passages() and "42 PSI" not in passages()
    assert set(tires.chunks.values_list("version", flat=True)) == {3}
