"""Declining on-topic questions the manual does not answer (no database).

The manual is the bundled sample manual (curation/sample_manual), chunked as ingestion chunks
it: its chunks give the IDF weights of the key-term check, and a page's chunks are the passages
retrieval would find for a question about that page. The embedding model (for how far unknown
words move a question's meaning) is the real one, loaded once for the module.
"""

from __future__ import annotations

import pytest

from chat.asking import amount_units, asks_for_quantity, key_terms, named_units, rate_periods
from chat.declines import (
    _PLANS,
    DEFAULT_MIN_COVERAGE,
    MIN_MEANING_SHIFT,
    absent_subject,
    asks_for_price,
    decline_reason,
    key_term_coverage,
    meaning_shift,
    missing_amount,
    off_the_point,
    other_codes,
    other_makes,
    other_products,
    question_parts,
)
from chat.names import designations
from chat.owner_words import with_manual_names
from chat.text_units import Vocabulary


@pytest.mark.parametrize(
    ("question", "page"),
    [
        ("How much does a replacement charge cable cost?", "charging.html"),
        ("What is the price of the J3400 adapter?", "charging.html"),
        ("what would corvan charge to replace the cabin air filter", "maintenance.html"),
        ("How much is my Aster worth?", "getting-started.html"),
        ("i want a second charge cable, how much would it be", "charging.html"),
    ],
)
def test_a_price_question_is_declined_because_the_manual_gives_no_prices(
    question, page, manual_chunks, vocabulary, embed
):
    decline = decline_reason(question, manual_chunks[page], vocabulary, embed=embed)

    assert decline is not None
    assert decline.message == "The manual gives no prices."


def test_how_much_it_is_asks_a_price_unless_the_question_names_a_measure():
    # "does tesla sell the carbon fiber spoiler ... for the long range, and how much is it" was
    # answered with the maintenance intervals: a price, though "long range" names a distance.
    assert asks_for_price("does corvan sell the roof box for the long range, and how much is it")
    assert asks_for_price("i want a second charge cable, how much would it be")
    assert not asks_for_price("my range drops in the cold, how much is it")
    assert not asks_for_price("tire pressure on the aster, how much is it?")


def test_a_price_question_is_answered_when_the_passages_state_an_amount(vocabulary, embed):
    passages = ["The Corvan J3400 DC Adapter costs $229 at Corvan Service."]

    decline = decline_reason(
        "What is the price of the J3400 adapter?", passages, vocabulary, embed=embed
    )

    assert decline is None


def test_a_horsepower_question_is_declined_when_the_manual_gives_no_power_figure(
    manual_chunks, embed
):
    # The sample manual without its specifications page: no power figure anywhere.
    vocabulary = Vocabulary.from_texts(
        text
        for page, texts in manual_chunks.items()
        if page != "specifications.html"
        for text in texts
    )

    decline = decline_reason(
        "How much horsepower does the Aster have?",
        manual_chunks["driving.html"],
        vocabulary,
        embed=embed,
    )

    # "horsepower" is a unit: it is looked for among the passages' figures, not the words.
    assert decline is not None
    assert decline.reason == "unit"
    assert decline.message == "The manual gives no figure in horsepower."


def test_a_question_for_a_loudness_is_declined_when_the_passages_give_none(
    manual_chunks, vocabulary, embed
):
    # Every word of it but "decibels" is the manual's; the passages on driving speak of speed
    # and of sounds, and give no figure in decibels.
    decline = decline_reason(
        "how many decibels is it inside at highway speed?",
        manual_chunks["driving.html"],
        vocabulary,
        embed=embed,
    )

    assert decline is not None
    assert decline.reason == "unit"
    assert decline.message == "The manual gives no figure in decibels."
    assert (
        decline_reason(
            "how many decibels is it inside at highway speed?",
            ["Cabin noise at 100 km/h: 66 dB."],
            vocabulary,
            embed=embed,
        )
        is None
    )


def test_a_question_for_a_unit_the_passages_have_no_figure_in_is_declined(
    manual_chunks, vocabulary, embed
):
    decline = decline_reason(
        "How many kWh does the battery hold?", manual_chunks["tires.html"], vocabulary, embed=embed
    )

    assert decline is not None
    assert decline.reason == "unit"
    assert decline.message == "The manual gives no figure in kWh."


@pytest.mark.parametrize(
    "question", ["How many kWh is the battery?", "What is the towing capacity in pounds?"]
)
def test_a_question_for_a_unit_the_passages_give_is_not_declined(
    question, manual_chunks, vocabulary, embed
):
    passages = manual_chunks["specifications.html"]

    assert decline_reason(question, passages, vocabulary, embed=embed) is None


@pytest.mark.parametrize(
    ("question", "unknown"),
    [
        ("What's my Aster's resale value?", ["resale"]),
        ("Can I mount a Cybertruck tonneau cover on the Aster?", ["Cybertruck", "tonneau"]),
        (
            "Is the Sonavox premium sound system still under warranty if I bought my Aster in "
            "Brazil?",
            ["Sonavox", "premium", "bought", "Brazil"],
        ),
    ],
)
def test_a_question_hinging_on_words_the_manual_never_uses_is_declined(
    question, unknown, manual_chunks, vocabulary, embed
):
    decline = decline_reason(
        question, manual_chunks["getting-started.html"], vocabulary, embed=embed
    )

    assert decline is not None
    assert decline.reason == "coverage"
    assert decline.detail["unknown_terms"] == unknown
    assert decline.message == (
        "The manual never mentions " + ", ".join(f"“{word}”" for word in unknown) + "."
    )


@pytest.mark.parametrize(
    ("question", "page"),
    [
        ("whats the psi for my tires, im on 18s", "tires.html"),
        ("How often do I need to swap out the cabin filter?", "maintenance.html"),
        (
            "Car won't wake up at all and I can't get into the frunk to reach the battery - how "
            "do I jump it?",
            "troubleshooting.html",
        ),
        (
            "Is there a way to leave the AC running for my dog while I pop into a store?",
            "climate.html",
        ),
        (
            "How long is the car, in inches? I need to know if it fits my garage.",
            "specifications.html",
        ),
        ("what's the charge limit I should use every day?", "charging.html"),
        ("tpms light keeps flashing after i put my winter wheels on??", "tires.html"),
    ],
)
def test_a_casually_written_question_the_manual_answers_is_not_declined(
    question, page, manual_chunks, vocabulary, embed
):
    assert decline_reason(question, manual_chunks[page], vocabulary, embed=embed) is None


def test_an_owners_own_words_for_the_situation_do_not_make_a_decline(
    manual_chunks, vocabulary, embed
):
    # The manual never says "totally", "busted" or "hatch", but they are not what is asked.
    # (Nor "dead", but that is its "discharged": test_an_owners_dead_battery_...)
    question = (
        "My car is totally busted and the charging hatch won't open - is there a manual way to "
        "get it open?"
    )
    coverage, unknown = key_term_coverage(question, vocabulary)
    assert coverage < DEFAULT_MIN_COVERAGE
    assert unknown == ["totally", "busted", "hatch"]
    # "The charging flap" is the manual's "charge port door" (chat.owner_words).
    assert key_term_coverage(question.replace("hatch", "flap"), vocabulary)[1] == [
        "totally",
        "busted",
    ]

    assert meaning_shift(question, unknown, embed) < MIN_MEANING_SHIFT
    assert decline_reason(question, manual_chunks["charging.html"], vocabulary, embed=embed) is None


def test_leaving_out_the_subject_moves_a_question_more_than_leaving_out_phrasing(embed):
    subject = meaning_shift("What's my Aster's resale value?", ["resale"], embed)
    phrasing = meaning_shift("My car is totally dead, how do I open the trunk?", ["totally"], embed)

    assert subject >= MIN_MEANING_SHIFT > phrasing > 0.0
    assert meaning_shift("What's my Aster's resale value?", [], embed) == 0.0


@pytest.mark.parametrize("question", ["How wide is the car?", "How tall is the Aster?"])
def test_a_dimension_question_the_specifications_answer_is_not_declined(
    question, manual_chunks, vocabulary, embed
):
    passages = manual_chunks["specifications.html"]

    assert decline_reason(question, passages, vocabulary, embed=embed) is None


@pytest.mark.parametrize(
    "question", ["What is the cargo volume?", "how big is the trunk", "whats the frunk volume"]
)
def test_a_question_for_a_space_the_specifications_give_in_litres_is_not_declined(
    question, manual_chunks, vocabulary, embed
):
    # The sample manual never writes "volume": it gives "Rear trunk, rear seats up: 520 L",
    # and "what is the cargo volume" was declined for the word.
    assert not vocabulary.known("volum", prefix=True)
    passages = manual_chunks["specifications.html"]

    assert decline_reason(question, passages, vocabulary, embed=embed) is None
    # and the quote's figure is one of what is asked ("how big" asked for a length alone)
    assert missing_amount(question, "- Rear trunk, rear seats up: 520 L (18.4 cu ft).") is None


@pytest.mark.parametrize(
    "question", ["what's the coldest i can set the temperature", "whats the hottest setting"]
)
def test_the_end_of_a_range_asked_for_reads_the_range_the_manual_gives(
    question, manual_chunks, vocabulary, embed
):
    # The sample manual gives "from 16 °C (61 °F) to 28 °C (82 °F)" and never writes
    # "coldest": the question was declined for the word ("The manual never mentions
    # 'coldest'"). A superlative of a measure asks for an amount, in degrees here.
    assert asks_for_quantity(question) and amount_units(question) == {"deg"}
    passages = manual_chunks["climate.html"]

    assert decline_reason(question, passages, vocabulary, embed=embed) is None


def test_a_loss_asked_for_is_answered_by_a_percentage(manual_chunks, vocabulary, embed):
    # "how much range do i lose in winter" asks for a distance, and the sample manual tells
    # the loss in percent ("expect 20-30% less range"): the quote was declined as giving "no
    # such figure".
    question = "how much range do i lose in winter"
    assert {"mi", "km", "%"} <= amount_units(question)
    assert "%" not in amount_units("what is the range")
    quote = "- Less range. Expect 20-30% less range at -10 degrees C (14 degrees F)."

    assert missing_amount(question, quote) is None
    assert (
        decline_reason(question, manual_chunks["winter-driving.html"], vocabulary, embed=embed)
        is None
    )


def test_a_measure_word_the_manual_never_uses_declines_where_no_figure_measures_it(
    manual_chunks, vocabulary, embed
):
    # Without a figure in litres in the passages, the word is what the manual lacks.
    passages = manual_chunks["climate.html"]

    decline = decline_reason("What is the cargo volume?", passages, vocabulary, embed=embed)

    assert decline is not None and decline.reason == "coverage"
    assert decline.detail["unknown_terms"] == ["volume"]


def test_a_horsepower_question_is_answered_when_the_passages_state_hp(embed):
    vocabulary = Vocabulary.from_texts(
        ["The motor delivers 282 horsepower.", "Peak power: 210 kW (282 hp).", "Charge to 80%."]
    )
    passages = ["Peak power: 210 kW (282 hp)."]

    decline = decline_reason("How much horsepower does it have?", passages, vocabulary, embed=embed)

    assert decline is None


def test_key_terms_leave_out_fillers_and_the_owners_figures():
    # A unit ("psi") is checked against the passages' figures instead of the manual's words.
    assert key_terms("whats the psi for my tires, im on 18s") == {"tire": "tires"}
    assert key_terms("hey pls tell me how u reset the screen in 2024") == {
        "reset": "reset",
        "screen": "screen",
    }


def test_key_term_coverage_names_the_words_the_manual_never_uses(vocabulary):
    coverage, unknown = key_term_coverage(
        "Does the Aster have a heated steering wheel?", vocabulary
    )
    assert (coverage, unknown) == (1.0, [])

    coverage, unknown = key_term_coverage("What's the resale value of my Aster?", vocabulary)
    assert 0.0 < coverage < 1.0
    assert unknown == ["resale"]

    assert key_term_coverage("what is it?", vocabulary) == (1.0, [])


def test_an_owners_word_for_a_part_the_manual_names_is_not_an_unknown_word():
    vocabulary = Vocabulary.from_texts(
        ["The turn signal clicks fast when a bulb fails.", "The wipers work on the windshield."]
    )

    # "blinker" is the manual's "turn signal"; "carplay" is nothing the manual names.
    assert key_term_coverage("why does my blinker click", vocabulary) == (1.0, [])
    coverage, unknown = key_term_coverage("does my blinker work with carplay", vocabulary)
    assert unknown == ["carplay"]
    assert coverage < 1.0


def test_a_noun_in_er_is_known_where_the_manual_names_what_it_does(vocabulary, embed):
    # The sample manual writes "seat heating" and "heat levels", never "heater".
    assert key_term_coverage("how do I turn on the seat heaters", vocabulary) == (1.0, [])
    passages = ["Climate > Seat heating\nTouch the seat icons to cycle through three heat levels."]
    assert (
        decline_reason("how do I turn on the seat heaters", passages, vocabulary, embed=embed)
        is None
    )
    # Only a word of six letters or more ("power" is not "pow"), and only where the manual
    # uses the word it comes from.
    bare = Vocabulary.from_texts(["Check the charge level."])
    assert bare.known("power", prefix=True) is False
    assert bare.known("heater", prefix=True) is False


def test_an_owners_dead_battery_is_the_manuals_discharged_one(vocabulary, embed):
    # The sample manual writes "the 12 V battery is probably completely discharged", never
    # "dead"; before, "The manual never mentions “dead”".
    question = "the 12v battery is dead"
    assert key_term_coverage(question, vocabulary) == (1.0, [])
    passages = [
        "Troubleshooting > Vehicle is completely unresponsive (no 12 V power)\nIf the door "
        "handles do not present, the 12 V battery is probably completely discharged."
    ]
    assert decline_reason(question, passages, vocabulary, embed=embed) is None


def test_an_owners_tow_hook_is_the_manuals_towing_eye(vocabulary):
    # The sample manual writes "towing eye"; before, "The manual never mentions “hook”".
    assert key_term_coverage("where is the tow hook", vocabulary) == (1.0, [])


def test_an_owners_reboot_is_the_manuals_restart(vocabulary):
    # The sample manual writes "restart it"; before, "The manual never mentions “reboot”".
    assert key_term_coverage("how do i reboot the screen", vocabulary) == (1.0, [])


def test_an_owners_payload_is_the_manuals_load_limit():
    # The Model 3 manual's "Calculating Load Limits" never says "payload": "whats the payload
    # capacity of the model 3" was declined ("The manual never mentions “payload”").
    vocabulary = Vocabulary.from_texts(
        [
            "Calculating Load Limits: how much cargo Model 3 can carry depends on the weight "
            "of its passengers.",
            "Never exceed the load limit of the rear trunk. Vehicle capacity weight: 954 lbs.",
        ]
    )
    assert key_term_coverage("whats the payload capacity", vocabulary) == (1.0, [])
    assert with_manual_names("whats the payload capacity", vocabulary) == (
        "whats the payload (load limit) capacity"
    )


def test_a_word_an_owner_runs_together_is_known_where_the_manual_writes_it_in_two():
    vocabulary = Vocabulary.from_texts(
        [
            "Dash cam footage is saved to the USB drive.",
            "Fasten your seat belt. Play music from your phone.",
            "Unlock the car with the mobile app.",
        ]
    )
    assert key_term_coverage("where does my dashcam footage go", vocabulary) == (1.0, [])
    assert key_term_coverage("is my seatbelt fastened", vocabulary) == (1.0, [])
    # "car" and "play" are the manual's words, but never side by side.
    coverage, unknown = key_term_coverage("does the car do carplay", vocabulary)
    assert coverage < 1.0 and unknown == ["carplay"]


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("How much does a replacement charge cable cost?", True),
        ("what's the price of a new key card", True),
        ("How much is my Aster worth?", True),
        ("is the home charger cheaper than the mobile connector", True),
        ("what do fast chargers in ontario charge per kWh right now", True),
        ("What is the resale value of my Aster after five years?", True),
        ("how much is a tesla", True),
        ("How much is a new key fob?", True),
        ("how much is the cargo volume", False),
        ("how much is a full charge in kwh of range", False),
        ("What is the value shown for the tire pressure?", False),
        ("How much does the Aster charge at a DC fast charger?", False),
        ("how many kWh does the Aster use per 100 km", False),
        ("How do I charge for the first time?", False),
        ("Where do I pay attention to the tire pressure?", False),
    ],
)
def test_a_question_about_what_something_costs_is_told_apart(question, asks):
    assert asks_for_price(question) is asks


@pytest.mark.parametrize(
    "question",
    [
        "how many ft lbs do i torque the mud flap bolt to",
        "what torque for the mud flap bolt",
        "how tight do i do the bolt, in lb ft",
    ],
)
@pytest.mark.parametrize(
    "quote",
    [
        "Tighten the bolt to 5 Nm (4 ft-lbs).",
        "Torque the lug nuts to 129 lb. ft (175 Nm).",
        "Tighten the screws to 3 Nm/2.2 ft-lbs.",
        "Tighten the lug nuts in a star pattern to 140 N·m (103 lbf·ft).",
    ],
)
def test_a_torque_is_read_in_its_two_word_units(question, quote):
    # "ft lbs" is one unit of torque, not feet and a weight: "how many ft lbs do i torque the
    # new bolt" was declined against "Tighten the bolt to 5 Nm (4 ft-lbs)" as giving no
    # figure in pounds or feet.
    assert amount_units(question) == {"nm", "ftlb"}
    assert missing_amount(question, quote) is None
    assert missing_amount(question, "Remove the bolt that secures the mud flap.") is not None


@pytest.mark.parametrize(
    ("question", "units"),
    [
        ("How many kWh is the battery?", {"kwh"}),
        ("How long is the car in inches?", {"in"}),
        ("How much horsepower does it have?", {"hp"}),
        ("What is the towing capacity in pounds", {"lb"}),
        ("how many decibels is it inside at highway speed?", {"db"}),
        ("How many gallons of washer fluid does it hold?", {"gal"}),
        ("how many ft lbs do i torque the bolt to", {"ftlb"}),
        ("How long is the car?", set()),
        ("How many seats does it have?", set()),
    ],
)
def test_the_unit_a_question_asks_in_is_read(question, units):
    assert named_units(question) == units


MODEL_3_TOWING = [
    "Warning: Do not use Model 3 for towing purposes unless it has the towing package.",
    "Model 3 can tow a braked trailer of up to 1,000 kg with the Model 3 towing hitch.",
    "Gen 2 Mobile Connector status lights show whether charging can start.",
]


@pytest.mark.parametrize(
    ("question", "named"),
    [
        ("how much can a model y tow compared to the 3", ["model y"]),
        ("would a Model S charge faster than my Model 3?", ["Model S"]),
        ("does the gen 3 wall connector work with it", ["gen 3"]),
    ],
)
def test_a_question_about_a_product_the_manual_never_names_is_declined(question, named, embed):
    vocabulary = Vocabulary.from_texts(MODEL_3_TOWING)

    decline = decline_reason(question, MODEL_3_TOWING, vocabulary, embed=embed)

    assert decline is not None
    assert decline.reason == "product"
    assert decline.detail["products"] == named
    assert decline.message == f"The manual never mentions “{named[0]}”."


@pytest.mark.parametrize(
    "question",
    [
        "how heavy a trailer can my model 3 tow",
        "gen 2 mobile connector lights are all off",
        "which model do I have, and can it tow?",
    ],
)
def test_a_question_naming_the_manuals_own_product_is_not_declined_for_it(question, embed):
    vocabulary = Vocabulary.from_texts(MODEL_3_TOWING)

    assert other_products(question, vocabulary) == []
    decline = decline_reason(question, MODEL_3_TOWING, vocabulary, embed=embed)
    assert decline is None or decline.reason != "product"


def test_a_question_about_another_make_of_car_is_declined(embed):
    # "can i charge my neighbors ford lightning off my tesla wall connector" was answered with
    # the Wall Connector's bullet from the Model 3 manual, which never mentions Ford.
    texts = [*MODEL_3_TOWING, "Charge at a Tesla Supercharger or with a Tesla Wall Connector."]
    vocabulary = Vocabulary.from_texts(texts)
    question = "can i charge my neighbors Ford Lightning off my tesla wall connector"

    assert other_makes(question, vocabulary) == ["Ford"]
    decline = decline_reason(question, texts, vocabulary, embed=embed)
    assert decline is not None and decline.reason == "product"
    assert decline.message == "The manual never mentions “Ford”."
    # the manual's own make, and everyday words that also name a make, are no other make
    assert other_makes("can my tesla tow a trailer", vocabulary) == []
    assert other_makes("a booster seat for my mini van", vocabulary) == []


def test_a_manual_that_names_no_product_declines_nothing_for_a_product_name():
    vocabulary = Vocabulary.from_texts(["Tow only with the factory hitch."])

    assert other_products("how much can a model y tow", vocabulary) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Model 3 owners", {"model 3": "Model 3"}),
        ("a Model S or a model x", {"model s": "Model S", "model x": "model x"}),
        ("the Gen 2 Mobile Connector", {"gen 2": "Gen 2"}),
        ("Series 7 wall box", {"seri 7": "Series 7"}),
        ("for Model Years 2024 and later", {}),
        ("where is the model name printed", {}),
        ("which model do I have", {}),
        ("is a model a good choice", {}),
    ],
)
def test_product_designations_are_read_with_their_name(text, found):
    assert designations(text) == found


def test_a_question_in_parts_is_answered_when_the_manual_answers_its_first_part(
    manual_chunks, vocabulary, embed
):
    passages = manual_chunks["driving.html"]
    # Alone, the second part asks for something the manual cannot say.
    assert decline_reason("worth it for my commute?", passages, vocabulary, embed=embed)

    decline = decline_reason(
        "what does eco mode actually change? worth it for my commute?",
        passages,
        vocabulary,
        embed=embed,
    )

    assert decline is None


def test_a_question_in_parts_is_declined_when_its_first_part_is(manual_chunks, vocabulary, embed):
    decline = decline_reason(
        "How much is my Aster worth? What would a dealer give me for it?",
        manual_chunks["getting-started.html"],
        vocabulary,
        embed=embed,
    )

    assert decline is not None


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "what does eco mode change? worth it for my commute?",
            ["what does eco mode change?", "worth it for my commute?"],
        ),
        (
            "the alarm kept going off?? why",
            ["the alarm kept going off?? why"],
        ),
        ("How long is the car?", ["How long is the car?"]),
    ],
)
def test_a_question_is_split_into_the_parts_it_asks(question, parts):
    assert question_parts(question) == parts


def test_initials_of_a_name_the_manual_uses_are_no_unknown_word(manual_chunks, vocabulary, embed):
    # The sample manual writes "Auto High Beam", never "AHB"; the owner's initials are its name.
    question = "how do i turn on AHB"
    passages = manual_chunks["lights-and-wipers.html"]

    assert key_term_coverage(question, vocabulary)[0] < DEFAULT_MIN_COVERAGE
    assert decline_reason(question, passages, vocabulary, embed=embed) is None
    assert decline_reason("how do i turn on XQZ", passages, vocabulary, embed=embed) is not None


@pytest.mark.parametrize(
    ("question", "quote"),
    [
        ("whats the 0-60 time", "Acceleration is smooth. Choose Chill for gentler starts."),
        ("what tint percentage can i put on the windows", "The glass blocks UV rays (UV index 2)."),
        ("how often do i rotate the tires", "Rotate the tires as shown in the figure."),
        # A figure of time is not the years the question names.
        (
            "how many years is the battery warranty",
            "Do not leave it below -30 degrees C (-22 degrees F) for more than 24 hours.",
        ),
        # The owner's own figures tell the situation: a time is asked for, not a percentage.
        (
            "how long does it take to supercharge from 10% to 80%",
            "You may be limited to a maximum charge of 80% at busy sites.",
        ),
    ],
)
def test_a_quote_without_a_figure_of_the_amount_asked_for_declines(question, quote):
    decline = missing_amount(question, quote)

    assert decline is not None and decline.reason == "amount"


def test_a_quote_without_a_figure_in_the_unit_the_question_names_says_which():
    decline = missing_amount(
        "how many years or miles is the battery warranty", "Keep it above 20% for 24 hours."
    )

    assert decline is not None and decline.reason == "amount"
    assert decline.detail == {"units": ["year"]}
    assert decline.message == "The passage that comes closest gives no figure in years."


def test_a_quote_giving_a_rate_over_another_period_than_asked_declines():
    decline = missing_amount(
        "on average how many % of capacity does a model 3 battery lose per year",
        "The Battery can discharge at a rate of approximately 1% per day.",
    )

    assert decline is not None and decline.reason == "amount"
    assert decline.message == "The passage that comes closest gives a rate per day, not per year."
    assert decline.detail == {"periods": ["year"], "quote_periods": ["day"]}
    # The same period, or a quote that speaks of no rate at all, stands.
    assert missing_amount("how much will it lose a day", "It loses about 1% a day.") is None
    assert missing_amount("do i check it once a year", "Check it before a long trip.") is None


@pytest.mark.parametrize(
    ("text", "periods"),
    [
        ("lose 2%/yr, or annually", {"year"}),
        ("twice a month, 1% per day", {"month", "day"}),
        ("wait a day or two", set()),  # no rate
        ("every 2 years", set()),
    ],
)
def test_a_rate_is_read_with_its_period(text, periods):
    assert rate_periods(text) == periods


@pytest.mark.parametrize(
    ("question", "quote"),
    [
        ("whats the 0-60 time", "It accelerates from 0 to 60 mph in 4.2 seconds."),
        ("how often do i rotate the tires", "Rotate the tires every 10,000 km (6,250 miles)."),
        ("how long till autopilot is calibrated", "Calibration takes 20-25 miles of driving."),
        ("how many psi do the tires lose in the cold", "They lose about 1 PSI per 10 degrees F."),
        ("how do i open the charge port", "Press the charge port door to open it."),
        (  # the unit written on to the number, as manuals print amps and volts
            "how much current can the 12v outlet in the console handle",
            "The power socket is suitable for accessories requiring up to 12A continuous draw.",
        ),
    ],
)
def test_a_quote_with_a_figure_of_the_amount_asked_for_or_no_amount_asked_stands(question, quote):
    assert missing_amount(question, quote) is None


@pytest.mark.parametrize(
    ("coverage", "score", "declined"),
    [
        (0.0, 0.94, True),  # "screen size on the main display": the dimensions table
        (0.195, 0.817, True),  # "reset face id on my iphone": the car's factory reset
        (0.06, 1.1, True),  # reads a little like the question, with none of its words
        (0.4, 0.9, False),  # much of the question's key-word weight is enough
        (0.02, 1.4, False),  # and so is a quote that reads much like the question
        (0.5, 2.0, False),
    ],
)
def test_a_quote_sharing_few_key_words_and_reading_unlike_the_question_is_off_the_point(
    coverage, score, declined
):
    decline = off_the_point(coverage, score)
    assert (decline is not None) is declined
    if declined:
        assert decline.reason == "off_point"
        assert decline.message == "The passage that comes closest speaks of something else."
        assert decline.detail == {"quote_coverage": coverage, "quote_score": score}


@pytest.mark.parametrize(
    "question",
    [
        "is corvan going to release a refreshed aster next year, should i wait to buy",
        "should i wait for the new model before buying an aster",
        "when is the release date for the next aster",
        "is next year's model getting a bigger battery",
    ],
)
def test_a_question_about_a_makers_plans_is_declined(question, manual_chunks, vocabulary, embed):
    # However close the passages retrieved for it, no owner's manual speaks of models to come.
    decline = decline_reason(
        question, manual_chunks["getting-started.html"], vocabulary, embed=embed
    )

    assert decline is not None
    assert decline.reason == "plans"


@pytest.mark.parametrize(
    "question",
    [
        "will the charge port release the connector if i unlock the car",
        "how do i release the parking brake",
        "should i wait for the battery to warm up before fast charging",
    ],
)
def test_a_question_about_the_car_is_no_question_about_plans(question):
    assert not _PLANS.search(question)


@pytest.mark.parametrize(
    "question",
    [
        "does corvan give you a loaner car while the aster is in for service",
        "will they give me a rental vehicle if my car is in the shop for a week",
        "do service centers offer courtesy cars",
    ],
)
def test_a_question_about_a_car_to_use_meanwhile_is_declined(
    question, manual_chunks, vocabulary, embed
):
    # The passages nearest it speak of service and of the car: none of a car lent meanwhile.
    decline = decline_reason(question, manual_chunks["maintenance.html"], vocabulary, embed=embed)

    assert decline is not None
    assert decline.reason == "policy"
    assert decline.message == "The manual does not speak of a car to use while yours is serviced."


def test_a_loan_car_the_passages_speak_of_is_not_declined(vocabulary, embed):
    passages = ["While your Aster is serviced, the service center lends you a loaner car."]
    question = "does corvan give you a loaner car while the aster is in for service"
    assert decline_reason(question, passages, vocabulary, embed=embed) is None


@pytest.mark.parametrize(
    ("question", "named"),
    [
        ("what is BAT-020", ["BAT-020"]),
        ("my screen says brk999 and CHG-777, what now", ["brk999", "CHG-777"]),
    ],
)
def test_a_code_the_manual_never_gives_is_declined_not_answered_with_another(
    question, named, manual_chunks, vocabulary, embed
):
    # The sample manual's alerts: "what is BAT-020" was quoted "BAT-102 - Low battery, charge
    # now", the nearest entry, as if it were the one asked about.
    alerts = manual_chunks["driver-alerts.html"]

    decline = decline_reason(question, alerts, vocabulary, embed=embed)

    assert decline is not None
    assert decline.reason == "code"
    assert decline.detail["codes"] == named
    assert (
        decline.message
        == "The manual never mentions " + ", ".join(f"“{code}”" for code in named) + "."
    )


@pytest.mark.parametrize(
    "question",
    [
        "what does BRK-040 mean",
        "got brk040 on the display",
        # One of them is in the manual: that one is answered.
        "my screen says brk999 and BRK-040, what now",
    ],
)
def test_a_code_the_manual_gives_is_not_declined_for_it(question, manual_chunks, vocabulary, embed):
    assert other_codes(question, vocabulary) == []
    decline = decline_reason(question, manual_chunks["driver-alerts.html"], vocabulary, embed=embed)
    assert decline is None or decline.reason != "code"


def test_a_manual_that_gives_no_codes_declines_nothing_for_a_code():
    vocabulary = Vocabulary.from_texts(["Stop safely when the brake fluid warning appears."])

    assert other_codes("what is BAT-020", vocabulary) == []


def test_a_size_named_with_a_hyphen_is_no_figure_of_the_distance_asked():
    # "19-inch wheels" names a wheel size; "what is the range" asks for a distance.
    note = "Real-world range depends on speed and load - 19-inch wheels reduce range by about 5%."

    assert missing_amount("what is the range", note) is not None
    assert missing_amount("what is the range", f"{note} Estimated range: 430 km.") is None


@pytest.mark.parametrize(
    ("question", "subject"),
    [
        ("is there a home screen widget for the corvan app", "widget"),
        ("is there an official aster owners club i can join in my area", "club"),
        ("does it support wireless carplay", "carplay"),
        # what the manual names, or an owner's word for a part it names ("frunk")
        ("does it have a tow hitch", None),
        ("is there a frunk light", None),
        ("is there a way to turn off the chime", None),
        # not a question whether something exists, or no phrase after its verb
        ("can i use my aster to jump start my buddys car", None),
        ("how many speakers does the aster have and how many watts is the stereo", None),
    ],
)
def test_what_a_question_asks_exists_is_read_when_the_manual_never_names_it(
    question, subject, vocabulary
):
    assert absent_subject(vocabulary.spell_out(question), vocabulary) == subject


def test_a_question_whether_the_car_has_what_the_manual_never_names_is_declined(
    manual_chunks, vocabulary, embed
):
    # Every word of it but "widget" is the manual's, so the share of its words the manual
    # uses is high; what it asks about is the one it never names.
    question = "is there a home screen widget for the corvan app that shows the battery"

    decline = decline_reason(question, manual_chunks["charging.html"], vocabulary, embed=embed)

    assert key_term_coverage(question, vocabulary)[0] >= DEFAULT_MIN_COVERAGE
    assert decline is not None
    assert decline.reason == "subject"
    assert decline.message == "The manual never mentions “widget”."
