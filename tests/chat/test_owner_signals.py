"""What an owner counts or asks for in their own words is read as the manual writes it: a light
that "blinks twice" is a status table's "2 flashes" row, "the roadside number" is answered by a
telephone number, "how long do I have to drive" may be answered in miles, and "how much does
the dealer charge to" asks a price. Plain Python, with the site's embedding model."""

from __future__ import annotations

import pytest

from chat.aims import done_aim
from chat.asking import amount_units, asks_for_phone_number, signal_counts, signalled_counts
from chat.declines import asks_for_price
from chat.owner_words import with_manual_names
from chat.quoting import compose_quote
from chat.text_units import Vocabulary
from tests.chat.passages import passage

CONNECTOR_LIGHTS = (
    "The status lights on the portable charger show what it detects.\n\n"
    "|Green lights|Red light|What it means|What to do|\n"
    "|--------|--------|--------|--------|\n"
    "|All on|Off|Charging.|Nothing to do.|\n"
    "|Off|Off|No power.|Check that the socket has power.|\n"
    "|All on|1 flash|Overheating.|Charge in a cooler place.|\n"
    "|Off|2 flashes|No earth connection.|Have the socket's earth checked by an electrician.|\n"
    "|Off|3 flashes|Relay fault.|Unplug the charger and plug it in again.|\n"
    "|Off|4 flashes|Voltage out of range.|Try another socket.|\n"
    "|Off|5 flashes|Adapter fault.|Check that the adapter is attached properly.|\n"
    "|Off|6 flashes|Internal fault.|Contact Corvan Service.|"
)
ROADSIDE = (
    "Corvan Roadside Assistance is there for you day and night, for as long as your "
    "warranty runs, and its staff can explain how to transport the Aster.\n\n"
    "When you call, have your vehicle identification number and your location ready.\n\n"
    "Phone numbers\n\n"
    "Canada: 1-800-555-0142\n\n"
    "United States: 1-800-555-0199\n\n"
    "Note: The number is also shown under Settings > Service."
)


@pytest.mark.parametrize(
    ("question", "counts"),
    [
        ("no green lights and the red light blinks twice", {2}),
        ("the red one blinks 2x, whats wrong", {2}),
        ("red light flashes 3 times when i plug in", {3}),
        ("it beeps three times when i lock it", {3}),
        ("three short beeps and nothing happens", {3}),
        ("the charger light flashes once", {1}),
        # "one" is the light, not a count; no count given
        ("the red one blinks", set()),
        ("the light is blinking red", set()),
    ],
)
def test_how_often_a_light_flashes_is_read_from_the_owners_words(question, counts):
    assert signal_counts(question) == counts


def test_a_status_row_is_picked_by_the_count_the_owner_gives(embed, vocabulary):
    # m3-003 of the held-out set ("the red one blinks 2x") and c-045 of the second blind set
    # ("the red light blinks twice"): the table's rows differ only in their count.
    lights = passage(1, "Charging > Portable charger status lights", CONNECTOR_LIGHTS, 0.6)

    for question in (
        "portable charger plugged in, no green lights and the red light blinks twice",
        "charger has no green lights and the red one blinks 2x, whats wrong",
    ):
        quote = compose_quote(question, [lights], embed=embed, vocabulary=vocabulary)

        assert quote is not None
        assert "|Off|2 flashes|No earth connection." in quote.text, question
        assert "3 flashes" not in quote.text and "1 flash|" not in quote.text
    assert signalled_counts(CONNECTOR_LIGHTS) == {1, 2, 3, 4, 5, 6}


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("whats the roadside number in the US? stuck on the side of the road", True),
        ("what number do i call for roadside", True),
        ("who do i call if my car breaks down", True),
        ("is there a phone number for support", True),
        ("where is the VIN number", False),
        ("how many numbers can the keypad hold", False),
    ],
)
def test_a_question_asking_for_a_number_to_call_is_recognised(question, asks):
    assert asks_for_phone_number(question) is asks


def test_a_number_to_call_is_answered_with_the_number(embed, vocabulary):
    # c-010 of the second blind set quoted the page's opening ("... is available to you 24
    # hours a day") and the list of what to have ready, and no number.
    roadside = passage(1, "Roadside Assistance > Contacting Roadside Assistance", ROADSIDE, 0.62)

    quote = compose_quote(
        "whats the corvan roadside number? stuck on the side of the road",
        [roadside],
        embed=embed,
        vocabulary=vocabulary,
    )

    assert quote is not None
    assert "1-800-555-0199" in quote.text or "1-800-555-0142" in quote.text


def test_how_long_to_drive_may_be_answered_in_distance_and_how_early_in_time():
    # "calibration completes after driving 20-25 miles" answers "how long do i have to drive
    # for it to finish" (c-028 of the second blind set, declined for "no such figure").
    units = amount_units("autopilot says its calibrating. how long do i have to drive for it")
    assert {"mi", "km"} <= units and "min" in units
    assert {"min", "h"} <= amount_units("how early should i turn the ac on before i leave")
    # how long a thing is stays a length, how long a wait stays a time
    assert "min" not in amount_units("how long is the car")
    assert "mi" not in amount_units("how long do i hold the scroll wheels")


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("how much does tesla charge to put the coating on the side windows", True),
        ("what do dealers charge for a new key", True),
        ("how much does the service center charge to swap the wipers", True),
        # a seller named with an apostrophe
        ("whats tesla's price for a new windshield", True),
        ("what is the dealer's fee to pair a key", True),
        ("what's the tire's pressure", False),
        ("how much does it charge overnight at home", False),
        ("how long does it take to charge to 80%", False),
    ],
)
def test_what_a_seller_charges_is_asked_as_a_price(question, asks):
    assert asks_for_price(question) is asks


@pytest.mark.parametrize(
    ("manual", "question", "reading"),
    [
        (
            "Schedule a service appointment in the mobile app.",
            "how do i book a service appt",
            "how do i book (schedule) a service appt (appointment)",
        ),
        (
            "Call Roadside Assistance if the vehicle cannot be driven.",
            "my car broke down",
            "my car broke down (roadside assistance)",
        ),
        (
            "Place your phone on the wireless phone charger.",
            "phone wont charge on the wireless pad",
            "phone wont charge on the wireless pad (wireless phone charger)",
        ),
        (
            "Replace the tires when the tread is worn.",
            "when do i need new tires",
            "when do i need new tires (replace)",
        ),
        (
            "Traffic-Aware Cruise Control keeps a set distance from the vehicle ahead.",
            "how do i turn on adaptive cruise",
            "how do i turn on adaptive cruise (traffic-aware cruise control)",
        ),
        (
            "To turn on the hazard warning flashers, press the button above the mirror.",
            "how do i put the hazard lights on",
            "how do i put the hazard lights (hazard warning flashers) on",
        ),
        (
            "Auto High Beam switches the high beams off for oncoming traffic.",
            "brights wont turn off",
            "brights (high beams) wont turn off",
        ),
        (
            "Push the drive stalk up to shift into Reverse.",
            "where is the gear shifter",
            "where is the gear shifter (drive stalk)",
        ),
        (
            "Lane Assist warns you when you drift out of your lane.",
            "does it have lane keep assist",
            "does it have lane keep assist (lane assist)",
        ),
        (
            "Fog lights operate whenever low beam headlights are on.",
            "turn on the fog lamps",
            "turn on the fog lamps (fog lights)",
        ),
    ],
)
def test_an_owners_everyday_word_is_read_as_the_manuals(manual, question, reading):
    # booking a service, a breakdown, a charging pad, new tires, and the driving controls
    assert with_manual_names(question, Vocabulary.from_texts([manual])) == reading


PAIRING = (
    "To pair a phone, follow these steps while sitting in the Aster:\n\n"
    "1. Turn on Bluetooth on your phone.\n"
    "2. On the touchscreen, touch Bluetooth > Add New Device.\n"
    "3. Touch your phone in the list, then confirm the number shown on both screens.\n"
    "4. Choose whether the Aster may read your contacts."
)
CONNECTING = (
    "The Aster connects to the phone set as Priority Device on the Bluetooth screen. If no phone "
    "is set as a priority, it connects to the last phone it was connected to.\n\n"
    "To connect to a different phone, touch Bluetooth on the touchscreen, choose the phone "
    "and touch Connect."
)


@pytest.mark.parametrize(
    ("question", "again"),
    [
        ("me and my wife both paired our phones, how do i make it pick mine", True),
        ("i already paired it but it wont connect", True),
        ("how do i pair my phone", False),
        ("can two phones be paired", False),
    ],
)
def test_what_the_owner_says_is_done_already_is_told(question, again):
    assert done_aim(question)("To pair a phone, follow these steps:") is again
    assert not done_aim(question)("To connect to a different phone, touch Connect.")


def test_a_verb_whose_past_is_its_present_is_done_only_when_the_owner_says_so():
    reset = "To reset the tire pressure monitor, touch Service > Tires > Reset."
    assert not done_aim("how do i reset the tpms")(reset)
    assert not done_aim("can i reset it myself")(reset)
    assert done_aim("i've reset the tpms but the light is still on")(reset)
    assert done_aim("tried resetting it, light still on")(reset)
    restart = "To restart the touchscreen, hold both scroll buttons."
    assert done_aim("i already rebooted the screen and its still frozen")(restart)
    assert not done_aim("should i restart it")(restart)


def test_a_procedure_for_what_the_owner_did_already_is_not_the_answer(embed, vocabulary):
    # c-018 of the second blind set quoted the whole pairing procedure to an owner whose phone
    # and wife's phone were both paired already.
    pairing = passage(1, "Bluetooth > Pairing a phone", PAIRING, 0.62)
    connecting = passage(2, "Bluetooth > Connecting to a paired phone", CONNECTING, 0.6)
    question = (
        "me and my wife both paired our phones and it always connects to hers. "
        "how do i make it pick mine first"
    )

    quote = compose_quote(question, [pairing, connecting], embed=embed, vocabulary=vocabulary)

    assert quote is not None
    assert quote.numbers == [2]
    assert "To pair a phone" not in quote.text
