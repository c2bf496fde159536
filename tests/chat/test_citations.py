"""What an answer links to besides its citations: the other sections close to the question."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from chat.models import Message
from chat.retrieval import Passage
from chat.services.citations import SEE_ALSO, see_also
from curation import services as curation_services
from curation.services import CleanDocument
from tests.chat.support import make_assistant, tiny_manual

pytestmark = pytest.mark.django_db


def passage(number: int, heading_path: str, similarity: float) -> Passage:
    return Passage(
        chunk_id=100 + number,
        document_id=10,
        manual_id=1,
        position=number,
        source_name="cleaning.md",
        source_url="",
        title="Cleaning",
        heading_path=heading_path,
        text=f"{heading_path}\n\nText {number}.",
        body=f"Text {number}.",
        similarity=similarity,
        fused_score=similarity,
        found_by=("vector",),
    )


def test_see_also_lists_the_other_close_sections_once_each_and_not_the_quotes_own():
    passages = [
        passage(1, "Cleaning > Cautions for Exterior Cleaning", 0.63),
        passage(2, "Cleaning > Cautions for Exterior Cleaning", 0.61),  # the quote's section
        passage(3, "Cleaning > Car Wash Mode", 0.58),
        passage(4, "Cleaning > Car Wash Mode", 0.57),  # a second chunk of a listed section
        passage(5, "Cleaning > Cleaning the Interior", 0.30),  # not close enough
        passage(6, "Wipers > Wiper Service Mode", 0.52),
    ]

    found = see_also(passages, quoted=[2], min_score=0.35)

    assert [item["n"] for item in found] == [3, 6]
    assert [item["heading_path"] for item in found] == [
        "Cleaning > Car Wash Mode",
        "Wipers > Wiper Service Mode",
    ]
    page = reverse("curation:document", args=[1, 10])
    assert found[0]["url"] == f"{page}?chunk=103#chunk-103"
    assert set(found[0]) == {
        "n", "chunk_id", "document_id", "heading_path", "title", "source_name", "url",
    }  # fmt: skip


def test_see_also_lists_at_most_a_few_sections_and_none_when_nothing_else_is_close():
    many = [passage(n, f"Section {n}", 0.6) for n in range(1, 8)]

    assert len(see_also(many, quoted=[1], min_score=0.35)) == SEE_ALSO
    assert see_also(many[:1], quoted=[1], min_score=0.35) == []
    assert see_also(many, quoted=[1], min_score=0.9) == []


def test_a_quoted_answer_links_the_other_sections_on_its_subject_under_the_quote():
    manual = tiny_manual()
    # A second section on tire pressure, on a page of its own.
    curation_services.document_upsert(
        manual=manual,
        clean=CleanDocument(
            "tire-care.md",
            "",
            "Tire care",
            "# Tire care\n\n## Checking tire pressure when it is cold\n\nCheck the tire pressure "
            "when the tires are cold, after the car has been parked for three hours.\n",
            20,
        ),
    )
    curation_services.chunks_embed_pending(manual=manual)
    make_assistant(manual, name="Quoter", slug="quoter", endpoint=None)
    client = Client()

    response = client.post(
        reverse("chat:stream"),
        {"question": "What pressure should the tires have?", "assistant": "quoter"},
    )
    b"".join(response.streaming_content)
    message = Message.objects.filter(role=Message.Role.ASSISTANT).latest("pk")

    assert message.answer_style == "quoted" and not message.declined
    listed = message.quote["see_also"]
    quoted = {c["heading_path"] for c in message.citations}
    assert listed and not {item["heading_path"] for item in listed} & quoted
    assert not {item["n"] for item in listed} & set(message.quote["numbers"])
    # Links under the quote, not sources of the answer: the citations are the quote's own.
    assert [c["n"] for c in message.citations] == message.quote["numbers"]

    html = client.get(reverse("chat:conversation", args=[message.conversation_id])).content
    html = html.decode()
    block = html.split('<nav class="chat-see-also"', 1)[1].split("</nav>", 1)[0]
    assert "Also in the manual" in block
    for item in listed:
        assert f'href="{item["url"]}"' in block and escape(item["heading_path"]) in block
    assert 'class="chat-sources"' not in html
