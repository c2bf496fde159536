"""Cheap token estimates for prompt budgets, where no tokenizer or usage report is at hand."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

# Every chat message costs a few tokens beyond its text (role markers such as ChatML's
# ``<|im_start|>user\n``); counting them keeps prompt budgets on the safe side.
_TOKENS_PER_MESSAGE: Final = 4


def estimate_tokens(text: str) -> int:
    """A cheap token count for budgeting when no tokenizer or usage report is at hand.

    English text averages about four characters per BPE token, so this is
    ``ceil(len(text) / 4)``. It is deliberately tokenizer-free: it must be fast enough to run on
    every chunk while packing prompts, and a model-exact count is not needed for that.
    """
    return math.ceil(len(text) / 4)


def messages_tokens(messages: Iterable[Mapping[str, str]]) -> int:
    """Estimated prompt tokens for a chat: each message's text plus its role-marker overhead."""
    return sum(
        estimate_tokens(str(message.get("content") or "")) + _TOKENS_PER_MESSAGE
        for message in messages
    )
