"""The quotable units' vectors, stored once a manual is embedded (``chat.quote_vectors``).

Real database, real embedding model, a real ingestion of a small markdown manual."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from chat import quote_vectors
from chat import services as chat_services
from chat.models import SentenceVector
from chat.owners import Owner
from chat.quoting import QuotePassage, compose_quote, unit_texts
from chat.retrieval import _VECTORS, embed_texts
from chat.selectors import manual_vocabulary
from curation import services as curation_services
from curation.models import DocumentChunk, IngestionRun, Manual
from curation.signals import manual_embedded

pytestmark = pytest.mark.django_db

PAGES = {
    "charging.md": """# Charging

## Opening the charge port

Press the button on the charge cable to open the charge port door. The light around the port
turns blue when the car is ready to charge.

If the car has no power, use the manual release:

1. Open the trunk.
2. Pull the release cable toward the rear of the car.
3. Swing the charge port door open by hand.
""",
    "tires.md": """# Tires

## Tire pressure

Check tire pressure when the tires are cold.

|Tire|Pressure|
|------|------|
|Front|42 psi (290 kPa)|
|Rear|42 psi (290 kPa)|

Never drive on a tire that has lost pressure.
""",
}


def _ingest(tmp_path, name: str = "Vector manual") -> Manual:
    folder = tmp_path / "pages"
    folder.mkdir(exist_ok=True)
    for filename, text in PAGES.items():
        (folder / filename).write_text(text, encoding="utf-8")
    manual = curation_services.manual_get_or_create(name=name)
    run = curation_services.ingestion_run_create(manual=manual, source=str(folder), enqueue=False)
    run = curation_services.ingestion_run_execute(run_id=run.pk)
    assert run.status == IngestionRun.Status.SUCCEEDED, run.message
    return manual


def _units(manual: Manual) -> list[str]:
    chunks = DocumentChunk.objects.filter(document__manual=manual)
    return list(
        dict.fromkeys(
            text for chunk in chunks for text in unit_texts(chunk.body, chunk.heading_path)
        )
    )


def test_an_embedded_manual_stores_its_units_vectors_once(tmp_path, settings):
    settings.QUOTE_VECTORS_ON_INGEST = True
    manual = _ingest(tmp_path)

    units = _units(manual)
    assert "Check tire pressure when the tires are cold." in units
    assert "Pull the release cable toward the rear of the car." in units
    # A table row as the composer embeds it: after its section's title.
    assert "Tire pressure: Tire: Front; Pressure: 42 psi (290 kPa)" in units
    assert SentenceVector.objects.count() == len(units)
    # The model's own vectors, as an answer would embed them.
    expected = embed_texts(units)
    chunks = DocumentChunk.objects.filter(document__manual=manual)
    by_text = quote_vectors.stored_vectors((chunk.body, chunk.heading_path) for chunk in chunks)
    assert sorted(by_text) == sorted(units)
    for text, vector in zip(units, expected, strict=True):
        np.testing.assert_allclose(by_text[text], vector, atol=1e-5)

    # Ingested again, unchanged: nothing new to store.
    _ingest(tmp_path)
    assert SentenceVector.objects.count() == len(units)
    assert quote_vectors.sentence_vectors_store(manual_ids=[manual.pk]) == 0


def test_nothing_is_stored_when_it_is_turned_off(tmp_path, settings):
    settings.QUOTE_VECTORS_ON_INGEST = False
    manual = _ingest(tmp_path)

    assert DocumentChunk.objects.filter(document__manual=manual).exists()
    assert not SentenceVector.objects.exists()


def test_the_embedder_takes_what_is_stored_and_embeds_the_rest():
    known_text, other_text = "Open the trunk.", "Check tire pressure when the tires are cold."
    marker = np.zeros(384, dtype=np.float32)
    marker[0] = 1.0  # no text embeds to this: it can only have come from ``known``

    vectors = quote_vectors.embedder({known_text: marker})([other_text, known_text, other_text])

    assert vectors.shape == (3, 384)
    np.testing.assert_array_equal(vectors[1], marker)
    np.testing.assert_allclose(vectors[0], embed_texts([other_text])[0], atol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert quote_vectors.embedder({})([]).shape == (0, 384)


def test_vectors_of_another_model_are_not_read(tmp_path, settings):
    settings.QUOTE_VECTORS_ON_INGEST = True
    manual = _ingest(tmp_path)
    bodies = [
        (c.body, c.heading_path) for c in DocumentChunk.objects.filter(document__manual=manual)
    ]
    assert quote_vectors.stored_vectors(bodies)

    settings.EMBEDDING_MODEL = "another-embedding-model"

    assert quote_vectors.stored_vectors(bodies) == {}


def test_a_quote_and_an_answer_are_the_same_with_stored_vectors(tmp_path, settings):
    settings.QUOTE_VECTORS_ON_INGEST = True
    manual = _ingest(tmp_path)
    question = "the car has no power, how do I open the charge port"
    chunks = list(DocumentChunk.objects.filter(document__manual=manual).order_by("pk"))
    passages = [
        QuotePassage(number=n, heading_path=c.heading_path, body=c.body, similarity=0.6)
        for n, c in enumerate(chunks, start=1)
    ]
    vocabulary = manual_vocabulary(manual_ids=[manual.pk])
    known = quote_vectors.stored_vectors((c.body, c.heading_path) for c in chunks)

    fresh = compose_quote(question, passages, embed=embed_texts, vocabulary=vocabulary)
    stored = compose_quote(
        question, passages, embed=quote_vectors.embedder(known), vocabulary=vocabulary
    )

    assert fresh is not None and stored is not None
    assert stored.text == fresh.text
    assert "Pull the release cable" in stored.text
    assert stored.score == pytest.approx(fresh.score, abs=1e-3)

    # The chat's answer path reads them: the units it quotes from are not embedded again.
    assistant = chat_services.assistant_create(
        name="Vector assistant", slug="vector-assistant", manuals=[manual], endpoint=None
    )
    _VECTORS.clear()
    message = chat_services.answer(
        assistant=assistant, question=question, owner=Owner.for_session("vectors"), batch=True
    )
    assert not message.declined
    assert "Pull the release cable" in message.visible_text
    embedded = {text for _, text in _VECTORS}
    assert question in embedded
    assert not embedded & set(known)


def test_a_failing_receiver_leaves_the_ingestion_succeeded(tmp_path, caplog):
    def broken(sender, manual, **kwargs):
        raise RuntimeError("disk full")

    manual_embedded.connect(broken, dispatch_uid="test-broken-receiver")
    try:
        with caplog.at_level(logging.ERROR, logger="curation.ingestion"):
            manual = _ingest(tmp_path)
    finally:
        manual_embedded.disconnect(dispatch_uid="test-broken-receiver")

    assert manual.ingestion_runs.get().status == IngestionRun.Status.SUCCEEDED
    assert "disk full" in caplog.text


def test_the_command_stores_what_an_earlier_ingestion_did_not(tmp_path, settings):
    settings.QUOTE_VECTORS_ON_INGEST = False
    manual = _ingest(tmp_path)
    out = io.StringIO()

    call_command("store_sentence_vectors", "--manual", manual.name, stdout=out)

    assert SentenceVector.objects.count() == len(_units(manual))
    assert f"{manual.name}: {len(_units(manual))} sentence vectors stored." in out.getvalue()
    with pytest.raises(CommandError, match="No manual named Nope"):
        call_command("store_sentence_vectors", "--manual", "Nope")
