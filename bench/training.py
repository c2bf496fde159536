"""Benchmark: LoRA training throughput of the job pipeline against a seed-style trl script.

Both runs train the default model (SmolLM2-135M-Instruct, converted once under MODELS_DIR) with
LoRA for one epoch on the same 256 real Model 3 pairs, in this process, one after the other:

- ours: ``training.trainer.train`` with the ``cpu_quick`` preset (answers-only loss, computed
  on the answer positions only; no gradient checkpointing; group_by_length; LoRA dropout 0;
  eager attention on a CPU; precision "auto": on a CPU with native bf16 such as this one, the
  frozen base in bf16 with fp32 adapters, fp32 elsewhere), records made exactly as a
  ``seed_inst`` snapshot export makes them (``training.services.format_record``). Runs first.
- seed: :func:`seed_run`, a plain trl ``SFTTrainer`` script with the seed project's recipe
  (``PRESETS["seed_mistral_7b_qlora"]``): ``<s>[INST] q [/INST] a </s>`` text with the loss on
  the whole sequence, no packing, gradient checkpointing, group_by_length, LoRA r=8 alpha=32
  dropout 0.05, and the seed's bf16 compute, which on a CPU is trl's default bf16 autocast over
  the fp32 base (where the CPU has native bf16, as "auto" decides for ours; fp32 elsewhere).
  Only what this CPU cannot run is changed: an fp32 base and adamw_torch instead of a 4-bit
  base and paged 8-bit AdamW (bitsandbytes). Runs second. BENCH_TRAINING_SEED_PRECISION=fp32
  runs it without autocast instead (a slower baseline: the figures before this default).

Both use the same max length, batch size and gradient accumulation, so tokens/s differs only by
method. Tokens are counted the same way in both: transformers' ``num_input_tokens_seen`` with
``include_num_input_tokens_seen="non_padding"``, i.e. the sum of the attention mask of every
batch (real tokens, never padding), divided by the trainer's ``train_runtime``. trl tokenizes a
prompt/completion pair as the one string prompt + completion, which is exactly the seed's
text, so both runs see the same token sequences and their token counts must agree.

Their final train losses are not the same quantity (ours is the loss on the answer tokens, the
seed's on the whole text), so a held-out answer-only loss of both trained models is printed
too, for a like-for-like comparison of what they learned.

The last line is one JSON object: {"ours_tokens_per_s", "seed_tokens_per_s", "speedup",
"ours_final_loss", "seed_final_loss", "pairs", "max_length", "seed_precision"}; its values are
null when the Model 3 data is missing (then the bench is skipped, exit 0).
Usage: python bench/training.py  (about 10-20 minutes on a 2-core CPU; no database needed).
BENCH_TRAINING_PAIRS=8 shrinks the run to 8 training pairs for a quick smoke test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _django

_django.setup()

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: E402
from transformers.trainer_callback import PrinterCallback  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from manualqa.lib.local_models import ensure_default_model  # noqa: E402
from training import trainer  # noqa: E402
from training.models import SnapshotPair  # noqa: E402
from training.presets import PRESETS, TrainingConfig  # noqa: E402
from training.services import format_record  # noqa: E402

PAIRS = int(os.environ.get("BENCH_TRAINING_PAIRS", "256"))
HELD_OUT = min(64, PAIRS)
SAMPLE_SEED = 0
PROMPT_FORMAT = "seed_inst"
PROGRESS_EVERY = 16
LAST_STEPS = 10

OURS_CONFIG = dataclasses.replace(PRESETS["cpu_quick"].config, num_train_epochs=1.0, max_steps=-1)
SEED_RECIPE = PRESETS["seed_mistral_7b_qlora"].config


def load_pairs() -> tuple[list[dict], list[dict]] | None:
    """PAIRS training pairs and HELD_OUT others, drawn deterministically from the Model 3 set.

    Pairs a snapshot could not hold are dropped first: an empty or "ERROR" answer, and text with
    the seed_inst markers in it (``format_record`` refuses those).
    """
    path = _django.MODEL3_DIR / "qa_pairs.json"
    if not path.is_file():
        return None
    usable = []
    for raw in json.loads(path.read_text(encoding="utf-8")):
        question, answer = raw.get("question", "").strip(), raw.get("answer", "").strip()
        if not question or not answer or answer == "ERROR":
            continue
        try:
            format_record(SnapshotPair(question=question, answer=answer), fmt=PROMPT_FORMAT)
        except ValidationError:
            continue
        usable.append({"question": question, "answer": answer})
    chosen = random.Random(SAMPLE_SEED).sample(usable, PAIRS + HELD_OUT)
    return chosen[:PAIRS], chosen[PAIRS:]


def snapshot_records(pairs: list[dict]) -> list[dict]:
    """The pairs as a seed_inst snapshot export writes them (no system prompt)."""
    return [
        format_record(SnapshotPair(question=p["question"], answer=p["answer"]), fmt=PROMPT_FORMAT)
        for p in pairs
    ]


def _progress(label: str, step: int, total: int, loss: float | None) -> None:
    if step % PROGRESS_EVERY == 0 or step == total:
        shown = f"{loss:.4f}" if loss is not None else "-"
        print(f"  {label}: step {step}/{total}, loss {shown}", flush=True)


def ours_run(records: list[dict], model_path: Path) -> dict:
    """Our job pipeline, as the worker calls it (no eval records: train-only figures)."""
    losses: list[float] = []
    clock = _CpuShare()

    def on_progress(event: trainer.ProgressEvent) -> None:
        clock.tick()
        if event.loss is not None:
            losses.append(event.loss)
        _progress("ours", event.step, event.total_steps, event.loss)

    with tempfile.TemporaryDirectory(prefix="bench-training-ours-") as output_dir:
        result = trainer.train(
            base_model="",
            train_records=records,
            eval_records=[],
            prompt_format=PROMPT_FORMAT,
            system_prompt="",
            config=OURS_CONFIG,
            output_dir=Path(output_dir),
            models_dir=settings.MODELS_DIR,
            on_progress=on_progress,
        )
        merged = AutoModelForCausalLM.from_pretrained(str(result.merged_dir), dtype=torch.float32)
    return {
        "tokens": result.train_tokens,
        "seconds": result.train_seconds,
        "tokens_per_s": result.tokens_per_s,
        "final_loss": result.final_train_loss,
        "last_losses": losses[-LAST_STEPS:],
        "steps": result.steps,
        "cpu_share": clock.share(),
        "model": merged,
    }


class _CpuShare:
    """How many cores this process had, on average, from its first optimizer step to its last.

    The machine is shared, so a slow run may simply have been starved; this says whether it was.
    """

    def __init__(self) -> None:
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None

    def tick(self) -> None:
        self.last = (time.perf_counter(), time.process_time())
        self.first = self.first or self.last

    def share(self) -> float | None:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return None
        return (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])


class _LossRecorder(TrainerCallback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.clock = _CpuShare()

    def on_step_end(self, args, state, control, **kwargs):
        self.clock.tick()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))
            _progress("seed", state.global_step, state.max_steps, self.losses[-1])


def seed_run(
    records: list[dict], model_path: Path, config: TrainingConfig, *, bf16: bool = False
) -> dict:
    """The seed project's training script, on this CPU, with ``config``'s length and batches.

    The seed's recipe comes from its preset; what differs is only what a CPU forces: the base
    stays fp32 (no bitsandbytes 4-bit base on a CPU; ``bf16`` autocasts it as the seed's bf16
    compute dtype did) and the optimizer is adamw_torch (paged 8-bit
    AdamW is a bitsandbytes optimizer). target_modules is "all-linear", as in the seed preset and
    ours, so both train the same adapters.
    """
    seed = SEED_RECIPE
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
    dataset = Dataset.from_list([{"text": record["text"]} for record in records])
    recorder = _LossRecorder()
    with tempfile.TemporaryDirectory(prefix="bench-training-seed-") as output_dir:
        args = SFTConfig(
            output_dir=output_dir,
            num_train_epochs=1.0,
            per_device_train_batch_size=config.per_device_train_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            max_length=config.max_length,
            learning_rate=seed.learning_rate,
            lr_scheduler_type=seed.lr_scheduler_type,
            warmup_steps=seed.warmup_ratio,  # transformers 5: a float below 1 is a ratio
            weight_decay=seed.weight_decay,
            max_grad_norm=seed.max_grad_norm,
            optim="adamw_torch",
            seed=config.seed,
            data_seed=config.seed,
            bf16=bf16,
            use_cpu=True,
            activation_checkpointing=seed.gradient_checkpointing,
            packing=seed.packing,
            completion_only_loss=seed.completion_only_loss,
            dataset_text_field="text",
            train_sampling_strategy="group_by_length" if seed.group_by_length else "random",
            # Logged every step like ours, so "final loss" means the same thing in both runs.
            logging_strategy="steps",
            logging_steps=1,
            save_strategy="steps",
            save_steps=seed.save_steps,
            include_num_input_tokens_seen="non_padding",
            report_to="none",
            disable_tqdm=True,
            dataloader_pin_memory=False,
        )
        sft = SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=LoraConfig(
                r=seed.lora_r,
                lora_alpha=seed.lora_alpha,
                lora_dropout=seed.lora_dropout,
                target_modules=seed.target_modules,
                bias="none",
                task_type="CAUSAL_LM",
            ),
            callbacks=[recorder],
        )
        sft.remove_callback(PrinterCallback)
        outcome = sft.train()
    seconds = float(outcome.metrics["train_runtime"])
    tokens = int(sft.state.num_input_tokens_seen)
    trained = sft.model
    checkpointing = any(
        getattr(module, "gradient_checkpointing", False) for module in trained.modules()
    )
    print(
        f"  seed: activation checkpointing {'on' if checkpointing else 'OFF'}, sampler "
        f"{args.train_sampling_strategy}, packing {args.packing}, completion_only_loss "
        f"{args.completion_only_loss}, bf16 {args.bf16}"
    )
    trained.eval()
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
        "final_loss": recorder.losses[-1] if recorder.losses else None,
        "last_losses": recorder.losses[-LAST_STEPS:],
        "steps": sft.state.global_step,
        "cpu_share": recorder.clock.share(),
        "model": trained,
    }


@torch.no_grad()
def answer_loss(model, tokenizer, pairs: list[dict], max_length: int) -> float:
    """Mean loss per answer token on ``pairs``, tokenized as trl does for prompt/completion."""
    model.eval()
    total, count = 0.0, 0
    for pair in pairs:
        text = format_record(
            SnapshotPair(question=pair["question"], answer=pair["answer"]), fmt=PROMPT_FORMAT
        )["text"]
        prompt = text.partition("[/INST]")
        prompt_ids = tokenizer(text=prompt[0] + prompt[1])["input_ids"]
        ids = tokenizer(text=text)["input_ids"] + [tokenizer.eos_token_id]
        shared = 0
        while shared < min(len(prompt_ids), len(ids)) and prompt_ids[shared] == ids[shared]:
            shared += 1
        ids = ids[:max_length]
        labels = [-100] * shared + ids[shared:]
        if len(ids) <= shared:
            continue
        out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
        answer_tokens = len(ids) - shared
        total += float(out.loss) * answer_tokens
        count += answer_tokens
    return total / count if count else float("nan")


def warm_up(model_path: Path, batch_size: int, max_length: int) -> None:
    """Two untimed forward/backward passes, so whichever run goes first does not alone pay the
    process's one-time costs (first touch of the heap it keeps, kernel set-up)."""
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
    ids = torch.randint(0, model.config.vocab_size, (batch_size, max_length))
    for _ in range(2):
        model(input_ids=ids, labels=ids).loss.backward()
    del model


def _describe(label: str, run: dict, held_out_loss: float) -> None:
    tail = statistics.fmean(run["last_losses"]) if run["last_losses"] else float("nan")
    share = f"{run['cpu_share']:.2f}" if run["cpu_share"] is not None else "?"
    print(
        f"{label}: {run['tokens']} tokens in {run['seconds']:.1f} s = "
        f"{run['tokens_per_s']:.1f} tokens/s, {run['steps']} steps, {share} cores busy on "
        f"average; final train loss {run['final_loss']:.4f} (mean of last "
        f"{len(run['last_losses'])} steps {tail:.4f}); held-out answer loss {held_out_loss:.4f}"
    )


def main() -> int:
    pairs = load_pairs()
    if pairs is None:
        print(f"Skipped: no Model 3 data at {_django.MODEL3_DIR} (see its README.md).")
        keys = ("ours_tokens_per_s", "seed_tokens_per_s", "speedup", "ours_final_loss")
        print(json.dumps(dict.fromkeys((*keys, "seed_final_loss"))))
        return 0
    train_pairs, held_out = pairs
    records = snapshot_records(train_pairs)
    model_path = ensure_default_model(settings.MODELS_DIR)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    max_length = OURS_CONFIG.max_length
    # trainer.train sets this glibc option (process-wide) for CPU training; set it before both
    # runs so the seed run gets the same allocator and only the method differs.
    trainer._keep_freed_memory_for_reuse()
    seed_precision = os.environ.get("BENCH_TRAINING_SEED_PRECISION", "auto")
    if seed_precision not in ("auto", "bf16", "fp32"):
        print(f"BENCH_TRAINING_SEED_PRECISION must be auto, bf16 or fp32, not {seed_precision!r}.")
        return 2
    seed_precision = trainer.resolve_precision(seed_precision, cuda=False)
    print(
        f"{len(train_pairs)} Model 3 pairs, 1 epoch, max_length {max_length}, batch "
        f"{OURS_CONFIG.per_device_train_batch_size} x {OURS_CONFIG.gradient_accumulation_steps}, "
        f"{torch.get_num_threads()} CPU threads, base {model_path.name}; ours "
        f"{trainer.resolve_precision(OURS_CONFIG.precision, cuda=False)}, seed {seed_precision}",
        flush=True,
    )

    started = time.perf_counter()
    warm_up(model_path, OURS_CONFIG.per_device_train_batch_size, max_length)
    load = [os.getloadavg()[0]]
    ours = ours_run(records, model_path)
    load.append(os.getloadavg()[0])
    ours_held_out = answer_loss(ours.pop("model"), tokenizer, held_out, max_length)
    seed = seed_run(records, model_path, OURS_CONFIG, bf16=seed_precision == "bf16")
    load.append(os.getloadavg()[0])
    seed_held_out = answer_loss(seed.pop("model"), tokenizer, held_out, max_length)
    wall = time.perf_counter() - started

    _describe("ours (cpu_quick)", ours, ours_held_out)
    _describe("seed-style trl", seed, seed_held_out)
    print(
        "  machine load (1-min average, includes this process) before ours / after ours / "
        "after seed: " + " / ".join(f"{value:.1f}" for value in load)
    )
    if ours["tokens"] != seed["tokens"]:
        print(f"  note: token counts differ ({ours['tokens']} vs {seed['tokens']})")
    speedup = ours["tokens_per_s"] / seed["tokens_per_s"]
    print(
        f"speedup {speedup:.2f}x (goal 2x); final loss ours {ours['final_loss']:.4f} "
        f"(answers only) vs seed {seed['final_loss']:.4f} (whole text); held-out answer loss "
        f"ours {ours_held_out:.4f} vs seed {seed_held_out:.4f} on {len(held_out)} pairs; "
        f"wall {wall:.0f} s"
    )
    result = {
        "ours_tokens_per_s": round(ours["tokens_per_s"], 2),
        "seed_tokens_per_s": round(seed["tokens_per_s"], 2),
        "speedup": round(speedup, 3),
        "ours_final_loss": round(ours["final_loss"], 4),
        "seed_final_loss": round(seed["final_loss"], 4),
        "pairs": len(train_pairs),
        "max_length": max_length,
        "seed_precision": seed_precision,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
