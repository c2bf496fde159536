"""A short QLoRA check on a CUDA GPU, through the same ``training.trainer.train`` a job runs.

It trains with the seed preset (``seed_mistral_7b_qlora``: nf4 with double quantization, bf16
compute, paged 8-bit AdamW, gradient checkpointing, group_by_length, r=8 alpha=32) for one epoch
on real Model 3 pairs in the seed's ``<s>[INST] q [/INST] a </s>`` format, then merges the
adapter into a reloaded bf16 base and saves it, as a job does.

Model weights cannot reach a GPU machine that has no network and takes at most 64 MiB of
files, so the base model is made on the spot from a config: ``--shape smollm2`` (135M, the
default model's architecture) and ``--shape mistral7b`` (Mistral-7B's architecture) are randomly
initialised and saved as bf16 safetensors first. With random weights the loss says only that
training runs and learns (it falls from about ln(vocab)); the figures that mean something are
tokens/s, peak GPU memory and the time of each phase. ``--base-model PATH`` trains a real model
instead where one is on disk.

Usage (on the GPU machine, from the project root):
    python bench/gpu_qlora.py --pairs PAIRS.json --tokenizer DIR [--shape smollm2 mistral7b]
PAIRS.json is a list of {"question", "answer"} objects (``--make-pairs`` writes 256 real Model 3
pairs from ../shared/data/model3-manual for carrying to that machine). The last line is one
JSON object: {shape: {"tokens_per_s", "peak_gpu_gib", "first_loss", "final_loss", ...}}.
``--variants`` runs each shape once per set of config overrides (``shape+N`` in the JSON), to
see where the time goes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
MODEL3_PAIRS = BASE_DIR.parent / "shared" / "data" / "model3-manual" / "qa_pairs.json"

SHAPES = {
    "smollm2": {
        "model_type": "llama",
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    },
    "mistral7b": {
        "model_type": "mistral",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": False,
    },
}


def make_pairs(path: Path, count: int = 256) -> None:
    pairs = json.loads(MODEL3_PAIRS.read_text())
    good = [p for p in pairs if p["answer"].strip() and p["answer"].strip() != "ERROR"]
    chosen = random.Random(0).sample(good, count)
    path.write_text(
        json.dumps([{"question": p["question"], "answer": p["answer"]} for p in chosen])
    )
    print(f"wrote {count} pairs to {path}")


def random_model(shape: str, tokenizer_dir: Path, out: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    spec = dict(SHAPES[shape])
    config = AutoConfig.for_model(
        spec.pop("model_type"),
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **spec,
    )
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    del model
    torch.cuda.empty_cache()
    return out


def run(shape: str, base_model: str, pairs: list[dict], work: Path, overrides: dict) -> dict:
    import torch

    from training.presets import PRESETS, TrainingConfig
    from training.trainer import train

    records = [{"text": f"<s>[INST] {p['question']} [/INST] {p['answer']} </s>"} for p in pairs]
    config = TrainingConfig.from_dict(
        {
            **PRESETS["seed_mistral_7b_qlora"].config.to_dict(),
            "num_train_epochs": 1.0,
            "max_length": 512,
            "save_steps": 0,
            "logging_steps": 4,
            **overrides,
        }
    )
    torch.cuda.reset_peak_memory_stats()
    losses: list[tuple[int, float]] = []

    def on_progress(event) -> None:
        if event.loss is not None:
            losses.append((event.step, event.loss))

    started = time.perf_counter()
    result = train(
        base_model=base_model,
        train_records=records[:-16],
        eval_records=records[-16:],
        prompt_format="seed_inst",
        system_prompt="",
        config=config,
        output_dir=Path(tempfile.mkdtemp(prefix=f"job-{shape}-", dir=work)),
        models_dir=work / "models",
        on_progress=on_progress,
        on_log=lambda line: print(f"  [{shape}] {line}", flush=True),
    )
    figures = {
        "overrides": overrides,
        "device": result.device,
        "gpu": torch.cuda.get_device_name(0),
        "train_pairs": len(records) - 16,
        "steps": result.steps,
        "train_tokens": result.train_tokens,
        "train_seconds": round(result.train_seconds, 2),
        "tokens_per_s": round(result.tokens_per_s or 0.0, 1),
        "first_loss": losses[0][1] if losses else None,
        "final_loss": result.final_train_loss,
        "eval_loss": result.eval_loss,
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "total_seconds_with_load_and_merge": round(time.perf_counter() - started, 1),
        "merged_files": sorted(p.name for p in Path(result.merged_dir).iterdir()),
        "sample": result.samples[0] if result.samples else None,
    }
    print(json.dumps({shape: figures}, indent=1), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path)
    parser.add_argument("--shape", nargs="*", default=["smollm2"], choices=sorted(SHAPES))
    parser.add_argument("--base-model", default="")
    parser.add_argument("--make-pairs", action="store_true")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--variants",
        type=json.loads,
        default=[{}],
        help='JSON list of config overrides, one run each: \'[{}, {"optim": "adamw_torch"}]\'',
    )
    args = parser.parse_args()
    if args.make_pairs:
        make_pairs(args.pairs)
        return

    import torch

    if not torch.cuda.is_available():
        sys.exit("No CUDA GPU here: this check is for a GPU machine.")
    pairs = json.loads(args.pairs.read_text())
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-qlora-"))
    results = {}
    for shape in args.shape if not args.base_model else ["given"]:
        started = time.perf_counter()
        base = args.base_model or str(random_model(shape, args.tokenizer, work / f"base-{shape}"))
        made = round(time.perf_counter() - started, 1)
        for number, overrides in enumerate(args.variants):
            key = shape if number == 0 else f"{shape}+{number}"
            try:
                figures = run(shape, base, pairs, work, overrides)
                results[key] = {"make_base_seconds": made, **figures}
            except Exception as exc:  # report and go on to the next run
                results[key] = {"overrides": overrides, "error": f"{type(exc).__name__}: {exc}"}
                print(f"{key} failed: {exc!r}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
