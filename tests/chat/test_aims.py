"""What a sentence says how to do, against what a question asks how to do (chat.aims), and the
quote it changes."""

from __future__ import annotations

import pytest

from chat.aims import opposite_aim
from chat.quoting import QuotePassage, compose_quote


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        ("how do i set a destination", "To delete a Recent or Favorite destination, touch it."),
        ("how do i turn off the chimes", "To turn chimes on, touch Controls > Safety."),
        ("how do i turn the seat heater on", "To turn the seat heater off, touch it again."),
        ("how do i lock the car", "To unlock the car, pull a door handle."),
        ("how do i pair my phone", "- To unpair a phone, touch Forget This Device:"),
    ],
)
def test_a_sentence_whose_aim_undoes_the_question_is_told(question, sentence):
    assert opposite_aim(question)(sentence)


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        # another aim that does not undo it is often the answer
        ("how do i set a destination", "To navigate to a location, touch the search bar."),
        # the same aim, or both ways
        ("how do i turn off the chimes", "To turn chimes on or off, touch Controls > Safety."),
        ("how do i turn off the chimes", "To turn them off, touch Controls > Safety."),
        # no aim of its own, or a question naming both actions or neither
        ("how do i set a destination", "Touch Delete to remove the destination."),
        ("how do i add or remove a key", "To remove a key, touch its trash icon."),
        ("where is the vin", "To delete a driver profile, touch Delete."),
    ],
)
def test_a_sentence_that_does_not_undo_the_question_is_left_alone(question, sentence):
    assert not opposite_aim(question)(sentence)


def test_a_how_to_question_is_not_answered_by_how_to_undo_it(embed, vocabulary):
    # "how do i set a destination" quoted the Model 3 manual's sentences on deleting one: they
    # share every word of the question but its verb.
    favourites = QuotePassage(
        number=1,
        heading_path="Navigation > Home, Work and Favorite Destinations",
        body=(
            "If you often drive to a destination, add it as a favorite so that you need not "
            "enter its address each time.\n\n"
            "To delete a Recent or Favorite destination, touch it on the destination list and "
            "hold it down briefly until the X appears. Then touch the X to delete it from the "
            "list.\n\n"
            "Home and Work locations also display under the navigation search bar. Touch to set "
            "an address to the corresponding location. After entering the address, touch Save "
            "as Home or Save as Work. Then simply touch these shortcuts whenever you want to "
            "navigate home or to work."
        ),
        similarity=0.6,
    )

    quote = compose_quote(
        "how do i set a destination", [favourites], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert "Touch to set an address to the corresponding location." in quote.text
    assert "To delete" not in quote.text
