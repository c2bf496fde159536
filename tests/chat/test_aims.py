"""What a sentence says how to do, against what a question asks how to do (chat.aims), and the
quote it changes."""

from __future__ import annotations

import pytest

from chat.aims import aim_of, aim_verbs, opposite_aim
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


@pytest.mark.parametrize(
    ("text", "aim"),
    [
        ("To open the glovebox, touch Controls > Glovebox.", "To open the glovebox"),
        ("- To turn chimes on or off, touch Controls > Safety.", "To turn chimes on or off"),
        ("Touch Controls > Glovebox to open the glovebox.", None),
        ("When enabled, you are prompted to enter the PIN to open the glovebox.", None),
    ],
)
def test_a_sentence_opening_on_its_aim_is_read_for_it(text, aim):
    assert aim_of(text) == aim


# The Model 3 manual's two passages on the glovebox, as retrieved for "how do i open the
# glovebox".
GLOVEBOX = QuotePassage(
    number=1,
    heading_path="Interior Storage > Glovebox",
    body=(
        "To open the glovebox, touch Controls > Glovebox. The glovebox automatically opens and "
        "its light turns on.\n\n"
        "To close the glovebox, push it upward until it clicks into its closed position.\n"
        "For additional glovebox security, touch Controls > Safety > Glovebox PIN to set a "
        "4-digit PIN (see Glovebox PIN).\n\n"
        "Note: If you leave the glovebox open, its light eventually turns off.\n\n"
        "Note: The glovebox locks whenever closed and you lock Model 3 using the mobile app, key "
        "card, you leave Model 3 carrying your phone key (if Walk-Away Door Lock is turned on), "
        "or if Valet mode is active (see Valet Mode). It does not lock when Model 3 is locked by "
        "touching the lock icon on the touchscreen.\n\n"
        "Warning: When driving, keep the glovebox closed to prevent injury to a passenger if a "
        "collision or sudden stop occurs."
    ),
    similarity=0.6317,
)
GLOVEBOX_PIN = QuotePassage(
    number=2,
    heading_path="Safety & Security Settings > Glovebox PIN",
    body=(
        "For additional security, you can protect the contents in your glovebox with a 4-digit "
        "PIN. To enable this setting, touch Controls > Safety > Glovebox PIN and follow the "
        "on-screen prompts. When enabled, you are prompted to enter the PIN to open the "
        "glovebox. To disable this setting, select the toggle to disable and then enter the "
        "PIN.\n\n"
        "If you forget your glovebox PIN, reset it by entering your Tesla login credentials, "
        "then follow the on-screen prompts.\n\n"
        "Note: Using a Glovebox PIN allows the glovebox to be opened even when Model 3 is in "
        "Valet mode."
    ),
    similarity=0.5318,
)


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # The Model 3 manual quoted its Glovebox PIN paragraph: "When enabled, you are
        # prompted to enter the PIN to open the glovebox." reads closer to the question than
        # the sentence that says how.
        ("how do i open the glovebox", "To open the glovebox, touch Controls > Glovebox."),
        # "To open the glovebox" leaves out the PIN: an aim gains only when it covers every
        # term of the question (``QuoteSettings.aim_coverage``).
        ("how do i open the glovebox with a pin", "For additional security, you can protect"),
    ],
)
def test_a_how_to_question_is_answered_by_the_sentence_whose_aim_it_asks(
    question, answer, embed, vocabulary
):
    quote = compose_quote(question, [GLOVEBOX, GLOVEBOX_PIN], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert quote.text.startswith(answer)


@pytest.mark.parametrize(
    ("text", "verbs"),
    [
        ("To top up the washer fluid:\n\n1. Open the hood.\n2. Open the filler cap.", {"top"}),
        (
            "To make it easy to keep the console free of clutter, you can install a cable.\n\n"
            "To install a phone charging cable:\n\n1. Open both center console doors.",
            {"instal"},
        ),
        ("Warning: Only restart it in Park.\n\n1. Shift into Park.\n2. Hold both buttons.", set()),
    ],
)
def test_the_verbs_of_the_aims_steps_open_on_are_read(text, verbs):
    assert aim_verbs(text) == verbs


# The Model 3 manual's two passages on washer fluid and its jets, as retrieved for a clogged jet.
TOP_UP = QuotePassage(
    number=1,
    heading_path="Windshield Wiper Blades, Jets and Fluid > Topping Up Windshield Washer Fluid",
    body=(
        "The washer fluid reservoir is located behind the front trunk.\n\n"
        "To top up the washer fluid:\n\n"
        "1. Open the hood.\n"
        "2. Clean around the filler cap before opening it to prevent dirt from entering the "
        "reservoir.\n"
        "3. Open the filler cap.\n"
        "4. While avoiding spilling, fill the reservoir until the fluid level is visible just "
        "below the filler neck. The reservoir has a capacity of 3.2 liters.\n"
        "5. Wipe up any spills immediately and wash the affected area with water.\n"
        "6. Reinstall the filler cap."
    ),
    similarity=0.653,
)
WASHER_JETS = QuotePassage(
    number=2,
    heading_path="Windshield Wiper Blades, Jets and Fluid > Cleaning Washer Jets",
    body=(
        "If a windshield washer becomes blocked, use a thin strand of wire to clear any "
        "blockages from the nozzles.\n\n"
        "Warning: Do not operate the washers while cleaning Model 3. Windshield washer fluid can "
        "irritate eyes and skin. Read and observe the washer fluid manufacturer's instructions."
    ),
    similarity=0.607,
)


def test_steps_for_another_aim_do_not_stand_in_for_a_sentence_that_says_how(embed, vocabulary):
    # The question asks how (a fault described, "how do i clear it"); the best span is prose
    # with no steps after it, and the steps nearly as close are for topping up the fluid: their
    # aim's verb is not the question's.
    quote = compose_quote(
        "washer fluid barely comes out of one of the windshield sprayers, prob clogged. how do "
        "i clear it",
        [TOP_UP, WASHER_JETS],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.numbers[0] == 2
    assert "thin strand of wire" in quote.text
    assert "1. Open the hood." not in quote.text


def test_steps_for_the_aim_asked_still_stand_in_for_prose(embed, vocabulary):
    # Asked how to top it up, the same steps are the answer.
    quote = compose_quote(
        "how do i top up the washer fluid",
        [TOP_UP, WASHER_JETS],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "1. Open the hood." in quote.text
