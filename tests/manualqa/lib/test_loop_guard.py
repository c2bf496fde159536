"""Stopping generated text that loops, and keeping what came before (no database, no model)."""

from __future__ import annotations

import pytest

from manualqa.lib.loop_guard import LoopGuard, find_loop, without_loop

# A small model decoding greedily: the same step, renumbered, until the token limit.
LOOPING_STEPS = (
    "To drain the washer reservoir:\n"
    "18. Open the hood.\n"
    "19. Place a container under the reservoir.\n"
    "20. Unscrew the outlet.\n" + "".join(f"{n}. Unscrew the outlet.\n" for n in range(21, 40))
)
KEPT_STEPS = (
    "To drain the washer reservoir:\n"
    "18. Open the hood.\n"
    "19. Place a container under the reservoir.\n"
    "20. Unscrew the outlet."
)

REPEATED_PARAGRAPH = (
    "Check the tire pressures when the tires are cold. Inflate them to 42 PSI.\n\n"
    "Check the tire pressures when the tires are cold. Inflate them to 42 PSI.\n\n"
    "Check the tire pressures when the tires are cold. Inflate them to 42 PSI."
)

ENDLESS_WORD = "The charge port is on the " + "the " * 40

# Parallel sentences of a real manual: long shared runs of words, each sentence different.
SENTRY_MODE = (
    "Sentry Mode does not automatically enable at the location set as Home in your vehicle's "
    "navigation settings. Sentry Mode does not automatically enable at the location set as Work "
    "in your vehicle's navigation settings. Sentry Mode does not automatically enable at "
    "locations you have marked as Favorites."
)
TIRE_TABLE = (
    "| Wheel | Front (cold) | Rear (cold) |\n"
    "| --- | --- | --- |\n"
    "| 18-inch Aero wheel | 290 kPa (42 PSI) | 290 kPa (42 PSI) |\n"
    "| 19-inch Sport wheel | 290 kPa (42 PSI) | 310 kPa (45 PSI) |"
)
SHORT_STEPS = (
    "1. Touch Controls > Charging.\n2. Touch Schedule.\n3. Touch Save.\n"
    "4. Touch Controls > Climate.\n5. Touch Save."
)


def stream(text: str, piece_size: int) -> tuple[LoopGuard, str]:
    """Feed ``text`` to a guard in pieces, as a caller does: stop once it loops, then finish."""
    guard = LoopGuard()
    released = []
    for start in range(0, len(text), piece_size):
        released.append(guard.feed(text[start : start + piece_size]))
        if guard.looped:
            break
    released.append(guard.finish())
    return guard, "".join(released)


def test_a_looping_numbered_list_is_cut_after_its_first_copy():
    assert without_loop(LOOPING_STEPS) == (KEPT_STEPS, True)


def test_a_paragraph_repeated_sentence_for_sentence_is_cut_before_the_second_copy():
    text, looped = without_loop(REPEATED_PARAGRAPH)

    assert looped
    assert text == "Check the tire pressures when the tires are cold. Inflate them to 42 PSI."


def test_a_word_repeated_without_end_is_cut_where_the_repetition_starts():
    assert without_loop(ENDLESS_WORD) == ("The charge port is on the", True)


def test_steps_written_on_one_line_are_cut_at_the_repeated_step():
    text = (
        "1. Press the rear edge of the door. 2. Press the rear edge of the door. "
        "3. Press the rear edge of the door."
    )

    assert without_loop(text) == ("1. Press the rear edge of the door.", True)


def test_steps_on_one_line_after_a_lead_in_are_cut_at_the_repeated_step():
    text = (
        "To open the charge port: 1. Press the rear edge of the door. "
        "2. Press the rear edge of the door. 3. Press the rear edge of the door."
    )

    assert without_loop(text) == (
        "To open the charge port: 1. Press the rear edge of the door.",
        True,
    )


def test_citations_do_not_hide_a_repeated_sentence():
    text = "Inflate the tires to 42 PSI [1]. Inflate the tires to 42 PSI [2]."

    assert without_loop(text) == ("Inflate the tires to 42 PSI [1].", True)


@pytest.mark.parametrize(
    "honest",
    [SENTRY_MODE, TIRE_TABLE, SHORT_STEPS, "Yes. Yes. The charge port is on the left rear."],
    ids=["parallel-sentences", "table-rows-with-the-same-values", "short-steps", "short-reply"],
)
def test_honest_text_that_repeats_phrases_is_not_a_loop(honest):
    assert find_loop(honest) is None
    assert without_loop(honest) == (honest, False)


@pytest.mark.parametrize(
    "honest",
    [
        "To reconnect the 12 V battery:\n"
        "1. Place the positive (+) clamp on the positive post. Using a 10 mm socket, tighten "
        "the nut to 6 Nm (4.4 lbf-ft).\n"
        "2. Place the negative (-) clamp on the negative post. Using a 10 mm socket, tighten "
        "the nut to 6 Nm (4.4 lbf-ft).\n"
        "3. Refit the black plastic cover.",
        "- Red BRAKE indicator: the brake fluid level is low. See Brakes and stopping.\n"
        "- Amber BRAKE indicator: the brake booster has a fault. See Brakes and stopping.\n"
        "- Amber ABS indicator: the anti-lock braking system has a fault.",
    ],
    ids=["same-torque-in-two-steps", "same-cross-reference-in-two-items"],
)
def test_a_sentence_a_manual_repeats_in_two_steps_is_not_a_loop(honest):
    assert without_loop(honest) == (honest, False)


@pytest.mark.parametrize("piece_size", [1, 4, 13])
def test_a_streamed_loop_stops_the_stream_and_its_copy_is_never_released(piece_size):
    guard, released = stream(LOOPING_STEPS, piece_size)

    assert guard.looped
    assert len(guard.raw) < len(LOOPING_STEPS)  # the caller stopped reading early
    assert guard.text == KEPT_STEPS
    assert released.rstrip() == guard.text
    assert released.count("Unscrew the outlet.") == 1


@pytest.mark.parametrize("piece_size", [1, 5])
def test_a_streamed_paragraph_loop_is_cut_before_its_second_copy(piece_size):
    guard, released = stream(REPEATED_PARAGRAPH, piece_size)

    assert guard.looped
    expected = "Check the tire pressures when the tires are cold. Inflate them to 42 PSI."
    assert guard.text == expected
    assert released.rstrip() == expected


def test_a_streamed_endless_word_is_cut_where_it_starts():
    guard, released = stream(ENDLESS_WORD, 3)

    assert guard.looped
    assert guard.text == "The charge port is on the"
    assert released.rstrip() == "The charge port is on the"


def test_a_guard_releases_text_only_at_the_end_of_a_sentence():
    guard = LoopGuard()

    assert guard.feed("The charge port") == ""
    assert guard.feed(" is on the left rear") == ""
    # A finished sentence is released with the space after it: that space is what tells the
    # reader downstream that the sentence is over.
    assert guard.feed(". Open it from") == "The charge port is on the left rear. "
    assert guard.feed(" the touchscreen.") == ""
    assert guard.finish() == "Open it from the touchscreen."
    assert guard.text == "The charge port is on the left rear. Open it from the touchscreen."


@pytest.mark.parametrize("piece_size", [1, 7, 1000])
def test_finish_releases_all_of_a_clean_stream(piece_size):
    guard, released = stream(SENTRY_MODE, piece_size)

    assert not guard.looped
    assert released == SENTRY_MODE
    assert guard.text == SENTRY_MODE == guard.raw


def test_finish_catches_a_loop_in_the_last_unfinished_line():
    guard = LoopGuard()

    first = guard.feed("1. Open the hood.\n2. Unscrew the outlet.\n3. Unscrew the outlet.")
    assert first == "1. Open the hood.\n2. Unscrew the outlet.\n"
    assert not guard.looped  # the last line may still be growing

    assert guard.finish() == ""
    assert guard.looped
    assert guard.text == "1. Open the hood.\n2. Unscrew the outlet."


def test_a_guard_takes_nothing_more_after_a_loop():
    guard, _ = stream(LOOPING_STEPS, 50)

    assert guard.feed("40. Close the hood.\n") == ""
    assert guard.finish() == ""
    assert guard.text == KEPT_STEPS
