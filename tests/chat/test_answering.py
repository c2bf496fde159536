"""The answer path's stages with plain inputs: decide, quote, build the prompt, generate guarded,
verify while streaming, compose (no database).

The passages are from the bundled sample manual; the embedding model is the real one, loaded
once for the module. A model's stream is a generator of ``manualqa.lib.llm`` stream events, written
here so that a test can see what was read from it and whether it was closed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from chat import prompts
from chat.answering import (
    GROUNDED_MAX_TOKENS,
    GROUNDED_STYLE_INSTRUCTION,
    MIN_VERIFIED_WORDS,
    AnswerPolicy,
    GuardedStream,
    StreamingVerifier,
    asked_part,
    build_prompt,
    compose,
    decide,
    quote,
    quote_asked,
    quote_declines,
)
from chat.declines import (
    DEFAULT_MIN_COVERAGE,
    MIN_MEANING_SHIFT,
    key_term_coverage,
    meaning_shift,
)
from chat.quoting import QuotePassage
from chat.text_units import Vocabulary
from chat.verification import verify, word_count
from manualqa.lib.llm import Completion, StreamDelta, StreamEnd
from tests.chat.passages import RELEASE_LEAD_IN, RELEASE_SITUATION, RELEASE_STEPS

RELEASE_CABLE = f"{RELEASE_SITUATION} {RELEASE_LEAD_IN}\n\n" + "\n".join(RELEASE_STEPS)
TIRE_PRESSURES = """\
Inflate the tires to the pressures below. Always check and adjust pressures when the tires are \
cold - that is, after the vehicle has been parked for at least three hours.

| Wheel | Front (cold) | Rear (cold) |
| --- | --- | --- |
| 18-inch Aero wheel | 290 kPa (42 PSI) | 290 kPa (42 PSI) |
| 19-inch Sport wheel | 290 kPa (42 PSI) | 310 kPa (45 PSI) |

Caution: Do not let air out of hot tires to reach the recommended pressure."""
PRECONDITIONING = """\
Precondition the cabin for about five minutes before you drive in cold weather. Touch Climate \
in the Corvan Connect app and set the temperature."""
TPMS = """\
A sensor inside each wheel reports the pressure of that tire. After tire rotation or a wheel \
change, the sensors are learned automatically once you drive above 25 km/h (15 mph) for about \
10 minutes."""

PASSAGES = [
    QuotePassage(
        number=1,
        heading_path="Charging > Manually releasing the charge port door and connector",
        body=RELEASE_CABLE,
        similarity=0.62,
    ),
    QuotePassage(
        number=2,
        heading_path="Tires and Wheels > Recommended tire pressures",
        body=TIRE_PRESSURES,
        similarity=0.41,
    ),
]
# What verification checks an answer against: (citation number, passage text).
CHECKED_AGAINST = [(p.number, p.body) for p in PASSAGES]

GENERATED = AnswerPolicy(style="generated", max_tokens=256, min_score=0.3, min_coverage=0.45)
GROUNDED = AnswerPolicy(style="grounded", max_tokens=256, min_score=0.3, min_coverage=0.45)

COMPLETION = Completion(
    text="",
    tokens_in=120,
    tokens_out=30,
    finish_reason="stop",
    latency_s=0.4,
    attempts=1,
    model="tiny-test-model",
)


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return Vocabulary.from_texts([RELEASE_CABLE, TIRE_PRESSURES, PRECONDITIONING, TPMS])


def tokens(text: str) -> list[str]:
    """``text`` cut as a model streams it: each piece a word with the space before it."""
    return re.findall(r"\s*\S+", text)


def model_stream(pieces: list[str], seen: dict) -> Iterator[StreamDelta | StreamEnd]:
    """An endpoint's stream of ``pieces``; ``seen`` records how many were read and whether
    the stream was closed (a local model stops there, a remote connection is dropped)."""
    seen.update(read=0, closed=False)
    try:
        for piece in pieces:
            seen["read"] += 1
            yield StreamDelta(text=piece)
        yield StreamEnd(completion=COMPLETION)
    finally:
        seen["closed"] = True


# -- the policy ----------------------------------------------------------------------------------


def test_a_grounded_answer_gets_only_the_tokens_of_a_sentence_or_two():
    assert GENERATED.generation_tokens == 256
    assert GROUNDED.generation_tokens == GROUNDED_MAX_TOKENS
    small = AnswerPolicy(style="grounded", max_tokens=40, min_score=0.3, min_coverage=0.45)
    assert small.generation_tokens == 40


def test_an_unknown_answer_style_is_refused():
    with pytest.raises(ValueError, match="unknown answer style 'poetic'"):
        AnswerPolicy(style="poetic", max_tokens=256, min_score=0.3, min_coverage=0.45)


# -- 2. decide -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("passages", "confidence"),
    [(PASSAGES, 0.21), (PASSAGES, None), ([], 0.9)],
    ids=["below-min-score", "no-confidence", "no-passages"],
)
def test_a_question_nothing_close_answers_is_declined_for_similarity(
    passages, confidence, vocabulary, embed
):
    decline = decide(
        "How do I open the charge port when the car has no power?",
        passages,
        confidence=confidence,
        vocabulary=vocabulary,
        policy=GENERATED,
        embed=embed,
    )

    assert decline is not None
    assert decline.reason == "similarity"
    assert decline.message == "Nothing in the manual is close to this question."
    assert decline.detail == {"confidence": confidence, "min_score": 0.3}


@pytest.mark.parametrize(
    ("question", "reason", "message"),
    [
        (
            "Can I mount a Cybertruck tonneau cover on the Aster?",
            "coverage",
            "The manual never mentions “mount”, “Cybertruck”, “tonneau”.",
        ),
        ("How much does the release cable cost?", "price", "The manual gives no prices."),
    ],
)
def test_a_close_question_the_manual_does_not_answer_is_declined(
    question, reason, message, vocabulary, embed
):
    decline = decide(
        question,
        PASSAGES,
        confidence=0.62,
        vocabulary=vocabulary,
        policy=GENERATED,
        embed=embed,
    )

    assert decline is not None
    assert (decline.reason, decline.message) == (reason, message)


@pytest.mark.parametrize(
    "question",
    ["How do I open the charge port when the car has no power?", "what psi for my tires"],
)
def test_a_question_the_passages_answer_is_not_declined(question, vocabulary, embed):
    decline = decide(
        question,
        PASSAGES,
        confidence=0.62,
        vocabulary=vocabulary,
        policy=GENERATED,
        embed=embed,
    )

    assert decline is None


# -- 3. quote ------------------------------------------------------------------------------------


def test_the_quote_stage_quotes_the_procedure_a_how_to_question_asks_for(vocabulary, embed):
    found = quote(
        "How do I open the charge port when the car has no power?",
        PASSAGES,
        embed=embed,
        vocabulary=vocabulary,
    )

    assert found is not None
    assert found.text == "\n\n".join([RELEASE_SITUATION, RELEASE_LEAD_IN, "\n".join(RELEASE_STEPS)])
    assert found.numbers == [1]


# -- 4. build the prompt -------------------------------------------------------------------------


def long_passages(count: int) -> list[prompts.PromptPassage]:
    """Passages of about 200 estimated tokens each."""
    return [
        prompts.PromptPassage(
            number=n,
            heading_path=f"Tires and Wheels > Part {n}",
            text="Inflate the tires to 42 PSI when they are cold. " * 16,
        )
        for n in range(1, count + 1)
    ]


def prompt_for(
    passages,
    *,
    question="What pressure for the tires?",
    mode="rag",
    prompt_format="chat",
    policy=GENERATED,
    context_window=4096,
    **options,
):
    """``build_prompt`` with this module's usual question and settings; a test names only what
    it is about."""
    return build_prompt(
        question,
        passages,
        mode=mode,
        prompt_format=prompt_format,
        policy=policy,
        context_window=context_window,
        **options,
    )


def user_message(rendered: prompts.RenderedPrompt) -> str:
    assert rendered.messages is not None
    return rendered.messages[-1]["content"]


@pytest.mark.parametrize("policy", [GENERATED, GROUNDED], ids=["generated", "grounded"])
@pytest.mark.parametrize("context_window", [1024, 1400])
def test_a_rag_prompt_fits_its_passages_in_the_context_left_after_the_answer(
    policy, context_window
):
    passages = long_passages(6)

    rendered, held = prompt_for(passages, policy=policy, context_window=context_window)

    assert 1 <= held < len(passages)
    assert rendered.estimated_tokens + policy.generation_tokens <= context_window
    user = user_message(rendered)
    assert all(f"[{n}] Tires and Wheels > Part {n}" in user for n in range(1, held + 1))
    assert f"[{held + 1}]" not in user
    # One more passage would not have fitted.
    one_more, _ = prompt_for(
        passages[: held + 1],
        policy=AnswerPolicy(style=policy.style, max_tokens=0, min_score=0.3, min_coverage=0.45),
        context_window=10_000,
    )
    assert one_more.estimated_tokens + policy.generation_tokens > context_window


def test_a_large_context_holds_every_passage():
    rendered, held = prompt_for(long_passages(6), context_window=8192)

    assert held == 6
    assert "[6] Tires and Wheels > Part 6" in user_message(rendered)


def test_a_grounded_prompt_asks_for_a_short_answer_and_has_room_for_more_passages():
    grounded, grounded_held = prompt_for(long_passages(6), policy=GROUNDED, context_window=1200)
    generated, generated_held = prompt_for(long_passages(6), context_window=1200)

    assert grounded.messages is not None and generated.messages is not None
    assert grounded.messages[0]["content"] == (
        f"{prompts.GROUNDED_SYSTEM_PROMPT} {GROUNDED_STYLE_INSTRUCTION}"
    )
    assert generated.messages[0]["content"] == prompts.GROUNDED_SYSTEM_PROMPT
    assert grounded_held > generated_held


def test_a_grounded_prompt_keeps_an_assistants_own_system_prompt():
    rendered, _ = prompt_for(
        long_passages(1), policy=GROUNDED, system_prompt="You are the Corvan Aster assistant."
    )

    assert rendered.messages is not None
    assert rendered.messages[0]["content"] == (
        f"You are the Corvan Aster assistant. {GROUNDED_STYLE_INSTRUCTION}"
    )


def test_a_direct_prompt_holds_the_question_and_no_passages():
    rendered, held = prompt_for(
        long_passages(3), mode="direct", system_prompt="You are the Corvan Aster assistant."
    )

    assert held == 0
    assert rendered.messages == [
        {"role": "system", "content": "You are the Corvan Aster assistant."},
        {"role": "user", "content": "What pressure for the tires?"},
    ]


def test_a_direct_inst_prompt_is_the_training_prompt():
    rendered, held = prompt_for(long_passages(3), mode="direct", prompt_format="inst")

    assert held == 0
    assert rendered.prompt == "<s>[INST] What pressure for the tires? [/INST]"


HISTORY = [
    {"role": "user", "content": "Where is the charge port?"},
    {"role": "assistant", "content": "On the left rear [1]."},
]


def test_a_chat_prompt_keeps_the_earlier_turns():
    rendered, _ = prompt_for(long_passages(1), question="And how do I open it?", history=HISTORY)

    assert rendered.messages is not None
    assert rendered.messages[1:3] == HISTORY


def test_an_inst_prompt_is_rendered_raw_with_the_passages_and_its_stops():
    rendered, held = prompt_for(
        long_passages(2), question="And how do I open it?", prompt_format="inst", history=HISTORY
    )

    assert held == 2
    assert rendered.messages is None
    assert rendered.prompt is not None
    assert rendered.prompt.startswith("<s>[INST] <<SYS>>\n" + prompts.GROUNDED_SYSTEM_PROMPT)
    assert "[2] Tires and Wheels > Part 2\nInflate the tires" in rendered.prompt
    assert rendered.prompt.endswith("Question: And how do I open it? [/INST]")
    assert "Where is the charge port?" not in rendered.prompt  # raw formats hold one turn
    assert rendered.stop == ["</s>", "[INST]"]


def test_an_alpaca_prompt_is_rendered_raw_with_the_passages_and_its_stop():
    rendered, held = prompt_for(long_passages(2), prompt_format="alpaca", policy=GROUNDED)

    assert held == 2
    assert rendered.prompt is not None
    assert rendered.prompt.startswith(prompts.GROUNDED_SYSTEM_PROMPT)
    assert GROUNDED_STYLE_INSTRUCTION in rendered.prompt
    assert "### Instruction:\nPassages from the manual:\n\n[1] Tires and Wheels > Part 1\n" in (
        rendered.prompt
    )
    assert rendered.prompt.endswith("Question: What pressure for the tires?\n\n### Response:\n")
    assert rendered.stop == ["### Instruction:"]


# -- 5. generate, guarded ------------------------------------------------------------------------

LOOPING_ANSWER = "1. Open the hood.\n2. Unscrew the outlet.\n" + "".join(
    f"{n}. Unscrew the outlet.\n" for n in range(3, 60)
)


def test_a_looping_stream_is_cut_and_closed_as_soon_as_the_loop_is_seen():
    pieces = tokens(LOOPING_ANSWER)
    seen: dict = {}
    generation = GuardedStream(model_stream(pieces, seen))

    shown = []
    for piece in generation:
        shown.append(piece)
        assert not seen["closed"]  # still open while text is safe

    assert seen["closed"]
    # Read up to the repeated step and the token that ends its line; not one step more.
    assert seen["read"] == len(
        tokens("1. Open the hood.\n2. Unscrew the outlet.\n3. Unscrew the outlet.\n4.")
    )
    assert generation.looped
    assert generation.text == "1. Open the hood.\n2. Unscrew the outlet."
    assert "".join(shown).rstrip() == generation.text
    assert "3. Unscrew the outlet" in generation.raw
    assert generation.completion is None  # stopped before the endpoint reported usage


def test_a_clean_stream_is_passed_through_with_its_usage():
    answer = (
        "Use the emergency release cable in the trunk [1]. Pull it gently toward the front "
        "of the vehicle [1]."
    )
    events = [*(StreamDelta(text=piece) for piece in tokens(answer)), StreamEnd(COMPLETION)]
    generation = GuardedStream(events)

    shown = list(generation)

    assert "".join(shown) == answer
    assert generation.text == answer == generation.raw
    assert not generation.looped
    assert generation.completion == COMPLETION
    assert generation.first_piece_at is not None


def test_a_clean_stream_read_to_its_end_is_closed_too():
    seen: dict = {}
    generation = GuardedStream(model_stream(tokens("Open the trunk [1]."), seen))

    assert list(generation) == ["Open the trunk [1]."]
    assert seen == {"read": 4, "closed": True}
    assert generation.completion == COMPLETION


# -- 6. verify while streaming -------------------------------------------------------------------

STREAMED_ANSWER = (
    "Use the emergency release cable in the trunk [1]. It takes about 35 minutes.\n"
    "1. Open the trunk [1].\n"
    "2. Pull the release cable gently toward the front of the vehicle [1]."
)


def test_verdicts_arrive_as_each_sentence_completes(embed):
    verifier = StreamingVerifier(CHECKED_AGAINST, embed=embed)

    def fed(text: str) -> list[tuple[str, str]]:
        return [(v.text, v.reason) for v in verifier.feed(text)]

    assert fed("Use the emergency release cable in the trunk [1].") == []
    assert fed(" It takes about 35 minutes.") == [
        ("Use the emergency release cable in the trunk [1].", "supported")
    ]
    assert fed("\n") == [("It takes about 35 minutes.", "number")]
    assert fed("1. Open the trunk [1].\n") == [("1. Open the trunk [1].", "supported")]
    assert fed("2. Pull the release cable gently toward the front of the vehicle [1].") == []
    assert [(v.text, v.reason) for v in verifier.finish()] == [
        ("2. Pull the release cable gently toward the front of the vehicle [1].", "supported")
    ]


def test_streamed_verdicts_are_those_of_the_whole_answer(embed):
    whole = verify(STREAMED_ANSWER, CHECKED_AGAINST, embed=embed)
    verifier = StreamingVerifier(CHECKED_AGAINST, embed=embed)

    # The pieces the guarded stream releases, as the chat service feeds them.
    for piece in GuardedStream(StreamDelta(text=t) for t in tokens(STREAMED_ANSWER)):
        verifier.feed(piece)
    verifier.finish()
    streamed = verifier.verification()

    assert streamed.verdicts == whole.verdicts
    assert (
        streamed.text
        == whole.text
        == (
            "Use the emergency release cable in the trunk [1].\n"
            "1. Open the trunk [1].\n"
            "2. Pull the release cable gently toward the front of the vehicle [1]."
        )
    )
    assert streamed.supported_rate == 0.75


def test_streamed_verdicts_do_not_depend_on_where_the_pieces_end(embed):
    whole = verify(STREAMED_ANSWER, CHECKED_AGAINST, embed=embed)
    verifier = StreamingVerifier(CHECKED_AGAINST, embed=embed)

    for piece in re.findall(r"\S+\s*", STREAMED_ANSWER):  # each word with the space after it
        verifier.feed(piece)
    verifier.finish()

    assert [v.text for v in verifier.verdicts] == [v.text for v in whole.verdicts]


# -- 7. compose ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release_quote(vocabulary, embed):
    found = quote(
        "How do I open the charge port when the car has no power?",
        PASSAGES,
        embed=embed,
        vocabulary=vocabulary,
    )
    assert found is not None
    return found


# Keeps "Use the emergency release cable in the trunk [1]." (8 words).
ENOUGH_SUPPORTED = "Use the emergency release cable in the trunk [1]. It takes about 35 minutes."
# Keeps "Open the trunk [1]." (4 words): a fragment, not an answer.
TOO_LITTLE_SUPPORTED = "Open the trunk [1]. It takes about 35 minutes."


def test_a_quoted_answer_is_the_quote(release_quote, embed):
    verified = verify(ENOUGH_SUPPORTED, CHECKED_AGAINST, embed=embed)

    composed = compose("quoted", quote=release_quote, verified=verified)

    assert composed.content == release_quote.text
    assert composed.show_quote
    assert not composed.fell_back


def test_a_grounded_answer_is_the_verified_text_with_the_quote_under_it(release_quote, embed):
    verified = verify(ENOUGH_SUPPORTED, CHECKED_AGAINST, embed=embed)

    composed = compose("grounded", quote=release_quote, verified=verified)

    assert composed.content == "Use the emergency release cable in the trunk [1]."
    assert composed.show_quote
    assert not composed.fell_back


def test_a_grounded_answer_with_too_little_supported_is_the_quote(release_quote, embed):
    verified = verify(TOO_LITTLE_SUPPORTED, CHECKED_AGAINST, embed=embed)
    assert len(verified.text.split()) < MIN_VERIFIED_WORDS

    composed = compose("grounded", quote=release_quote, verified=verified)

    assert composed.content == release_quote.text
    assert composed.show_quote
    assert composed.fell_back


def test_a_generated_answer_is_the_verified_text_alone(release_quote, embed):
    verified = verify(ENOUGH_SUPPORTED, CHECKED_AGAINST, embed=embed)

    composed = compose("generated", quote=release_quote, verified=verified)

    assert composed.content == "Use the emergency release cable in the trunk [1]."
    assert not composed.show_quote
    assert not composed.fell_back


def test_a_generated_answer_with_too_little_supported_falls_back_to_the_quote(release_quote, embed):
    verified = verify(TOO_LITTLE_SUPPORTED, CHECKED_AGAINST, embed=embed)

    composed = compose("generated", quote=release_quote, verified=verified)

    assert composed.content == release_quote.text
    assert composed.show_quote
    assert composed.fell_back


def test_without_a_model_answer_the_quote_is_the_answer(release_quote):
    composed = compose("generated", quote=release_quote, verified=None)

    assert composed.content == release_quote.text
    assert composed.show_quote


def test_citation_marks_are_not_words_so_a_fragment_made_of_them_falls_back(release_quote, embed):
    # A RAFT-tuned 135M model once answered exactly this; its one word is supported, and the
    # six markers had counted as words.
    verified = verify("Charging [1] [1], [1] [1][1] [1]", CHECKED_AGAINST, embed=embed)

    composed = compose("generated", quote=release_quote, verified=verified)

    assert word_count(verified.text) <= 1
    assert composed.content == release_quote.text
    assert composed.fell_back


BOOKING = (
    "You can book a service visit in the Corvan app. Touch Service > Book Visit, choose the "
    "kind of visit and follow the prompts.\n\n"
    "Describe the issue in as much detail as you can:\n\n"
    "- Photos, sound recordings or videos.\n"
    "- When it happens, and at what speed.\n"
    "- The weather and the road."
)


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        (
            "theres a weird rattle from the back. how do i book a service appt",
            "how do i book a service appt",
        ),
        ("my car is dead. how do i open the door?", "how do i open the door?"),
        ("buddys battery died, can i jump his car off it", "can i jump his car off it"),
        ("whats the ground clearance? my driveway has a dip", "whats the ground clearance?"),
        # every sentence asks, or none does: the question as it is
        ("how do i open the frunk", "how do i open the frunk"),
        ("the screen is black. it wont turn on.", "the screen is black. it wont turn on."),
        ("cameras look blocked. they look clean??", "cameras look blocked. they look clean??"),
        # a bare question word asks of the situation (dev-011 was answered with a collision's
        # list when "why" was quoted for alone)
        ("left a balloon in the car and the alarm kept going off?? why", None),
    ],
)
def test_the_part_of_a_question_that_asks_is_told_from_the_owners_situation(question, asked):
    assert asked_part(question) == (asked or question)


def test_a_quote_off_the_point_of_the_owners_situation_is_composed_for_what_is_asked(
    embed, vocabulary
):
    # c-025 of the second blind set ("theres a weird rattle from the back. how do i book a
    # service appt and what should i tell them") was declined as off the point: the
    # situation's words are in no passage on booking a visit.
    passages = [QuotePassage(1, "Service > Booking a service visit", BOOKING, 0.5)]
    question = (
        "weird rattle in the dashboard and a squeak from the rear seatback near the child seat "
        "anchors. how do i book a visit"
    )
    whole = quote(question, passages, embed=embed, vocabulary=vocabulary)
    declined = quote_declines(question, whole)
    assert declined is not None and declined.reason == "off_point"

    asked = quote_asked(question, passages, declined, embed=embed, vocabulary=vocabulary)

    assert asked is not None
    assert "Touch Service > Book Visit" in asked.text
    assert quote_declines("how do i book a visit", asked) is None
    # a quote that answers, or a decline for another reason, is left as it is
    assert quote_asked(question, passages, None, embed=embed, vocabulary=vocabulary) is None
    # the question alone, without a situation before it, has nothing else to ask
    assert (
        quote_asked("tell me about squeaks", passages, declined, embed=embed, vocabulary=vocabulary)
        is None
    )


LOW_BATTERY = (
    "If the 12 V battery is completely discharged, the Aster cannot be unlocked, started or "
    "driven, and its touchscreen stays dark. Charge the 12 V battery as soon as you can, or "
    "replace it: a battery left discharged for an extended period can be damaged."
)
JUMP_STARTING = (
    "The following instructions assume you use an external 12 V power supply, such as a "
    "portable jump starter.\n\n"
    "CAUTION: The Aster cannot be used to jump start another vehicle. Doing so can result in "
    "damage."
)
JUMP_PASSAGES = [
    QuotePassage(1, "Low voltage battery > A discharged battery", LOW_BATTERY, 0.70),
    QuotePassage(2, "Jump starting", JUMP_STARTING, 0.45),
]


@pytest.fixture(scope="module")
def jump_vocabulary() -> Vocabulary:
    return Vocabulary.from_texts([LOW_BATTERY, JUMP_STARTING, RELEASE_CABLE, TIRE_PRESSURES])


def test_what_is_asked_after_the_owners_situation_is_quoted_when_it_fits_its_question_better(
    embed, jump_vocabulary
):
    # h-032 of the sixth blind set ("buddys car battery died, can i use my model 3 to give him a
    # jump") quoted the discharged battery's Caution, which its situation reads like; what it
    # asks is answered by "Model 3 cannot be used to jump start another vehicle".
    question = "my neighbours battery died completely, can i use the aster to give him a jump"
    whole = quote(question, JUMP_PASSAGES, embed=embed, vocabulary=jump_vocabulary)
    assert quote_declines(question, whole) is None
    assert "cannot be used to jump start" not in whole.text

    asked = quote_asked(
        question, JUMP_PASSAGES, None, embed=embed, vocabulary=jump_vocabulary, whole=whole
    )

    assert asked is not None
    assert "cannot be used to jump start another vehicle" in asked.text
    # an asked part that refers back to the situation does not say what it asks about alone
    referring = "my neighbours battery died completely, can i use the aster to jump it"
    assert (
        quote_asked(
            referring,
            JUMP_PASSAGES,
            None,
            embed=embed,
            vocabulary=jump_vocabulary,
            whole=quote(referring, JUMP_PASSAGES, embed=embed, vocabulary=jump_vocabulary),
        )
        is None
    )


def test_the_owners_own_words_for_their_situation_do_not_decline_what_they_ask(
    embed, jump_vocabulary
):
    # f-042 of the fourth blind set ("buddys battery died, can i jump his car off my model 3")
    # was declined: "The manual never mentions “buddys”, “died”", words of the situation only.
    question = "buddys beater croaked, can i use the aster to jump start his car"
    # on its words alone it is a coverage decline: too much weight on words the manual lacks
    coverage, unknown = key_term_coverage(question, jump_vocabulary)
    assert coverage < DEFAULT_MIN_COVERAGE
    assert meaning_shift(question, unknown, embed) >= MIN_MEANING_SHIFT

    decline = decide(
        question,
        JUMP_PASSAGES,
        confidence=0.61,
        vocabulary=jump_vocabulary,
        policy=GENERATED,
        embed=embed,
    )

    assert decline is None
    # words the manual never uses in what is asked still decline it
    assert (
        decide(
            "buddys beater croaked, can i jumpstart his snowmobile with a winch",
            JUMP_PASSAGES,
            confidence=0.61,
            vocabulary=jump_vocabulary,
            policy=GENERATED,
            embed=embed,
        ).reason
        == "coverage"
    )
