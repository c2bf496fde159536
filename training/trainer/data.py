"""Snapshot records as trl's prompt/completion dataset (formats: manualqa.lib.prompt_formats)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Dataset
from transformers import (
    PreTrainedTokenizerBase,
)

from manualqa.lib.prompt_formats import TrainExample, parse_training_record

# --------------------------------------------------------------------------------------------
# Records -> trl's prompt/completion dataset


def build_dataset(
    records: Sequence[Mapping[str, Any]],
    *,
    prompt_format: str,
    tokenizer: PreTrainedTokenizerBase,
    system_prompt: str = "",
) -> Dataset:
    """Snapshot export records as a trl prompt/completion dataset.

    chat_template records become conversational prompt/completion pairs (the prompt is every
    message before the assistant's answer, rendered by the tokenizer's chat template with the
    generation prompt); seed_inst text is split right after ``[/INST]`` into the prompt
    ``<s>[INST] q [/INST]`` and the completion `` a </s>``; alpaca records get the Alpaca
    prompt with the output as completion. trl's completion mask then keeps the prompt out of
    the loss.
    """
    if prompt_format == "chat_template" and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "The base model's tokenizer has no chat template, so it cannot train on a "
            "chat_template snapshot; build the snapshot in the seed_inst or alpaca format."
        )
    return _to_dataset(
        [
            parse_training_record(
                record, prompt_format=prompt_format, system_prompt=system_prompt, index=i
            )
            for i, record in enumerate(records)
        ]
    )


def _to_dataset(examples: Sequence[TrainExample]) -> Dataset:
    return Dataset.from_list(
        [{"prompt": example.prompt, "completion": example.completion} for example in examples]
    )
