"""Base models and this machine: where a base model is, its context length and chat template,
the precision this CPU or GPU trains in, bitsandbytes' CPU kernels, and the allocator."""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import re
import sys
from pathlib import Path
from typing import Final

import torch
from transformers import (
    AutoConfig,
)

from manualqa.lib.local_models import ensure_default_model

logger = logging.getLogger("training.trainer")


# "org/name" or "name" as the Hub spells repository ids.
_HUB_ID_RE: Final = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


# --------------------------------------------------------------------------------------------
# Base models and this machine


def resolve_base_model(base_model: str, *, models_dir: Path) -> Path | str:
    """Where to load ``base_model`` from: the converted default model ("" or "default"), a local
    folder (a ``Path``; ``FileNotFoundError`` naming it when it is missing), or a Hub id."""
    name = (base_model or "").strip()
    if name in ("", "default"):
        return ensure_default_model(Path(models_dir))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"The base model folder {name} holds no config.json.")
        return path
    if path.exists():
        raise FileNotFoundError(f"The base model {name} is a file, not a model folder.")
    if path.is_absolute() or name.startswith((".", "~")):
        raise FileNotFoundError(f"The base model folder {name} does not exist.")
    if not _HUB_ID_RE.match(name) or ".." in name:
        raise ValueError(
            f"The base model {name!r} is neither a local folder nor a Hub id such as "
            "mistralai/Mistral-7B-v0.1."
        )
    return name


def model_context_length(path_or_id: Path | str) -> int | None:
    """The base model's context length from its config (``max_position_embeddings``), or None.

    A Hub id is looked up on the Hub (or its local cache); ``OSError`` where neither has it.
    """
    config = AutoConfig.from_pretrained(str(path_or_id))
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for attribute in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(text_config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def model_has_chat_template(path_or_id: Path | str) -> bool | None:
    """Whether a local model folder's tokenizer has a chat template; None for a Hub id (it
    cannot be known without downloading, so the run checks it when it starts)."""
    folder = Path(path_or_id)
    if not folder.is_dir():
        return None
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(tokenizer_config.get("chat_template"))


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), read from the kernel's
    CPU flags; elsewhere bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def resolve_precision(precision: str, *, cuda: bool) -> str:
    """``auto`` becomes bf16 where the hardware has it natively, fp32 elsewhere."""
    if precision != "auto":
        return precision
    if cuda:
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


@functools.cache
def bnb_cpu_4bit_available() -> bool:
    """Whether bitsandbytes can quantize a layer to nf4 on this CPU and run it forward and
    backward (QLoRA needs both). Probed once per process on a tiny layer."""
    try:
        import bitsandbytes as bnb

        layer = bnb.nn.Linear4bit(
            64,
            64,
            bias=False,
            compute_dtype=torch.bfloat16,
            quant_type="nf4",
            compress_statistics=True,
        ).to("cpu")
        if not getattr(layer.weight, "bnb_quantized", False):
            return False
        inputs = torch.randn(2, 64, requires_grad=True)
        output = layer(inputs)
        output.float().sum().backward()
        return bool(torch.isfinite(output).all() and torch.isfinite(inputs.grad).all())
    except Exception as exc:  # any failure means "no": that is the question asked
        logger.info("bitsandbytes cannot run 4-bit layers on this CPU: %s", exc)
        return False


_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_MAX: Final = -4


@functools.cache
def _keep_freed_memory_for_reuse() -> bool:
    """Stop glibc from handing large freed blocks back to the kernel (CPU training only).

    Every training step allocates and frees activations of tens to hundreds of MB. glibc serves
    such blocks with mmap and unmaps them on free, so the next step page-faults all of that
    memory in again; on this project's 2-core VM that made LoRA steps 3-5x slower (26 vs 126
    tokens/s on SmolLM2-135M). Keeping freed memory in the heap for reuse removes the faults;
    the price is that the process keeps its peak memory until it exits, which suits a training
    worker. The same effect comes from starting the process with ``MALLOC_MMAP_MAX_=0
    MALLOC_TRIM_THRESHOLD_=2147483647`` or with jemalloc preloaded. A no-op where the C library
    is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(
        libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    )


def _device_label() -> str:
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} threads)"
