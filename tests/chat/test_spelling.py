"""An owner's misspelt word read as the manual's word (``chat.spelling``,
``chat.owner_words.spelling_corrected``): plain Python, no database."""

from __future__ import annotations

import pytest

from chat.owner_words import spelling_corrected
from chat.spelling import corrected, edit_distance, edits, is_english, sound_alikes
from chat.text_units import Vocabulary

CHUNKS = [
    "Recommended tire pressures: inflate the tires to 42 PSI when they are cold.",
    "Check the tire pressure once a month. The recommended pressure is on the door pillar.",
    "Replace the wiper blades every year. The blades slide off the wiper arm.",
    "The 12 V battery is under the front trunk. The battery is replaced by service.",
    "Open the front trunk with the button on the key fob. Never load more in the trunk.",
    "Extended Range models charge faster. Extended warranty terms are listed below.",
    "Recalls are listed on the web site. A recall notice is sent to the owner.",
    "A discharged battery can be jump started. Wiper blades freeze to the windshield in winter.",
    "The cabin temperature is kept below 40 degrees. Set the temperature on the climate panel.",
    "Keep the temperature of the battery in range: it is recommended to plug in overnight.",
    "To open Caraoke, touch Media. Caraoke lyrics are for passengers. The map color is gray.",
    "Caraoke may not be available in your region. Change the color of the ambient lights.",
]


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return Vocabulary.from_texts(CHUNKS)


@pytest.mark.parametrize(
    ("word", "read"),
    [
        ("presure", "pressure"),  # a letter left out
        ("recomended", "recommended"),
        ("batery", "battery"),
        ("tirres", "tires"),  # one added
        ("bladse", "blades"),  # two swapped
        ("Presure", "pressure"),
        ("reccomended", "recommended"),  # two edits, in a word of eight letters or more
        ("tempature", "temperature"),
    ],
)
def test_a_misspelt_word_is_read_as_the_manuals_word_one_edit_away(vocabulary, word, read):
    assert corrected(word, vocabulary) == read


@pytest.mark.parametrize(
    "word",
    [
        "pressure",  # the manual's own word
        "resale",  # an English word the manual never uses: what the owner meant ("recall")
        "extention",  # its stem is one edit from "extend"'s, but no word of the manual is
        "carplay",  # nothing close
        "pillr",  # close to a word the manual uses in one chunk only
        "tyre",  # too short to read as a slip
    ],
)
def test_a_word_is_left_as_written_unless_it_misspells_a_word_the_manual_uses(vocabulary, word):
    assert corrected(word, vocabulary) == word


def test_an_english_word_is_read_as_the_manuals_spelling_of_the_same_word(vocabulary):
    # An English word is otherwise never read as another ("resale" is no "recall").
    assert is_english("karaoke")
    assert corrected("karaoke", vocabulary) == "caraoke"
    assert corrected("Karaoke", vocabulary) == "caraoke"


def test_spellings_that_read_the_same_swap_letters_that_sound_alike_or_a_british_ending():
    assert sound_alikes("karaoke") == {"caraoke", "karaoce"}
    assert sound_alikes("analyse") == {"analyze"}
    assert sound_alikes("theatre") == {"theater"}
    assert sound_alikes("colour") == {"color", "kolour"}
    assert "pressure" not in sound_alikes("presure")


def test_edit_distance_counts_deletions_insertions_replacements_and_swaps():
    assert edit_distance("reccomended", "recommended", limit=2) == 2
    assert edit_distance("abcd", "abdc", limit=2) == 1
    assert edit_distance("kitten", "sitting", limit=5) == 3
    assert edit_distance("kitten", "sitting", limit=1) == 2  # past the limit: limit + 1


def test_edits_are_one_letter_away():
    found = edits("tire")
    assert {"tie", "tier", "tires", "itre", "fire"} <= found
    assert "tire" not in found and "tyres" not in found
    assert is_english("resale") and not is_english("presure")


def test_a_question_keeps_an_owners_own_word_for_a_part(vocabulary):
    # "frunk" is one letter from "trunk", but it is the owner's word for the front trunk.
    assert spelling_corrected("how do i open the frunk", vocabulary) == "how do i open the frunk"
    assert (
        spelling_corrected("whats the recomended tire presure?", vocabulary)
        == "whats the recommended tire pressure?"
    )
