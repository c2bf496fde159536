"""LoRA/QLoRA supervised fine-tuning of a causal language model on a snapshot's records.

:func:`train` is one whole run: it turns exported snapshot records into trl's prompt/completion
dataset (so the loss falls on the answers only), trains LoRA adapters with trl's
``SFTTrainer`` on a full-precision (``lora``), 4-bit nf4 (``qlora``) or 8-bit (``8bit``) base,
reports progress after every optimizer step, checkpoints, stops cleanly when asked, resumes
from its last checkpoint, and finally evaluates, samples a few answers and merges the adapter
into a full-precision copy of the base model that any ``from_pretrained`` can load.

Layout of ``output_dir``: ``checkpoints/checkpoint-N`` (the last two; adapter, optimizer and
trainer state, enough to resume), ``adapter/`` (the final LoRA adapter), ``merged/`` (the
merged model plus tokenizer, as safetensors) and, when the run logs to TensorBoard,
``tensorboard/`` (its event files, one folder across resumes).

Layout: :mod:`.data` (records to a dataset), :mod:`.machine` (base models, precision, this
machine), :mod:`.callbacks` (progress, cancel, results), :mod:`.sft` (model loading and the
trainer) and :mod:`.artifacts` (samples, merge, checkpoints); :func:`train` here runs them.

Deliberately plain Python (no Django import): the Celery task, the management command and the
tests call it with plain values and get plain values back.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

import torch
from transformers import AutoTokenizer

from manualqa.lib.prompt_formats import TrainExample, parse_training_record
from training.presets import TrainingConfig, validate_config
from training.tracking import (
    TENSORBOARD_DIR_NAME,
    TRACKER_LABELS,
    resolve_report_to,
    tracker_problems,
)
from training.trainer.artifacts import (
    _free_memory,
    _generate,
    _merge,
    _resume_path,
    checkpoint_is_complete,
    latest_complete_checkpoint,
    load_merged_and_generate,
)
from training.trainer.callbacks import (
    JobTensorBoardCallback,
    ProgressEvent,
    TrainingCancelled,
    TrainResult,
    _finite,
    _ProgressReporter,
)
from training.trainer.data import _to_dataset, build_dataset
from training.trainer.machine import (
    _device_label,
    _keep_freed_memory_for_reuse,
    bnb_cpu_4bit_available,
    cpu_has_native_bf16,
    model_context_length,
    model_has_chat_template,
    resolve_base_model,
    resolve_precision,
)
from training.trainer.sft import AnswerTokenSFTTrainer, _load_base, build_sft_trainer

__all__ = [
    "AnswerTokenSFTTrainer",
    "JobTensorBoardCallback",
    "ProgressEvent",
    "TrainExample",
    "TrainResult",
    "TrainingCancelled",
    "bnb_cpu_4bit_available",
    "build_dataset",
    "build_sft_trainer",
    "checkpoint_is_complete",
    "cpu_has_native_bf16",
    "latest_complete_checkpoint",
    "load_merged_and_generate",
    "model_context_length",
    "model_has_chat_template",
    "resolve_base_model",
    "resolve_precision",
    "train",
]


#: Eval questions a run answers at the end, and the answer length, for the job page.
SAMPLE_COUNT: Final = 3
SAMPLE_MAX_NEW_TOKENS: Final = 48


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
    failures (a bad record, a config this machine cannot run, a tracker that is not installed
    or configured here, a missing model folder) raise ``ValueError`` or ``FileNotFoundError``
    with a message for the user, before the model is loaded.

    ``config.report_to`` picks the experiment trackers, checked against this process's
    environment ("auto": those installed and configured here); W&B and MLflow name the run
    after ``output_dir``.
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
    problems += tracker_problems(config.report_to, environ=os.environ)
    if problems:
        raise ValueError(" ".join(problems))
    report_to = resolve_report_to(config.report_to, environ=os.environ)
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
    tensorboard_dir = output_dir / TENSORBOARD_DIR_NAME
    trainer = build_sft_trainer(
        model=model,
        tokenizer=tokenizer,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        config=config,
        checkpoints_dir=checkpoints_dir,
        callbacks=[reporter],
        report_to=report_to,
        tensorboard_dir=tensorboard_dir,
        run_name=output_dir.name,
    )
    if report_to:
        where = f" (tensorboard --logdir {tensorboard_dir})" if "tensorboard" in report_to else ""
        log(f"Logging to {', '.join(TRACKER_LABELS[name] for name in report_to)}{where}.")
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

    # What every rank reports; the main process adds its samples and the throughput.
    result = functools.partial(
        TrainResult,
        adapter_dir=adapter_dir,
        merged_dir=merged_dir,
        final_train_loss=final_train_loss,
        eval_loss=eval_loss,
        train_tokens=int(state.num_input_tokens_seen or 0),
        train_seconds=train_seconds,
        steps=state.global_step,
        device=device,
    )
    if not trainer.accelerator.is_main_process:
        # Under ``accelerate launch`` the other ranks stop here: only the main process samples,
        # merges and reports (the adapter and the eval loss above were collective).
        return result(tokens_per_s=None, samples=[], main_process=False)

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

    return result(
        tokens_per_s=session_tokens / train_seconds
        if train_seconds > 0 and session_tokens
        else None,
        samples=samples,
    )
