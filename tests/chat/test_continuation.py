"""Procedures and tables that chunking split in two, put back together for the answer: the
rules on text (no database), then retrieval, the citation and the document page with the
real database and embedding model."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from chat import services
from chat.continuation import (
    continued_from,
    continues_after,
    joined,
    may_continue_after,
    may_continue_before,
    procedure_follows,
)
from chat.retrieval import embed_question, retrieve
from chat.services.citations import passage_citations
from chat.text_units import passage_blocks
from curation.models import DocumentChunk, Manual, ManualDocument
from tests.chat.support import make_assistant, session_owner

FIRST_HALF = (
    "To replace the wiper blades:\n\n"
    "1. Touch Controls > Service > Wiper Service Mode.\n"
    "2. Lift the wiper arm away from the windshield.\n"
    "3. Press the locking tab and slide the blade off the arm."
)
# The chunker repeats the last step at the start of the next piece (its overlap).
SECOND_HALF = (
    "3. Press the locking tab and slide the blade off the arm.\n"
    "4. Slide the new blade onto the arm until it clicks.\n"
    "5. Lower the wiper arm onto the windshield and exit Wiper Service Mode."
)
HEADER = "| Light | What it means |\n| --- | --- |"
TABLE_START = f"The charge port light shows what charging is doing:\n\n{HEADER}\n| WHITE | Ready |"
TABLE_REST = f"{HEADER}\n| BLUE | Charging is scheduled for later |\n| GREEN | Charging |"


def test_a_passage_that_starts_at_a_later_step_goes_on_from_the_chunk_before():
    assert may_continue_before(SECOND_HALF)
    assert continued_from(FIRST_HALF, SECOND_HALF)
    assert not may_continue_before(FIRST_HALF)
    # A chunk before it without the earlier steps holds another text, not the procedure.
    assert not continued_from("Keep the windshield clean.", SECOND_HALF)


def test_a_passage_that_ends_on_a_step_goes_on_into_the_next_steps():
    assert may_continue_after(FIRST_HALF)
    assert continues_after(FIRST_HALF, SECOND_HALF)
    # A new procedure after it is not its continuation.
    assert not continues_after(FIRST_HALF, "1. Open the hood.\n2. Check the fluid level.")
    assert not may_continue_after("1. Open the hood.\n\nThen close it again.")


def test_a_passage_that_ends_on_what_follows_a_step_goes_on_into_the_next_step():
    # The Model 3 manual's "Removing Ice From Door Handle" and 23 other seams: the chunk ends
    # on the Warning (or Note, option, line of text) after step 3, and step 4 opens the next.
    first = FIRST_HALF + "\nWarning: Never lift the wiper arm beyond its intended position."
    second = SECOND_HALF.split("\n", 1)[1]  # from step 4

    assert may_continue_after(first)
    assert continues_after(first, second)
    # Nor when the chunker's overlap repeats step 3; a new procedure is not its continuation,
    # nor is another step 3.
    assert continues_after(first, SECOND_HALF)
    assert not continues_after(first, "1. Open the hood.\n2. Check the fluid level.")
    assert not continues_after(first, "3. Open the hood.\n4. Check the fluid level.")
    # After a blank line, the text is no longer the procedure's.
    assert not may_continue_after(FIRST_HALF + "\n\nKeep the windshield clean.")


def test_joined_neighbours_hold_the_repeated_step_once():
    whole = joined(FIRST_HALF, SECOND_HALF)

    assert whole.count("3. Press the locking tab") == 1
    assert [line[:2] for line in whole.splitlines() if line[:1].isdigit()] == [
        "1.",
        "2.",
        "3.",
        "4.",
        "5.",
    ]


def test_a_repeated_step_shorter_than_a_sentence_is_held_once():
    # The Model 3 manual's "Cleaning the Exterior": the chunk ends on "2. Hand Wash", a step
    # that is only its title, and the next one opens with it again.
    first = "1. Rinse Thoroughly\nFlush grime and grit from the vehicle.\n2. Hand Wash"
    second = "2. Hand Wash\nHand wash using a soft cloth.\n3. Rinse with Clean Water"

    whole = joined(first, second)

    assert whole.count("2. Hand Wash") == 1
    assert whole.splitlines() == [
        "1. Rinse Thoroughly",
        "Flush grime and grit from the vehicle.",
        "2. Hand Wash",
        "Hand wash using a soft cloth.",
        "3. Rinse with Clean Water",
    ]
    # What stood apart from the repeated step after a blank line still does.
    assert joined("1. Open the hood.\n2. Close it.", "2. Close it.\n\nNote: Mind your hands.") == (
        "1. Open the hood.\n2. Close it.\n\nNote: Mind your hands."
    )
    # A short line that is not the seam's overlap stays where it is.
    assert joined("1. Open the hood.", "Hand Wash") == "1. Open the hood.\nHand Wash"


def test_a_procedure_the_chunker_parted_goes_on_across_the_seam():
    # The Model 3 manual's "Replacing Cabin Filters": the chunk ends on step 3's bullets, the
    # next opens with the Caution before step 4. A blank line at the seam would end the
    # procedure there and leave step 4 on in a procedure of its own.
    first = "To replace the filters:\n1. Turn off the climate.\n2. Remove the cover.\n- Unplug it."
    second = "CAUTION: Do not pull on the wires.\n3. Remove the T20 screw."

    whole = joined(first, second)

    assert whole == f"{first}\n{second}"
    (procedure,) = [block for block in passage_blocks(whole) if block.kind == "steps"]
    assert [unit.kind for unit in procedure.units][-2:] == ["callout", "step"]
    # Text after a paragraph stays apart.
    assert joined("Keep the cover closed.", second) == f"Keep the cover closed.\n\n{second}"


def test_a_table_split_by_rows_goes_on_under_its_header_once():
    assert continues_after(TABLE_START, TABLE_REST)

    whole = joined(TABLE_START, TABLE_REST)

    assert whole.count("| Light | What it means |") == 1
    assert whole.endswith("| BLUE | Charging is scheduled for later |\n| GREEN | Charging |")


# The Model 3 manual's Stopping Mode options, split by the chunker after the first one's
# Warning; the Notes under the list open a third chunk.
LIST_START = (
    "Touch Controls > Pedals > Stopping Mode and choose from these options:\n\n"
    "- Creep: Near a stop, the motor keeps moving the car slowly forward.\n"
    "Warning: Never rely on Creep to hold the car on a hill."
)
LIST_REST = (
    "Never rely on Creep to hold the car on a hill.\n"
    "- Hold: When the car stops, the brakes are applied for you.\n"
    "- Roll: Near a stop, the car rolls freely like a vehicle in Neutral."
)
LIST_NOTES = "Note: With Creep or Roll you can still use Vehicle Hold.\n\nSee Vehicle Hold."


def test_a_list_split_by_the_chunker_goes_on_across_the_seam_both_ways():
    # "what is creep mode" was given only the Notes under the list, the item itself being two
    # chunks back.
    assert may_continue_after(LIST_START)
    assert continues_after(LIST_START, LIST_REST)
    assert may_continue_before(LIST_REST)
    assert continued_from(LIST_START, LIST_REST)
    # the Notes under the last item belong to the list too
    assert may_continue_before(LIST_NOTES)
    assert continued_from(LIST_REST, LIST_NOTES)
    whole = joined(LIST_START, LIST_REST)
    assert whole.count("Never rely on Creep") == 1
    assert whole.endswith("- Roll: Near a stop, the car rolls freely like a vehicle in Neutral.")
    # a list after a blank line, or text that is not the repeated end, starts something new
    assert not may_continue_after(LIST_START + "\n\nKeep your foot near the brake.")
    assert not continued_from(LIST_START, "Stopping Mode also affects range.\n- Hold: ...")
    assert not continued_from("Keep your foot near the brake.", LIST_REST)


def one_page_manual(name: str, title: str) -> tuple[Manual, ManualDocument]:
    manual = Manual.objects.create(name=name)
    now = timezone.now()
    document = ManualDocument.objects.create(
        manual=manual,
        title=title,
        source_name=f"{title.lower()}.md",
        markdown="x",
        content_hash="0" * 64,
        fetched_at=now,
        updated_at=now,
    )
    return manual, document


def chunk_at(document: ManualDocument, position: int, path: str, body: str) -> DocumentChunk:
    """``body`` as the chunk at ``position`` of section ``path`` of ``document``, embedded."""
    text = f"{path}\n\n{body}"
    return DocumentChunk.objects.create(
        document=document,
        position=position,
        heading_path=path,
        text=text,
        token_count=60,
        embedding=embed_question(text),
    )


def chunks_of(document: ManualDocument, path: str, bodies: list[str]) -> list[DocumentChunk]:
    """``bodies`` as the chunks of one section of ``document``, in order, embedded."""
    return [chunk_at(document, position, path, body) for position, body in enumerate(bodies)]


@pytest.mark.django_db
def test_retrieval_gives_the_whole_procedure_and_the_citation_highlights_both_chunks(client):
    manual, document = one_page_manual("Continuation manual", "Wipers")
    path = "Wipers > Replacing the wiper blades"
    first, second = chunks_of(document, path, [FIRST_HALF, SECOND_HALF])
    DocumentChunk.objects.create(
        document=document,
        position=2,
        heading_path="Wipers > Washer fluid",
        text="Wipers > Washer fluid\n\nTop up the washer fluid when the level is low.",
        token_count=12,
        embedding=embed_question("Top up the washer fluid when the level is low."),
    )

    found = retrieve(
        question="how do i put the new wiper blade on so it clicks", manual_ids=[manual.pk], k=1
    )

    passage = found.passages[0]
    assert passage.chunk_id == second.pk
    assert passage.chunk_ids == (first.pk, second.pk)
    assert "1. Touch Controls > Service > Wiper Service Mode." in passage.body
    assert passage.body.count("3. Press the locking tab") == 1
    assert passage.text.startswith(f"{path}\n\n")

    citation = passage_citations([passage], in_prompt=True)[0]
    assert citation["chunk_ids"] == [first.pk, second.pk]
    page = reverse("curation:document", args=[manual.pk, document.pk])
    assert citation["url"] == f"{page}?chunk={first.pk}&chunk={second.pk}#chunk-{first.pk}"

    html = client.get(citation["url"]).content.decode()
    assert html.count('class="chunk highlighted"') == 2
    assert f'id="chunk-{first.pk}" class="chunk highlighted"' in html


@pytest.mark.django_db
def test_a_procedure_over_several_chunks_is_joined_up_to_two_neighbours_on_a_side():
    manual, document = one_page_manual("Long procedure manual", "Filter")
    path = "Cabin Air Filter > Replacing the filter"
    pieces = [
        "To replace the cabin air filter:\n\n1. Open the glovebox.\n2. Remove the glovebox.",
        "3. Unscrew the filter cover.\n4. Remove the cover.",
        "5. Fold the filter tabs.\n6. Pull the old filters out.",
        "7. Slide the new filters in.\n8. Refit the cover, the screws and the glovebox.",
    ]
    chunks = chunks_of(document, path, pieces)

    def best(question: str):
        return retrieve(question=question, manual_ids=[manual.pk], k=1).passages[0]

    passage = best("how do i slide the new cabin filters in and refit the cover")
    assert passage.chunk_id == chunks[3].pk
    # Two chunks before it are joined, one after the other; the first step stays out of reach.
    assert passage.chunk_ids == tuple(chunk.pk for chunk in chunks[1:])
    assert passage.body.startswith("3. Unscrew the filter cover.")
    assert passage.body.endswith("8. Refit the cover, the screws and the glovebox.")
    assert "1. Open the glovebox." not in passage.body

    # And forward from the first chunk: steps 1 to 6.
    passage = best("to replace the cabin air filter do i open the glovebox first")
    assert passage.chunk_id == chunks[0].pk
    assert passage.chunk_ids == tuple(chunk.pk for chunk in chunks[:3])
    assert passage.body.endswith("6. Pull the old filters out.")


@pytest.mark.django_db
def test_the_notes_under_a_split_list_are_retrieved_with_its_items():
    manual, document = one_page_manual("Split list manual", "Braking")
    chunks = chunks_of(document, "Braking > Stopping Mode", [LIST_START, LIST_REST, LIST_NOTES])

    passage = retrieve(
        question="can i still use vehicle hold with creep or roll", manual_ids=[manual.pk], k=1
    ).passages[0]

    assert passage.chunk_id == chunks[2].pk
    assert passage.chunk_ids == tuple(chunk.pk for chunk in chunks)
    assert "- Creep: Near a stop, the motor keeps moving the car slowly forward." in passage.body
    assert passage.body.endswith(LIST_NOTES)


@pytest.mark.django_db
def test_a_neighbour_fetched_for_one_passage_never_joins_another_section():
    """The chunk after a passage, fetched for another passage of its own section, is of
    another section than the passage: it does not go on with that passage's steps, however
    its steps are numbered."""
    manual, document = one_page_manual("Two sections manual", "Sentry")
    chunk_at(
        document, 0, "Sentry > Formatting a USB drive", "1. Insert the USB drive.\n2. Touch Format."
    )
    path = "Sentry > Turning Sentry on"
    first = chunk_at(document, 1, path, "3. Touch Controls > Safety.\n4. Touch Sentry Mode.")
    later = chunk_at(document, 2, path, "5. Touch On.\n6. The Sentry icon turns red.")

    found = retrieve(question="how do i format the usb drive", manual_ids=[manual.pk], k=3)

    formatting = next(p for p in found.passages if p.heading_path.endswith("USB drive"))
    assert formatting.chunk_ids == ()  # alone: step 3 is another section's
    assert "Touch Controls > Safety" not in formatting.body
    # The other section's procedure is still read whole, across its own seam.
    turning_on = next(p for p in found.passages if p.heading_path == path)
    assert turning_on.spanned == (first.pk, later.pk)


def test_a_procedure_follows_a_section_that_tells_what_a_feature_does():
    prose = "Camp keeps the touchscreen and the climate on while you stay inside."
    steps = "To operate Camp:\n\n1. Engage Park.\n2. Touch Camp on the climate screen."
    assert procedure_follows(prose, steps)
    assert not procedure_follows(FIRST_HALF, SECOND_HALF)  # that one has steps of its own
    assert not procedure_follows(prose, "Camp is not available below 20% charge.")


@pytest.mark.django_db
def test_a_how_to_question_gets_the_steps_from_the_next_chunk_of_the_section():
    """ "how do i turn on camp mode" finds the paragraph on what Camp does; the steps that turn
    it on are in the next chunk of its section, and come with it. A question that asks for no
    procedure gets the paragraph alone, and a chunk of the next section is never taken."""
    manual, document = one_page_manual("Camp manual", "Climate")
    path = "Climate > Keep Climate On, Dog, and Camp"
    what = chunk_at(
        document,
        0,
        path,
        "Camp mode keeps the touchscreen, the USB ports and the climate on while you stay "
        "inside the car, such as when camping overnight.",
    )
    how = chunk_at(
        document,
        1,
        path,
        "Avoid using these settings when the charge level is low.\n\n"
        "To operate Keep Climate On, Dog, or Camp:\n\n"
        "1. Engage Park.\n2. On the climate controls screen, touch Keep Climate On, Dog, or Camp.",
    )
    chunk_at(document, 2, "Climate > Air filters", "1. Open the glovebox.\n2. Remove the filter.")

    def best(question: str, *, wants_steps: bool):
        found = retrieve(question=question, manual_ids=[manual.pk], k=1, wants_steps=wants_steps)
        return found.passages[0]

    passage = best("how do i turn on camp mode for camping overnight", wants_steps=True)
    assert passage.chunk_id == what.pk
    assert passage.chunk_ids == (what.pk, how.pk)
    assert passage.body.endswith("touch Keep Climate On, Dog, or Camp.")

    alone = best("what does camp mode keep on when camping overnight", wants_steps=False)
    assert alone.chunk_id == what.pk and alone.chunk_ids == ()

    # The steps' own chunk, already a procedure, takes nothing from the next section.
    steps = best("how do i operate keep climate on dog or camp", wants_steps=True)
    assert steps.chunk_id == how.pk and steps.chunk_ids == ()


@pytest.mark.django_db
def test_the_chat_quotes_the_steps_that_the_next_chunk_holds_for_a_how_to_question():
    manual, document = one_page_manual("Camp chat manual", "Climate")
    path = "Climate > Camp"
    chunk_at(
        document,
        0,
        path,
        "Camp mode keeps the touchscreen, the USB ports and the climate on while you stay "
        "inside the car, such as when camping overnight.",
    )
    chunk_at(document, 1, path, "To operate Camp:\n\n1. Engage Park.\n2. Touch Camp.")
    assistant = make_assistant(manual, endpoint=None)  # quoted

    message = services.answer(
        assistant=assistant,
        question="how do i turn on camp mode for camping overnight",
        owner=session_owner(),
    )

    assert not message.declined
    assert "1. Engage Park.\n2. Touch Camp." in message.content
