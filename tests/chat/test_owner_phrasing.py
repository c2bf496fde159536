"""How owners put questions the manual answers, read the way the manual writes: "my m3" is the
Model 3, an orange cable is not an amber light, "torque spec for the bolt" asks for a figure,
"any fix?" for the steps, "doesnt lock" for the cases it does not lock in; a website named
"for more information" is a pointer, and a question naming a word only one item of a long
list uses is not declined for reading a little far from it. Plain Python, with the site's
embedding model. Written on the fifth blind set's misses (2026-12-07)."""

from __future__ import annotations

import pytest

from chat.answering import AnswerPolicy, decide
from chat.asking import (
    asks_for_a_figure_alone,
    asks_for_procedure,
    failed_actions,
    states_failure,
)
from chat.declines import key_term_coverage
from chat.names import short_forms
from chat.owner_words import owner_words, with_manual_names
from chat.pointers import is_pointer
from chat.quote_settings import QuoteSettings
from chat.quoting import compose_quote
from chat.text_units import Vocabulary
from tests.chat.passages import passage

POLICY = AnswerPolicy(style="quoted", max_tokens=160, min_score=0.3, min_coverage=0.45)


# -- the manual's product, as owners shorten it ------------------------------------------------


def test_a_designation_run_together_is_the_manuals():
    assert short_forms("Model 3 has a dashcam. Gen 2 connectors, Model 3s.") == {
        "m3": "Model 3",
        "model3": "Model 3",
        "g2": "Gen 2",
        "gen2": "Gen 2",
    }
    assert short_forms("Model Y") == {}  # "my" is a word


def test_an_owners_m3_is_spelled_out_and_not_a_word_the_manual_lacks():
    # g-016 of the fifth blind set, "how do i set up dashcam on my m3", was declined: "The
    # manual never mentions “m3”."
    vocabulary = Vocabulary.from_texts(
        [
            "Dashcam records video footage of the surroundings when driving Model 3.",
            "To set up Dashcam, format a USB drive and touch Controls > Safety > Dashcam.",
            "Model 3 has a glovebox USB port.",
        ]
    )

    assert vocabulary.spell_out("how do i set up dashcam on my m3") == (
        "how do i set up dashcam on my Model 3"
    )
    assert vocabulary.spell_out("does the model3 have a dashcam") == (
        "does the Model 3 have a dashcam"
    )
    assert vocabulary.spell_out("a box of 0.5 m3") == "a box of 0.5 m3"  # a unit, not the car
    coverage, unknown = key_term_coverage(
        vocabulary.spell_out("how do i set up dashcam on my m3"), vocabulary
    )
    assert unknown == []
    assert coverage == 1.0


# -- an owner's colour word ----------------------------------------------------------------------


def test_orange_is_the_manuals_amber_only_for_a_light():
    # g-006: "what are the bright orange cables" was searched as "orange (amber) cables" and
    # quoted an amber indicator, not the high voltage cables the manual calls orange.
    vocabulary = Vocabulary.from_texts(
        [
            "High voltage cables are colored orange for easy identification.",
            "BLINKING AMBER: the vehicle is charging at a reduced current.",
        ]
    )
    cables = "what are the bright orange cables i can see"
    light = "what does blinking orange mean on the charge port light"

    assert owner_words(cables, vocabulary) == []
    assert with_manual_names(cables, vocabulary) == cables
    assert owner_words(light, vocabulary) == [(frozenset({"orang"}), frozenset({"amber"}))]
    assert with_manual_names(light, vocabulary) == (
        "what does blinking orange (amber) mean on the charge port light"
    )


# -- what a terse question asks for ------------------------------------------------------------

MUD_FLAPS = (
    "Perform the following to install the mud flaps:\n\n"
    "1. Clean the installation area with alcohol and allow it to dry.\n"
    "2. Align the mud flap with the holes in the wheel arch liner.\n"
    "3. Install the screws that secure the mud flap to the wheel arch liner. Tighten the "
    "screws to 1.5 Nm (1 ft-lbs).\n"
    "4. Install the new bolt that secures the bottom of the mud flap to the lower rocker "
    "panel cover. Tighten the bolt to 5 Nm (4 ft-lbs).\n"
    "5. Perform this procedure again on the other side of the vehicle."
)
WHEELS = (
    "|Specification|Value|\n|------|------|\n"
    "|Lug Nut Torque|129 lb. ft (175 Nm)|\n|Lug Nut Socket Size|21 mm|"
)


@pytest.mark.parametrize(
    ("question", "figure"),
    [
        ("torque spec for the bolt on the mudflaps?", True),
        ("tire pressure for winter", True),
        ("pressure washer ok on the paint?", False),
        ("the bolt on the mud flap is loose", False),
    ],
)
def test_a_terse_question_opening_on_what_is_measured_asks_for_a_figure(question, figure):
    assert asks_for_a_figure_alone(question) is figure


def test_a_terse_torque_question_is_answered_by_the_step_that_gives_it(embed):
    # g-012: "torque spec for the bolt on the mudflaps?" quoted the lug nut torque.
    vocabulary = Vocabulary.from_texts([MUD_FLAPS, WHEELS, "Clean the wheels with water."])
    passages = [
        passage(1, "Wheels and Tires > Wheel Specifications", WHEELS, 0.47),
        passage(2, "Installing Mud Flaps", MUD_FLAPS, 0.45),
    ]

    quote = compose_quote(
        "torque spec for the bolt on the mudflaps?", passages, embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.text.startswith("4. Install the new bolt")
    assert "5 Nm (4 ft-lbs)" in quote.text
    assert "Lug Nut" not in quote.text  # a second figure, for another thing, is not added


@pytest.mark.parametrize(
    ("question", "procedure"),
    [
        ("brakes make a high pitched squeal esp when its raining, any fix?", True),
        ("is there any solution for a foggy camera", True),
        ("what does the order of the lights mean", False),
    ],
)
def test_asking_for_a_fix_asks_for_steps(question, procedure):
    assert asks_for_procedure(question) is procedure


# -- a fault: the cases the manual says it does not happen in --------------------------------------

WALK_AWAY = (
    "The doors can lock automatically when you walk away carrying your key. To turn this "
    "feature on or off, touch Settings > Locks > Walk-Away Lock.\n\n"
    "When the doors lock, the exterior lights flash once and the mirrors fold."
)
NOT_LOCKING = (
    "The Aster does not automatically lock if:\n\n"
    "- The Aster detects your key for several minutes after you close all doors: Walk-Away "
    "Lock turns off and the doors do not lock when you walk away. Lock the Aster by hand "
    "until your next drive.\n"
    "- A door or the trunk is not fully closed.\n"
    "- The driver does not use the driver door to get out of the vehicle.\n"
    "- The key is left inside the vehicle."
)


def test_what_an_owner_says_the_car_does_not_do_is_read():
    assert failed_actions("walk away lock doesnt lock my car sometimes, why") == {"lock"}
    assert failed_actions("the charger won't always charge my phone") == {"charg"}
    assert failed_actions("it doesn't have a spare") == frozenset()
    assert states_failure("The Aster does not automatically lock if:", frozenset({"lock"}))
    assert not states_failure("The doors lock when you walk away.", frozenset({"lock"}))
    assert not states_failure("The Aster does not automatically lock if:", frozenset())


def test_a_fault_is_answered_by_the_cases_it_happens_in(embed):
    # g-035: "walk away lock doesnt lock my car sometimes, why" quoted how to turn the
    # feature on, not when the car does not lock.
    vocabulary = Vocabulary.from_texts(
        [WALK_AWAY, NOT_LOCKING, "Lock the Aster with the key card.", "Touch Settings > Locks."]
    )
    question = "walk away lock doesnt lock my car sometimes, why"
    passages = [
        passage(1, "Doors > Walk-Away Lock", WALK_AWAY, 0.65),
        passage(2, "Doors > Walk-Away Lock", NOT_LOCKING, 0.64),
    ]

    quote = compose_quote(question, passages, embed=embed, vocabulary=vocabulary)
    without = compose_quote(
        question,
        passages,
        embed=embed,
        vocabulary=vocabulary,
        settings=QuoteSettings(failure_bonus=0.0),
    )

    assert quote is not None and without is not None
    assert quote.text.startswith("The Aster does not automatically lock if:")
    assert "driver door" in quote.text
    assert without.numbers == [1]  # what the bonus mends


# -- a website for more ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "pointer"),
    [
        ("Visit https://www.example.com/service for more information on scheduling service.", True),
        ("For more information on voice commands, go to https://www.example.com/voice.", True),
        ("Go to https://www.example.com/diy for instructions and videos of these steps.", False),
        ("Schedule service in the mobile app, or visit www.example.com.", False),
    ],
)
def test_a_website_named_for_more_information_is_a_pointer(sentence, pointer):
    # g-025: "how do i book a service appt" quoted the website sentence alone.
    assert is_pointer(sentence) is pointer


# -- a word one item of a long list uses ---------------------------------------------------------

INDICATORS = (
    "The following indicator lights alert you to a status or condition.\n\n"
    "- Red exclamation point within a circle: A brake system fault is detected.\n"
    "- Amber turtle icon within a circle: Vehicle power is currently being limited.\n"
    "- Amber P within a circle: A parking brake fault is detected."
)


def test_a_question_naming_a_rare_word_its_passages_hold_is_not_declined_just_under(embed):
    # g-022: "whats the turtle symbol on the screen mean" came to 0.2997 of the 0.3 that
    # retrieval's best passage must reach, its item third in a long list.
    vocabulary = Vocabulary.from_texts(
        [
            INDICATORS,
            *(f"The brake symbol {n} on the screen shows a brake fault." for n in range(6)),
            "Power",
        ]
    )
    lights = [passage(1, "Car Status > Indicator Lights", INDICATORS, 0.2997)]

    def decided(question: str, confidence: float):
        return decide(
            question,
            lights,
            confidence=confidence,
            vocabulary=vocabulary,
            policy=POLICY,
            embed=embed,
        )

    assert decided("whats the turtle symbol on the screen mean", 0.2997) is None
    far = decided("whats the turtle symbol on the screen mean", 0.24)
    assert far is not None and far.reason == "similarity"
    common = decided("whats the brake symbol on the screen mean", 0.2997)
    assert common is not None and common.reason == "similarity"


# -- safety advice on another matter -----------------------------------------------------------

HIGH_VOLTAGE = (
    "Warning: The high voltage system has no user serviceable parts. Do not disassemble, remove "
    "or replace high voltage components, cables or connectors. High voltage cables are colored "
    "orange for easy identification.\n\n"
    "Warning: Read and follow all instructions on the labels attached to the Aster. These labels "
    "are there for your safety.\n\n"
    "Warning: If a fire occurs, immediately contact your local fire emergency responders."
)


def test_a_quote_grows_back_before_it_grows_into_warnings_about_another_matter(embed):
    # g-006: "what are the bright orange cables" quoted the orange cables' sentence and the
    # two Warnings after it (labels, fire), not the Warning it ends.
    vocabulary = Vocabulary.from_texts(
        [*HIGH_VOLTAGE.split("\n\n"), "The Aster has labels.", "Cables and connectors."]
    )
    cables = [passage(1, "Electric Vehicle Components", HIGH_VOLTAGE, 0.42)]

    quote = compose_quote(
        "what are the bright orange cables i can see? can i mess with them",
        cables,
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    # grown back over the Warning it ends first, then on as far as the words allow
    assert quote.text.startswith("Warning: The high voltage system has no user serviceable parts.")
