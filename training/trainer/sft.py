"""The trainer itself: attention and base-model loading, the SFT and LoRA configs, and trl's
SFTTrainer with the loss on answer tokens only."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import torch
from datasets import Dataset
from peft import LoraConfig, prepare_model_for_kbit_training
from transformers import (
    AutoModelForCausalLM,
    BitsAndBytesConfig,
    PreTrainedTokenizerBase,
    TrainerCallback,
)
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from training.presets import TrainingConfig
from training.tracking import TENSORBOARD_DIR_NAME
from training.trainer.callbacks import JobTensorBoardCallback

#: Checkpoints a run keeps (adapter, optimizer and trainer state, enough to resume).
CHECKPOINTS_KEPT: Final = 2


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
    config: TrainingConfig,
    *,
    checkpoints_dir: Path,
    cuda: bool,
    has_eval: bool,
    report_to: Sequence[str] = (),
    run_name: str | None = None,
) -> SFTConfig:
    """trl's SFTConfig for ``config`` (one place maps our names onto trl/transformers 5 ones).

    ``report_to``: the experiment trackers to log to, already resolved (``config.report_to``
    may still say "auto"); ``run_name`` names the run in W&B and MLflow."""
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
        report_to=list(report_to) or "none",
        run_name=run_name,
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
    report_to: Sequence[str] = (),
    tensorboard_dir: Path | None = None,
    run_name: str | None = None,
) -> SFTTrainer:
    """The trl SFTTrainer :func:`train` runs (exposed so tests can inspect its prepared data).

    ``report_to``: the trackers to log to (resolved names, see ``_sft_config``); TensorBoard's
    event files go to ``tensorboard_dir`` (default: ``tensorboard`` beside the checkpoints).
    """
    cuda = torch.cuda.is_available()
    trainer = AnswerTokenSFTTrainer(
        model=model,
        args=_sft_config(
            config,
            checkpoints_dir=checkpoints_dir,
            cuda=cuda,
            has_eval=eval_dataset is not None,
            report_to=report_to,
            run_name=run_name,
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
    if "tensorboard" in report_to:
        # transformers' own writes to a folder named after the date and host under the
        # checkpoints, a new one each resume; this one writes to the job's tensorboard folder.
        trainer.remove_callback(TensorBoardCallback)
        trainer.add_callback(
            JobTensorBoardCallback(tensorboard_dir or checkpoints_dir.parent / TENSORBOARD_DIR_NAME)
        )
    return trainer
