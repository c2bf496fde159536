"""Generation with the real local SmolLM2-135M on a tiny chunk (CPU)."""

from __future__ import annotations

import pytest

from curation import services
from curation.models import DocumentChunk, GenerationRun, LLMEndpoint, QAPair
from curation.services import CleanDocument

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_the_bundled_local_model_generates_pairs_from_a_tiny_chunk():
    manual = services.manual_get_or_create(name="Tiny manual")
    services.document_upsert(
        manual=manual,
        clean=CleanDocument(
            "wipers.md",
            "",
            "Wipers",
            "# Wipers\n\n## Replacing the Wiper Blades\n\nLift the wiper arm away from the "
            "windshield, press the release tab and slide the old blade off the arm.\n",
            25,
        ),
    )
    services.chunks_embed_pending(manual=manual)
    endpoint = LLMEndpoint.objects.get(kind=LLMEndpoint.Kind.LOCAL)  # created by a migration
    endpoint.max_tokens = 96
    endpoint.temperature = 0.0
    endpoint.save()
    run = services.generation_run_create(
        manual=manual, endpoint=endpoint, questions_per_chunk=2, enqueue=False
    )

    assert services.generation_run_claim(run_id=run.pk)
    run = services.generation_run_execute(run_id=run.pk)
    run = services.generation_run_score(run_id=run.pk)

    chunk = DocumentChunk.objects.get(document__manual=manual)
    assert run.status == GenerationRun.Status.SUCCEEDED, run.message
    assert run.llm_calls >= 2 and run.tokens_out > 0
    pairs = QAPair.objects.filter(chunk=chunk)
    assert pairs.count() >= 1
    for pair in pairs:
        assert pair.question.strip() and pair.answer.strip()
        assert pair.grounding_score is not None
