"""Prompt building for chat answers (no database, no model)."""

from __future__ import annotations

import pytest

from chat import prompts
from manualqa.lib.prompt_formats import render_inst


def passages(*texts: str) -> list[prompts.PromptPassage]:
    return [
        prompts.PromptPassage(number=n, heading_path=f"Page > Section {n}", text=text)
        for n, text in enumerate(texts, start=1)
    ]


def test_grounded_prompt_numbers_passages_and_asks_to_cite_or_decline():
    messages = prompts.grounded_messages(
        question="How hard do I inflate the tires?",
        passages=passages("Inflate to 42 PSI.", "Check monthly."),
    )

    assert messages[0] == {"role": "system", "content": prompts.GROUNDED_SYSTEM_PROMPT}
    user = messages[-1]["content"]
    assert "[1] Page > Section 1\nInflate to 42 PSI." in user
    assert "[2] Page > Section 2\nCheck monthly." in user
    assert user.endswith("Question: How hard do I inflate the tires?")
    assert "The manual does not say" in user and "[1]" in prompts.GROUNDED_SYSTEM_PROMPT


def test_earlier_turns_go_between_the_instructions_and_the_new_question():
    history = [
        {"role": "user", "content": "Where is the fuse box?"},
        {"role": "assistant", "content": "Under the glovebox [1]."},
    ]
    messages = prompts.grounded_messages(
        question="And the spare fuses?",
        passages=passages("Spares are in the lid."),
        history=history,
    )

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1:3] == history


def test_inst_format_is_exactly_the_seed_training_prompt():
    rendered = prompts.render(
        prompts.direct_messages(question="  What is the tire pressure? "), prompt_format="inst"
    )

    assert rendered.messages is None
    assert rendered.prompt == "<s>[INST] What is the tire pressure? [/INST]"
    assert rendered.stop == ["</s>", "[INST]"]


def test_inst_format_puts_the_system_prompt_in_a_sys_block_and_keeps_earlier_turns():
    prompt = render_inst(
        [
            {"role": "system", "content": "Answer from the manual."},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ]
    )

    assert prompt == (
        "<s>[INST] <<SYS>>\nAnswer from the manual.\n<</SYS>>\n\nQ1 [/INST] A1 </s>"
        "<s>[INST] Q2 [/INST]"
    )


def test_alpaca_format_matches_the_trainers_prompt():
    rendered = prompts.render(prompts.direct_messages(question="Q?"), prompt_format="alpaca")

    assert rendered.prompt == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nQ?\n\n### Response:\n"
    )


def test_chat_format_sends_the_messages_unchanged():
    messages = prompts.direct_messages(question="Q?", system_prompt="Be brief.")

    rendered = prompts.render(messages, prompt_format="chat")

    assert rendered.messages == messages and rendered.prompt is None and rendered.stop == []


def test_an_unknown_prompt_format_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown prompt format 'llama3'"):
        prompts.render([], prompt_format="llama3")


def test_passages_that_do_not_fit_the_context_are_dropped_from_the_end():
    long = "word " * 400  # about 500 estimated tokens

    kept = prompts.fit_passages(passages(long, long, long), budget_tokens=1200, overhead_tokens=100)

    assert [p.number for p in kept] == [1, 2]
    assert len(prompts.fit_passages(passages(long), budget_tokens=10, overhead_tokens=100)) == 1


def test_citations_are_read_from_bracketed_numbers_in_order():
    assert prompts.cited_numbers("Use 42 PSI [2], checked monthly [1][2].") == [2, 1]
    assert prompts.cited_numbers("No citations here.") == []


def test_a_decline_is_recognised_but_a_passing_mention_is_not():
    assert prompts.is_decline("The manual does not say.")
    assert prompts.is_decline("  the manual does not say anything about insurance.")
    assert not prompts.is_decline(
        "Inflate to 42 PSI [1]. For other loads, the manual does not say what to use."
    )


def test_a_decline_says_so_says_why_and_points_to_the_nearest_passages():
    text = prompts.decline_text(["Corvan Aster 2025"], reason="The manual gives no prices.")
    assert text.startswith("The manual does not say. The manual gives no prices.")
    assert "Corvan Aster 2025" in text and "nearest passages" in text
    assert prompts.decline_text([]).startswith("The manual does not say.")
