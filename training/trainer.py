"""LoRA/QLoRA supervised fine-tuning of a causal language model on a snapshot's records.

:func:`train` is one whole run: it turns exported snapshot records into trl's prompt/completion
dataset (so the loss falls on the answers only), trains LoRA adapters with trl's
``SFTTrainer`` on a full-precision (``lora``), 4-bit nf4 (``qlora``) or 8-bit (``8bit``) base,
reports progress after every optimizer step, checkpoints, stops cleanly when asked, resumes
from its last checkpoint, and finally evaluates, samples a few answers and merges the adapter
into a full-precision copy of the base model that any ``from_pretrained`` can load.

Layout of ``output_dir``: ``checkpoints/checkpoint-N`` (the last two; adapter, optimizer and
trainer state, enough to resume), ``adapter/`` (the final LoRA adapter) and ``merged/`` (the
merged model plus tokenizer, as safetensors).

Deliberately plain Python (no Django import): the Celery task, the management command and the
tests call it with plain values and get plain values back.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import gc
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, prepare_model_for_kbit_training
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedTokenizerBase,
    TrainerCallback,
)
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from manualqa.lib.local_models import ensure_default_model
from manualqa.lib.prompt_formats import TrainExample, parse_training_record
from training.presets import TrainingConfig, validate_config

__all__ = [
    "ProgressEvent",
    "TrainResult",
    "TrainingCancelled",
    "bnb_cpu_4bit_available",
    "build_dataset",
    "load_merged_and_generate",
    "model_context_length",
    "resolve_base_model",
    "train",
]

logger = logging.getLogger(__name__)

SAMPLE_COUNT: Final = 3
SAMPLE_MAX_NEW_TOKENS: Final = 48
CHECKPOINTS_KEPT: Final = 2

# "org/name" or "name" as the Hub spells repository ids.
_HUB_ID_RE: Final = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


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


# --------------------------------------------------------------------------------------------
# Progress, cancellation and results


@dataclass
class ProgressEvent:
    """Where a run stands after an optimizer step (``loss`` set on logging steps) or after an
    evaluation (``eval_loss`` set). ``tokens_per_s`` and ``eta_s`` are measured over this
    process's part of the run, so a resumed run does not count the time it was stopped."""

    step: int
    total_steps: int
    epoch: float
    loss: float | None
    eval_loss: float | None
    learning_rate: float | None
    tokens_per_s: float | None
    eta_s: float | None


class TrainingCancelled(Exception):
    """``should_stop`` asked the run to stop; ``checkpoint`` is where it can resume from.

    ``should_stop`` is asked only after optimizer steps, so even a stop requested while the
    model was loading ends with one step done and a checkpoint to resume from."""

    def __init__(self, message: str, *, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


@dataclass
class TrainResult:
    """What a finished run produced and how fast it went."""

    adapter_dir: Path
    merged_dir: Path
    final_train_loss: float | None
    eval_loss: float | None
    train_tokens: int
    train_seconds: float
    tokens_per_s: float | None
    steps: int
    samples: list[dict[str, str]] = field(default_factory=list)
    device: str = ""
    # False on the other ranks of an ``accelerate launch`` run: they neither merge nor report.
    main_process: bool = True


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


class _ProgressReporter(TrainerCallback):
    """Reports a :class:`ProgressEvent` for every optimizer step and evaluation, and stops the
    run (after saving a checkpoint) when ``should_stop()`` says so."""

    def __init__(
        self,
        on_progress: Callable[[ProgressEvent], None] | None,
        should_stop: Callable[[], bool],
        on_log: Callable[[str], None],
    ) -> None:
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.log = on_log
        self.cancelled = False
        self.started = time.monotonic()
        self.start_step = 0
        self.start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        # Called after a resumed run has loaded its state, so rates count this session only.
        self.started = time.monotonic()
        self.start_step = state.global_step
        self.start_tokens = state.num_input_tokens_seen or 0

    def _event(self, state, *, loss=None, eval_loss=None, learning_rate=None) -> ProgressEvent:
        elapsed = time.monotonic() - self.started
        steps = state.global_step - self.start_step
        tokens = (state.num_input_tokens_seen or 0) - self.start_tokens
        return ProgressEvent(
            step=state.global_step,
            total_steps=state.max_steps,
            epoch=float(state.epoch or 0.0),
            loss=_finite(loss),
            eval_loss=_finite(eval_loss),
            learning_rate=_finite(learning_rate),
            tokens_per_s=tokens / elapsed if tokens > 0 and elapsed > 0 else None,
            eta_s=(state.max_steps - state.global_step) * elapsed / steps if steps > 0 else None,
        )

    def _emit(self, event: ProgressEvent) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    def _step_done(self, state, control, event: ProgressEvent) -> None:
        """Report a finished step, then ask whether to stop: a stop requested once step N was
        reported ends the run at step N, with a checkpoint of it."""
        self._emit(event)
        if state.global_step < state.max_steps and self.should_stop():
            control.should_save = True
            control.should_training_stop = True
            self.cancelled = True
            self.log(f"Stop requested at step {state.global_step}: saving a checkpoint.")

    def on_step_end(self, args, state, control, **kwargs):
        # A logging step is reported by on_log, which follows with its loss.
        if not control.should_log:
            self._step_done(state, control, self._event(state))
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Runs before the trainer decides whether to save, so a stop asked for here still
        # gets its checkpoint.
        logs = logs or {}
        if "loss" in logs:
            event = self._event(state, loss=logs["loss"], learning_rate=logs.get("learning_rate"))
            parts = [f"step {event.step}/{event.total_steps}"]
            if event.loss is not None:
                parts.append(f"loss {event.loss:.4f}")
            if event.learning_rate is not None:
                parts.append(f"lr {event.learning_rate:.2e}")
            if event.tokens_per_s is not None:
                parts.append(f"{event.tokens_per_s:.0f} tokens/s")
            if event.eta_s is not None:
                parts.append(f"ETA {event.eta_s:.0f}s")
            self.log(", ".join(parts))
            self._step_done(state, control, event)
        if "eval_loss" in logs:
            event = self._event(state, eval_loss=logs["eval_loss"])
            self._emit(event)
            self.log(f"step {event.step}/{event.total_steps}: eval loss {logs['eval_loss']:.4f}")
        return control


# --------------------------------------------------------------------------------------------
# Training


_DTYPES: Final = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


# Longest max_length a CPU run trains with eager attention (see _attention).
CPU_EAGER_ATTENTION_MAX_LENGTH: Final = 1024


def _attention(config: TrainingConfig, *, cuda: bool) -> dict[str, str]:
    """The attention implementation to train with, as a ``from_pretrained`` keyword.

    On a GPU the model's default (SDPA/flash kernels). On a CPU, plain ("eager") attention up to
    CPU_EAGER_ATTENTION_MAX_LENGTH tokens: PyTorch's CPU flash-attention backward is slow at the
    short lengths QA pairs have (SmolLM2-135M LoRA in bf16 on this project's 2-core VM, forward
    + backward: 630 -> 902 tokens/s at 128 tokens, 627 -> 768 at 256, 529 -> 686 at 512, 420 ->
    528 at 1024). Eager keeps every layer's attention weights for the backward, which grows
    with the square of the length, so longer runs keep SDPA.
    """
    if cuda or config.max_length > CPU_EAGER_ATTENTION_MAX_LENGTH:
        return {}
    return {"attn_implementation": "eager"}


def _load_base(model_path: Path | str, config: TrainingConfig, *, cuda: bool):
    """The base model to train, quantized for qlora/8bit."""
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    attention = _attention(config, cuda=cuda)
    # One GPU per process under ``accelerate launch`` (LOCAL_RANK), the first one otherwise.
    local_device = int(os.environ.get("LOCAL_RANK", "0"))
    if config.method == "qlora":
        compute = _DTYPES[config.bnb_4bit_compute_dtype]
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=config.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=config.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=compute,
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(model_path),
            quantization_config=quantization,
            dtype=compute,
            device_map={"": local_device if cuda else "cpu"},
            **attention,
        )
    elif config.method == "8bit":
        model = AutoModelForCausalLM.from_pretrained(
            str(model_path),
            quantization_config=BitsAndBytesConfig(load_in_8bit=True),
            dtype=half or torch.float16,
            device_map={"": local_device if cuda else "cpu"},
            **attention,
        )
    else:
        # The frozen base in the run's half precision; the trainable adapters stay fp32 (peft
        # upcasts them) and the merge reloads the base in full precision. On a GPU this halves
        # the memory of a 7B base. On a CPU with native bf16 it is much faster than fp32
        # weights under bf16 autocast, where every linear layer re-casts its weight on every
        # call and the norms, activations and residual stream stay fp32. fp16 is GPU-only.
        dtype = half if half is not None and (cuda or half is torch.bfloat16) else torch.float32
        return AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype, **attention)
    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=config.gradient_checkpointing
    )


def _sft_config(
    config: TrainingConfig, *, checkpoints_dir: Path, cuda: bool, has_eval: bool
) -> SFTConfig:
    """trl's SFTConfig for ``config`` (one place maps our names onto trl/transformers 5 ones)."""
    return SFTConfig(
        output_dir=str(checkpoints_dir),
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        # transformers 5 reads a float in [0, 1) as a fraction of the total steps.
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim=config.optim,
        seed=config.seed,
        data_seed=config.seed,
        bf16=config.precision == "bf16",
        fp16=config.precision == "fp16",
        use_cpu=not cuda,
        activation_checkpointing=config.gradient_checkpointing,
        max_length=config.max_length,
        packing=config.packing,
        completion_only_loss=config.completion_only_loss,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        save_total_limit=CHECKPOINTS_KEPT,
        eval_strategy="steps" if config.eval_steps and has_eval else "no",
        eval_steps=config.eval_steps or None,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=cuda,
    )


def _lora_config(config: TrainingConfig) -> LoraConfig:
    modules = config.target_modules
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=modules if isinstance(modules, str) else list(modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


# Head settings some model families apply to the logits (Gemma 2 soft-capping, Cohere and Granite
# scaling...): a plain ``lm_head(hidden)`` would ignore them, so such models keep trl's own loss.
_SCALED_HEAD_ATTRS: Final = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)
# Largest [label tokens x vocabulary] logits block the answer-token loss builds at once (fp32
# elements, ~1 GiB); a bigger micro-batch goes through trl's chunked head instead.
_ANSWER_LOGITS_MAX_ELEMENTS: Final = 2**28


class AnswerTokenSFTTrainer(SFTTrainer):
    """trl's SFTTrainer, whose training loss projects only the positions that carry a label.

    With the loss on the answers only, the prompt and the padding need no logits at all. trl's
    fused head skips them only where Triton runs (CUDA, XPU); elsewhere it projects every
    position through the whole vocabulary, twice (forward, and again in backward), accumulates
    the head's gradient in fp32 and also computes each position's entropy for its logs. On a
    CPU, where the head of a small model is a large share of the work (SmolLM2-135M: 49,152 x
    576), this loss instead gathers the hidden states of the labelled positions, projects them
    once (in the autocast dtype) and takes an fp32 cross-entropy: the same value as trl's loss
    (summed over label tokens, divided by ``num_items_in_batch``), less work. trl's "entropy"
    and "mean_token_accuracy" training logs are not computed on this path (nothing here reads
    them); its "num_tokens" count is kept.

    Used for a single process on a CPU with a plain ``lm_head``; everything else (evaluation,
    GPUs, distributed runs, MoE models, soft-capped or scaled heads, label smoothing, a custom
    loss) goes through trl unchanged.
    """

    def _answer_loss_applies(self, model, inputs, return_outputs: bool) -> bool:
        if return_outputs or not model.training or "labels" not in inputs:
            return False
        if torch.cuda.is_available() or self.accelerator.num_processes != 1:
            return False
        if self.aux_loss_enabled or self.compute_loss_func is not None:
            return False
        if self.label_smoother is not None or self.args.loss_type != "nll":
            return False
        if "attention_mask" not in inputs:  # padding-free batches: leave them to trl
            return False
        text_config = model.config.get_text_config()
        return all(getattr(text_config, name, None) is None for name in _SCALED_HEAD_ATTRS)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self._answer_loss_applies(model, inputs, return_outputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        labels = inputs["labels"][:, 1:]
        mask = labels != -100
        head = base.get_output_embeddings()
        if int(mask.sum()) * head.weight.shape[0] > _ANSWER_LOGITS_MAX_ELEMENTS:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        backbone = base.get_decoder()
        hidden = backbone(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False
        ).last_hidden_state[:, :-1]
        logits = head(hidden[mask])
        summed = torch.nn.functional.cross_entropy(logits.float(), labels[mask], reduction="sum")
        count = mask.sum() if num_items_in_batch is None else num_items_in_batch
        # Clamped as trl does, so a batch without label tokens is a finite zero, not 0 / 0.
        loss = summed / torch.as_tensor(count).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        # trl's running token count (its "num_tokens" log), kept the same way.
        self._total_train_tokens += int(inputs["attention_mask"].sum())
        self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss


def build_sft_trainer(
    *,
    model,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    eval_dataset: Dataset | None,
    config: TrainingConfig,
    checkpoints_dir: Path,
    callbacks: Sequence[TrainerCallback] = (),
) -> SFTTrainer:
    """The trl SFTTrainer :func:`train` runs (exposed so tests can inspect its prepared data)."""
    cuda = torch.cuda.is_available()
    trainer = AnswerTokenSFTTrainer(
        model=model,
        args=_sft_config(
            config, checkpoints_dir=checkpoints_dir, cuda=cuda, has_eval=eval_dataset is not None
        ),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=_lora_config(config),
        callbacks=list(callbacks),
    )
    # With tqdm off, transformers prints every log dict to stdout; progress goes through the
    # callbacks instead.
    trainer.remove_callback(PrinterCallback)
    return trainer


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


def train(
    *,
    base_model: str,
    train_records: list[dict],
    eval_records: list[dict],
    prompt_format: str,
    system_prompt: str,
    config: TrainingConfig,
    output_dir: Path,
    models_dir: Path,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    resume_from_checkpoint: str | bool | None = None,
    on_log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fine-tune ``base_model`` with LoRA on ``train_records``, then evaluate, sample and merge.

    ``should_stop`` is asked after every optimizer step; when it returns True the run saves a
    checkpoint and raises :class:`TrainingCancelled`. ``resume_from_checkpoint=True`` continues
    from the latest checkpoint in ``output_dir/checkpoints`` (a path picks one). Expected
    failures (a bad record, a config this machine cannot run, a missing model folder) raise
    ``ValueError`` or ``FileNotFoundError`` with a message for the user.
    """
    log = on_log or (lambda line: None)
    output_dir = Path(output_dir)
    checkpoints_dir = output_dir / "checkpoints"
    adapter_dir = output_dir / "adapter"
    merged_dir = output_dir / "merged"
    if not train_records:
        raise ValueError("There are no training records.")
    resume = _resume_path(resume_from_checkpoint, checkpoints_dir)

    cuda = torch.cuda.is_available()
    model_path = resolve_base_model(base_model, models_dir=models_dir)
    problems = validate_config(
        config,
        cuda_available=cuda,
        bnb_cpu_4bit_ok=config.method == "qlora" and not cuda and bnb_cpu_4bit_available(),
        model_context=model_context_length(model_path),
    )
    if problems:
        raise ValueError(" ".join(problems))
    if not cuda:
        _keep_freed_memory_for_reuse()
    config = dataclasses.replace(config, precision=resolve_precision(config.precision, cuda=cuda))

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    train_dataset = build_dataset(
        train_records, prompt_format=prompt_format, tokenizer=tokenizer, system_prompt=system_prompt
    )
    eval_examples = [
        parse_training_record(
            record, prompt_format=prompt_format, system_prompt=system_prompt, index=i
        )
        for i, record in enumerate(eval_records)
    ]
    eval_dataset = _to_dataset(eval_examples) if eval_examples else None

    device = _device_label()
    log(f"Loading {model_path} for {config.method} in {config.precision} on {device}.")
    model = _load_base(model_path, config, cuda=cuda)
    reporter = _ProgressReporter(on_progress, should_stop, log)
    trainer = build_sft_trainer(
        model=model,
        tokenizer=tokenizer,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        config=config,
        checkpoints_dir=checkpoints_dir,
        callbacks=[reporter],
    )
    log(
        f"Training on {len(trainer.train_dataset)} examples"
        + (f" (eval {len(eval_records)})" if eval_records else "")
        + (f", resuming from {Path(resume).name}" if resume else "")
        + "."
    )
    outcome = trainer.train(resume_from_checkpoint=resume)
    state = trainer.state
    if reporter.cancelled:
        checkpoint = latest_complete_checkpoint(checkpoints_dir)
        raise TrainingCancelled(
            f"Stopped at step {state.global_step} of {state.max_steps}; "
            f"checkpoint saved in {checkpoint}.",
            step=state.global_step,
            checkpoint=checkpoint,
        )

    train_seconds = float(outcome.metrics.get("train_runtime", 0.0))
    session_tokens = (state.num_input_tokens_seen or 0) - reporter.start_tokens
    train_losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    final_train_loss = _finite(train_losses[-1] if train_losses else outcome.training_loss)

    trainer.save_model(str(adapter_dir))
    log(f"Adapter saved to {adapter_dir}.")

    eval_loss = None
    if eval_dataset is not None:
        done = [
            entry["eval_loss"]
            for entry in state.log_history
            if "eval_loss" in entry and entry.get("step") == state.global_step
        ]
        eval_loss = _finite(done[-1] if done else trainer.evaluate()["eval_loss"])

    if not trainer.accelerator.is_main_process:
        # Under ``accelerate launch`` the other ranks stop here: only the main process samples,
        # merges and reports (the adapter and the eval loss above were collective).
        return TrainResult(
            adapter_dir=adapter_dir,
            merged_dir=merged_dir,
            final_train_loss=final_train_loss,
            eval_loss=eval_loss,
            train_tokens=int(state.num_input_tokens_seen or 0),
            train_seconds=train_seconds,
            tokens_per_s=None,
            steps=state.global_step,
            samples=[],
            device=device,
            main_process=False,
        )

    samples = []
    trained = trainer.model
    trained.eval()
    for example in eval_examples[:SAMPLE_COUNT]:
        samples.append(
            {
                "question": example.question,
                "answer": _generate(trained, tokenizer, example.prompt, SAMPLE_MAX_NEW_TOKENS),
                "reference": example.reference,
            }
        )

    del trainer, trained, model
    _free_memory()
    # Never merge into quantized weights: reload the base unquantized. fp32 on a CPU; on a GPU
    # the half precision the run used (a 7B model in fp32 would need 28 GB).
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    merge_dtype = half if cuda and half is not None else torch.float32
    log(f"Merging the adapter into {model_path} ({str(merge_dtype).removeprefix('torch.')}).")
    _merge(model_path, adapter_dir, merged_dir, tokenizer, dtype=merge_dtype)
    _free_memory()
    log(f"Merged model saved to {merged_dir}.")

    return TrainResult(
        adapter_dir=adapter_dir,
        merged_dir=merged_dir,
        final_train_loss=final_train_loss,
        eval_loss=eval_loss,
        train_tokens=int(state.num_input_tokens_seen or 0),
        train_seconds=train_seconds,
        tokens_per_s=session_tokens / train_seconds
        if train_seconds > 0 and session_tokens
        else None,
        steps=state.global_step,
        samples=samples,
        device=device,
    )


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
