"""What kind of text answers what an owner asks: the web address for where to read how, a
figure written in words for how much, the steps rather than the Caution for the right way to do
something, and a picture's numbered names that are no steps; and an owner's word for a jump
pack. Plain Python, with the site's embedding model."""

from __future__ import annotations

import pytest

from chat.asking import asks_for_a_figure_alone, asks_for_procedure
from chat.owner_words import with_manual_names
from chat.pointers import address_to_read, asks_where_to_read
from chat.quoting import compose_quote
from chat.spans import is_procedure
from chat.text_units import Vocabulary, passage_blocks
from tests.chat.passages import passage


def _section(page: str, heading: str) -> str:
    """The text of the section of a Model 3 manual page under ``heading``."""
    text = page.split(f"\n{heading}\n", 1)[1]
    return text.split("\n## ", 1)[0].strip()


@pytest.mark.parametrize(
    "question",
    [
        "wanna swap the wiper blades and cabin filter myself, does tesla have instructions/videos"
        " somewhere",
        "is there an official guide for changing the wiper blades or cabin filter myself",
        "want to change my wiper blades n cabin filter myself, where are the instructions",
    ],
)
def test_where_to_read_how_is_answered_with_the_manuals_web_address(question, model3_dir, embed):
    # Six development and blind questions (c-019 ... k-019) asked for the Model 3 manual's
    # do-it-yourself page and were quoted the steps for the wiper blades, or "You can purchase
    # replacement wiper blades on the Tesla Shop".
    assert asks_where_to_read(question)
    docs = model3_dir / "docs"
    vocabulary = Vocabulary.from_texts(
        page.read_text(encoding="utf-8") for page in docs.glob("*.md")
    )

    def section(page: str, heading: str) -> str:
        return _section((docs / page).read_text(encoding="utf-8"), heading)

    do_it_yourself = (docs / "do_it_yourself_maintenance.md").read_text(encoding="utf-8")
    # the passages the chat retrieved for the first question, in its order
    passages = [
        passage(1, "Do It Yourself Maintenance", do_it_yourself.split("\n", 1)[1], 0.701),
        passage(
            2, "Wipers and Washers > Wipers", section("wipers_and_washers.md", "## Wipers"), 0.58
        ),
        passage(
            3,
            "Windshield Wiper Blades, Jets and Fluid > Replacing Wiper Blades",
            section("windshield_wiper_blades_jets_and_fluid.md", "## Replacing Wiper Blades"),
            0.579,
        ),
        passage(
            4,
            "Parts and Accessories > Replacing Cabin Filters",
            section("parts_and_accessories.md", "## Replacing Cabin Filters"),
            0.556,
        ),
    ]
    quote = compose_quote(question, passages, embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert "https://service.tesla.com/docs/Public/diy/index-model-3.html" in quote.text


@pytest.mark.parametrize(
    "question",
    [
        "how do i replace the wiper blades",
        "how do i save the dashcam video",
        "does the cabin camera send video of me to corvan",
    ],
)
def test_a_question_about_doing_something_asks_no_place_to_read(question):
    assert not asks_where_to_read(question)


def test_an_address_to_read_at_is_not_one_to_buy_at():
    assert address_to_read(
        "Go to https://service.tesla.com/docs/Public/diy/index-model-3.html for instructions, "
        "animations, and videos of these procedures."
    )
    assert not address_to_read(
        "You can purchase replacement wiper blades on the Tesla Shop (or https://shop.tesla.cn/ "
        "for China)."
    )
    assert not address_to_read("Go to Controls > Service for instructions.")


def test_a_figure_in_words_answers_how_much_and_a_steps_number_does_not(
    model3_dir, embed, vocabulary
):
    # blind7 k-016 quoted step 4's status icons, not the setting that says how much video is
    # kept: a step's number "4." counted as a figure, and "ten minutes" did not.
    page = (model3_dir / "docs" / "dashcam.md").read_text(encoding="utf-8")
    steps = _section(page, "## How to Use Dashcam")
    quote = compose_quote(
        "if i set dashcam to save when i honk, how much video does it actually keep",
        [passage(1, "Dashcam > How to Use Dashcam", steps, 0.66)],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "On Honk: When you press the horn" in quote.text


HOOD_CAUTION = (
    "CAUTION: To prevent damage:\n\n"
    "- Do not close the hood with one hand. Doing so applies concentrated force in one area and "
    "can result in a dent or crease.\n"
    "- Do not apply pressure to the front edge of the hood.\n"
    "- Do not slam or drop the hood."
)
CLOSING_HOOD = (
    "To properly close the hood:\n\n"
    "1. Lower the hood until the striker touches the latches.\n"
    "2. Place both hands on the front of the hood, then press down firmly to engage the "
    "latches.\n"
    "3. Carefully try to lift the front edge of the hood to make sure it is fully closed."
)


def test_the_right_way_to_do_something_is_its_steps_not_the_caution_that_lists_the_wrong_ones(
    embed, vocabulary
):
    # blind7 k-031 "whats the right way to shut the frunk? i dont wanna dent the hood" quoted
    # the Caution's list: its items were not counted as the Caution's, and "the right way to"
    # did not ask for steps.
    question = "whats the right way to shut the frunk? i dont wanna dent the hood"
    assert asks_for_procedure(question)
    quote = compose_quote(
        question,
        [
            passage(1, "Front Trunk > Closing", CLOSING_HOOD, 0.60),
            passage(2, "Front Trunk > Closing", HOOD_CAUTION, 0.62),
        ],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "Place both hands on the front of the hood" in quote.text


VENTS = (
    "The Aster has one face-level vent that spans the width of the dashboard. Using the "
    "touchscreen, you can direct the air flowing from this vent when heating or cooling the "
    "front cabin.\n\n"
    "1. Driver vent and controls\n"
    "2. Passenger vent and controls\n\n"
    "When the face-level vent is on you can adjust the direction of the air flow from each "
    "vent. To adjust the direction of the air flow, touch the radiating air waves from the "
    "vent on the touchscreen. The air flows in a single stream when centered."
)


def test_a_pictures_numbered_names_are_no_steps(embed, vocabulary):
    # blind7 k-045 "how do i point the air from the long dash vent at my face" quoted a
    # figure's legend ("1. Driver vent and controls") as the steps that do it.
    legend = next(block for block in passage_blocks(VENTS) if block.kind == "steps")
    assert not is_procedure(legend)
    assert is_procedure(next(b for b in passage_blocks(CLOSING_HOOD) if b.kind == "steps"))
    quote = compose_quote(
        "how do i point the air from the long dash vent at my face? there are no flaps to move",
        [passage(1, "Climate Controls > Vents", VENTS, 0.62)],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "touch the radiating air waves" in quote.text


def test_a_jump_pack_is_read_as_the_manuals_jump_starter():
    vocabulary = Vocabulary.from_texts(
        [
            "The following instructions assume you are using an external low voltage power "
            "supply (such as a portable jump starter).",
        ]
    )

    assert "jump starter" in with_manual_names(
        "using a jump pack, what order do the clamps go on", vocabulary
    )


def test_a_figure_asked_for_in_its_unit_is_the_step_that_gives_it(model3_dir, embed, vocabulary):
    # blind7 k-012 quoted the whole mud flap procedure (347 words) for "how many ft lbs": a
    # count of "ft lbs" read as a count of things, which a whole list adds up.
    question = (
        "putting mud flaps on, how many ft lbs do i torque the new bolt at the bottom going into"
        " the rocker panel cover"
    )
    assert asks_for_a_figure_alone(question)
    assert not asks_for_a_figure_alone("how many cameras does it have")
    page = (model3_dir / "docs" / "installing_mud_flaps_and_splash_guards.md").read_text(
        encoding="utf-8"
    )
    quote = compose_quote(
        question,
        [passage(1, "Installing Mud Flaps", page.split("\n", 1)[1], 0.6)],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "Tighten the bolt to 5 Nm (4 ft-lbs)." in quote.text
    assert quote.words < 60
