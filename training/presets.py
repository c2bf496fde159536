"""Training hyperparameters: the :class:`TrainingConfig` a job stores, the named presets, checks.

A :class:`TrainingConfig` is the complete, JSON-serialisable recipe of one LoRA/QLoRA run; a
training job keeps ``config.to_dict()`` on its row and the worker rebuilds it with
:meth:`TrainingConfig.from_dict`, which refuses keys it does not know (a typo in an override
must not silently train with the default). :func:`validate_config` turns every problem with a
recipe, for the machine it would run on and the model it would train, into a sentence a user
can act on; nothing is refused later, halfway through a run, that could have been refused here.

Deliberately plain Python: no Django, and no torch or transformers import, so forms, the admin
and the API can use it without loading the ML stack.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final

from training.tracking import TRACKERS

__all__ = [
    "COMPUTE_DTYPES",
    "DATASET_FORMATS",
    "LR_SCHEDULERS",
    "METHODS",
    "OPTIMIZERS",
    "PRECISIONS",
    "PRESETS",
    "QUANT_TYPES",
    "Preset",
    "TrainingConfig",
    "validate_config",
]

METHODS: Final = ("lora", "qlora", "8bit")
# "auto": bf16 where the hardware computes it natively (a CUDA GPU with bf16, or a CPU with
# AVX-512 BF16 / AMX), fp32 elsewhere; resolved by the trainer on the machine that runs the job.
PRECISIONS: Final = ("auto", "fp32", "bf16", "fp16")
COMPUTE_DTYPES: Final = ("bfloat16", "float16", "float32")
QUANT_TYPES: Final = ("nf4", "fp4")
# The transformers schedulers that need no extra arguments (cosine_with_min_lr needs a minimum,
# reduce_lr_on_plateau an evaluation metric); tests check each is a real SchedulerType.
LR_SCHEDULERS: Final = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
# Optimizers offered (transformers OptimizerNames values). The bitsandbytes ones keep their
# state in 8 bits; the paged ones also page it to host memory under CUDA (on a CPU bitsandbytes
# 0.50 runs them unpaged, with a warning).
OPTIMIZERS: Final = (
    "adamw_torch",
    "adamw_torch_fused",
    "adafactor",
    "sgd",
    "adamw_8bit",
    "adamw_bnb_8bit",
    "paged_adamw_8bit",
    "paged_adamw_32bit",
)
#: What a run trains on: the snapshot's pairs as they are (question -> answer), or RAFT records
#: (the chat's grounded prompt over retrieved passages -> a cited answer or a decline;
#: ``training.raft``), with the ``raft_*`` options.
DATASET_FORMATS: Final = ("pairs", "raft")


@dataclass(frozen=True)
class TrainingConfig:
    """Every hyperparameter of one LoRA/QLoRA supervised fine-tuning run.

    ``method``: ``lora`` trains adapters on a full-precision base; ``qlora`` on a 4-bit base
    (``bnb_4bit_*``); ``8bit`` on an 8-bit base. ``max_steps`` -1 means "train
    ``num_train_epochs`` epochs". ``completion_only_loss`` puts the loss on the answer tokens
    only, never on the question or the prompt around it. ``save_steps`` is the checkpoint
    interval and ``eval_steps`` the evaluation interval, in optimizer steps; 0 turns either off
    (a cancelled run still saves a checkpoint, and the eval loss is always computed at the end).
    ``target_modules`` is ``"all-linear"`` or a tuple of module names (a list is accepted and
    stored as a tuple, so a config stays hashable). ``report_to`` names the experiment trackers
    the run logs to (:data:`TRACKERS`, a tuple like ``target_modules``), or is ``"auto"`` (every
    one installed and configured where the run is launched: :func:`resolve_report_to`) or
    ``"none"``; a launched job stores the resolved tuple, so its row says what it logged to.
    ``dataset_format`` is ``pairs`` (the snapshot's records) or ``raft`` (:mod:`training.raft`:
    each question over ``raft_passages`` retrieved passages, its source chunk kept with
    probability ``raft_oracle_p``, distractors from ``raft_distractors``).
    """

    method: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"
    num_train_epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 256
    packing: bool = False
    gradient_checkpointing: bool = False
    optim: str = "adamw_torch"
    precision: str = "fp32"
    seed: int = 42
    completion_only_loss: bool = True
    group_by_length: bool = False
    bnb_4bit_quant_type: str = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: str = "bfloat16"
    save_steps: int = 50
    eval_steps: int = 0
    logging_steps: int = 1
    report_to: str | tuple[str, ...] = "auto"
    dataset_format: str = "pairs"
    raft_oracle_p: float = 0.8
    raft_passages: int = 4
    raft_distractors: str = "retrieved"

    def raft_options(self):
        """The RAFT options of a ``dataset_format="raft"`` run (``training.raft``)."""
        from training.raft import RaftOptions

        return RaftOptions(
            oracle_p=self.raft_oracle_p,
            passages=self.raft_passages,
            distractors=self.raft_distractors,
        )

    def __post_init__(self) -> None:
        for name in ("target_modules", "report_to"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (``target_modules`` and ``report_to`` as a string or a list)."""
        data = asdict(self)
        for name in ("target_modules", "report_to"):
            if isinstance(getattr(self, name), tuple):
                data[name] = list(getattr(self, name))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """A config from ``to_dict()`` output, maybe edited; missing keys take the defaults.

        Raises ``ValueError`` naming unknown keys, and ``TypeError`` naming a value of the wrong
        type (a JSON string where a number belongs, say). Ranges are :func:`validate_config`'s.
        """
        if not isinstance(data, dict):
            raise TypeError(f"Hyperparameters must be an object, got {type(data).__name__}.")
        known = {item.name: item for item in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"Unknown hyperparameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}."
            )
        values = {}
        for name, value in data.items():
            values[name] = _coerce(name, value, _FIELD_TYPES[name])
        return cls(**values)


# The JSON shape of each field: what from_dict accepts.
_FIELD_TYPES: Final = {
    "method": str,
    "lora_r": int,
    "lora_alpha": int,
    "lora_dropout": float,
    "target_modules": "modules",
    "num_train_epochs": float,
    "max_steps": int,
    "learning_rate": float,
    "lr_scheduler_type": str,
    "warmup_ratio": float,
    "weight_decay": float,
    "max_grad_norm": float,
    "per_device_train_batch_size": int,
    "gradient_accumulation_steps": int,
    "max_length": int,
    "packing": bool,
    "gradient_checkpointing": bool,
    "optim": str,
    "precision": str,
    "seed": int,
    "completion_only_loss": bool,
    "group_by_length": bool,
    "bnb_4bit_quant_type": str,
    "bnb_4bit_use_double_quant": bool,
    "bnb_4bit_compute_dtype": str,
    "save_steps": int,
    "eval_steps": int,
    "logging_steps": int,
    "report_to": "trackers",
    "dataset_format": str,
    "raft_oracle_p": float,
    "raft_passages": int,
    "raft_distractors": str,
}


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """``value`` as ``kind``, or TypeError naming the field. JSON has one number type, so an
    integral float is a fine int and any int a fine float; a bool is never a number."""
    if kind == "modules":
        if isinstance(value, str):
            return value
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise TypeError(f'{name} must be "all-linear" or a list of module names.')
    if kind == "trackers":
        if isinstance(value, str):
            return value
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise TypeError(f'{name} must be "auto", "none" or a list of {", ".join(TRACKERS)}.')
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"{name} must be true or false, got {value!r}.")
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError(f"{name} must be a whole number, got {value!r}.")
    if kind is float:
        if isinstance(value, int | float):
            return float(value)
        raise TypeError(f"{name} must be a number, got {value!r}.")
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}.")
    return value


@dataclass(frozen=True)
class Preset:
    """A named recipe: hyperparameters plus the base model they were chosen for ("" = the
    bundled SmolLM2-135M-Instruct)."""

    name: str
    label: str
    base_model: str
    config: TrainingConfig
    description: str


# cpu_quick, measured on this project's 2-core VM (AMD EPYC, AVX-512) with LoRA r=8 on
# SmolLM2-135M-Instruct, 24 Model 3 pairs in the chat format (median ~175 tokens), batch 4,
# max_length 256, fp32, with the trainer's allocator setting (trainer._keep_freed_memory_for_reuse;
# without it every setting below ran 3-5x slower):
#   gradient checkpointing on (trl's default)   89 tokens/s
#   gradient checkpointing off                 126 tokens/s  (x1.4; memory is no issue at 135M)
#   + padding-free batches                     134 tokens/s  (within the noise; trl allows it only
#                                              with packing or max_length=None)
#   + group_by_length                          128 tokens/s  (no gain on a small dataset)
# so: no checkpointing, ordinary padded batches, no packing (packing would put ~5 pairs in one
# row and change what a step is). The preset itself on 48 pairs: 125 tokens/s in fp32; bf16
# autocast gave 185 tokens/s on this CPU (it has AVX-512 BF16). CPUs without native bf16 emulate
# it slowly, so the preset asks for "auto": bf16 where the CPU (or GPU) has it, fp32 elsewhere.
# alpha 32 (the seed's, scale 4 at r=8): at 16 the seed-style run ended with a lower held-out
# answer loss on 256 Model 3 pairs (2.148 vs 2.181), the adapters learning at half the rate.
# group_by_length: on 128 real Model 3 pairs in bf16, 196 -> 225 tokens/s (less padding per
# batch; it mattered little at 48 pairs in fp32, above). Batch 8 with it: 238 tokens/s, but half
# the optimizer steps per epoch, so batch 4 stays.
# Then, in bench/training.py (256 real pairs, one epoch, same process, tokens/s of the whole
# preset): 244 as above; the trainer's answer-position-only loss head and bf16 base weights (in
# place of fp32 weights under bf16 autocast) 332; LoRA dropout 0 510 (peft draws a dropout mask
# per adapter per call with the single-threaded CPU generator: 12% of a step), held-out answer
# loss 2.1372 -> 2.1365, no worse; eager attention on a CPU (trainer._attention) 616 — 2.7x the
# seed-style run with bf16 autocast (225 tokens/s).
_CPU_QUICK: Final = TrainingConfig(
    method="lora",
    lora_r=8,
    lora_alpha=32,
    lora_dropout=0.0,
    num_train_epochs=1.0,
    learning_rate=2e-4,
    lr_scheduler_type="cosine",
    warmup_ratio=0.03,
    per_device_train_batch_size=4,
    max_length=256,
    packing=False,
    gradient_checkpointing=False,
    optim="adamw_torch",
    precision="auto",
    group_by_length=True,
    completion_only_loss=True,
    save_steps=50,
    logging_steps=1,
)

# The seed project's QLoRA recipe, used for both of its 7B models. Its trainer computed the loss
# over the whole "<s>[INST] q [/INST] a </s>" text, so completion_only_loss is off here to
# reproduce it; turn it on to train on answers only.
_SEED_QLORA: Final = TrainingConfig(
    method="qlora",
    lora_r=8,
    lora_alpha=32,
    lora_dropout=0.05,
    num_train_epochs=10.0,
    learning_rate=2e-4,
    lr_scheduler_type="cosine",
    warmup_ratio=0.03,
    weight_decay=0.001,
    max_grad_norm=0.3,
    per_device_train_batch_size=4,
    max_length=1024,
    packing=False,
    gradient_checkpointing=True,
    optim="paged_adamw_8bit",
    precision="bf16",
    completion_only_loss=False,
    group_by_length=True,
    bnb_4bit_quant_type="nf4",
    bnb_4bit_use_double_quant=True,
    bnb_4bit_compute_dtype="bfloat16",
    save_steps=200,
    eval_steps=200,
    logging_steps=10,
)

# RAFT on the CPU: cpu_quick's recipe on RAFT records. A record is the grounded prompt with four
# passages (about 700-1,100 tokens on the Model 3 manual) and a short cited answer, so
# max_length leaves room for the whole prompt: a prompt cut short would lose the answer, and
# with it the record's loss. Batch 2: a step still holds about 2.5 times cpu_quick's tokens
# (two prompts of ~900 against four pairs of ~175); bench/raft.py measured 50 steps in 458 s,
# records built and model merged included (424 tokens/s on the 2-core CPU).
_CPU_RAFT: Final = replace(
    _CPU_QUICK,
    dataset_format="raft",
    raft_oracle_p=0.8,
    raft_passages=4,
    raft_distractors="retrieved",
    max_length=1536,
    per_device_train_batch_size=2,
)

PRESETS: Final[dict[str, Preset]] = {
    preset.name: preset
    for preset in (
        Preset(
            name="cpu_quick",
            label="Quick LoRA on CPU (SmolLM2-135M)",
            base_model="",
            config=_CPU_QUICK,
            description=(
                "LoRA r=8 on the bundled SmolLM2-135M-Instruct, one epoch, answers-only loss. "
                "About 600 tokens/s on a 2-core CPU with native bf16 (a few minutes for 250 "
                "pairs), several times slower on CPUs without it; for trying the pipeline end to "
                "end, not for a production-quality assistant."
            ),
        ),
        Preset(
            name="cpu_raft",
            label="RAFT LoRA on CPU (SmolLM2-135M)",
            base_model="",
            config=_CPU_RAFT,
            description=(
                "Teaches the bundled SmolLM2-135M-Instruct to answer from retrieved passages "
                "(RAFT): each approved question comes with 4 passages from ManualQA's own "
                "retrieval; with probability 0.8 one is the pair's source, cited in the answer "
                "like [2], else all are distractors and the answer is the chat's decline. Serve "
                "it in a RAG assistant. Slower per step than CPU quick (longer prompts)."
            ),
        ),
        Preset(
            name="seed_mistral_7b_qlora",
            label="Seed project: Mistral 7B QLoRA",
            base_model="mistralai/Mistral-7B-v0.1",
            config=_SEED_QLORA,
            description=(
                "The seed project's recipe: 4-bit nf4 base with double quantization and "
                "bfloat16 compute, LoRA r=8 alpha=32 dropout 0.05, paged 8-bit AdamW, lr 2e-4 "
                "cosine with 3% warmup, 10 epochs, batch 4, max grad norm 0.3, weight decay "
                "0.001, grouped by length, loss on the whole text. Needs a CUDA GPU (~10 GB)."
            ),
        ),
        Preset(
            name="seed_llama2_7b_qlora",
            label="Seed project: Llama 2 7B QLoRA",
            base_model="meta-llama/Llama-2-7b-hf",
            config=_SEED_QLORA,
            description=(
                "The seed project's recipe on Llama 2 7B (a gated model: HF_TOKEN must grant "
                "access). Same hyperparameters as the Mistral preset. Needs a CUDA GPU."
            ),
        ),
    )
}


def validate_config(
    config: TrainingConfig,
    *,
    cuda_available: bool,
    bnb_cpu_4bit_ok: bool,
    model_context: int | None,
) -> list[str]:
    """Every problem with running ``config`` here, as sentences naming it; empty when it can run.

    ``cuda_available``: a CUDA GPU is visible. ``bnb_cpu_4bit_ok``: bitsandbytes can run
    4-bit (nf4) layers forward and backward on this CPU (``trainer.bnb_cpu_4bit_available``).
    ``model_context``: the base model's context length, or None where unknown.
    """
    problems: list[str] = []

    def need(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    # Choices
    need(
        config.method in METHODS,
        f"method must be one of {', '.join(METHODS)} (got {config.method!r}).",
    )
    need(
        config.precision in PRECISIONS,
        f"precision must be one of {', '.join(PRECISIONS)} (got {config.precision!r}).",
    )
    need(
        config.lr_scheduler_type in LR_SCHEDULERS,
        f"lr_scheduler_type must be one of {', '.join(LR_SCHEDULERS)} "
        f"(got {config.lr_scheduler_type!r}).",
    )
    need(
        config.optim in OPTIMIZERS,
        f"optim must be one of {', '.join(OPTIMIZERS)} (got {config.optim!r}).",
    )
    need(
        config.bnb_4bit_quant_type in QUANT_TYPES,
        f"bnb_4bit_quant_type must be one of {', '.join(QUANT_TYPES)} "
        f"(got {config.bnb_4bit_quant_type!r}).",
    )
    need(
        config.bnb_4bit_compute_dtype in COMPUTE_DTYPES,
        f"bnb_4bit_compute_dtype must be one of {', '.join(COMPUTE_DTYPES)} "
        f"(got {config.bnb_4bit_compute_dtype!r}).",
    )
    modules = config.target_modules
    if isinstance(modules, str):
        need(
            modules == "all-linear",
            f'target_modules must be "all-linear" or a list of module names (got {modules!r}).',
        )
    else:
        need(
            len(modules) > 0 and all(name.strip() for name in modules),
            "target_modules must name at least one module, and no name may be empty.",
        )
    report_to = config.report_to
    if isinstance(report_to, str):
        need(
            report_to in ("auto", "none", *TRACKERS),
            f'report_to must be "auto", "none" or a list of {", ".join(TRACKERS)} '
            f"(got {report_to!r}).",
        )
    else:
        unknown = [name for name in report_to if name not in TRACKERS]
        need(
            not unknown,
            f"report_to names unknown trackers: {', '.join(map(repr, unknown))} "
            f"(use {', '.join(TRACKERS)}).",
        )
        need(len(set(report_to)) == len(report_to), "report_to names a tracker twice.")

    need(
        config.dataset_format in DATASET_FORMATS,
        f"dataset_format must be one of {', '.join(DATASET_FORMATS)} "
        f"(got {config.dataset_format!r}).",
    )
    if config.dataset_format == "raft":
        problems.extend(config.raft_options().problems())

    # Ranges
    need(config.lora_r >= 1, f"lora_r must be at least 1 (got {config.lora_r}).")
    need(config.lora_alpha >= 1, f"lora_alpha must be at least 1 (got {config.lora_alpha}).")
    for name in ("lora_dropout", "warmup_ratio"):
        value = getattr(config, name)
        need(
            math.isfinite(value) and 0 <= value < 1,
            f"{name} must be at least 0 and below 1 (got {value:g}).",
        )
    need(
        math.isfinite(config.learning_rate) and 0 < config.learning_rate <= 1,
        f"learning_rate must be above 0 and at most 1 (got {config.learning_rate:g}).",
    )
    need(
        math.isfinite(config.weight_decay) and 0 <= config.weight_decay < 1,
        f"weight_decay must be at least 0 and below 1 (got {config.weight_decay:g}).",
    )
    need(
        math.isfinite(config.max_grad_norm) and config.max_grad_norm >= 0,
        f"max_grad_norm must be 0 (no clipping) or more (got {config.max_grad_norm:g}).",
    )
    need(
        config.max_steps == -1 or config.max_steps >= 1,
        f"max_steps must be -1 (train by epochs) or at least 1 (got {config.max_steps}).",
    )
    if config.max_steps == -1:
        need(
            math.isfinite(config.num_train_epochs) and config.num_train_epochs > 0,
            f"num_train_epochs must be above 0 (got {config.num_train_epochs:g}).",
        )
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps"):
        value = getattr(config, name)
        need(value >= 1, f"{name} must be at least 1 (got {value}).")
    for name in ("save_steps", "eval_steps"):
        value = getattr(config, name)
        need(value >= 0, f"{name} must be 0 (off) or more (got {value}).")
    need(config.seed >= 0, f"seed must be 0 or more (got {config.seed}).")
    need(
        config.max_length >= 16, f"max_length must be at least 16 tokens (got {config.max_length})."
    )
    if model_context is not None and config.max_length > model_context:
        problems.append(
            f"max_length {config.max_length} is beyond the base model's context of "
            f"{model_context} tokens."
        )

    # This machine
    if config.method == "qlora" and not cuda_available and not bnb_cpu_4bit_ok:
        problems.append(
            "QLoRA needs a CUDA GPU here: this machine has none, and its bitsandbytes cannot "
            "run 4-bit layers on the CPU. Use method lora."
        )
    if config.method == "8bit" and not cuda_available:
        problems.append("8-bit LoRA needs a CUDA GPU, and this machine has none. Use method lora.")
    if config.precision == "fp16" and not cuda_available:
        problems.append("precision fp16 needs a CUDA GPU. Use fp32 or bf16 on a CPU.")
    if (
        config.method == "qlora"
        and config.bnb_4bit_compute_dtype == "float16"
        and not cuda_available
    ):
        problems.append("bnb_4bit_compute_dtype float16 needs a CUDA GPU. Use bfloat16 or float32.")
    return problems
