"""Quote-first answers: the smallest span of the passages that answers a question (no database).

Question-term weights come from the bundled sample manual, chunked as ingestion chunks it; the
embedding model is the real one, loaded once for the module.
"""

from __future__ import annotations

import re

import pytest

from chat.asking import (
    amount_units,
    asked_terms,
    asks_for_a_figure_alone,
    asks_for_meaning,
    asks_for_means,
    asks_for_procedure,
    asks_for_quantity,
    asks_for_setting,
    condition_terms,
    counted,
    named_codes,
    named_sides,
    states_absence,
)
from chat.declines import off_the_point
from chat.labels import below_best, label_shares
from chat.owner_words import owner_words, with_manual_names
from chat.pointers import is_pointer, pointed_at, referred_to
from chat.quoting import (
    QuoteSettings,
    compose_quote,
)
from chat.spans import Piece, Scored, Span, render, spans_around, without_leading_pointer
from chat.text_units import (
    Vocabulary,
    is_footnote,
    passage_blocks,
    split_sentences,
    term_set,
    terms,
    weighted_coverage,
)
from tests.chat.passages import RELEASE_LEAD_IN, RELEASE_SITUATION, RELEASE_STEPS, passage

RELEASE_CABLE = (
    f"{RELEASE_SITUATION} {RELEASE_LEAD_IN}\n\n"
    + "\n".join(RELEASE_STEPS)
    + "\n\nCaution: Only use the release cable when the vehicle has no power or when alert "
    "CHG-055 appears and the connector will not unlock in the normal way."
)

TIRE_HEADER = "| Wheel | Tire size | Front (cold) | Rear (cold) |\n| --- | --- | --- | --- |"
TIRE_ROWS = [
    "| 18-inch Aero wheel | 235/50 R18 101V | 290 kPa (42 PSI) | 290 kPa (42 PSI) |",
    "| 19-inch Sport wheel | 245/45 R19 102W | 290 kPa (42 PSI) | 310 kPa (45 PSI) |",
    "| 20-inch Performance wheel | 245/40 R20 99Y | 300 kPa (44 PSI) | 330 kPa (48 PSI) |",
    "| 18-inch winter wheel | 235/50 R18 101H | 280 kPa (41 PSI) | 280 kPa (41 PSI) |",
    "| 17-inch compact spare | T145/80 R17 | 420 kPa (60 PSI) | 420 kPa (60 PSI) |",
]
TIRE_PRESSURES = (
    "Inflate the tires to the cold pressures below.\n\n"
    + TIRE_HEADER
    + "\n"
    + "\n".join(TIRE_ROWS)
    + "\n\nThese pressures also apply when the vehicle is fully loaded."
)

FROZEN_SCREEN = (
    "If the touchscreen stops responding or goes blank, restart it. Shift into Park, then "
    "press and hold both scroll wheels on the steering wheel for about 10 seconds, until the "
    "screen turns black. The Corvan logo appears and the touchscreen is ready again after about "
    "30 seconds. Restarting the touchscreen does not affect your settings. If the touchscreen "
    "still does not respond, power off the vehicle from Controls > Safety > Power Off and wait "
    "at least two minutes without touching the brake pedal, the doors or the touchscreen. Press "
    "the brake pedal to power on again. If the screen stays blank after a power cycle, the 12 V "
    "battery may be low; see Vehicle is completely unresponsive. Contact Corvan Service if the "
    "problem comes back every day, and describe what you were doing when it froze, so that the "
    "logs can be read."
)

KEY_FOB_BATTERY = "The key fob uses a CR2032 coin cell battery. Replace it about every year."
OPENING_THE_FOB = (
    "To open the key fob, pry the cover off with a plastic card at the notch. Snap the cover "
    "back on until it clicks."
)

# The sentence that answers stands before the one that matches the question best.
WINTER_CHAINS = (
    "For driving on snow and ice, Corvan recommends winter tires on all four wheels, in the "
    "same size and load rating as the original tires. Snow chains may be fitted only on "
    "18-inch wheels with 235/50 R18 tires, and only on the rear tires. Use low-profile chains "
    "with no more than 9 mm of clearance, and do not exceed 50 km/h with chains fitted.\n\n"
    "Warning: Do not fit snow chains on 19-inch wheels. There is not enough clearance, and the "
    "chains can damage the suspension, brake lines and body."
)
# A bullet that matches the question, and the one after it that says what to do.
TPMS_AFTER_INFLATING = (
    "The alert clears once the tire pressure monitoring system measures every tire within "
    "20 kPa of its recommended cold pressure.\n\n"
    "- The alert and the tire pressure light may still be on right after you have inflated "
    "the tires, but both clear once you have driven a short distance.\n"
    "- You may need to drive faster than 25 km/h (15 mph) for at least 10 minutes before the "
    "system reports the new pressures.\n"
    "- Tire pressures read higher when the tires are warm, so check them cold.\n"
    "- A flashing light means a fault in the system itself; see Tire pressure monitoring."
)
DIMENSIONS = (
    "| Dimension | Metric | Imperial |\n| --- | --- | --- |\n"
    "| Overall length | 4,695 mm | 184.8 in |\n"
    "| Overall width, excluding mirrors | 1,890 mm | 74.4 in |\n"
    "| Overall width, mirrors unfolded | 2,105 mm | 82.9 in |\n"
    "| Overall height | 1,610 mm | 63.4 in |\n"
    "| Wheelbase | 2,850 mm | 112.2 in |\n"
    "| Ground clearance | 175 mm | 6.9 in |\n"
    "| Turning circle (curb to curb) | 11.2 m | 36.7 ft |\n\n"
    "Figure 1. Exterior dimensions.\n\n"
    "Height is measured at curb weight with 18-inch wheels."
)


RELEASE_PASSAGE = passage(
    1, "Charging > Manually releasing the charge port door and connector", RELEASE_CABLE, 0.62
)
TIRES_PASSAGE = passage(1, "Tires and Wheels > Recommended tire pressures", TIRE_PRESSURES, 0.6)
SCREEN_PASSAGE = passage(1, "Troubleshooting > Touchscreen is frozen or blank", FROZEN_SCREEN, 0.6)


@pytest.mark.parametrize(
    "question",
    [
        "How do I open the charge port when the car has no power?",
        "my car is dead, how can i get the charging cable out?",
    ],
)
def test_a_how_to_question_quotes_the_whole_procedure_with_its_warning(question, embed, vocabulary):
    other = passage(2, "Tires and Wheels > Recommended tire pressures", TIRE_PRESSURES, 0.35)

    quote = compose_quote(question, [RELEASE_PASSAGE, other], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    # "In that situation, ..." comes with the sentence that says which situation.
    assert quote.text == "\n\n".join([RELEASE_SITUATION, RELEASE_LEAD_IN, "\n".join(RELEASE_STEPS)])
    assert quote.numbers == [1]
    assert quote.words == len(quote.text.split())


@pytest.mark.parametrize(
    ("question", "row", "pressure"),
    [
        ("what psi for the rear tires on the 20 inch wheels?", 2, "330 kPa (48 PSI)"),
        ("What pressure do I put in the compact spare?", 4, "420 kPa (60 PSI)"),
    ],
)
def test_a_table_row_is_quoted_under_the_tables_header(question, row, pressure, embed, vocabulary):
    quote = compose_quote(question, [TIRES_PASSAGE], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert quote.text.startswith(TIRE_HEADER + "\n")
    quoted_rows = quote.text.splitlines()[2:]
    assert TIRE_ROWS[row] in quoted_rows
    assert pressure in TIRE_ROWS[row]
    assert set(quoted_rows) <= set(TIRE_ROWS)  # rows only, no prose between them
    assert len(quoted_rows) < len(TIRE_ROWS)  # not the whole table


@pytest.mark.parametrize(
    ("question", "holds"),
    [
        ("how long do I hold the scroll wheels to restart the screen", "10 seconds"),
        ("the screen stays blank even after restarting", "12 V battery may be low"),
        ("Who do I contact if the screen keeps freezing?", "Contact Corvan Service"),
    ],
)
def test_a_prose_quote_holds_the_answer_within_the_word_budget(question, holds, embed, vocabulary):
    quote = compose_quote(question, [SCREEN_PASSAGE], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert holds in quote.text
    assert quote.words <= QuoteSettings().run_on_budget < len(FROZEN_SCREEN.split())
    # Whole sentences of the passage, in the passage's order.
    sentences = split_sentences(quote.text)
    assert all(sentence in FROZEN_SCREEN for sentence in sentences)
    positions = [FROZEN_SCREEN.index(sentence) for sentence in sentences]
    assert positions == sorted(positions)


DASHCAM_INTRO = (
    "Dashcam records video of the Aster's surroundings while you drive, from the cameras "
    "around the car. Use it to keep a record of incidents or other notable events on the road, "
    "as you would with a dashcam fitted to any other car that you have owned before. The "
    "Dashcam icon is in the app launcher, and you can add it to the bottom bar."
)
DASHCAM_QUESTION = "can i watch my dashcam footage right on the car screen?"


def dashcam_quote(after: str, embed, vocabulary, settings: QuoteSettings | None = None):
    body = f"{DASHCAM_INTRO} {after} Recordings are kept on the USB drive and never sent to Corvan."
    quote = compose_quote(
        DASHCAM_QUESTION,
        [passage(1, "Dashcam", body, 0.6)],
        embed=embed,
        vocabulary=vocabulary,
        settings=settings,
    )
    assert quote is not None
    return quote


def test_a_quote_that_stops_mid_paragraph_brings_the_sentence_after_it(embed, vocabulary):
    viewer = "When the Aster is in Park, touching the Dashcam icon opens the Viewer."

    quote = dashcam_quote(viewer, embed, vocabulary)
    without = dashcam_quote(viewer, embed, vocabulary, QuoteSettings(run_on_budget=0))

    # Growing stops at the target length, one sentence short of the answer ...
    assert without.text == DASHCAM_INTRO
    # ... which the sentence after it completes, within the run-on budget.
    assert quote.text == f"{DASHCAM_INTRO} {viewer}"
    assert QuoteSettings().word_budget < quote.words <= QuoteSettings().run_on_budget


@pytest.mark.parametrize(
    "after",
    [
        "For more information, see Viewing Video Recordings.",  # only sends the reader elsewhere
        "When the Aster is in Park, touching the Dashcam icon opens the Viewer, where clips are "
        "listed by place and time and can be played, paused, rewound or deleted one by one.",
    ],
)
def test_the_sentence_after_a_quote_stays_out_when_it_points_elsewhere_or_is_too_long(
    after, embed, vocabulary
):
    assert dashcam_quote(after, embed, vocabulary).text == DASHCAM_INTRO


def test_a_second_passage_joins_when_it_answers_what_the_first_does_not(embed, vocabulary):
    passages = [
        passage(1, "Keys > Key fob", KEY_FOB_BATTERY, 0.6),
        passage(2, "Keys > Key fob > Opening the key fob", OPENING_THE_FOB, 0.58),
    ]

    quote = compose_quote(
        "What battery does the key fob take and how do I open it?",
        passages,
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.numbers == [1, 2]
    assert quote.parts == [
        {"n": 1, "text": KEY_FOB_BATTERY},
        {"n": 2, "text": OPENING_THE_FOB},
    ]
    assert quote.text == f"{KEY_FOB_BATTERY}\n\n{OPENING_THE_FOB}"


def test_a_second_passage_stays_out_when_the_first_answers_the_question(embed, vocabulary):
    passages = [
        passage(1, "Keys > Key fob", KEY_FOB_BATTERY, 0.6),
        passage(2, "Keys > Key fob > Opening the key fob", OPENING_THE_FOB, 0.58),
    ]

    quote = compose_quote(
        "What battery does the key fob take?", passages, embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.numbers == [1]
    assert quote.text == KEY_FOB_BATTERY


@pytest.mark.parametrize(
    "overlapping",
    [f"{KEY_FOB_BATTERY} {OPENING_THE_FOB}", f"{KEY_FOB_BATTERY}\n\n{OPENING_THE_FOB}"],
    ids=["same-paragraph", "next-paragraph"],
)
def test_overlapping_passages_never_quote_a_sentence_twice(overlapping, embed, vocabulary):
    # Chunks overlap: the second passage repeats the first one's sentences.
    passages = [
        passage(1, "Keys > Key fob", KEY_FOB_BATTERY, 0.6),
        passage(2, "Keys > Key fob", overlapping, 0.58),
    ]

    quote = compose_quote(
        "What battery does the key fob take and how do I open it?",
        passages,
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    sentences = [" ".join(s.split()) for s in split_sentences(quote.text)]
    assert len(sentences) == len(set(sentences))
    assert "CR2032" in quote.text and "pry the cover off" in quote.text


def test_passages_without_text_give_no_quote(embed, vocabulary):
    empty = passage(1, "Charging", "## Charging\n\n", 0.5)

    assert compose_quote("How do I charge?", [empty], embed=embed, vocabulary=vocabulary) is None


@pytest.mark.parametrize(
    "question",
    [
        "How long does it take to charge to 80%?",
        "what psi for 18 inch wheels",
        "How often should I rotate the tires?",
        "What's the towing capacity?",
        "what size are the tires",
        "When should I replace the wiper blades?",
        "At what temperature does the battery heat itself?",
        "how tight do the license plate screws go",  # a torque
        "what is the cargo volume",
        "what's the maximum load on the roof",
        "whats the lowest the cabin can be set to",
    ],
)
def test_a_question_asking_for_an_amount_is_recognised(question):
    assert asks_for_quantity(question)


@pytest.mark.parametrize(
    "question",
    [
        "Where is the 12 V battery?",
        "How do I open the charge port?",
        "Why is my TPMS light flashing?",
        "What is Sentry Mode?",
    ],
)
def test_a_question_not_asking_for_an_amount_is_not_taken_for_one(question):
    assert not asks_for_quantity(question)


@pytest.mark.parametrize(
    "question", ["whats the psi for my tires, im on 18s", "whats the tire pressure for 19s"]
)
def test_an_amount_question_typed_without_an_apostrophe_is_recognised(question):
    assert asks_for_quantity(question)


@pytest.mark.parametrize(
    "question",
    [
        "How do I open the charge port?",
        "how to reset the touchscreen",
        "how can u fold the mirrors",
        "What should I do if the car won't charge?",
        "Is there a way to leave the AC on for my dog?",
        "What are the steps to replace the cabin filter?",
        # A fault described asks what to do about it.
        "door handle frozen shut",
        "the trunk wont open",
        "charge cable is stuck in the port",
        "bluetooth not working",
        # what to do about a situation: "anything I should do first?"
        "going through a car wash, anything i should do first?",
        "is there anything else I need to do?",
    ],
)
def test_a_question_asking_how_to_do_something_is_recognised(question):
    assert asks_for_procedure(question)


@pytest.mark.parametrize(
    "question",
    [
        "Where is the 12 V battery?",
        "What does CHG-014 mean?",
        "How long does it take to charge?",
        "how does regenerative braking work",
    ],
)
def test_a_question_not_asking_how_to_do_something_is_not_taken_for_one(question):
    assert not asks_for_procedure(question)


def test_the_sentence_that_answers_is_quoted_when_it_stands_before_the_best_match(
    embed, vocabulary
):
    chains = passage(1, "Cold Weather > Winter tires and snow chains", WINTER_CHAINS, 0.7)

    quote = compose_quote(
        "can i put chains on my 19 inch rims", [chains], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert "only on 18-inch wheels" in quote.text
    assert "Do not fit snow chains on 19-inch wheels" in quote.text
    assert quote.words <= QuoteSettings().word_budget


def test_a_bullet_brings_the_bullet_after_it_that_says_what_to_do(embed, vocabulary):
    tpms = passage(1, "Alerts > TPM-001 Tire pressure low", TPMS_AFTER_INFLATING, 0.6)

    quote = compose_quote(
        "pumped up all my tires but the pressure light wont go off",
        [tpms],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "both clear once you have driven a short distance" in quote.text
    assert "25 km/h (15 mph) for at least 10 minutes" in quote.text
    assert "flashing light" not in quote.text  # the list is not quoted whole


def test_how_long_the_car_is_quotes_the_length_row(embed, vocabulary):
    dimensions = passage(1, "Specifications > Dimensions", DIMENSIONS, 0.36)

    quote = compose_quote(
        "How long is the car in inches? need to know if it fits my garage",
        [dimensions],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "| Overall length | 4,695 mm | 184.8 in |" in quote.text


@pytest.mark.parametrize(
    ("question", "term"),
    [
        ("How long is the car, in inches?", "length"),
        ("how wide is the aster with the mirrors out", "width"),
        ("how heavy is the long range", "weight"),
        ("i was like 3 min late", "minutes"),
        ("charging stopped after 2 hrs", "hours"),
    ],
)
def test_an_owners_words_for_a_measure_are_read_as_the_manuals(question, term):
    assert terms(term)[0] in asked_terms(question)


@pytest.mark.parametrize(
    "question", ["How long does it take to charge?", "how long until the alert clears"]
)
def test_how_long_something_takes_is_not_read_as_a_length(question):
    assert terms("length")[0] not in asked_terms(question)


def test_no_candidate_quote_ends_on_a_sentence_that_introduces_what_it_leaves_out():
    # The chunk stops where the procedure starts: "To install the trailer hitch:", then the next
    # page's text. A window of sentences may hold the line, never end on it.
    blocks = passage_blocks(
        "Keep the dust cover over the hitch housing whenever the hitch is removed, so that no "
        "dirt or water gets in. The maximum permissible rear overhang for the coupling point "
        "is 1053 mm, measured from the rear bumper. The trailer hitch assembly is attached to "
        "the body of the vehicle with 6 nuts.\n\nTo install the trailer hitch:\nThe Aster "
        "supports approved roof racks mounted with the Corvan roof rack accessory only."
    )
    units = [unit for block in blocks for unit in block.units]
    assert "To install the trailer hitch:" in [unit.text for unit in units]
    scores = {(0, unit.block, unit.index): 1.0 for unit in units}

    for anchor in units:
        item = Scored(passage=0, unit=anchor, score=1.0)
        for span in spans_around(item, blocks, scores, QuoteSettings()):
            assert not render(span, blocks, QuoteSettings()).rstrip().endswith(":")


AIRBAG_INDICATOR = (
    "Passenger airbag off indicator: before driving with a child on the front passenger seat, "
    "always check that the passenger front airbag is OFF. When the passenger front airbag is "
    "OFF, it will not inflate in a collision. This indicator also displays when the seat is "
    "unoccupied."
)
BELT_REMINDER = (
    "The seat belt reminder alerts you if a seat belt for an occupied seat is unbuckled. If the "
    "reminder stays on, remove any heavy objects (such as a briefcase) from an unoccupied seat. "
    "You can temporarily disable the seat belt reminder of a rear seating position: touch the "
    "seat on the reminder popup. The reminder stays off for the current drive only."
)


def test_a_word_an_owner_runs_together_is_found_where_the_manual_writes_two():
    assert {terms("seatbelt")[0], terms("dashcam")[0]} <= term_set(
        "Fasten your seat belts. Dash cam footage is saved to the USB drive."
    )
    assert terms("seatbelt")[0] not in set(terms("Fasten your seat belts."))


def test_an_owners_compound_word_finds_the_passage_that_writes_it_in_two(embed, vocabulary):
    # "seatbelt" is a word the sample manual never uses, so the question's rarest term: found
    # in "seat belt", it tells the passages apart. Read as a word of its own, the airbag
    # passage (retrieved first, and as close in meaning) was quoted.
    passages = [
        passage(1, "Airbags > Airbag status indicator", AIRBAG_INDICATOR, 0.51),
        passage(2, "Seat Belts > Seat belt reminders", BELT_REMINDER, 0.49),
    ]

    quote = compose_quote(
        "my laptop bag on the back seat keeps setting off the seatbelt chime. can i shut it off",
        passages,
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.numbers[0] == 2
    assert "current drive only" in quote.text


CHARGE_LIGHT_ROWS = passage(
    1,
    "Charging > Charge port light",
    "| Color of the charge port light | What it means | What to do |\n| --- | --- | --- |\n"
    "| AMBER - SOLID <br><br>(action required) | The connector is not fully plugged in to the "
    "charge port. | Push the connector fully in. If the light stays amber, try another cable. |\n"
    "| AMBER - BLINKING <br><br>(action required) | The Aster charges at reduced current "
    "because the connector is not fully plugged in. | Push the connector fully in. |",
    0.61,
)
CHARGE_LIGHT_LIST = passage(
    2,
    "Charging > Charge port light",
    "The charge port light shows what charging is doing:\n\n"
    "- WHITE: The charge port door is open and ready for a connector.\n"
    "- BLUE: A connector is plugged in, but the Aster is not charging because a charging "
    "session is scheduled for later.\n"
    "- BLINKING GREEN: Charging is in progress.\n"
    "- SOLID GREEN: Charging is complete.\n"
    "- SOLID AMBER: The connector is not fully plugged in.\n"
    "- RED: A fault stopped charging. Check the touchscreen for an alert.",
    0.56,
)


def test_a_row_or_item_is_picked_by_the_name_the_question_gives_it(embed, vocabulary):
    # "Not fully plugged in" reads closest to "plugged in ... not charging"; the owner named the
    # light, and the only one named blue says why it does not charge.
    question = "plugged in at home, charge port light is solid blue but its not charging??"
    passages = [CHARGE_LIGHT_ROWS, CHARGE_LIGHT_LIST]

    quote = compose_quote(question, passages, embed=embed, vocabulary=vocabulary)
    unnamed = compose_quote(
        question,
        passages,
        embed=embed,
        vocabulary=vocabulary,
        settings=QuoteSettings(label_weight=0.0),
    )

    assert quote is not None and unnamed is not None
    assert "scheduled for later" in quote.text
    assert "AMBER - SOLID" not in quote.text
    assert "AMBER - SOLID" in unnamed.text  # what the quote was without names


def test_a_row_is_picked_by_the_manual_name_for_the_owners_word(embed, vocabulary):
    # "Orange" is the owner's word for the manual's "amber" (chat.owner_words): the row
    # labelled AMBER - BLINKING is the one the question names, not the Note that speaks of "a
    # red or amber light" and reads closer to it.
    note = passage(1, "Charge port status lights", CHARGE_PORT_NOTE, 0.66)
    rows = passage(
        2,
        "Charge port status lights",
        "| Color of the charge port light | What it means | What to do |\n| --- | --- | --- |\n"
        "| GREEN - BLINKING <br><br>(normal behavior) | Charging is in progress. | Nothing. |\n"
        "| AMBER - SOLID <br><br>(action required) | The connector is not fully plugged in to "
        "the charge port. | Push the connector fully in. |\n"
        "| AMBER - BLINKING <br><br>(action required) | The Aster charges at a reduced current "
        "because the connector is not fully plugged in. | Push the connector fully in. |",
        0.6,
    )

    quote = compose_quote(
        "what does blinking orange mean on the charge port light",
        [note, rows],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.numbers[0] == 2
    assert "AMBER - BLINKING" in quote.text
    assert "GREEN - BLINKING" not in quote.text


def test_a_word_every_label_shares_picks_no_row(vocabulary):
    settings = QuoteSettings()
    cargo = passage_blocks(
        "| Description | Total |\n| --- | --- |\n"
        "| Vehicle capacity weight | 430 kg |\n"
        "| Occupant weight (5 x 68 kg) | 340 kg |\n"
        "| Available cargo weight | 90 kg |"
    )
    lights = passage_blocks(CHARGE_LIGHT_LIST.body)

    sizes = {"label_words": settings.label_words, "labelled": settings.labelled}

    luggage = label_shares([cargo], set(terms("luggage weight")), vocabulary, **sizes)
    assert below_best(luggage) == {}
    mismatch = below_best(
        label_shares([lights], set(terms("solid blue light")), vocabulary, **sizes)
    )
    names = {lights[block].units[unit].label: share for (_, block, unit), share in mismatch.items()}
    assert names["BLUE"] == 0.0  # the best-named loses nothing
    assert 0.0 < names["SOLID AMBER"] < names["RED"] == 1.0 - min(mismatch.values()) == 1.0


def test_a_procedure_that_goes_on_from_the_sentence_before_is_quoted_with_it(embed, vocabulary):
    body = (
        "If the connector does not unlock with the button on its handle, the touchscreen or "
        "the Corvan Connect app, press and hold the rear trunk button on the key fob for two "
        "seconds. If it still does not release, follow these steps:\n"
        "1. Make sure the Aster is not charging.\n"
        "2. Open the rear trunk and pull the release cable down.\n"
        "3. Pull the connector out of the charge port."
    )
    stuck = passage(1, "Charging > Connector stuck in the charge port", body, 0.6)

    quote = compose_quote(
        "charge cable is stuck, the button on the handle does nothing and the app unlock "
        "doesnt work either",
        [stuck],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.text.startswith("If the connector does not unlock")
    assert "If it still does not release, follow these steps:" in quote.text
    assert quote.text.endswith("3. Pull the connector out of the charge port.")


@pytest.mark.parametrize(
    ("question", "units"),
    [
        ("what temp does cabin overheat protection kick in at", {"deg"}),
        ("how far away can i stand and still use summon", {"ft", "m", "mi"}),
        ("how long is the car", {"in", "mm"}),
        ("how long do i leave the jump pack on", {"s", "min"}),
        ("what psi should the tires be", {"psi", "kpa"}),
        ("how much weight can i put in the front trunk", {"lb", "kg"}),
        ("how big is the trunk", {"l", "in", "mm"}),
        ("what is the cargo volume", {"l"}),
        ("what's the coldest i can set the cabin", {"deg"}),
    ],
)
def test_a_question_for_an_amount_asks_for_it_in_units_of_what_it_names(question, units):
    assert units <= amount_units(question)
    assert not amount_units(question) & {"%", "v", "a"}


@pytest.mark.parametrize(
    "question",
    ["what is the max charging speed", "how fast does the aster charge", "how fast can i charge"],
)
def test_how_fast_a_car_charges_is_asked_in_power_current_or_time(question):
    # Not only in km/h: "DC fast charging, peak: 150 kW" answers it.
    assert {"kw", "a", "min", "h"} <= amount_units(question)


def test_how_fast_a_car_drives_is_asked_in_a_speed():
    assert amount_units("whats the top speed") == {"mph", "km/h"}


def test_a_question_asking_how_to_asks_for_no_unit():
    assert amount_units("how do i open the charge port door") == frozenset()


def test_the_owners_own_figures_are_not_what_is_asked_for():
    assert "%" not in amount_units("how long does it take to charge from 10% to 80%")
    assert "deg" not in amount_units("its 20 degrees out, how long should i precondition")


def test_the_number_in_the_unit_asked_for_wins_over_numbers_beside_it(embed, vocabulary):
    # Both passages hold numbers; only one holds a temperature.
    guard = passage(
        1,
        "Climate > Cabin Heat Guard",
        "Cabin Heat Guard runs for up to 12 hours after you leave the Aster, or until the "
        "battery drops below 20%, whichever comes first. Using it takes energy from the "
        "battery, which may reduce range.",
        0.74,
    )
    settings = passage(
        2,
        "Climate > Cabin Heat Guard",
        "To turn it on, touch Controls > Safety > Cabin Heat Guard and choose:\n\n"
        "- On: The air conditioning runs when the cabin is hotter than 40 degrees C "
        "(105 degrees F).\n"
        "- No A/C: Only the fan runs when the cabin is hotter than 40 degrees C.\n"
        "- Off: Cabin Heat Guard is off.",
        0.72,
    )
    question = "what temp does cabin heat guard kick in at"

    quote = compose_quote(question, [guard, settings], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert "105 degrees F" in quote.text


LIFT_POINTER = passage(
    1,
    "Wheels and Tires > Wheel specifications",
    "| Wheel | Width (in) | Offset (mm) |\n| --- | --- | --- |\n| 18-inch | 8.5 | 40 |\n\n"
    "Note: For instructions on how to jack or lift the Aster, see Jacking and Lifting.",
    0.49,
)
LIFT_POINTS = passage(
    2,
    "Jacking and Lifting > Lifting procedure",
    "Warning: Never work under a vehicle that is not supported correctly.\n\n"
    "Caution: Do not lift the Aster from under the battery or the side sills. Place the lift "
    "arm pads under the four marked lift points only.",
    0.42,
)
TOWING = passage(
    3,
    "Towing > Approved methods",
    "Tow the Aster on a flatbed truck, or with the front wheels lifted and the rear wheels on "
    "dollies. Never lift the vehicle by its bumpers.",
    0.43,
)


def test_a_sentence_that_only_points_elsewhere_is_followed_to_the_section_it_names(
    embed, vocabulary
):
    # The pointer shares the question's words ("lift") and its passage was retrieved first,
    # but tells the owner nothing; the section it names, retrieved too, answers.
    question = "tire shop wants to put it on a lift, where can they lift it from"

    quote = compose_quote(
        question, [LIFT_POINTER, TOWING, LIFT_POINTS], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.numbers[0] == LIFT_POINTS.number
    assert "marked lift points" in quote.text
    assert "see Jacking and Lifting" not in quote.text
    # Without the pointer's penalty and what it gives the section it names, the pointer is
    # what the owner would read.
    unfollowed = compose_quote(
        question,
        [LIFT_POINTER, TOWING, LIFT_POINTS],
        embed=embed,
        vocabulary=vocabulary,
        settings=QuoteSettings(pointer_penalty=0.0),
    )
    assert unfollowed is not None
    assert "see Jacking and Lifting" in unfollowed.text


@pytest.mark.parametrize(
    "sentence",
    [
        "Note: For instructions on how to jack or lift the Aster, see Jacking and Lifting.",
        "For more information, see the installation guide for your Wall Connector.",
        "See Sentry Mode for more information.",
        "Instructions for changing the battery are provided in Replacing the Key Fob Battery.",
    ],
)
def test_a_pointer_to_another_section_is_recognised_with_the_section(sentence):
    assert is_pointer(sentence)
    assert pointed_at(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "The seat heaters turn off after 30 minutes (see Seats).",
        "Refer to the label on the door pillar for the tire pressures.",
        "Seeing the road clearly matters: keep the windshield clean.",
    ],
)
def test_a_sentence_with_content_is_no_pointer(sentence):
    assert not is_pointer(sentence)
    assert pointed_at(sentence) is None


def test_a_sentence_that_refers_to_a_section_in_brackets_names_it():
    assert referred_to("The seat heaters turn off after 30 minutes (see Seats).") == "seats"
    assert (
        referred_to("If it is unresponsive, you can restart it (see Restarting the Touchscreen).")
        == "restarting the touchscreen"
    )
    # A bracket in the middle of the sentence, and a pointer, are none.
    assert referred_to("Turn on child locks (see Child Locks) before a long trip.") is None
    assert referred_to("See Sentry Mode for more information.") is None


RESTART_SUMMARY = passage(
    1,
    "Touchscreen > Overview",
    "The touchscreen shows the map, media and climate controls. If the touchscreen is "
    "unresponsive or shows unusual behavior, you can restart it (see Restarting the "
    "Touchscreen).",
    0.6,
)
RESTART_STEPS = passage(
    2,
    "Restarting the Touchscreen",
    "You can restart the touchscreen when it stops responding.\n\n"
    "1. Shift into Park.\n"
    "2. Hold down both scroll buttons on the steering wheel until the screen turns black.\n"
    "3. Wait about 30 seconds for the Aster logo and the screen to come back.",
    0.58,
)


def test_a_section_the_best_sentence_refers_to_is_quoted_for_it(embed, vocabulary):
    # The Model 3 manual's Touchscreen page says the touchscreen can be restarted and where
    # the manual tells how; that section was retrieved too, and it is what the owner needs.
    question = "how do i reset the touchscreen, it is unresponsive"

    quote = compose_quote(
        question, [RESTART_SUMMARY, RESTART_STEPS], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.numbers[0] == RESTART_STEPS.number
    assert "1. Shift into Park." in quote.text
    # A step's reference is for a case within its procedure, which answers: not followed.
    steps = passage(
        1,
        "Touchscreen > Overview",
        "If the map does not load:\n\n"
        "1. Check that the car is in Park and connected to Wi-Fi.\n"
        "2. If the touchscreen is unresponsive, restart it (see Restarting the Touchscreen).",
        0.6,
    )
    kept = compose_quote(question, [steps, RESTART_STEPS], embed=embed, vocabulary=vocabulary)
    assert kept is not None
    assert kept.numbers[0] == steps.number
    # Nothing is given where the best sentence refers to no retrieved section.
    alone = compose_quote(question, [RESTART_SUMMARY], embed=embed, vocabulary=vocabulary)
    assert alone is not None
    assert "see Restarting the Touchscreen" in alone.text


def test_an_owners_past_tense_is_read_as_the_manuals_word():
    # "I forgot my PIN" is what the manual's "If you forget your PIN" answers; a stemmer
    # leaves irregular forms apart. A form that is another word in a manual stays as written.
    assert terms("forgot my pin") == terms("forget my pin")
    assert terms("the handle froze") == terms("the handle freezes")
    assert terms("worn tires") == terms("tire wear")[::-1]
    assert terms("left mirror") != terms("leave mirror")


DOOR_UNLOCK = passage(
    1,
    "Doors > Unlocking",
    "The driver door unlocks only if a key is present on the driver side of the vehicle and "
    "not the passenger side. To unlock the remaining doors, press the button at the top of "
    "the interior driver door handle, or use the mobile app.\n\n"
    "Enabling Controls > Locks > Driver Door Unlock Mode only unlocks the driver door when you "
    "first unlock the Aster.",
    0.62,
)


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("can i make it only unlock the drivers door when i walk up", True),
        ("is there a setting so the mirrors fold when i lock", True),
        ("what do i turn on so it stays in neutral in a car wash", True),
        ("the seatbelt chime keeps going, can i shut it off", True),
        ("how much weight can the roof take", False),
        ("why does the car hum when parked", False),
    ],
)
def test_a_question_asking_for_a_setting_is_recognised(question, asks):
    assert asks_for_setting(question) is asks


def test_a_question_asking_for_a_setting_quotes_where_the_setting_is(embed, vocabulary):
    question = "can i make it only unlock the drivers door when i walk up? dont like all 4 opening"

    quote = compose_quote(question, [DOOR_UNLOCK], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert "Controls > Locks > Driver Door Unlock Mode" in quote.text


@pytest.mark.parametrize(
    ("lead_in", "with_situation"),
    [
        ("In that situation, silence it from the mobile app:", True),
        ("In such cases, silence it from the mobile app:", True),
        ("To silence it from the mobile app:", False),
        ("If this happens often, silence it from the mobile app:", False),
    ],
)
def test_a_lead_in_that_names_no_situation_of_its_own_comes_with_the_sentence_that_does(
    lead_in, with_situation, embed, vocabulary
):
    situation = "The alarm sounds when a door is opened and no key is detected nearby."
    body = f"{situation}\n\n{lead_in}\n\n1. Open the mobile app.\n2. Touch Security > Alarm Off."
    alarm = passage(1, "Security > Alarm", body, 0.6)

    quote = compose_quote(
        "how do I silence the alarm with the app", [alarm], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.text.startswith(situation) is with_situation
    assert f"{lead_in}\n\n1. Open the mobile app.\n2. Touch Security > Alarm Off." in quote.text


def test_a_row_named_by_words_the_question_writes_together_is_quoted(embed, vocabulary):
    steering = passage(
        2,
        "Subsystems > Steering",
        "| Steering | Specifications |\n| --- | --- |\n"
        "| Type | Rack and pinion with electronic power steering |\n"
        "| Number of turns lock to lock | 2.00 |\n"
        "| Turning Circle (curb to curb) | 38 ft (11.6 m) |",
        0.38,
    )
    signals = passage(
        1,
        "Lights > Turn Signals",
        "Push the stalk up or down to signal a turn. The turn signal stops when the steering "
        "wheel returns after the turn. Make sure the street is clear before you turn.",
        0.5,
    )

    quote = compose_quote(
        "turning circle on my car? trying to see if i can pull a u-turn on my street",
        [signals, steering],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "38 ft (11.6 m)" in quote.text
    assert quote.numbers[0] == 2


ACCESSORY_WHEELS = passage(
    1,
    "Parts and Accessories > Accessory wheels > 20-inch wheels",
    "| Wheels | Location | Width (in) | Offset (mm) |\n| --- | --- | --- | --- |\n"
    '| 20" | Front/Rear | 8.5 | 40 |\n\n'
    "| Tires (front/rear) | Size | Tire Pressure |\n| --- | --- | --- |\n"
    "| Michelin, Pilot Sport 4S (PS4S) | 235/35ZR20 | 42 PSI (290 kPa)* |\n\n"
    "*Increase the tire pressure to 44 PSI (300 kPa) prior to driving 136 mph (220 kph) or "
    "faster.",
    0.54,
)
TIRE_LABEL = passage(
    2,
    "Tire Care and Maintenance > Maintaining tire pressures",
    "Keep tires inflated to the pressures shown on the Tire and Loading Information label, even "
    "if it differs from the pressure printed on the tire itself. The label is on the center "
    "door pillar and is visible when the driver door is open.",
    0.47,
)


def test_a_footnote_is_not_quoted_as_the_answer_when_another_passage_gives_it(embed, vocabulary):
    # The footnote to an accessory wheel's table reads most like the question, but answers
    # another one (what to do before driving very fast).
    question = "what tire pressure should i use"

    quote = compose_quote(
        question, [ACCESSORY_WHEELS, TIRE_LABEL], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert not quote.text.startswith("*Increase")
    assert "42 PSI" in quote.text or "Tire and Loading Information label" in quote.text
    unpenalised = compose_quote(
        question,
        [ACCESSORY_WHEELS, TIRE_LABEL],
        embed=embed,
        vocabulary=vocabulary,
        settings=QuoteSettings(footnote_penalty=0.0),
    )
    assert unpenalised is not None and unpenalised.text.startswith("*Increase")


@pytest.mark.parametrize(
    ("text", "footnote"),
    [
        ("*Increase the tire pressure to 44 PSI prior to driving 136 mph or faster.", True),
        ("**A/C desiccant bag replacement can be extended to 6 years.", True),
        ("\u2020Available on some vehicles only.", True),
        ("**Note:** Check the pressure when the tires are cold.", False),  # emphasis
        ("*Cold* tires read lower.", False),
        ("* Check the pressure.", False),  # a bullet
        ("Check the pressure monthly.", False),
    ],
)
def test_a_footnote_is_told_from_a_bullet_and_emphasis(text, footnote):
    assert is_footnote(text) is footnote


UPDATE_PREFERENCES = (
    "You can choose how quickly you receive software updates. To change your preference, "
    "touch Controls > Software > Update Preferences and choose either of these options:\n"
    "- Standard: Receive updates on the normal rollout schedule for your region and vehicle. "
    "A release made available this way has usually been running on other customers' vehicles "
    "for a while.\n"
    "- Early: Receive the latest updates for your region and vehicle as soon as they are "
    "available. You may still not be among the first owners to receive an update, and "
    "choosing Early does not enroll the vehicle in any test program."
)


@pytest.mark.parametrize(
    ("lead_in", "whole"),
    [
        ("choose either of these options:", True),
        ("do one of the following:", True),
        ("toggle between these modes:", True),
        # The sample manual's charge port door: "how do i charge at home" read one of three.
        ("open it in any of these ways:", True),
        ("use one of these methods:", True),
        # The sample manual's drive modes and headlights: "how do i turn on the headlights"
        # read Off, Parking and Auto, and not "On - low beams on."
        ("select one of three modes:", True),
        ("choose a headlight setting:", True),
        # The Model 3 manual's software updates: "how do i update the software" read the first
        # of its three ways.
        ("there are three ways you can install them:", True),
        ("the screen shows these details:", False),
        ("the screen shows three details:", False),
    ],
)
def test_a_list_of_alternatives_is_quoted_whole(lead_in, whole):
    # Each option alone reads as the only way: "can I get updates sooner" quoted the first of
    # two options, and the second is the one that answers. A list of details is not a choice:
    # the best item comes with what fits beside it.
    blocks = passage_blocks(UPDATE_PREFERENCES.replace("choose either of these options:", lead_in))
    items = next(block for block in blocks if block.kind == "items")
    assert items.lead_in.endswith(lead_in)
    first, second = items.units
    scores = {(0, first.block, 0): 1.0, (0, second.block, 1): 0.2}

    (span,) = spans_around(
        Scored(passage=0, unit=first, score=1.0), blocks, scores, QuoteSettings()
    )
    text = render(span, blocks, QuoteSettings())

    assert "- Standard:" in text
    assert ("- Early:" in text) is whole
    assert len(text.split()) > QuoteSettings().word_budget or not whole


OPENING_THE_CHARGE_PORT = (
    "With the vehicle unlocked, open the charge port door in any of these ways:\n\n"
    "- Press and release the rear edge of the charge port door.\n"
    "- On the touchscreen, touch Controls > Charging > Open Charge Port.\n"
    "- Press the button on the handle of a Corvan Mobile Connector while you are close to the "
    "vehicle.\n\n"
    "A light ring around the inlet shows the charging status:\n\n"
    "| Light | Meaning |\n| --- | --- |\n"
    "| White | Charge port door open; ready for a connector. |\n"
    "| Blue | Connector detected; the vehicle is communicating with the charger. |\n"
    "| Red | Charging fault. Check the touchscreen for an alert. |"
)


@pytest.mark.parametrize("bonus", [0.0, 1.0])
def test_the_ways_to_do_something_count_as_its_procedure(bonus, embed, vocabulary):
    # "how do i open the charge port" read the light ring's row "White | Charge port door
    # open", which shares the question's words; the list of ways to open it is the answer, and
    # a list offered as the ways to do something gains what numbered steps gain.
    charging = passage(1, "Charging > Opening the charge port", OPENING_THE_CHARGE_PORT, 0.6)

    quote = compose_quote(
        "how do i open the charge port",
        [charging],
        embed=embed,
        vocabulary=vocabulary,
        # (the list says where a setting is, which a how-to question also prefers)
        settings=QuoteSettings(procedure_bonus=bonus, setting_bonus=0.0),
    )

    assert quote is not None
    assert ("Press and release the rear edge" in quote.text) is bool(bonus)


INSTALLING_CROSSBARS = (
    "Perform the following to install the roof crossbars:\n\n"
    "1. Open all four doors and clean the mounting points with a soft cloth.\n"
    "2. Remove the four trim covers from the roof rails with a plastic trim tool.\n"
    "3. Place the front crossbar on the front mounting points, with the arrow facing forward.\n"
    "4. Insert the bolts and tighten each one to 6 Nm (4.4 lbf-ft) with a torque wrench.\n"
    "Caution: Tightening a bolt beyond 6 Nm can crack the mounting point.\n"
    "5. Repeat steps 3 and 4 for the rear crossbar.\n"
    "6. Refit the trim covers and close the doors."
)


@pytest.mark.parametrize(
    "question",
    ["what torque do the crossbar bolts get", "what is the torque for the crossbar bolts"],
)
def test_a_figure_asked_of_a_procedure_is_quoted_from_its_step(question, embed, vocabulary):
    # "what torque for the mud flap bolt" read an 11-step installation from step 1 to find
    # "Tighten the bolt to 5 Nm" in step 10; a figure is asked, not how to install.
    crossbars = passage(1, "Roof Crossbars > Installing", INSTALLING_CROSSBARS, 0.6)

    quote = compose_quote(question, [crossbars], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert quote.text.startswith("4. Insert the bolts and tighten each one to 6 Nm")
    assert "1. Open all four doors" not in quote.text


@pytest.mark.parametrize(
    ("question", "alone"),
    [
        ("what torque for the mud flap bolt", True),
        ("how tight do the license plate screws go", True),
        ("how do i tighten the crossbar bolts", False),
        # where it goes is in the procedure's first steps ("1. Open the hood."), not in the
        # step with the reservoir's capacity
        ("where does washer fluid go and how much does it hold", False),
        # a count adds up a whole list ("a camera in each door pillar", "three cameras ...")
        ("how many cameras does the car have", False),
    ],
)
def test_a_question_asking_for_a_figure_alone_is_told_apart(question, alone):
    assert asks_for_a_figure_alone(question) is alone


@pytest.mark.parametrize(
    ("question", "stems"),
    [
        ("how many devices can homelink control", {"devic"}),
        ("How many key fobs can I have?", {"key", "fob"}),
        ("how many people can ride in the back", {"peopl"}),
        ("how long does it take", set()),
        ("how many can i pair", set()),
    ],
)
def test_what_a_question_counts_is_read(question, stems):
    assert counted(question) == stems


HOMELINK = (
    "If your vehicle is equipped with the HomeLink Universal Transceiver, you can operate up to "
    "three Radio Frequency (RF) devices, including garage doors, gates, lights, and security "
    "systems."
)
HOMELINK_MODES = (
    "HomeLink supports three different transmit modes, which is how your vehicle and the RF "
    "device communicate. Each device can be set to a different mode. To determine the mode "
    "your device is compatible with, contact HomeLink (call 1-800-355-3515)."
)


def test_a_count_is_quoted_from_the_sentence_that_counts_what_is_asked(embed, vocabulary):
    # Model 3: "how many devices can homelink control" read the three transmit modes, whose
    # phone number got the bonus for a number; "three ... devices" counts what is asked.
    quote = compose_quote(
        "how many devices can homelink control",
        [
            passage(1, "Smart Garage > Supported Modes", HOMELINK_MODES, 0.51),
            passage(2, "Smart Garage > HomeLink Universal Transceiver", HOMELINK, 0.55),
        ],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.text.startswith("If your vehicle is equipped with the HomeLink")


def test_a_procedure_asked_for_is_still_quoted_whole(embed, vocabulary):
    crossbars = passage(1, "Roof Crossbars > Installing", INSTALLING_CROSSBARS, 0.6)

    quote = compose_quote(
        "how do i install the roof crossbars", [crossbars], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert "1. Open all four doors" in quote.text
    assert quote.text.endswith("6. Refit the trim covers and close the doors.")


@pytest.mark.parametrize(
    ("question", "side"),
    [
        ("whats the max weight i can put in the frunk", "front"),
        ("how much can i load in the rear trunk", "rear"),
    ],
)
def test_a_question_about_one_end_of_the_car_is_not_answered_from_the_other(
    question, side, embed, vocabulary
):
    # "the frunk" was answered with the rear trunk's load limit, a sentence that reads much
    # like the front trunk's.
    front = passage(
        2,
        "Front Trunk > Front Trunk Load Limit",
        "CAUTION: Never load more than 50 kg (110 lbs) in the front trunk. Doing so can cause "
        "damage.",
        0.44,
    )
    rear = passage(
        1,
        "Rear Trunk > Cargo",
        "CAUTION: Never load more than 40 kg (88 lbs) in the lower compartment of the rear "
        "trunk or more than 130 kg (287 lbs) on the upper compartment. Doing so can cause damage.",
        0.48,
    )

    quote = compose_quote(question, [rear, front], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert ("110 lbs" in quote.text) is (side == "front")
    assert ("88 lbs" in quote.text) is (side == "rear")


def test_a_section_under_the_other_end_of_the_car_is_read_as_that_end(embed, vocabulary):
    # "if a kid got shut in the frunk could they get out from inside?" was answered from
    # "Rear Trunk > Interior Emergency Trunk Release": its last heading names no end, its
    # first does. A unit that names an end itself is read by its own words ("Front and Rear
    # Seats > Head Supports": "The rear center seat includes ...").
    rear = passage(
        1,
        "Rear Trunk > Interior Emergency Trunk Release",
        "An illuminated mechanical release allows a person locked inside to get out. Warning: "
        "Do not allow children to play inside or become locked inside.",
        0.55,
    )
    front = passage(
        2,
        "Front Trunk > Interior Emergency Release",
        "An illuminated interior release button allows a person locked inside the front "
        "trunk to get out. Note: The button glows after a brief exposure to ambient light.",
        0.49,
    )

    quote = compose_quote(
        "if a kid got shut in the frunk could they get out from inside?",
        [rear, front],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.numbers[0] == 2


def test_a_restriction_to_the_other_end_of_the_car_answers_for_this_one(embed, vocabulary):
    # "can snow chains go on the front wheels": "only on the rear tires" is the answer, and
    # it lost the end-of-the-car penalty for naming the rear.
    chains = passage(
        1,
        "Cold Weather and Winter Driving > Winter tires and snow chains",
        "Snow chains may be fitted only on 18-inch wheels with 235/50 R18 tires, and only on the "
        "rear tires. Use low-profile chains with no more than 9 mm (0.35 in) of clearance, and "
        "do not exceed 50 km/h (30 mph) with chains fitted.\n\nWarning: Do not fit snow chains "
        "on 19-inch wheels. There is not enough clearance, and the chains can damage the "
        "suspension, brake lines and body, leading to loss of control.",
        0.5,
    )

    quote = compose_quote(
        "can snow chains go on the front wheels", [chains], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert "only on the rear tires" in quote.text


def test_the_end_of_the_car_a_text_names():
    assert named_sides("can the front headrests be raised?") == {"front"}
    assert named_sides("whats the max weight i can put in the frunk") == {"front"}
    assert named_sides("my laptop bag on the back seat") == {"rear"}
    assert named_sides("Front and Rear Seats") == {"front", "rear"}
    assert named_sides("how far can i lean my seat back") == set()


def test_a_question_is_searched_with_the_manuals_name_after_an_owners_word():
    # "frunk wont open" came nearest to ice in the door handles in the Model 3 manual, and was
    # declined: the embedding model reads little in "frunk".
    manual = Vocabulary.from_texts(
        ["To open the front trunk, touch Open.", "When you engage a turn signal, it blinks."]
    )

    assert with_manual_names("frunk wont open", manual) == "frunk (front trunk) wont open"
    assert (
        with_manual_names("my blinker and my frunk", manual)
        == "my blinker (turn signal) and my frunk (front trunk)"
    )
    # a name the manual does not use, or the manual's own word, is left as it is
    assert with_manual_names("does it have a sunroof", manual) == "does it have a sunroof"
    assert with_manual_names("open the front trunk", manual) == "open the front trunk"


def test_someone_walking_in_front_is_read_as_the_manuals_pedestrian():
    # "will the car brake by itself if someone walks in front" was declined over the Model 3
    # manual: its Automatic Emergency Braking speaks of pedestrians, and only "brake" matched.
    manual = Vocabulary.from_texts(
        ["Automatic Emergency Braking automatically applies the brakes for a pedestrian ahead."]
    )

    assert with_manual_names("will the car brake by itself if someone walks in front", manual) == (
        "will the car brake by itself if someone walks (pedestrian) in front"
    )
    assert with_manual_names("can it stop for people crossing", manual) == (
        "can it stop for people crossing (pedestrian)"
    )
    # a manual that never writes the name is searched by the owner's words
    other = Vocabulary.from_texts(["Press the brake pedal."])
    assert with_manual_names("does it brake if someone walks in front", other) == (
        "does it brake if someone walks in front"
    )


def test_a_clogged_or_plugged_up_part_is_read_as_the_manuals_blocked_one():
    # "one of the windshield washer squirters is plugged up and barely sprays" quoted how the
    # wipers run while washing, not "If a windshield washer becomes blocked, use a thin strand
    # of wire ..."; a car that is plugged in stays the manual's connected charge cable.
    manual = Vocabulary.from_texts(
        [
            "If a windshield washer becomes blocked, use a thin strand of wire to clear it.",
            "Never raise the vehicle when the charge cable is connected.",
        ]
    )

    assert with_manual_names("my washer nozzle is clogged", manual) == (
        "my washer nozzle is clogged (blocked)"
    )
    assert with_manual_names("the jet is plugged up", manual) == "the jet is plugged up (blocked)"
    assert with_manual_names("can i lift it while its plugged in", manual) == (
        "can i lift it while its plugged in (charge cable is connected)"
    )


def test_a_frozen_screen_is_read_as_the_manuals_unresponsive_touchscreen():
    # "the screen is frozen" quoted the Model 3 manual's charge port latch that freezes in
    # place; its touchscreen "is unresponsive" and is restarted.
    manual = Vocabulary.from_texts(
        ["You can restart your touchscreen if it is unresponsive or demonstrates unusual behavior."]
    )

    assert with_manual_names("the screen is frozen", manual) == (
        "the screen is frozen (touchscreen is unresponsive)"
    )
    assert with_manual_names("display keeps freezing", manual) == (
        "display keeps freezing (touchscreen is unresponsive)"
    )
    # ice is not a screen
    assert with_manual_names("the charge port is frozen", manual) == "the charge port is frozen"


def test_a_flat_tire_and_a_plugged_in_car_are_read_as_the_manual_writes_them():
    # The Model 3 manual: "Do not drive with a punctured tire ..." and "Never raise Model 3
    # when the charge cable is connected ..."; asked "can i drive with a flat tire" and "can i
    # lift the car while its plugged in", the chat quoted flat spots after storage and the
    # lift points.
    manual = Vocabulary.from_texts(
        [
            "Do not drive with a punctured tire that has not been repaired.",
            "Never raise the vehicle when the charge cable is connected.",
        ]
    )

    assert (
        with_manual_names("can i drive with a flat tire", manual)
        == "can i drive with a flat tire (punctured tire)"
    )
    assert with_manual_names("i got a flat", manual) == "i got a flat (punctured tire)"
    assert (
        with_manual_names("can i lift the car while its plugged in", manual)
        == "can i lift the car while its plugged in (charge cable is connected)"
    )
    # a manual that never writes the name is searched by the owner's words
    other = Vocabulary.from_texts(["Inflate the tires to 42 PSI."])
    assert with_manual_names("can i drive with a flat tire", other) == (
        "can i drive with a flat tire"
    )


def test_an_owners_everyday_word_for_a_part_is_read_as_the_manuals_name():
    manual = Vocabulary.from_texts(
        [
            "When you engage a turn signal, the side camera view appears on the touchscreen.",
            "The front seats include integrated head supports.",
        ]
    )

    assert owner_words("it pops up when i put my blinker on", manual) == [
        ({"blinker"}, {"turn", "signal"})
    ]
    assert owner_words("can the front headrests be raised", manual) == [
        ({"headrest"}, {"head", "support"})
    ]
    assert owner_words("does it have a sunroof", manual) == []  # no "glass roof" here

    # The Model 3 manual's name for an owner's "12v battery" is "low voltage battery"; a manual
    # that uses each of its words, but never together, does not name it.
    low_voltage = Vocabulary.from_texts(["Replace the low voltage battery every few years."])
    apart = Vocabulary.from_texts(["The high-voltage battery is low on charge."])
    assert owner_words("got an alert saying 12V battery needs service", low_voltage) == [
        ({"12v"}, {"low", "voltag", "batteri"})
    ]
    assert owner_words("got an alert saying 12V battery needs service", apart) == []

    # A text holding the manual's name covers the owner's word; one without it, no more than
    # before: the name is another way to write the owner's word, not one more thing asked.
    asked = terms("can the front headrests be raised")
    aliases = owner_words("can the front headrests be raised", manual)
    support = term_set("The front seats include integrated head supports.")
    plain = weighted_coverage(asked, support, manual)
    assert weighted_coverage(asked, support, manual, aliases) > plain
    other = term_set("The front seats can be raised.")
    assert weighted_coverage(asked, other, manual, aliases) == weighted_coverage(
        asked, other, manual
    )


def test_a_question_in_an_owners_words_finds_the_passage_in_the_manuals(embed, vocabulary):
    # "When i put my blinker on": the manual says "turn signal".
    signal = passage(
        2,
        "Driver Assistance > Blind Spot View",
        "When you engage a turn signal, the view from the side camera on that side appears "
        "on the touchscreen.",
        0.5,
    )
    camera = passage(
        1,
        "Cameras > Camera App",
        "To show the view from the cameras at any time, open the Camera app on the "
        "touchscreen. Swipe to hide or show the side camera views.",
        0.56,
    )

    quote = compose_quote(
        "can the side camera view pop up on the screen when i put my blinker on",
        [camera, signal],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.text.startswith("When you engage a turn signal")


# The sample manual's tire pressure section as ingestion chunks it: the table, then the figure's
# caption and a Note in an overlapping chunk.
RECOMMENDED_PRESSURES = "Tires and Wheels > Recommended tire pressures"
PRESSURE_TABLE = (
    "Inflate the tires to the pressures below. Always check and adjust pressures when the tires "
    "are cold - that is, after the vehicle has been parked for at least three hours, or driven "
    "less than 1.6 km (1 mile).\n\n" + TIRE_HEADER + "\n" + "\n".join(TIRE_ROWS[:2]) + "\n\n"
    "These pressures also apply when the vehicle is fully loaded. They are printed on the Tire "
    "and Loading Information label on the driver's side door pillar (B-pillar), visible when "
    "the driver's door is open.\n\nFigure 1. Tire and Loading Information label."
)
PRESSURE_NOTE = (
    "Figure 1. Tire and Loading Information label.\n\n"
    "Note: Tire pressure changes by about 7 kPa (1 PSI) for every 6 degrees C (10 degrees F) "
    "change in outside temperature. Pressures drop noticeably in the first cold days of autumn, "
    "so check them more often then.\n\n"
    "Caution: Do not let air out of hot tires to reach the recommended pressure. After driving, "
    "pressures are higher than the cold values; this is normal. Never exceed the maximum "
    "pressure molded on the tire sidewall."
)


def test_what_pressure_to_use_is_answered_by_the_table_not_a_caption_or_a_note(embed, vocabulary):
    # A row is embedded after its section's title: its cells name wheels and sizes, not what
    # the table is of. Quoted before: "Tire and Loading Information label." (the caption,
    # split after "Figure 1.") and the Note on temperature.
    passages = [
        passage(1, RECOMMENDED_PRESSURES, PRESSURE_TABLE, 0.69),
        passage(2, RECOMMENDED_PRESSURES, PRESSURE_NOTE, 0.65),
    ]

    quote = compose_quote(
        "what tire pressure should I use?", passages, embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.numbers == [1]
    assert TIRE_ROWS[0] in quote.text and TIRE_ROWS[1] in quote.text
    assert "Figure" not in quote.text and "Information label." not in quote.text


BRAKE_ALERTS = (
    "BRK-012 - Regenerative braking reduced (gray)\n\n"
    "The battery is full or cold and cannot accept as much energy. The vehicle slows down less "
    "when you lift off the accelerator; use the brake pedal as needed.\n\n"
    "BRK-040 - Brake fluid level low (red)\n\n"
    "Stop safely and do not continue driving. Contact Corvan Roadside Assistance; braking "
    "performance may be reduced."
)
POWERING_ON = (
    "Sit in the driver's seat with an authenticated key inside the vehicle and press the brake "
    "pedal. The Aster powers on, the touchscreen wakes up and the driver display shows READY in "
    "green. The vehicle is now ready to drive.\n\n"
    'If the driver display shows "No key detected", place a key card on the card reader in the '
    "center console (see Key card) and press the brake pedal again.\n\n"
    "To power off, shift into Park and walk away - the Aster switches itself off."
)


def test_an_alert_named_by_its_code_is_quoted_from_its_title_on(embed, vocabulary):
    passages = [
        passage(1, "Starting and Driving > Powering on and off", POWERING_ON, 0.43),
        passage(2, "Driver Alerts > 12 V, tire and brake alerts > Brakes (BRK)", BRAKE_ALERTS, 0.4),
    ]

    quote = compose_quote(
        "red BRK-040 came up on the display. can i keep driving to the shop?",
        passages,
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.numbers == [2]
    # The entry starts at its title: nothing of the alert before it.
    assert quote.text.startswith("BRK-040 - Brake fluid level low (red)")
    assert "Stop safely and do not continue driving." in quote.text
    assert "BRK-012" not in quote.text


CHARGING_ALERTS = (
    "CHG-055 - Charge connector cannot be unlocked (amber)\n\n"
    "The connector lock did not release. Unlock the vehicle, touch Stop Charging and try again. "
    "If the connector still will not come out, use the manual release cable.\n\n"
    "CHG-062 - Adapter not recognized (amber)\n\n"
    "The vehicle cannot communicate through the adapter. Remove it, check that it is clean, dry "
    "and Corvan-approved, and reinsert it firmly."
)


def test_an_alert_quoted_from_its_title_ends_where_the_next_alert_begins(embed, vocabulary):
    # Its text is shorter than a quote's target length: growing on, it took the next alert too.
    passages = [passage(1, "Driver Alerts > Charging (CHG)", CHARGING_ALERTS, 0.39)]

    quote = compose_quote("what does CHG-055 mean", passages, embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert quote.text.startswith("CHG-055 - Charge connector cannot be unlocked (amber)")
    assert quote.text.endswith("use the manual release cable.")
    assert "CHG-062" not in quote.text


def test_an_alert_title_of_eleven_words_ends_the_entry_before_it(embed, vocabulary):
    # "LVB-009 - 12 V system fault, vehicle may not restart (red)" has 11 words: at a limit of
    # 10 it read as a sentence, and "i got LVB-003" was quoted on into it.
    alerts = passage(
        1,
        "Driver Alerts > 12 V system (LVB)",
        "LVB-003 - 12 V battery needs replacement soon (amber)\n\n"
        "The 12 V battery is aging. The vehicle can still be driven, but schedule a replacement "
        "with Corvan Service within the next few weeks.\n\n"
        "LVB-009 - 12 V system fault, vehicle may not restart (red)\n\n"
        "The 12 V system is not being charged. Drive to a safe place and contact Corvan "
        "Roadside Assistance.",
        0.49,
    )

    quote = compose_quote("i got LVB-003", [alerts], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert quote.text.startswith("LVB-003 - 12 V battery needs replacement soon (amber)")
    assert "LVB-009" not in quote.text


def test_the_codes_a_question_gives():
    def found(question: str, text: str) -> bool:
        return any(re.search(pattern, text, re.IGNORECASE) for pattern in named_codes(question))

    assert found("got CHG-031 overnight", "CHG-031 - Charging interrupted")
    assert found("what is chg031", "CHG-031 - Charging interrupted")
    assert found("the screen says APP_w224", "APP_w224 Autopilot unavailable")
    assert not found("got CHG-031 overnight", "CHG-0311 is another")
    for question in ["is the model 3 ok in 2021", "my 10 yr old", "at 50k miles", "42 psi"]:
        assert named_codes(question) == []


OCCUPANT_MODE = (
    "Occupant Mode keeps the climate system running after you leave the vehicle, so that a pet "
    "or a passenger can stay comfortable for a short time. To use it, shift into Park and touch "
    "Occupant Mode on the climate panel.\n\n"
    "Occupant Mode stays on while you are away, and notifies your phone if the cabin temperature "
    "changes significantly. It switches off when the battery charge drops to 20%, so check the "
    "charge before using it for longer periods.\n\n"
    "Caution: Some places do not allow animals to be left in a parked vehicle at all. Always "
    "stay nearby."
)


@pytest.mark.parametrize(
    "question", ["can I leave the dog in the car", "is it ok to leave my cat in the car"]
)
def test_an_owners_dog_or_cat_is_the_manuals_pet(question, embed, vocabulary):
    # The sample manual never writes "dog" or "cat". Before, the quote was the caution about
    # animals, and it was declined as off the point ("The passage that comes closest speaks of
    # something else").
    occupant = passage(1, "Climate Controls > Occupant Mode", OCCUPANT_MODE, 0.46)

    quote = compose_quote(question, [occupant], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert quote.text.startswith("Occupant Mode keeps the climate system running")
    assert off_the_point(quote.coverage, quote.score) is None


ALERT_COLOURS = (
    "- Red alerts mean a serious fault. Stop the vehicle as soon as it is safe to do so.\n"
    "- Amber alerts mean a function is limited or a service is due. You can continue driving, "
    "but deal with the cause soon.\n"
    "- Gray alerts are for information only.\n\n"
    "Touch the bell icon at the top of the touchscreen to see all current alerts and their "
    "details.\n\n"
    "Warning: Never ignore a red alert. Continuing to drive can cause further damage to the "
    "vehicle and may put you and others at risk."
)


def test_an_owners_yellow_light_is_the_manuals_amber_one(embed, vocabulary):
    # Before, the quote was declined as off the point: the manual never writes "yellow" here.
    alerts = passage(1, "Driver Alerts > How alerts are shown", ALERT_COLOURS, 0.42)

    quote = compose_quote(
        "what does the yellow exclamation mark mean", [alerts], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert "Amber alerts mean a function is limited" in quote.text
    assert off_the_point(quote.coverage, quote.score) is None


def test_a_passage_that_starts_at_the_end_of_a_warning_is_not_quoted_from_there(embed, vocabulary):
    # Chunking left the start of the Warning ("Warning: Never ... Make sure that ...") in the
    # passage before; "Failure to do so" points back at it.
    trunk = passage(
        1,
        "Opening the Trunk > Interior release",
        "Failure to do so may result in damage or serious injury.\n\n"
        "To open the rear trunk from inside the vehicle when it has no power, pull the glow-in-"
        "the-dark release handle on the inside of the trunk lid. The trunk unlatches and can be "
        "pushed open.",
        0.55,
    )

    quote = compose_quote(
        "can i open the trunk from inside", [trunk], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.text.startswith("To open the rear trunk from inside the vehicle")
    assert "Failure to do so" not in quote.text


def test_a_quote_grown_back_takes_a_sentence_that_leans_on_another_with_it_or_not_at_all():
    # The sample manual's driver profiles: "how many driver profiles can the aster store" was
    # quoted from "To create one, adjust ...", grown back from the count after it, without the
    # sentence that says what "one" is.
    body = (
        "A driver profile stores your seat position, steering wheel position, mirror positions, "
        "drive mode, regenerative braking level and display preferences. To create one, adjust "
        "everything the way you like, touch the profile icon at the top of the touchscreen, "
        "then touch Add New Driver and enter a name. You can save up to 10 profiles. Link your "
        "profile to your phone key under Profile > Link to Key."
    )
    blocks = passage_blocks(body)
    best = blocks[0].units[2]  # "You can save up to 10 profiles."
    scores = {(0, 0, i): 0.5 for i in range(4)} | {(0, 0, 1): 0.7, (0, 0, 2): 1.0}

    spans = spans_around(Scored(passage=0, unit=best, score=1.0), blocks, scores, QuoteSettings())
    texts = [render(span, blocks, QuoteSettings()) for span in spans]

    assert texts
    assert all(not text.startswith("To create one") for text in texts)
    assert any(text.startswith("A driver profile stores") for text in texts)


@pytest.mark.parametrize(
    "opening",
    [
        "Both procedures are provided in this section.",
        "You can also jump start it from the app.",
        "To do it, use a portable jump starter.",
        # the Model 3 manual's tire rotation: "how do i know when the tires need rotating" was
        # quoted from "Therefore, they should be balanced as required."
        "Therefore, it should be checked first.",
        "In addition, a portable jump starter can be used.",
    ],
)
def test_a_quote_does_not_start_on_a_sentence_that_leans_on_the_one_before(opening):
    # The Model 3 manual's "Jump Starting": "jump start" was quoted from "Both procedures are
    # provided in this section.", which names what the sentence before it says.
    body = (
        "The procedure for jump starting differs depending on whether the low voltage battery is "
        "lead-acid or lithium-ion. To determine which battery your vehicle uses, touch Controls "
        f"> Software > Additional Vehicle Information. {opening}\n\n"
        "The following instructions assume you are using an external low voltage power supply "
        "such as a portable jump starter. If jump starting with another vehicle, refer to that "
        "vehicle manufacturer's instructions.\n\n"
        "Caution: The Aster cannot be used to jump start another vehicle. Doing so can result "
        "in damage.\n\n"
        "Caution: Avoid short circuits when jump starting. Connecting cables to the wrong jump "
        "post or touching leads together can damage the vehicle."
    )
    blocks = passage_blocks(body)
    order = [(b, u.index) for b, block in enumerate(blocks) for u in block.units]
    best = blocks[1].units[0]  # "The following instructions assume ..."
    scores = {(0, b, i): 0.5 for b, i in order} | {(0, best.block, best.index): 1.0}

    spans = spans_around(Scored(passage=0, unit=best, score=1.0), blocks, scores, QuoteSettings())
    texts = [render(span, blocks, QuoteSettings()) for span in spans]

    assert texts
    assert not any(text.startswith(opening) for text in texts)


def test_a_size_named_with_a_hyphen_is_no_amount_of_what_is_asked(embed, vocabulary):
    # The sample manual's specifications: "what is the range" was quoted the Note under the
    # table, whose "19-inch wheels" read as a length like the table's "430 km".
    specs = passage(
        1,
        "Specifications > Powertrain and battery",
        "| Item | Standard Range | Long Range |\n| --- | --- | --- |\n"
        "| Usable battery capacity | 64 kWh | 82 kWh |\n"
        "| Estimated range (18-inch wheels) | 430 km (267 mi) | 540 km (336 mi) |\n"
        "| Top speed | 180 km/h (112 mph) | 180 km/h (112 mph) |\n\n"
        "Range is an estimate under standardized test conditions. Real-world range depends on "
        "speed, temperature, climate use, wheel size and load - 19-inch wheels reduce range by "
        "about 5%.",
        0.48,
    )

    quote = compose_quote("what is the range", [specs], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert "430 km" in quote.text


def test_turning_the_car_off_is_what_the_manual_calls_powering_it_off(embed, vocabulary):
    # The sample manual's "Powering on and off" never says "turn" or "car": before, its
    # "Turn it on in Controls > Lights > Auto High Beam" shared more of the question's words.
    assert owner_words("how do i turn off the car", vocabulary) == [({"turn", "car"}, {"power"})]
    assert owner_words("my car won't turn on", vocabulary) == [({"car", "turn"}, {"power"})]
    assert owner_words("how do i turn off the wipers", vocabulary) == []
    powering = passage(
        2,
        "Starting and Driving > Powering on and off",
        "Sit in the driver's seat with an authenticated key inside the vehicle and press the "
        "brake pedal. The Aster powers on, the touchscreen wakes up and the driver display shows "
        "READY in green. The vehicle is now ready to drive.\n\nIf the driver display shows "
        '"No key detected", place a key card on the card reader in the center console (see Key '
        "card) and press the brake pedal again.\n\nTo power off, shift into Park and walk away "
        "- the Aster switches itself off. To power off while staying seated, touch Controls > "
        "Safety > Power Off.",
        0.45,
    )
    high_beams = passage(
        1,
        "Lights, Wipers and Washers > High beams and Auto High Beam",
        "Push the left stalk away from you to turn on the high beams; pull it back to return "
        "to low beams. Turn it on in Controls > Lights > Auto High Beam, then push the left "
        "stalk away once.",
        0.47,
    )

    quote = compose_quote(
        "how do i turn off the car", [high_beams, powering], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.numbers == [2]
    assert "To power off" in quote.text
    # Nor does it start on what follows from the sentence before ("... is now ready").
    assert not quote.text.startswith("The vehicle is now")


def test_a_how_to_question_gets_the_steps_that_follow_the_sections_opening(embed, vocabulary):
    # The Model 3 manual's "Restarting the Touchscreen": what it is for, a Warning, then the
    # steps. Before, the quote stopped after the Warning, without how to do it.
    restarting = passage(
        1,
        "Touchscreen > Restarting the Touchscreen",
        "You can restart your touchscreen if it is unresponsive or demonstrates unusual "
        "behavior.\n\nWarning: Only restart the touchscreen while the vehicle is stopped and in "
        "Park. The car status display, safety warnings, backup camera, etc. will not be "
        "visible during the restart.\n\n1. Shift into Park.\n2. Hold down both scroll buttons "
        "on the steering wheel until the touchscreen turns black.\n3. After a few seconds, the "
        "Tesla logo appears. Wait approximately 30 seconds for the touchscreen to restart.",
        0.6,
    )

    how = compose_quote(
        "how do i reboot the touchscreen", [restarting], embed=embed, vocabulary=vocabulary
    )
    what = compose_quote(
        "is it safe to restart the touchscreen while driving",
        [restarting],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert how is not None and what is not None
    assert how.text.startswith("You can restart your touchscreen")
    assert "1. Shift into Park." in how.text and "3. After a few seconds" in how.text
    assert "1. Shift into Park." not in what.text  # not asked how: the Warning answers it


def test_a_title_of_two_lines_is_quoted_from_its_first(embed, vocabulary):
    # A Model 3 alert's name and what to do are two short lines; before, the quote took the
    # second ("Schedule service") and left out the name the owner sees on the screen.
    alert = passage(
        1,
        "Troubleshooting Alerts Page 4 > Alert: VCFRONT_a220",
        "Electrical system is unable to support all features\nSchedule service\n\n"
        "What this alert means:\nThe low voltage battery is not available and cannot provide "
        "electrical support for vehicle features.\nIt is possible your vehicle will shut down "
        "unexpectedly.\n\nWhat to do:\nIt is recommended that you eliminate or reduce your use "
        "of any nonessential features.",
        0.55,
    )

    quote = compose_quote(
        "alert says the low voltage battery is not available, what does it mean",
        [alert],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.text.startswith("Electrical system is unable to support all features")
    assert "The low voltage battery is not available" in quote.text
    # Each title line stands on its own: run together they read as one garbled sentence.
    assert quote.text.startswith(
        "Electrical system is unable to support all features\n\nSchedule service\n\n"
    )


def test_a_procedure_too_long_to_quote_whole_is_quoted_from_its_start_as_far_as_it_fits():
    # Joined across chunks, a long procedure ("Installing Mud Flaps and Splash Guards", 12
    # steps) passed the word limit and was quoted up to the step after the best one: two of
    # the six steps its first chunk alone had shown.
    steps = [
        f"{number}. Remove the push clip number {number} that secures the wheel arch liner to "
        "the body of the vehicle."
        for number in range(1, 9)
    ]
    blocks = passage_blocks("To install the mud flaps:\n" + "\n".join(steps))
    settings = QuoteSettings(procedure_max_words=70)
    lead_in = blocks[0].units[0]
    assert blocks[0].lead_in == "To install the mud flaps:" and lead_in.index == 0

    [span] = spans_around(Scored(passage=0, unit=lead_in, score=1.0), blocks, {}, settings)
    quoted = render(span, blocks, settings)

    assert quoted.startswith("To install the mud flaps:")
    assert [line[:2] for line in quoted.splitlines() if line[:1].isdigit()] == [
        "1.",
        "2.",
        "3.",
    ]  # 5 + 3 x 19 words; a fourth step would pass 70
    assert len(quoted.split()) <= 70
    # The best step further on is always reached, and the one after it.
    later = Scored(passage=0, unit=blocks[0].units[6], score=1.0)
    [span] = spans_around(later, blocks, {}, settings)
    assert span.pieces[-1].units[-1] == 7


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("what can i clean the wiper blades with", True),
        ("what should i use to clean the touchscreen", True),
        ("what to use on leather seats", True),
        ("what happens when i clean the wipers", False),
        ("can i drive with the wipers on auto", False),
    ],
)
def test_a_question_asking_what_to_do_something_with_is_recognised(question, asks):
    assert asks_for_means(question) is asks


def test_a_question_asking_what_to_clean_with_quotes_what_the_manual_names(embed, vocabulary):
    # The Model 3 manual's section; asked "what can i clean the wiper blades with", the chat
    # quoted its last sentence alone.
    wipers = passage(
        1,
        "Windshield Wiper Blades, Jets and Fluid > Checking and Cleaning Wiper Blades",
        "Periodically clean the edge of the wiper blades and check the rubber for cracks, "
        "splits, and roughness. If damaged, replace the blade immediately to prevent damage to "
        "the glass and improve visibility.\n\n"
        "Contaminants on the windshield, or on the wiper blades, can reduce the effectiveness "
        "of the wipers. Contaminants include ice, wax spray from car washes, washer fluid with "
        "bug and/or water repellent, bird droppings, tree sap, and other organic substances.\n\n"
        "Follow these guidelines for cleaning:\n"
        "- Clean the windshield and wiper blades using washer fluid, isopropyl (rubbing) "
        "alcohol, or non-abrasive glass cleaner approved for use on automotive glass and rubber. "
        "Inappropriate products can cause damage or smears, and create glare on the windshield.\n"
        "- Lift the wiper arm a short distance away from the windshield, just far enough to "
        "access the wiper blade. Do not lift a wiper arm beyond its intended position.\n\n"
        "If the wipers remain ineffective after cleaning, replace the wiper blades.",
        0.68,
    )

    quote = compose_quote(
        "what can i clean the wiper blades with", [wipers], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert "using washer fluid, isopropyl (rubbing) alcohol" in quote.text


def test_an_owners_own_car_is_no_term_a_car_wash_would_cover(embed, vocabulary):
    # The Model 3 manual writes "Model 3" or "the vehicle", seldom "car": the word weighed
    # heavily, and the Note on condensation "(such as a car wash)" was quoted for it.
    tips = passage(
        1,
        "Operating Climate Controls > Climate Control Operating Tips",
        "- In very humid conditions, it is normal for the windshield to fog slightly when you "
        "first turn on the air conditioning.\n"
        "- It is normal for a small pool of water to form under Model 3 when parked. Extra "
        "water produced by the dehumidifying process is drained underneath.\n"
        "- To reduce the temperature in the cabin in hot weather conditions, the fan may turn "
        "on to vent the cabin when the vehicle is parked.",
        0.475,
    )
    condensation = passage(
        2,
        "Lights > Condensation in Head or Tail Lights",
        "Due to weather changes, humidity levels, or recent exposure to water (such as a car "
        "wash), condensation may occasionally accumulate in your vehicle's head or tail lights. "
        "This is normal - as the weather gets warmer and humidity decreases, condensation often "
        "disappears on its own. If you notice water buildup within the exterior lenses, or if "
        "the condensation affects the visibility of the exterior lights, contact Tesla Service.",
        0.425,
    )

    quote = compose_quote(
        "why is there water under my car",
        [tips, condensation],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.text.startswith("- It is normal for a small pool of water to form under")
    assert asked_terms("why is there water under my car") == ["water"]
    assert asked_terms("how do i take it through a car wash") == ["take", "through", "car", "wash"]


JUMP_INTRO = (
    "How to jump start the Aster depends on whether its low voltage battery is lead-acid or "
    "lithium-ion. Both procedures are given in this section.\n\n"
    "The following instructions assume you are using an external low voltage power supply "
    "(such as a portable jump starter). If you jump start the Aster from another vehicle, see "
    "that vehicle's manual."
)
JUMP_STEPS = [
    "1. Open the hood (see Opening the hood with no power).",
    "2. Remove the maintenance panel by pulling it upwards to release the clips that hold it.",
    "3. Remove the cabin intake panel by pulling it upwards to release the clips that hold it.",
    "4. Connect the power supply's red positive (+) cable to the red positive (+) terminal on "
    "the low voltage battery.",
    "CAUTION: Do not allow the positive cable to touch other metal parts, such as the battery "
    "bracket.",
    "5. Connect the power supply's black negative (-) cable to the black negative (-) terminal "
    "on the low voltage battery.",
    "6. Turn on the external power supply (see its manufacturer's instructions). Touch the "
    "touchscreen to wake it up.",
    "Note: It may take several minutes to receive enough power to wake up the touchscreen.",
    "7. When external power is no longer needed, disconnect both cables from the terminals, "
    "beginning with the black negative (-) cable.",
    "8. Put the cabin intake panel back in its place and press down until it is secure.",
    "9. Put the maintenance panel back in its place and press down until it is secure.",
    "10. Close the hood.",
]
JUMP_SECTION = (
    "Cars built before 2024 have a lead-acid low voltage battery.\n\n"
    "If you jump start the Aster from another vehicle, see that vehicle's manual. The following "
    "instructions assume you are using an external low voltage power supply (such as a "
    "portable jump starter).\n" + "\n".join(JUMP_STEPS)
)


def test_a_how_to_question_quotes_the_steps_its_best_sentence_leads_into_elsewhere(
    embed, vocabulary
):
    # The page's opening says what the instructions assume, and so does its section, where
    # the steps follow: a question asking how gets the steps, not the opening alone.
    intro = passage(1, "Jump starting", JUMP_INTRO, 0.55)
    section = passage(2, "Jump starting > Lead-acid battery", JUMP_SECTION, 0.6)

    quote = compose_quote(
        "how do i jump start my aster", [intro, section], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.numbers == [2]
    assert quote.text.endswith("\n".join(JUMP_STEPS))


def test_a_how_to_question_prefers_the_span_that_says_where_the_setting_is(embed, vocabulary):
    # The Note shares the question's words; the paragraph before it says how.
    walk_away = passage(
        1,
        "Keys and Getting Started > Walk-Away Door Lock",
        "Doors and trunks can automatically lock when you walk away carrying your phone key or "
        "key fob. To turn this feature on or off, touch Controls > Locks > Walk-Away Door "
        "Lock.",
        0.6,
    )
    note = passage(
        2,
        "Keys and Getting Started > Walk-Away Door Lock",
        "If the Aster detects an authenticated key for several minutes after you exit the "
        "vehicle and close all doors, Walk-Away Door Lock disables and the doors do not lock "
        "when you walk away.\n\n"
        "Note: It is ultimately your responsibility to ensure your vehicle is locked, even "
        "when Walk-Away Door Lock is enabled.",
        0.68,
    )

    quote = compose_quote(
        "how do i lock the car when walking away",
        [walk_away, note],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert quote.text.startswith("Doors and trunks can automatically lock")
    assert "Controls > Locks > Walk-Away Door Lock" in quote.text


def test_a_chosen_quote_does_not_start_on_the_pointer_that_ends_a_note_before_it():
    blocks = passage_blocks(
        "Note: If the Aster has accessory wheels, some figures differ from the label. See "
        "Accessory wheels.\n\n"
        "Amber tire symbol: the tire pressure light tells you a tire is under- or over-inflated."
    )
    settings = QuoteSettings()
    chosen = Span(passage=0, pieces=(Piece(0, (1,)), Piece(1, (0,))), anchor_score=1.0)
    chosen.text = render(chosen, blocks, settings)
    assert chosen.text.startswith("See Accessory wheels.")

    trimmed = without_leading_pointer(chosen, blocks, settings)

    assert trimmed.pieces == (Piece(1, (0,)),)
    assert trimmed.text.startswith("Amber tire symbol: the tire pressure light")
    assert trimmed.words == len(trimmed.text.split())
    # a pointer alone is left as it is (the quote would be empty)
    alone = Span(passage=0, pieces=(Piece(0, (1,)),), anchor_score=1.0)
    assert without_leading_pointer(alone, blocks, settings) is alone


def test_a_how_to_question_prefers_the_steps_to_a_note_about_the_feature(embed, vocabulary):
    # The Note shares the question's words and names a setting; the steps say how.
    about = passage(
        1,
        "Guard Mode",
        "Note: When Guard Mode is enabled, the Intrusion Alarm settings (Controls > Safety > "
        "Intrusion Alarm) are not available.\n\n"
        "Caution: Do not rely on Guard Mode to protect the Aster from every threat.",
        0.74,
    )
    steps = passage(
        2,
        "Guard Mode > Using Guard Mode",
        "1. Insert a formatted USB drive into the front USB port.\n"
        "2. Touch Controls > Safety > Guard Mode > On. Once enabled, the Guard Mode icon turns "
        "red.\n"
        "3. To turn Guard Mode off until the next drive, touch the Guard Mode icon again.",
        0.6,
    )

    quote = compose_quote(
        "how do i enable guard mode", [about, steps], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.numbers == [2]
    assert "2. Touch Controls > Safety > Guard Mode > On." in quote.text


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("what does a red charge port light mean", True),
        ("What does the snowflake icon mean on the battery?", True),
        ("what is creep mode", True),
        ("whats the meaning of the yellow turtle", True),
        ("what is the max weight i can put on the roof", False),
        ("does corvan make a bigger 7 seat suv", False),
        ("how do i open the charge port", False),
    ],
)
def test_a_question_asking_what_something_means_is_recognised(question, asks):
    assert asks_for_meaning(question) is asks


CHARGE_PORT_LIGHTS = (
    "When the charge port door is open, its light shows what the Aster is doing:\n\n"
    "- WHITE: The charge port door is open and the Aster is ready to charge.\n"
    "- GREEN: Charging is in progress, or complete when the light is steady.\n"
    "- BLINKING AMBER: The Aster is charging at a reduced current.\n"
    "- RED: A fault is detected and charging has stopped. Check the touchscreen for an alert."
)
CHARGE_PORT_NOTE = (
    "When your charge port is open, its status light changes color to tell its state and to "
    "help troubleshoot issues.\n\n"
    "Note: Watch the color of the charge port light when you plug in before you walk away. If "
    "you see a red or amber light, troubleshooting the issue before you leave can ensure a "
    "successful charging session."
)


def test_a_question_asking_what_something_means_quotes_the_entry_it_names(embed, vocabulary):
    # The Note says "a red or amber light" and reads closer to the question; the list's
    # entry named RED says what it means.
    note = passage(1, "Charge port status lights", CHARGE_PORT_NOTE, 0.62)
    lights = passage(2, "Charging > Charge port light", CHARGE_PORT_LIGHTS, 0.54)

    quote = compose_quote(
        "what does a red charge port light mean", [note, lights], embed=embed, vocabulary=vocabulary
    )

    assert quote is not None
    assert quote.numbers == [2]
    assert "- RED: A fault is detected and charging has stopped." in quote.text


def test_a_how_to_question_prefers_what_to_do_to_a_window_mostly_of_cautions(embed, vocabulary):
    # The window that opens on one sentence of advice and goes on into two Cautions shares
    # the question's words best; the paragraph on Wash Mode says what to do first.
    cautions = passage(
        1,
        "Cleaning > Cautions for exterior cleaning",
        "After washing, brake gently a few times to dry the brakes.\n\n"
        "CAUTION: If using an automatic car wash, use touchless car washes only. Brushes can "
        "scratch the paint and damage the cameras.\n\n"
        "CAUTION: If using an automatic car wash, make sure the car is locked and avoid using "
        "the touchscreen while it is being washed.",
        0.62,
    )
    wash_mode = passage(
        2,
        "Cleaning > Wash Mode",
        "When taking the Aster to a car wash, Wash Mode closes all windows, locks the charge "
        "port and turns off the wipers and the parking chimes. To enable, touch Controls > "
        "Service > Wash Mode. The car must be stationary and not charging.",
        0.58,
    )
    question = (
        "taking the car thru an automatic car wash for the first time, anything i should do first?"
    )

    quote = compose_quote(question, [cautions, wash_mode], embed=embed, vocabulary=vocabulary)

    assert asks_for_procedure(question)
    assert quote is not None
    assert quote.numbers == [2]
    assert "To enable, touch Controls > Service > Wash Mode." in quote.text


def test_a_quote_ending_on_a_sentence_that_refers_to_the_table_after_it_brings_the_table(
    embed, vocabulary
):
    # Quoted without it, "Use the table as a general guideline ..." left the owner asking
    # "how deep should my tire tread be before i replace tires" with no figure to go by.
    tread = passage(
        1,
        "Checking Tire Tread Depth",
        "Tires with a tread depth of less than 4/32 in (3 mm) are more likely to hydroplane in "
        "wet conditions and should not be used. Tires with a tread depth of less than 5/32 in "
        "(4 mm) do not perform well in snow.\n\n"
        "To improve handling in wet conditions, put the tires with the most tread on the "
        "rear of the car.\n\n"
        "Use the table as a general guideline when measuring the tread depth.\n\n"
        "|Tread Depth|Condition|\n|---|---|\n"
        "|5/32 in or deeper|Tires are good|\n"
        "|3/32 in - 4/32 in|Replace or rotate tires soon|\n"
        "|2/32 in or less|Replace or rotate tires now|",
        0.66,
    )

    quote = compose_quote(
        "how deep should my tire tread be before i replace tires",
        [tread],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "Use the table as a general guideline" in quote.text
    assert "|2/32 in or less|Replace or rotate tires now|" in quote.text


def test_a_question_asked_without_power_quotes_what_to_do_without_it(embed, vocabulary):
    # "how do i open the charge port without power" quoted the usual ways to open it (the
    # charge port page) over the release cable (the troubleshooting page), which says what to
    # do when the car has lost power.
    # (the similarities retrieval gave them; the usual ways came first by the label list)
    usual = passage(1, "Charging > Opening the charge port", OPENING_THE_CHARGE_PORT, 0.58)
    release = passage(2, "Charging > Manually releasing the charge port", RELEASE_CABLE, 0.70)
    question = "how do i open the charge port without power"

    quote = compose_quote(question, [usual, release], embed=embed, vocabulary=vocabulary)

    assert condition_terms(question) == {"power"}
    assert quote is not None
    assert quote.numbers == [2]
    assert "release cable" in quote.text


def test_the_circumstances_of_a_question_are_told_and_their_absence_read():
    assert condition_terms("How do I open the charge port if the car has no power?") == {"power"}
    assert condition_terms("how do i get in with no key") == {"key"}
    # a manoeuvre is no state of the car; a question without circumstances names none
    assert condition_terms("can i make a u-turn without a 3 point turn") == frozenset()
    assert condition_terms("what tire pressure should i use") == frozenset()
    assert states_absence(
        "If the Aster has lost 12 V power, the door stays shut.", frozenset({"power"})
    )
    assert states_absence("if Model 3 has no electrical power.", frozenset({"power"}))
    # using a thing is not being without it
    assert not states_absence(
        "Before you can use a phone to unlock, pair it.", frozenset({"phone"})
    )
