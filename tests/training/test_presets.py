"""TrainingConfig serialisation, the named presets, and validate_config's refusals (no DB)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from training.presets import (
    LR_SCHEDULERS,
    OPTIMIZERS,
    PRESETS,
    Preset,
    TrainingConfig,
    validate_config,
)

CPU = {"cuda_available": False, "bnb_cpu_4bit_ok": False, "model_context": 8192}
GPU = {"cuda_available": True, "bnb_cpu_4bit_ok": False, "model_context": 4096}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json(name):
    config = PRESETS[name].config
    restored = TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config


def test_from_dict_refuses_unknown_keys_and_names_them():
    data = {**TrainingConfig().to_dict(), "lora_rank": 16, "epochs": 2}
    with pytest.raises(ValueError, match=r"Unknown hyperparameters: epochs, lora_rank\."):
        TrainingConfig.from_dict(data)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("lora_r", "8", "lora_r must be a whole number"),
        ("lora_r", 8.5, "lora_r must be a whole number"),
        ("learning_rate", True, "learning_rate must be a number"),
        ("packing", "yes", "packing must be true or false"),
        ("method", 4, "method must be a string"),
        ("target_modules", ["q_proj", 3], "target_modules must be"),
    ],
)
def test_from_dict_refuses_values_of_the_wrong_type(key, value, fragment):
    with pytest.raises(TypeError, match=fragment):
        TrainingConfig.from_dict({key: value})


def test_from_dict_takes_json_numbers_and_lists_and_defaults_the_rest():
    config = TrainingConfig.from_dict(
        {"lora_r": 16.0, "num_train_epochs": 2, "target_modules": ["q_proj", "v_proj"]}
    )
    assert config.lora_r == 16 and isinstance(config.lora_r, int)
    assert config.num_train_epochs == 2.0 and isinstance(config.num_train_epochs, float)
    assert config.target_modules == ("q_proj", "v_proj")
    assert config.to_dict()["target_modules"] == ["q_proj", "v_proj"]
    assert config.learning_rate == TrainingConfig().learning_rate
    hash(config)  # frozen and hashable even with a list of modules


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainingConfig().lora_r = 4  # type: ignore[misc]


def test_cpu_quick_is_lora_on_the_default_model_without_checkpointing():
    preset = PRESETS["cpu_quick"]
    config = preset.config
    assert isinstance(preset, Preset) and preset.base_model == ""
    assert (config.method, config.lora_r, config.lora_alpha, config.lora_dropout) == (
        "lora",
        8,
        32,
        0.0,  # no dropout: 1.5x the tokens/s on a CPU, held-out loss no worse (bench/training.py)
    )
    assert config.learning_rate == 2e-4 and config.num_train_epochs == 1.0
    assert config.per_device_train_batch_size == 4 and config.max_length == 256
    assert config.packing is False and config.gradient_checkpointing is False
    assert config.completion_only_loss is True and config.group_by_length is True
    assert (config.optim, config.precision) == ("adamw_torch", "auto")
    assert validate_config(config, **CPU) == []


@pytest.mark.parametrize(
    ("name", "base_model"),
    [
        ("seed_mistral_7b_qlora", "mistralai/Mistral-7B-v0.1"),
        ("seed_llama2_7b_qlora", "meta-llama/Llama-2-7b-hf"),
    ],
)
def test_seed_presets_reproduce_the_seed_recipe(name, base_model):
    preset = PRESETS[name]
    config = preset.config
    assert preset.base_model == base_model
    assert config.method == "qlora"
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (8, 32, 0.05)
    assert config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant is True
    assert config.bnb_4bit_compute_dtype == "bfloat16"
    assert config.optim == "paged_adamw_8bit"
    assert config.learning_rate == 2e-4
    assert config.lr_scheduler_type == "cosine"
    assert config.warmup_ratio == 0.03
    assert config.num_train_epochs == 10.0 and config.max_steps == -1
    assert config.per_device_train_batch_size == 4
    assert config.max_grad_norm == 0.3
    assert config.weight_decay == 0.001
    assert config.group_by_length is True
    assert validate_config(config, **GPU) == []


def test_offered_schedulers_and_optimizers_are_transformers_names():
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    assert set(LR_SCHEDULERS) <= {item.value for item in SchedulerType}
    assert set(OPTIMIZERS) <= {item.value for item in OptimizerNames}


def test_qlora_without_cuda_is_refused_where_bitsandbytes_cannot_run_4bit_on_cpu():
    config = TrainingConfig(method="qlora")
    problems = validate_config(config, **CPU)
    assert problems == [
        "QLoRA needs a CUDA GPU here: this machine has none, and its bitsandbytes cannot run "
        "4-bit layers on the CPU. Use method lora."
    ]
    assert validate_config(config, **{**CPU, "bnb_cpu_4bit_ok": True}) == []
    assert validate_config(config, **GPU) == []


def test_8bit_without_cuda_is_refused():
    problems = validate_config(TrainingConfig(method="8bit"), **CPU)
    assert problems == ["8-bit LoRA needs a CUDA GPU, and this machine has none. Use method lora."]
    assert validate_config(TrainingConfig(method="8bit"), **GPU) == []


def test_fp16_needs_cuda():
    assert validate_config(TrainingConfig(precision="fp16"), **CPU) == [
        "precision fp16 needs a CUDA GPU. Use fp32 or bf16 on a CPU."
    ]
    assert validate_config(TrainingConfig(precision="bf16"), **CPU) == []


def test_max_length_beyond_the_model_context_is_refused():
    config = TrainingConfig(max_length=4096)
    assert validate_config(config, **{**CPU, "model_context": 2048}) == [
        "max_length 4096 is beyond the base model's context of 2048 tokens."
    ]
    assert validate_config(config, **{**CPU, "model_context": None}) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lora_r": 0}, "lora_r must be at least 1 (got 0)."),
        ({"lora_alpha": 0}, "lora_alpha must be at least 1 (got 0)."),
        ({"lora_dropout": 1.0}, "lora_dropout must be at least 0 and below 1 (got 1)."),
        ({"lora_dropout": -0.1}, "lora_dropout must be at least 0 and below 1 (got -0.1)."),
        ({"warmup_ratio": 1.5}, "warmup_ratio must be at least 0 and below 1 (got 1.5)."),
        ({"learning_rate": 0.0}, "learning_rate must be above 0 and at most 1 (got 0)."),
        ({"learning_rate": float("nan")}, "learning_rate must be above 0 and at most 1 (got nan)."),
        ({"weight_decay": -1.0}, "weight_decay must be at least 0 and below 1 (got -1)."),
        ({"max_grad_norm": -1.0}, "max_grad_norm must be 0 (no clipping) or more (got -1)."),
        ({"max_steps": 0}, "max_steps must be -1 (train by epochs) or at least 1 (got 0)."),
        ({"num_train_epochs": 0.0}, "num_train_epochs must be above 0 (got 0)."),
        (
            {"per_device_train_batch_size": 0},
            "per_device_train_batch_size must be at least 1 (got 0).",
        ),
        (
            {"gradient_accumulation_steps": 0},
            "gradient_accumulation_steps must be at least 1 (got 0).",
        ),
        ({"logging_steps": 0}, "logging_steps must be at least 1 (got 0)."),
        ({"save_steps": -5}, "save_steps must be 0 (off) or more (got -5)."),
        ({"eval_steps": -1}, "eval_steps must be 0 (off) or more (got -1)."),
        ({"max_length": 8}, "max_length must be at least 16 tokens (got 8)."),
        ({"seed": -1}, "seed must be 0 or more (got -1)."),
        ({"method": "full"}, "method must be one of lora, qlora, 8bit (got 'full')."),
        ({"precision": "fp8"}, "precision must be one of auto, fp32, bf16, fp16 (got 'fp8')."),
        ({"optim": "adam"}, "optim must be one of "),
        ({"lr_scheduler_type": "step"}, "lr_scheduler_type must be one of "),
        ({"bnb_4bit_quant_type": "int4"}, "bnb_4bit_quant_type must be one of nf4, fp4"),
        ({"bnb_4bit_compute_dtype": "half"}, "bnb_4bit_compute_dtype must be one of "),
        ({"target_modules": "q_proj"}, 'target_modules must be "all-linear" or a list'),
        ({"target_modules": ()}, "target_modules must name at least one module"),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(changes, message):
    problems = validate_config(dataclasses.replace(TrainingConfig(), **changes), **CPU)
    assert len(problems) == 1
    assert problems[0].startswith(message)


def test_epochs_do_not_matter_when_max_steps_is_set():
    config = TrainingConfig(max_steps=10, num_train_epochs=0.0)
    assert validate_config(config, **CPU) == []


def test_every_problem_is_reported_at_once():
    config = TrainingConfig(method="8bit", lora_r=0, learning_rate=-1.0, max_length=10_000)
    problems = validate_config(config, **CPU)
    assert len(problems) == 4
    assert any(problem.startswith("lora_r") for problem in problems)
    assert any(problem.startswith("learning_rate") for problem in problems)
    assert any("context of 8192" in problem for problem in problems)
    assert any(problem.startswith("8-bit LoRA") for problem in problems)
