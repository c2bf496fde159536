"""What a question asks for: its terms, with an owner's words read as a manual's ("how long is
the car" asks for its length, "3 min" speaks of minutes), whether it asks for an amount or for
a procedure, the units an amount is asked in (named, "how many kWh", or those of what is
asked for, "what temp"), and its key terms (its content words without the owner's fillers and
figures, which retrieval's keyword list searches for and the decline weighs). Plain Python (no
Django); the quote composer (``chat.quoting``) scores units with them, and the decline
(``chat.declines``) checks passages and quotes for a figure in those units.
"""

from __future__ import annotations

import re
from typing import Final

from chat.car_ends import named_sides
from chat.names import CODE
from chat.stemming import stem
from chat.text_units import MEASURE_NOUNS, terms
from chat.verification import UNITS, torque_units

__all__ = [
    "RANGE_ENDS",
    "USING",
    "amount_units",
    "asked_part",
    "asked_terms",
    "asks_for_procedure",
    "asks_for_a_figure_alone",
    "asks_for_meaning",
    "asks_for_means",
    "asks_for_quantity",
    "counted",
    "failed_actions",
    "key_terms",
    "named_sides",
    "named_units",
    "states_failure",
]

#: Words that ask for the end of a range of an amount ("what's the coldest I can set it").
RANGE_ENDS: Final = frozenset({
    "coldest", "hottest", "warmest", "coolest", "highest", "lowest", "fastest", "slowest",
    "heaviest", "maximum", "minimum",
})  # fmt: skip
_QUANTITY: Final = re.compile(
    r"\bhow\s+(?:much|many|long|far|often|fast|heavy|big|high|low|wide|tall|hot|cold|deep|"
    r"soon|quickly|early|late|old|slow|tight)\b|\bwhat(?:'s|s|\s+is|\s+are)?\s+(?:the\s+)?(?:[\w'-]+\s+){0,2}"
    r"(?:size|temp\w*|time|pressure|psi|percent\w*|speed|distance|weight|capacity|number|"
    r"voltage|amps?|amperage|volume|"
    r"length|width|height|clearance|range|limit|interval|torque|dimensions?)\b|"
    r"\bwhen\s+(?:do|does|should|must|will)\b|\bat\s+what\b|"
    # an owner's terse question that opens on what is measured: "torque spec for the bolt on
    # the mudflaps?", "tire pressure for winter"
    r"^\s*(?:[\w'-]+\s+)?(?:torque|psi|pressure|capacity|voltage|amperage|clearance|"
    r"dimensions?|weight|interval)\s+(?:specs?|rating|for|of|on|in|when)\b|"
    # "what's the coldest I can set it", "the maximum load": the end of a range
    rf"\b(?:{'|'.join(sorted(RANGE_ENDS))})\b",
    re.IGNORECASE,
)
_PROCEDURE: Final = re.compile(
    r"\bhow\s+(?:do|can|should|would|could)\s+(?:i|you|we|u)\b|\bhow\s+to\b|"
    # "what should I do", "anything I should do first?", "anything else I need to do"
    r"\b(?:what|anything)\s+(?:else\s+)?"
    r"(?:(?:do|should|must|can)\s+i|i\s+(?:should|must|can|need\s+to))\s+do\b|"
    r"\bis\s+there\s+a\s+way\b|\bsteps?\b|"
    # "whats the right way to shut the frunk": the manual's "To properly close the hood: 1. ..."
    r"\b(?:right|proper|correct|safe|best)\s+way\s+to\b|"
    # "any fix?": the steps that fix it are the answer ("what order do the clamps go on" was
    # tried too, and put the battery's removal steps, not the jump start's, on blind5 g-024)
    r"\bany\s+(?:fix|solution|remedy)\b|"
    # a fault described: "door handle frozen shut", "the trunk wont open", "stuck in park"
    r"\b(?:won'?t|wont|will\s+not|doesn'?t|does\s+not|not\s+working|stuck|frozen|jammed)\b",
    re.IGNORECASE,
)
# "What can I clean the wiper blades with", "what should I use": the answer names a means.
_MEANS: Final = re.compile(
    r"\bwhat\b[^?]*\bwith\W*$|\bwhat\s+(?:should|can|do|would)\s+(?:i|you|we)\s+use\b|"
    r"\bwhat\s+to\s+use\b",
    re.IGNORECASE,
)
# "What does the red light mean", "what is creep mode": the answer is what the manual says of
# the thing named, often an entry of a list or table labelled with its name.
_MEANING: Final = re.compile(
    r"\bwhat\s+(?:does|do|did)\b[^?]*\bmean\b|\bmeaning\s+of\b|"
    r"^\s*what(?:'s|s|\s+is|\s+are)\s+(?:an?\s+|the\s+)?[\w'-]+(?:\s+[\w'-]+){0,2}\s*\??\s*$",
    re.IGNORECASE,
)
# The manual's word for the means: "Clean the touchscreen(s) using a soft lint-free cloth".
USING: Final = re.compile(r"\busing\b", re.IGNORECASE)
# "Can I make it only unlock the driver's door", "what do I turn on", "is there a setting":
# the answer names a setting, and where to find it.
_SETTING: Final = re.compile(
    r"\b(?:settings?|option|turn(?:ed)?\s+(?:\w+\s+)?(?:on|off)|switch\s+(?:\w+\s+)?(?:on|off)|"
    r"shut\s+(?:\w+\s+)?off|disable|enable|make\s+it|"
    r"can\s+i\s+(?:make|set|change|get|have|stop|turn|keep)|is\s+there\s+a\s+(?:way|setting|mode)|"
    r"how\s+do\s+i\s+(?:turn|set|change|stop|make|get|enable|disable))\b",
    re.IGNORECASE,
)
# "How long is the car" asks for its length; "how long does it take", for a time.
_MEASURE_NOUN: Final = {**MEASURE_NOUNS, "long": "length"}
_MEASURE: Final = re.compile(
    rf"\bhow\s+({'|'.join(_MEASURE_NOUN)})\b"
    r"(?!\s+(?:does|do|did|will|would|should|can|could|until|before|after|ago|to|for)\b)",
    re.IGNORECASE,
)
# What owners shorten and manuals spell out.
_SHORT_FORMS: Final = {
    "min": "minutes",
    "mins": "minutes",
    "hr": "hours",
    "hrs": "hours",
    "sec": "seconds",
    "secs": "seconds",
}
_SHORT_FORM: Final = re.compile(rf"\b(?:{'|'.join(_SHORT_FORMS)})\b", re.IGNORECASE)


# An owner's own car, as a question names it ("water under my car"): every passage of the
# manual speaks of it, which writes "Model 3" or "the vehicle"; not a "car wash" or a "car seat".
_OWN_CAR: Final = re.compile(
    r"\b(?:my|the|your|our|this|his|her|their)\s+(?:car|vehicle)\b(?!\s+(?:wash|seats?)\b)",
    re.IGNORECASE,
)


def asked_terms(question: str) -> list[str]:
    """The question's terms, with an owner's words for a measure read as the manual's: "how
    long is the car" also asks for its length, "3 min" speaks of minutes. The owner's own car
    ("why is there water under my car") is no term: the manual seldom writes "car", which
    weighs heavily for it, and a passage saying "car wash" covered it ("condensation ... after
    a car wash" came before "a small pool of water ... under Model 3 when parked")."""
    asked = _OWN_CAR.sub(" ", question)
    found = terms(_SHORT_FORM.sub(lambda match: _SHORT_FORMS[match.group(0).lower()], asked))
    for match in _MEASURE.finditer(question):
        found.extend(terms(_MEASURE_NOUN[match.group(1).lower()]))
    return list(dict.fromkeys(found))


# The circumstances a question asks under: "without power", "if the car has no power", "with
# no key", "when it is dead": up to three words after them.
_CONDITION: Final = re.compile(
    r"\b(?:without|with\s+no|if\s+(?:the\s+car|it|my\s+car|the\s+vehicle)\s+"
    r"(?:has\s+no|is|isn'?t|wont|won'?t|doesn'?t)|when\s+(?:the\s+car|it|my\s+car)\s+"
    r"(?:has\s+no|is))\s+((?:[\w'-]+\s*){1,3})",
    re.IGNORECASE,
)


def condition_terms(question: str) -> frozenset[str]:
    """The terms of the circumstances ``question`` asks under ("how do i open the charge port
    without power": {"power"}); empty when it names none. A quote for the circumstances names
    them: the usual ways to open the port do not work without power."""
    found = _CONDITION.search(question)
    named = terms(found.group(1)) if found else []
    # One word names a state of the car ("power", "key"); more ("without a 3 point turn") name
    # a manoeuvre, which the quote need not repeat.
    return frozenset(named) if len(named) == 1 and not named[0].isdigit() else frozenset()


# What says a thing is missing, before its name: "no power", "has lost 12 V power", "without
# a key", "does not have power".
_ABSENCE: Final = re.compile(
    r"\b(?:no|without|lost|loses|losing|lose|(?:does\s+)?not\s+have|doesn'?t\s+have|"
    r"unavailable)\s+((?:[\w'-]+\s+){0,3}[\w'-]+)",
    re.IGNORECASE,
)


def states_absence(text: str, condition: frozenset[str]) -> bool:
    """Whether ``text`` says that what ``condition`` (:func:`condition_terms`) names is missing
    ("If the Aster has lost 12 V power ..." for {"power"}): a text that only uses the thing
    ("Before you can use a phone to access Model 3, ...") is not for its absence."""
    return bool(condition) and any(
        condition <= set(terms(found.group(1))) for found in _ABSENCE.finditer(text)
    )


# What an owner says their car does not do: "walk away lock doesnt lock my car sometimes",
# "the wireless charger won't charge my phone".
_FAILS: Final = re.compile(
    r"\b(?:doesn'?t|does\s+not|won'?t|wont|will\s+not|didn'?t|did\s+not|can'?t|cant|cannot|"
    r"never)\s+(?:always\s+|automatically\s+|actually\s+|even\s+|ever\s+)?([a-z]+)",
    re.IGNORECASE,
)
# What a manual writes of when something does not happen: "Model 3 does not automatically lock
# if:", "the wipers may not turn on", "fails to charge".
_STATES_FAILURE: Final = re.compile(
    r"\b(?:(?:does|do|will|may|might|can|could|is|are)\s+not|doesn'?t|don'?t|won'?t|cannot|"
    r"can'?t|fails?\s+to|unable\s+to)\s+(?:\w+ly\s+)?(?:be\s+)?([a-z]+)",
    re.IGNORECASE,
)
# Verbs that say nothing of what fails: "doesn't have", "can't see why".
_NOT_ACTIONS: Final = frozenset({"have", "know", "want", "need", "seem", "like", "think", "be"})


def failed_actions(question: str) -> frozenset[str]:
    """The stemmed verbs of what ``question`` says the car does not do ("walk away lock doesnt
    lock my car": {"lock"}); empty when it says of none."""
    return frozenset(
        stem(found.group(1).lower())
        for found in _FAILS.finditer(question)
        if found.group(1).lower() not in _NOT_ACTIONS
    )


def states_failure(text: str, actions: frozenset[str]) -> bool:
    """Whether ``text`` says when or why one of ``actions`` (:func:`failed_actions`) does not
    happen ("Model 3 does not automatically lock if:" for {"lock"}): the manual's answer to a
    fault is often the list of the cases it does not work in, not the feature's description."""
    return bool(actions) and any(
        stem(found.group(1).lower()) in actions for found in _STATES_FAILURE.finditer(text)
    )


def asks_for_procedure(question: str) -> bool:
    """Whether ``question`` asks how to do something ("how do I...", "what should I do"): its
    answer is then often a procedure."""
    return bool(_PROCEDURE.search(question))


def asks_for_means(question: str) -> bool:
    """Whether ``question`` asks what to do something with ("what can i clean the wiper
    blades with", "what should I use to clean the touchscreen"): its answer names the means,
    the manual writes "using ..." ("Clean the windshield and wiper blades using washer
    fluid, ..."), and a sentence that only shares its words ("If the wipers remain ineffective
    after cleaning, replace the wiper blades.") answers nothing."""
    return bool(_MEANS.search(question))


def asks_for_meaning(question: str) -> bool:
    """Whether ``question`` asks what something means or is ("what does a red charge port light
    mean", "what is creep mode"): the manual's entry for it, by its name, answers."""
    return bool(_MEANING.search(question))


def asks_for_setting(question: str) -> bool:
    """Whether ``question`` asks for a setting ("can I turn it off", "is there a setting", "what
    do I turn on so it stays in neutral"): its answer then says where the setting is."""
    return bool(_SETTING.search(question))


def asks_for_quantity(question: str) -> bool:
    """Whether ``question`` asks for an amount, a size, a time or a frequency ("how long",
    "what psi", "how often"): its answer then holds a number."""
    return bool(_QUANTITY.search(question))


_HOW_MANY: Final = re.compile(r"\bhow\s+many\s+((?:[a-z][\w'-]*\s*){1,3})", re.IGNORECASE)
# Words that end what "how many" counts: the verb or pronoun after it.
_AFTER_COUNTED: Final = frozenset({
    "can", "could", "do", "does", "did", "are", "is", "was", "were", "will", "would", "should",
    "must", "may", "i", "you", "we", "they", "it", "he", "she", "there",
    "of", "in", "on", "at", "for", "to", "with",
})  # fmt: skip


def counted(question: str) -> frozenset[str]:
    """The stems of the words that name what ``question`` counts ("how many key fobs can I
    have" -> {"key", "fob"}, "how many devices can HomeLink control" -> {"devic"}); empty when
    it counts nothing."""
    match = _HOW_MANY.search(question)
    if not match:
        return frozenset()
    found = []
    for word in match.group(1).lower().split():
        if word in _AFTER_COUNTED:
            break
        found.append(stem(word))
    return frozenset(found)


# How often a light flashes or a car beeps, as an owner counts it off the car ("the red light
# blinks twice", "flashes 3 times", "beeps three times"): a status table names its rows so
# ("|Off|2 flashes|Ground loss ...|").
_SIGNAL_STEM: Final = r"(?:blink|flash|beep|chime|pulse)"
_SIGNAL: Final = rf"{_SIGNAL_STEM}(?:s|es|ed|ing)?"
_COUNT_WORDS: Final = {
    "once": 1, "twice": 2, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8,
}  # fmt: skip
_MANY: Final = r"(?:\d{1,2}|two|three|four|five|six|seven|eight)"
# "blinks twice", "flashes 3 times", "beeps 2x", "three short beeps" (not "the red one blinks").
_SIGNAL_COUNT: Final = re.compile(
    rf"\b{_SIGNAL}\s+(?:\w+\s+)?(?:(once|twice)|({_MANY}|one)\s*(?:times\b|x\b))|"
    rf"\b({_MANY})\s+(?:short\s+|long\s+)?{_SIGNAL_STEM}(?:s|es)\b",
    re.IGNORECASE,
)
_SIGNALLED: Final = re.compile(rf"\b(\d{{1,2}})\s+(?:times?\s+|short\s+|long\s+)?{_SIGNAL}\b")


def signal_counts(question: str) -> frozenset[int]:
    """How many times the owner saw a light flash or heard the car beep ("the red light
    blinks twice" -> {2}); empty when the question counts no signal."""
    found = set()
    for match in _SIGNAL_COUNT.finditer(question):
        word = next(group for group in match.groups() if group).lower()
        found.add(int(word) if word.isdigit() else _COUNT_WORDS[word])
    return frozenset(found)


def signalled_counts(text: str) -> frozenset[int]:
    """The counts of flashes or beeps a manual's ``text`` names ("2 flashes" -> {2})."""
    return frozenset(int(match.group(1)) for match in _SIGNALLED.finditer(text))


# A question asking for a number to call ("whats the roadside number", "who do i call"), and
# a telephone number as a manual writes one ("1-877-79TESLA (1-877-798-3752)", "800-228-8145").
_ASKS_PHONE: Final = re.compile(
    r"\b(?:phone|telephone|contact|hotline|toll[- ]?free|emergency)\s*(?:number|#|no\b)|"
    r"\b(?:roadside|assistance|support|customer\s+service)\s+(?:phone\s+)?(?:number|#|line)\b|"
    r"\b(?:number|who)\s+(?:to|do\s+i|should\s+i|can\s+i|would\s+i)\s+(?:call|ring|phone)\b",
    re.IGNORECASE,
)
PHONE_NUMBER: Final = re.compile(r"\b(?:1-)?\d{3}-(?:\d{3}-\d{4}|\d{2}[A-Z]{5})\b")


def asks_for_phone_number(question: str) -> bool:
    """Whether ``question`` asks for a number to call ("whats the tesla roadside number")."""
    return bool(_ASKS_PHONE.search(question))


_WHERE: Final = re.compile(r"\bwhere(?:'?s)?\b", re.IGNORECASE)


def asks_for_a_figure_alone(question: str) -> bool:
    """Whether ``question`` asks for an amount (:func:`asks_for_quantity`) and not also how to
    do something or where something is: "what torque for the mud flap bolt" is answered by
    the step that gives it; "where does washer fluid go and how much does it hold", by the
    procedure that says where, with the figure in it; "how many cameras does it have", by
    the whole list, which a count adds up (:func:`counted`)."""
    return (
        asks_for_quantity(question)
        and not asks_for_procedure(question)
        and not _WHERE.search(question)
        and not (counted(question) and not named_units(question))
    )


_CHANGE: Final = re.compile(
    r"\b(?:lose|loses|losing|lost|loss|drops?|reduc\w*|decreas\w*|increas\w*|gain\w*|"
    r"less|more|fewer)\b",
    re.IGNORECASE,
)
_TIMES: Final = frozenset({"s", "min", "h", "day", "week", "month", "year"})
_LENGTHS: Final = frozenset({"mi", "km", "m", "mm", "cm", "ft", "in"})
# What a question asks an amount of, and the units (``chat.verification.UNITS``' names) an
# answer gives it in.
_DIMENSIONS: Final = (
    (
        re.compile(
            r"\b(?:temp\w*|degrees?|(?:hott?|cold|warm|cool)(?:er|est)?|freez\w*)\b", re.IGNORECASE
        ),
        {"deg"},
    ),
    (
        re.compile(
            r"\bhow\s+(?:far|wide|tall|high|deep|big|long\s+(?:is|are)\b)|"
            r"\b(?:distance|length|width|height|clearance|dimensions?|range|miles?)\b",
            re.IGNORECASE,
        ),
        _LENGTHS,
    ),
    # How big a space is: in litres ("how big is the trunk": "Rear trunk: 520 L").
    (re.compile(r"\bhow\s+big\b|\b(?:volume|litres?|liters?|cubic)\b", re.IGNORECASE), {"l"}),
    (
        re.compile(
            r"\bhow\s+(?:often|soon|quickly|early|late|long(?!\s+(?:is|are)\b))|"
            r"\b(?:seconds|minutes|hours|days|weeks|months|years|time)\b",
            re.IGNORECASE,
        ),
        _TIMES,
    ),
    # How often, how long until, or how long to drive: a manual gives it in time or in
    # distance driven ("every 6,250 miles", "after 20-25 miles of driving").
    (
        re.compile(
            r"\bhow\s+often\b|\bintervals?\b|\bhow\s+long\s+(?:till|until|before)\b|"
            r"\bhow\s+long\s+(?:do|does|should|must|can|will|would)\s+(?:i|you|we|it)\s+"
            r"(?:have\s+to\s+|need\s+to\s+)?drive\b",
            re.IGNORECASE,
        ),
        _TIMES | _LENGTHS,
    ),
    (
        re.compile(r"\b(?:weigh\w*|heavy|load|payload|lbs?|kg|pounds)\b", re.IGNORECASE),
        {"lb", "kg"},
    ),
    (re.compile(r"\b(?:psi|pressure|kpa)\b", re.IGNORECASE), {"psi", "kpa", "bar"}),
    (re.compile(r"\b(?:how\s+fast|speed|mph|km/?h)\b", re.IGNORECASE), {"mph", "km/h"}),
    # How fast a car charges: in power, current, time, or range gained per hour ("what is the
    # max charging speed": "DC fast charging, peak: 150 kW"; a speed in km/h would miss it).
    (
        re.compile(
            r"\b(?:how\s+(?:fast|quickly)|speed|rate|power)\b.*\bcharg|"
            r"\bcharg\w*\b.*\b(?:how\s+(?:fast|quickly)|speed|rate|power)\b",
            re.IGNORECASE,
        ),
        {"kw", "a"} | _TIMES,
    ),
    (re.compile(r"%|\bpercent\w*", re.IGNORECASE), {"%"}),
    (re.compile(r"\bvolt\w*", re.IGNORECASE), {"v"}),
    # How tight: "what torque", "how many ft lbs" (``chat.verification.torque_units``).
    (
        re.compile(r"\b(?:torque\w*|ftlb|nm|newton\w*)\b|\bhow\s+tight", re.IGNORECASE),
        {"nm", "ftlb"},
    ),
    (re.compile(r"\b(?:amps?|amperage|current)\b", re.IGNORECASE), {"a"}),
)


_FIGURE_WITH_UNIT: Final = re.compile(r"\d[\d.,/-]*\s*(%|[a-z/]+\.?)", re.IGNORECASE)


def amount_units(question: str) -> frozenset[str]:
    """The units an answer to ``question`` gives its amount in, when it asks for an amount of
    something ("what temp" -> degrees, "how far" -> miles, feet or metres, "how long does it
    take" -> a time; "how much range do I lose" -> a distance or a percentage); empty when it
    asks for none."""
    if not asks_for_quantity(question):
        return frozenset()
    # "from 10% to 80%", "at 20 degrees", "for 3 weeks": the owner's figures tell the
    # situation, not what is asked for.
    asked = _FIGURE_WITH_UNIT.sub(
        lambda match: " " if match.group(1).lower().rstrip(".") in UNITS else match.group(0),
        torque_units(question),
    )
    found: set[str] = set()
    for pattern, units in _DIMENSIONS:
        if pattern.search(asked):
            found |= units
    # "how much range do i lose in winter": a loss or a gain is as often told in percent
    # ("expect 20-30% less range")
    if found and _CHANGE.search(asked):
        found.add("%")
    return frozenset(found)


# A rate's period: "per year", "1% a day", "once a month", "/yr", "yearly", "annually" (not
# "wait a day").
_PERIODS: Final = {
    "hour": "hour", "hr": "hour", "hourly": "hour", "day": "day", "daily": "day",
    "week": "week", "weekly": "week", "month": "month", "monthly": "month", "mo": "month",
    "year": "year", "yr": "year", "yearly": "year", "annually": "year", "annual": "year",
}  # fmt: skip
_PERIOD: Final = re.compile(
    r"(?:\b(?:per|each|every)\s+|(?:\d\S*|\btimes|\btwice|\bonce)\s+an?\s+|/)"
    r"(hour|hr|day|week|month|mo|year|yr)\b|"
    r"\b(hourly|daily|weekly|monthly|yearly|annually)\b(?!\s+(?:basis|check))",
    re.IGNORECASE,
)


def rate_periods(text: str) -> frozenset[str]:
    """The periods of the rates ``text`` speaks of ("lose per year" -> {"year"}, "1% per day"
    -> {"day"}, "/yr", "annually")."""
    return frozenset(
        _PERIODS[(match.group(1) or match.group(2)).lower()] for match in _PERIOD.finditer(text)
    )


_ASKED_UNIT: Final = re.compile(
    r"\bhow\s+many\s+([a-z%/]+)|\bin\s+([a-z%/]+)\s*[?.!]*\s*$|\bhow\s+much\s+([a-z]+)",
    re.IGNORECASE,
)
# Units asked for that the verification table does not name.
_EXTRA_UNITS: Final = {"horsepower": "hp", "hp": "hp", "watts": "w", "watt": "w"}


def named_units(question: str) -> set[str]:
    """The units the question names for the amount it asks ("how many kWh" -> {"kwh"}, "in
    inches" -> {"in"}), by the verification's unit names; :func:`amount_units` gives the units
    of what is asked for ("what temp" -> degrees) instead."""
    found = set()
    for match in _ASKED_UNIT.finditer(torque_units(question).lower()):
        word = next(group for group in match.groups() if group)
        unit = UNITS.get(word) or _EXTRA_UNITS.get(word)
        if unit:
            found.add(unit)
    return found


# Function words and chat fillers that carry no subject (NLTK's English list plus the forms
# owners type without apostrophes); the QA gate's small stopword list is kept small on purpose.
_FUNCTION_WORDS: Final = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves what which who
    whom this that these those am is are was were be been being have has had having do does did
    doing a an the and but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some
    such no nor not only own same so than too very s t can will just don should now d ll m o re
    ve y ain aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn
    weren won wouldn whats hows wheres whens whos im ive id dont cant wont doesnt didnt isnt
    arent wasnt werent shouldnt couldnt wouldnt thats theres theyre youre u ur ya pls plz thx
    thanks like really gonna wanna gotta kinda sorta ok okay hey hi please anyone anybody
    someone something anything everything thing things stuff actually basically ever also still
    even much many lot lots bit get got gets getting go goes going went gone make makes made
    need needs want wants know think say says said tell way ways yes yeah would could might
    must shall may one ones""".split()  # noqa: SIM905 - a word list reads better this way
)
# "50k", "11pm", "2021", "3rd": figures that describe the owner's situation, not the subject.
_FIGURE: Final = re.compile(r"^\d+(?:[a-z]{1,2})?$")


def named_codes(question: str) -> list[str]:
    """The codes ``question`` gives ("BRK-040"), as patterns that find them in the manual
    written with or without their "-" or "_" ("BRK-040", "brk040"); none without one."""
    return [
        rf"\b{re.escape(letters)}[-_]?{re.escape(digits)}\b"
        for letters, digits in dict.fromkeys(CODE.findall(question))
    ]


def label_phrases(question: str) -> list[str]:
    """Runs of two or three key words the question writes together ("ground clearance",
    "turning circle"), lower-cased, longest first: what a table row may be labelled."""
    content = {word.lower() for word in key_terms(question).values()}
    runs: list[list[str]] = [[]]
    for token in re.findall(r"[a-z]+|[^a-z\s]", question.lower()):
        if token in content and len(token) > 2:
            runs[-1].append(token)
        elif runs[-1]:
            runs.append([])
    phrases = {
        " ".join(run[start : start + size])
        for run in runs
        for size in (3, 2)
        for start in range(len(run) - size + 1)
    }
    return sorted(phrases, key=lambda phrase: (-len(phrase.split()), phrase))


def label_pattern(phrases: list[str], *, word_end: str = r"\b") -> str:
    """A regular expression for a table cell that starts with one of ``phrases`` ("|Ground
    Clearance|"), ending on ``word_end``: Python's ``\\b``, or PostgreSQL's ``\\M``."""
    alternatives = "|".join(r"\s+".join(map(re.escape, phrase.split())) for phrase in phrases)
    return rf"\|\s*(?:{alternatives}){word_end}"


def key_terms(question: str) -> dict[str, str]:
    """The question's key terms: stemmed content word -> the word as the owner wrote it, without
    function words, fillers and figures."""
    found: dict[str, str] = {}
    for written in re.findall(r"\w+", question):
        word = written.lower()
        if word in _FUNCTION_WORDS or _FIGURE.match(word) or word in UNITS:
            continue  # units are checked against the passages' figures instead
        for term in terms(MEASURE_NOUNS.get(word, word)):
            found.setdefault(term, written)
    return found


# A sentence that asks: it opens on a question word or an auxiliary ("how do i book a service
# appt", "can i charge in the rain"; not "cameras look clean from outside??").
_ASKS: Final = re.compile(
    r"^\s*(?:how|what(?:'s|s)?|where|when|why|which|who|can|could|do|does|is|are|should|will|"
    r"would|any\s*(?:thing|one))\b",
    re.IGNORECASE,
)
# Where an owner's sentence ends, capital letter after it or not ("...from the back. how do i"),
# and where a clause that asks starts after a comma ("buddys battery died, can i jump his car").
_SENTENCE_END: Final = re.compile(
    r"(?<=[.!?])\s+|,\s+(?=(?:how|what|where|why|which|can|could|should|is\s+it|will\s+it)\b)",
    re.IGNORECASE,
)


def asked_part(question: str) -> str:
    """The sentences of ``question`` that ask, without those that tell the owner's situation
    ("theres a weird rattle from the back. how do i book a service appt": "how do i book a
    service appt"; "buddys battery died, can i jump his car": "can i jump his car"); the
    question itself when every sentence asks, or none does, or what asks has fewer than two
    key terms of its own ("... the alarm kept going off?? why")."""
    sentences = [part for part in _SENTENCE_END.split(question.strip()) if part]
    asking = [sentence for sentence in sentences if _ASKS.search(sentence)]
    if not asking or len(asking) == len(sentences):
        return question
    asked = " ".join(asking)
    # "... the alarm kept going off?? why": a bare question word asks of the situation
    return asked if len(key_terms(asked)) >= 2 else question
