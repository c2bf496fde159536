"""A manual passage as quotable pieces, and the words a question asks about (no database)."""

from __future__ import annotations

import pytest

from chat.names import acronyms
from chat.text_units import (
    Vocabulary,
    passage_blocks,
    passage_plain_units,
    split_sentences,
    terms,
    weighted_coverage,
)

RELEASE_CABLE = """\
If the Aster has lost 12 V power, the charge port door cannot be opened electrically. \
To open it by hand, follow these steps:
1. Open the trunk.
2. Unclip the small cover in the trim panel behind the left taillight.
Note: The cover has a yellow tag showing a plug symbol.
3. Pull the release cable gently toward the front of the vehicle.
Warning: Never pull the cable while charging is in progress.
4. Open the charge port door by hand.

Push the charge port door gently until it latches."""

STEERING = """\
To change how the steering feels, follow these steps:
1. Touch Controls > Pedals & Steering.
2. Choose an option:
- Comfort: lighter steering for city driving.
- Sport: firmer steering at speed.
3. Touch Save."""

TIRE_PRESSURES = """\
Inflate the tires to the pressures below.

| Wheel | Front (cold) | Rear (cold) |
| --- | --- | --- |
| 18-inch Aero wheel | 290 kPa (42 PSI) | 290 kPa (42 PSI) |
| 19-inch Sport wheel | 290 kPa (42 PSI) | 310 kPa (45 PSI) |

These pressures also apply when the vehicle is fully loaded."""


def kinds(block) -> list[str]:
    return [unit.kind for unit in block.units]


def test_a_procedure_keeps_its_notes_and_warnings_between_steps_and_its_lead_in():
    blocks = passage_blocks(RELEASE_CABLE)

    assert [block.kind for block in blocks] == ["paragraph", "steps", "paragraph"]
    procedure = blocks[1]
    assert procedure.lead_in == "To open it by hand, follow these steps:"
    assert kinds(procedure) == ["step", "step", "callout", "step", "callout", "step"]
    assert procedure.units[2].text == "Note: The cover has a yellow tag showing a plug symbol."
    assert procedure.units[4].text == "Warning: Never pull the cable while charging is in progress."
    # The sentence before the lead-in stays where it was; the text after the steps is prose.
    assert [unit.text for unit in blocks[0].units] == [
        "If the Aster has lost 12 V power, the charge port door cannot be opened electrically."
    ]
    assert blocks[2].units[0].text == "Push the charge port door gently until it latches."


def test_a_note_whose_word_stands_on_its_own_line_stays_inside_the_procedure():
    # Some manuals print the callout's word on a line and its text on the next.
    body = (
        "To pair a phone, follow these steps:\n"
        "1. Turn Bluetooth on.\n"
        "2. Make the phone discoverable.\n"
        "Note\n"
        "On some phones, this is under Bluetooth Settings.\n"
        "3. Touch Add New Device.\n"
        "\n"
        "Warning\n"
        "\n"
        "Never pair while driving."
    )

    blocks = passage_blocks(body)

    assert [block.kind for block in blocks] == ["steps", "paragraph", "paragraph"]
    assert kinds(blocks[0]) == ["step", "step", "callout", "step"]
    assert blocks[0].units[2].text == "Note: On some phones, this is under Bluetooth Settings."
    # A word with nothing after it on the next line is left as it is.
    assert [unit.text for unit in blocks[1].units] == ["Warning"]


def test_a_lead_in_separated_by_a_blank_line_still_introduces_the_procedure():
    body = (
        "The charge port door cannot be opened electrically. In that situation, use the "
        "emergency release cable in the trunk:\n\n"
        "1. Open the trunk.\n2. Pull the release cable gently.\n"
    )

    blocks = passage_blocks(body)

    assert [block.kind for block in blocks] == ["paragraph", "steps"]
    assert blocks[1].lead_in == ("In that situation, use the emergency release cable in the trunk:")
    assert [unit.text for unit in blocks[0].units] == [
        "The charge port door cannot be opened electrically."
    ]


def test_a_lead_in_alone_in_its_paragraph_leaves_no_empty_paragraph_behind():
    blocks = passage_blocks("Follow these steps:\n\n1. Open the trunk.\n2. Pull the cable.")

    assert [block.kind for block in blocks] == ["steps"]
    assert blocks[0].lead_in == "Follow these steps:"


def test_options_listed_under_a_step_stay_in_the_procedure():
    blocks = passage_blocks(STEERING)

    assert [block.kind for block in blocks] == ["steps"]
    procedure = blocks[0]
    assert procedure.lead_in == "To change how the steering feels, follow these steps:"
    assert kinds(procedure) == ["step", "step", "substep", "substep", "step"]
    assert [unit.plain for unit in procedure.units] == [
        "Touch Controls > Pedals & Steering.",
        "Choose an option:",
        "Comfort: lighter steering for city driving.",
        "Sport: firmer steering at speed.",
        "Touch Save.",
    ]


def test_a_bullet_list_takes_the_sentence_that_introduces_it():
    body = (
        "Open the charge port door in any of these ways:\n"
        "- Press the rear edge of the door.\n"
        "- Touch Controls > Charging > Open Charge Port."
    )

    (block,) = passage_blocks(body)

    assert block.kind == "items"
    assert block.lead_in == "Open the charge port door in any of these ways:"
    assert [unit.plain for unit in block.units] == [
        "Press the rear edge of the door.",
        "Touch Controls > Charging > Open Charge Port.",
    ]


def test_a_table_gives_its_header_and_rows_and_a_row_pairs_columns_with_values():
    blocks = passage_blocks(TIRE_PRESSURES)

    assert [block.kind for block in blocks] == ["paragraph", "table", "paragraph"]
    table = blocks[1]
    assert table.header == "| Wheel | Front (cold) | Rear (cold) |\n| --- | --- | --- |"
    assert [unit.text for unit in table.units] == [
        "| 18-inch Aero wheel | 290 kPa (42 PSI) | 290 kPa (42 PSI) |",
        "| 19-inch Sport wheel | 290 kPa (42 PSI) | 310 kPa (45 PSI) |",
    ]
    assert table.units[1].plain == (
        "Wheel: 19-inch Sport wheel; Front (cold): 290 kPa (42 PSI); Rear (cold): 310 kPa (45 PSI)"
    )


def test_headings_are_not_quotable_text():
    blocks = passage_blocks("## Charge limit\n\nSet the charge limit to 80% for daily use.")

    assert [[unit.text for unit in block.units] for block in blocks] == [
        ["Set the charge limit to 80% for daily use."]
    ]


def test_plain_units_hold_every_piece_an_answer_can_rest_on():
    pairs = passage_plain_units(RELEASE_CABLE + "\n\n" + TIRE_PRESSURES)
    units = [plain for plain, _ in pairs]
    context = dict(pairs)

    assert "To open it by hand, follow these steps:" in units
    assert "Open the trunk." in units  # a step without its number
    assert "Warning: Never pull the cable while charging is in progress." in units
    assert "| Wheel | Front (cold) | Rear (cold) |" in units
    row = "Wheel: 18-inch Aero wheel; Front (cold): 290 kPa (42 PSI); Rear (cold): 290 kPa (42 PSI)"
    assert row in units
    assert units[-1] == "These pressures also apply when the vehicle is fully loaded."
    # A step is read with the line that introduces its procedure, a row with its table's
    # header and the sentence before the table.
    assert context["Open the trunk."] == "To open it by hand, follow these steps:"
    assert context[row].endswith("| Wheel | Front (cold) | Rear (cold) |")


def test_plain_units_drop_markdown_emphasis():
    assert passage_plain_units("Touch **Save** to keep the `Sport` setting.") == [
        ("Touch Save to keep the Sport setting.", "")
    ]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "Choose a drive mode, e.g. Sport or Comfort. Touch Save.",
            ["Choose a drive mode, e.g. Sport or Comfort.", "Touch Save."],
        ),
        (
            "The reservoir holds approx. 4.5 L of fluid. Top it up in autumn.",
            ["The reservoir holds approx. 4.5 L of fluid.", "Top it up in autumn."],
        ),
        (
            "Pressure changes by about 1.5 PSI. Check it monthly.",
            ["Pressure changes by about 1.5 PSI.", "Check it monthly."],
        ),
        (
            "The Aster is 184.8 in. (4,695 mm) long. It fits most garages.",
            ["The Aster is 184.8 in. (4,695 mm) long.", "It fits most garages."],
        ),
        (
            "The overall length is 184.8 in (4,695 mm). It fits most garages.",
            ["The overall length is 184.8 in (4,695 mm).", "It fits most garages."],
        ),
        (
            "See Fig. 2 for the lift points. Lift only there.",
            ["See Fig. 2 for the lift points.", "Lift only there."],
        ),
        ("Is the charge port open? Close it.", ["Is the charge port open?", "Close it."]),
    ],
    ids=["e.g.", "approx.", "decimal", "in.", "in-with-metric", "fig.", "question"],
)
def test_sentences_split_at_sentence_ends_only(text, sentences):
    assert split_sentences(text) == sentences


def test_steps_bullets_and_rows_are_one_sentence_each():
    text = (
        "Follow these steps:\n"
        "1. Open the trunk. Then find the cable.\n"
        "- Pull it gently. Do not use tools.\n"
        "| Wheel | Front |\n| --- | --- |\n| 18-inch | 42 PSI |"
    )

    assert split_sentences(text) == [
        "Follow these steps:",
        "1. Open the trunk. Then find the cable.",
        "- Pull it gently. Do not use tools.",
        "| Wheel | Front |",
        "| 18-inch | 42 PSI |",
    ]


def test_word_forms_meet_on_one_stem():
    assert terms("charging") == terms("charge") == terms("charged") == terms("charges")
    assert terms("Rotate the tires") == terms("rotating a tire")


def test_terms_drop_function_words_and_keep_numbers():
    assert terms("What is the pressure for the 18 inch wheels?") == [
        "pressur",
        "18",
        "inch",
        "wheel",
    ]


def test_a_line_break_tag_or_a_note_does_not_part_a_procedure_from_its_lead_in():
    body = (
        "New brake pads stop best once they are bedded in. To bed in new brake pads: <br>\n"
        "Note: Only do this on an empty road where it is allowed.\n"
        "1. Drive at about 80 km/h.\n"
        "2. Brake firmly down to 15 km/h, then release.\n"
        "3. Repeat six times, 30 seconds apart."
    )

    blocks = passage_blocks(body)

    assert [block.kind for block in blocks] == ["paragraph", "steps"]
    assert [unit.text for unit in blocks[0].units] == [
        "New brake pads stop best once they are bedded in."
    ]
    assert blocks[1].lead_in == (
        "To bed in new brake pads:\n\nNote: Only do this on an empty road where it is allowed."
    )
    assert kinds(blocks[1]) == ["step", "step", "step"]


def test_a_lead_in_keeps_the_sentence_that_names_the_case_its_procedure_is_for():
    # The Model 3 manual's "Removing Ice From Door Handle": two procedures, one for black
    # handles, one for silver ones, the second's case in the sentence before its lead-in.
    body = (
        "If the door handles are black: Perform the following to remove ice:\n"
        "1. Press the front of the handle.\n"
        "2. Press the rear of the handle.\n\n"
        "If the door handles are silver: You can usually remove the ice with a few bumps of "
        "your fist. Perform the following to remove ice:\n"
        "1. Press the rear of the handle.\n"
        "2. Bump the handle with the bottom of your fist."
    )

    blocks = passage_blocks(body)

    assert [block.kind for block in blocks] == ["steps", "steps"]
    assert (
        blocks[0].lead_in == "If the door handles are black: Perform the following to remove ice:"
    )
    assert blocks[1].lead_in == (
        "If the door handles are silver: You can usually remove the ice with a few bumps of "
        "your fist. Perform the following to remove ice:"
    )
    # A sentence before the lead-in that names no case stays in its paragraph; nor does a
    # clause with a colon in it.
    plain = passage_blocks("The handle can freeze. Perform the following:\n1. Press it.")
    assert [unit.text for unit in plain[0].units] == ["The handle can freeze."]
    clause = passage_blocks(
        "When you lift your foot, the motor works as a generator: it slows the car. "
        "To choose how strongly, touch Controls > Driving:\n- Low\n- Hold"
    )
    assert clause[1].lead_in == "To choose how strongly, touch Controls > Driving:"


def test_bullets_on_the_line_after_a_step_belong_to_it_when_the_procedure_goes_on():
    # The Model 3 manual's "Replacing Cabin Filters": step 3 ends with a full stop, its two
    # bullets say how for each connector, a Caution follows, then step 4.
    body = (
        "To replace the cabin filters:\n"
        "1. Turn off the climate control system.\n"
        "2. Remove the footwell cover and disconnect the two electrical connectors.\n"
        "- For the light, press down on the tab while releasing the connector.\n"
        "- For the speaker, angle the connector so that the small tab releases.\n"
        "CAUTION: Do not pull on the wires.\n"
        "3. Remove the T20 screw that secures the cabin filter cover."
    )

    (procedure,) = passage_blocks(body)

    assert procedure.kind == "steps"
    assert kinds(procedure) == ["step", "step", "substep", "substep", "callout", "step"]
    # After a blank line, or with no step after them, bullets are a list of their own.
    apart = passage_blocks("1. Open the hood.\n- Use both hands.\n- Mind the latch.")
    assert [block.kind for block in apart] == ["steps", "items"]


def test_rows_and_items_carry_the_label_that_names_them():
    body = (
        "| Light | What it means |\n| --- | --- |\n"
        "| AMBER - SOLID <br><br>(action required) | The connector is not fully in. |\n\n"
        "- BLINKING GREEN: Charging.\n"
        "- The light turns off after a while."
    )

    table, items = passage_blocks(body)

    assert table.units[0].label == "AMBER - SOLID <br><br>(action required)"
    assert [unit.label for unit in items.units] == ["BLINKING GREEN", ""]  # a sentence, no name


def test_initials_stand_for_the_names_the_manual_uses():
    vocabulary = Vocabulary.from_texts(
        [
            "Touch Controls > Autopilot > Full Self-Driving (Beta) to turn it on.",
            "Traffic-Aware Cruise Control keeps a set distance. Use Navigate on Autopilot.",
            "Wheel And Tire Terms are listed below. The ABS light means a fault.",
        ]
    )

    assert acronyms("Touch Full Self-Driving")["fsd"] == "Full Self Driving"
    assert vocabulary.spell_out("can FSD be calmer") == "can Full Self Driving be calmer"
    assert vocabulary.spell_out("fsd is too jumpy") == "Full Self Driving is too jumpy"
    assert vocabulary.spell_out("is TACC on?") == "is Traffic Aware Cruise Control on?"
    assert vocabulary.spell_out("NoA") == "NoA"  # neither capitals nor vowel-less
    assert vocabulary.spell_out("NOA lane changes") == "Navigate on Autopilot lane changes"
    # A word with a vowel, in small letters, is a word ("watts", not Wheel And Tire Terms);
    # initials the manual writes itself ("ABS") are its own word.
    assert vocabulary.spell_out("how many watts") == "how many watts"
    assert vocabulary.spell_out("the ABS light") == "the ABS light"


def test_a_word_the_manual_never_uses_weighs_most():
    vocabulary = Vocabulary.from_texts(
        [
            "Inflate the tires to 42 PSI.",
            "Rotate the tires every 12,000 km.",
            "Charge the battery to 80%.",
            "The tires and the battery need little care.",
        ]
    )
    (tire,) = terms("tires")
    (rotate,) = terms("rotate")
    (resale,) = terms("resale")

    assert vocabulary.documents == 4
    assert vocabulary.idf(tire) < vocabulary.idf(rotate) < vocabulary.idf(resale)
    assert not vocabulary.known(resale)


def test_a_shortened_word_is_known_when_it_starts_a_word_of_the_manual():
    vocabulary = Vocabulary.from_texts(["Set the cabin temperature and the configuration."])

    assert vocabulary.known("temp", prefix=True)
    assert vocabulary.known("config", prefix=True)
    assert not vocabulary.known("temp")
    assert not vocabulary.known("tem", prefix=True)  # too short to stand for a word


def test_coverage_weighs_the_rare_terms_of_a_question_more():
    vocabulary = Vocabulary.from_texts(
        [
            "Inflate the tires when cold.",
            "Rotate the tires every 12,000 km.",
            "Replace the tires in pairs.",
            "Clean the cameras.",
        ]
    )
    question = terms("rotate tires")

    assert weighted_coverage(question, terms("Rotate the tires."), vocabulary) == 1.0
    rare_only = weighted_coverage(question, terms("Rotate them."), vocabulary)
    common_only = weighted_coverage(question, terms("The tires."), vocabulary)
    assert rare_only > 0.5 > common_only > 0.0
    assert weighted_coverage(terms("what is it?"), [], vocabulary) == 1.0


def test_a_figure_caption_is_no_unit_and_does_not_break_a_procedure():
    body = (
        "Inflate the tires to the pressures below.\n\n"
        "Figure 1. Tire and Loading Information label.\n\n"
        "To reach the label:\n"
        "1. Open the driver's door.\n\n"
        "*Figure 2. The door pillar.*\n\n"
        "2. Read the label on the pillar.\n\n"
        "*Figure: Where the label is.*\n\n"
        "Figure 3 shows where the label is on left-hand drive vehicles, and the label itself "
        "gives the pressures in kPa and PSI for every wheel and tire the vehicle was built with."
    )

    blocks = passage_blocks(body)

    assert [block.kind for block in blocks] == ["paragraph", "steps", "paragraph"]
    assert kinds(blocks[1]) == ["step", "step"]
    assert blocks[1].lead_in == "To reach the label:"
    texts = [unit.text for block in blocks for unit in block.units]
    assert not any("Loading Information" in text or "door pillar." in text for text in texts)
    assert not any("Where the label is" in text for text in texts)
    # A sentence that starts with "Figure 3" and goes on is prose, not a caption.
    assert blocks[2].units[0].text.startswith("Figure 3 shows where the label is")


TRACK_MODE = """\
To turn on Track Mode, shift into Park and follow these steps:
1. Touch Controls > Pedals & Steering > Track Mode.
When enabled, TRACK displays on the touchscreen above the driving speed.
Note: Track Mode is available only on Performance vehicles.
2. If desired, customize the Track Mode settings.
3. Shift into Drive.
The car status area shows the temperatures of the motors and brakes.

Track Mode turns off when you shift into Park again."""


def test_text_on_the_line_after_a_step_goes_on_with_it_when_the_next_step_follows():
    # A markdown "lazy" line: the Model 3 manual's Track Mode and Wi-Fi procedures, whose quote
    # stopped after step 1, as the line after it ended the procedure.
    blocks = passage_blocks(TRACK_MODE)

    assert [block.kind for block in blocks] == ["steps", "paragraph", "paragraph"]
    assert kinds(blocks[0]) == ["step", "text", "callout", "step", "step"]
    assert blocks[0].units[1].text == (
        "When enabled, TRACK displays on the touchscreen above the driving speed."
    )
    # After the last step no step follows: the text is prose of its own, as before.
    assert blocks[1].units[0].text.startswith("The car status area shows")
    assert blocks[2].units[0].text.startswith("Track Mode turns off")


def test_text_after_a_step_ends_the_procedure_when_the_next_step_is_not_the_following_one():
    body = (
        "To pair a key:\n1. Touch Controls > Locks > Keys.\nA new procedure starts below.\n"
        "1. Open the app.\n2. Touch Keys."
    )

    blocks = passage_blocks(body)

    assert [block.kind for block in blocks] == ["steps", "paragraph", "steps"]
    assert kinds(blocks[0]) == ["step"]
