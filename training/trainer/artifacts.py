"""What a run leaves: sample answers, the merged model, checkpoints and resuming from them."""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)


def _prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt: str | list[dict]) -> list[int]:
    """The prompt's tokens exactly as trl tokenizes it for training."""
    if isinstance(prompt, list):
        rendered = tokenizer.apply_chat_template(
            prompt, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(rendered["input_ids"])
    return list(tokenizer(text=prompt)["input_ids"])


@torch.no_grad()
def _generate(model, tokenizer, prompt: str | list[dict], max_new_tokens: int) -> str:
    ids = torch.tensor([_prompt_ids(tokenizer, prompt)], device=model.device)
    output = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id,
    )
    text = tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
    # A seed_inst model ends its answer with the literal "</s>" it was trained on.
    return text.split("</s>", 1)[0].strip()


def _merge(
    model_path: Path | str,
    adapter_dir: Path,
    merged_dir: Path,
    tokenizer: PreTrainedTokenizerBase,
    *,
    dtype: torch.dtype,
) -> None:
    """Merge the adapter into a fresh, unquantized copy of the base and save it with the
    tokenizer. Written beside ``merged_dir`` and renamed into place, so a crash never leaves a
    half-written model that a later run or an endpoint would trust."""
    merged_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".merged-", dir=merged_dir.parent))
    try:
        base = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype)
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        if tokenizer.pad_token_id is not None:
            merged.generation_config.pad_token_id = tokenizer.pad_token_id
        merged.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        staging.chmod(0o755)
        if merged_dir.exists():
            shutil.rmtree(merged_dir)
        os.replace(staging, merged_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def checkpoint_is_complete(path: Path) -> bool:
    """Whether the Trainer finished writing this checkpoint.

    ``trainer_state.json`` is the last file the Trainer writes (after the weights, optimizer,
    scheduler and RNG state), so a worker killed mid-save leaves a folder without a readable
    one, and resuming from that folder would crash.
    """
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def latest_complete_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The highest-numbered ``checkpoint-N`` in ``checkpoints_dir`` that was fully written."""
    if not checkpoints_dir.is_dir():
        return None
    numbered = []
    for path in checkpoints_dir.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if path.is_dir() and suffix.isdigit():
            numbered.append((int(suffix), path))
    for _, path in sorted(numbered, reverse=True):
        if checkpoint_is_complete(path):
            return path
    return None


def _resume_path(resume_from_checkpoint: str | bool | None, checkpoints_dir: Path) -> str | None:
    if resume_from_checkpoint is None or resume_from_checkpoint is False:
        return None
    if resume_from_checkpoint is True:
        latest = latest_complete_checkpoint(checkpoints_dir)
        if latest is None:
            raise FileNotFoundError(
                f"There is no complete checkpoint to resume from in {checkpoints_dir}."
            )
        return str(latest)
    path = Path(resume_from_checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"The checkpoint {path} does not exist.")
    return str(path)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_merged_and_generate(
    merged_dir: Path, prompt: str, max_new_tokens: int = 32, *, chat: bool | None = None
) -> str:
    """Load a merged model with plain ``from_pretrained`` and answer ``prompt`` greedily.

    ``chat``: render ``prompt`` as a user message with the tokenizer's chat template (the
    default where it has one) or feed it as raw text.
    """
    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    model = AutoModelForCausalLM.from_pretrained(str(merged_dir))
    model.eval()
    use_chat = bool(tokenizer.chat_template) if chat is None else chat
    rendered: str | list[dict] = [{"role": "user", "content": prompt}] if use_chat else prompt
    return _generate(model, tokenizer, rendered, max_new_tokens)
