"""Prompts for chat answers: grounded (RAG) prompts, direct prompts, and the fixed texts.

Plain Python (no Django). A prompt is built as chat messages and then rendered for the
endpoint in one of the prompt formats a model can have been trained with:

* ``chat``: the messages as they are, for the server's or tokenizer's chat template;
* ``inst``: the seed project's ``<s>[INST] q [/INST]`` text
  (``manualqa.lib.prompt_formats.render_inst``), sent as a raw prompt
  (``complete_prompt``/``stream_prompt``) and stopped at ``</s>``;
* ``alpaca``: the Alpaca instruction/response text that ``training.trainer`` trains on.

The formats themselves live in :mod:`manualqa.lib.prompt_formats`, shared with training.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from manualqa.lib import prompt_formats
from manualqa.lib.llm import estimate_tokens, messages_tokens
from manualqa.lib.refusals import DECLINE_PREFIX, is_decline

__all__ = [
    "DECLINE_PREFIX",
    "FORMATS",
    "GROUNDED_SYSTEM_PROMPT",
    "PromptPassage",
    "RenderedPrompt",
    "cited_numbers",
    "decline_text",
    "direct_messages",
    "fit_passages",
    "grounded_messages",
    "is_decline",
    "render",
]

FORMATS: Final = prompt_formats.CHAT_FORMATS


GROUNDED_SYSTEM_PROMPT: Final = (
    "You answer questions from car owners using only the numbered passages from the owner's "
    "manual that come with each question. Answer briefly and plainly. After each fact, cite "
    "the passage it comes from by its number in square brackets, like [1]. If the passages do "
    f'not answer the question, reply only: "{DECLINE_PREFIX}." Never guess and never use '
    "knowledge from outside the passages."
)

_CITATION: Final = re.compile(r"\[(\d{1,2})\]")


@dataclass(frozen=True)
class PromptPassage:
    """A retrieved passage as a prompt shows it: its number, where it is, and its text."""

    number: int
    heading_path: str
    text: str


@dataclass(frozen=True)
class RenderedPrompt:
    """What is sent: chat ``messages``, or a raw ``prompt`` (then ``messages`` is None)."""

    messages: list[dict[str, str]] | None
    prompt: str | None
    stop: list[str]

    @property
    def estimated_tokens(self) -> int:
        if self.prompt is not None:
            return estimate_tokens(self.prompt)
        return messages_tokens(self.messages or [])


def grounded_messages(
    *,
    question: str,
    passages: Sequence[PromptPassage],
    system_prompt: str = "",
    history: Sequence[dict[str, str]] = (),
) -> list[dict[str, str]]:
    """A RAG prompt: instructions, earlier turns, then the numbered passages and the question.

    The passages travel in the last user message (not the system prompt) so that they sit
    next to the question, where small models attend best, and so that earlier turns keep only
    the questions and answers, not the passages they were given.
    """
    blocks = [f"[{p.number}] {p.heading_path}\n{p.text.strip()}" for p in passages]
    user = (
        "Passages from the manual:\n\n"
        + "\n\n".join(blocks)
        + "\n\nAnswer from these passages only, citing them like [1]. If they do not answer "
        f'the question, say "{DECLINE_PREFIX}."\n\nQuestion: {question.strip()}'
    )
    return [
        {"role": "system", "content": (system_prompt or GROUNDED_SYSTEM_PROMPT).strip()},
        *history,
        {"role": "user", "content": user},
    ]


def direct_messages(*, question: str, system_prompt: str = "") -> list[dict[str, str]]:
    """A direct prompt: the question alone (with the training system prompt, if any), which is
    what a fine-tuned model saw in training."""
    messages = [{"role": "system", "content": system_prompt.strip()}] if system_prompt else []
    return [*messages, {"role": "user", "content": question.strip()}]


def render(messages: list[dict[str, str]], *, prompt_format: str) -> RenderedPrompt:
    """``messages`` in ``prompt_format`` (one of :data:`FORMATS`)."""
    if prompt_format not in FORMATS:
        raise ValueError(f"unknown prompt format {prompt_format!r}; expected one of {FORMATS}")
    rendered = prompt_formats.render_inference(messages, prompt_format=prompt_format)
    return RenderedPrompt(messages=rendered.messages, prompt=rendered.prompt, stop=rendered.stop)


def fit_passages(
    passages: Sequence[PromptPassage], *, budget_tokens: int, overhead_tokens: int
) -> list[PromptPassage]:
    """The leading passages that fit ``budget_tokens`` after ``overhead_tokens`` (always at
    least the first, which a model with a context too small for one passage needs most)."""
    kept: list[PromptPassage] = []
    used = overhead_tokens
    for passage in passages:
        cost = estimate_tokens(passage.text) + estimate_tokens(passage.heading_path) + 4
        if kept and used + cost > budget_tokens:
            break
        kept.append(passage)
        used += cost
    return kept


def cited_numbers(answer: str) -> list[int]:
    """The passage numbers an answer cites (``[2]``), in order of first citation."""
    return list(dict.fromkeys(int(number) for number in _CITATION.findall(answer)))


def decline_text(manual_names: Sequence[str], *, reason: str = "") -> str:
    """The honest answer when the manuals do not answer a question: it says so, says why
    (``reason``: what the decline checks found), and points at the nearest passages."""
    where = ", ".join(manual_names) if manual_names else "the manual"
    why = f" {reason.strip()}" if reason.strip() else ""
    return (
        f"{DECLINE_PREFIX}.{why} I could not find an answer to this in {where}, so I won't "
        "guess. The nearest passages are listed below; try asking in other words, or ask about "
        "something the manual covers."
    )
