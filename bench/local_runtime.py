"""Benchmark: the bundled model through transformers against llama.cpp, on the same RAG prompts.

Every runtime answers the same grounded prompts (the sample manual's questions, retrieved as
the chat retrieves them, about 1,100 tokens each with six passages), greedy, 80 new tokens at
most, with the chat's repetition rule (no repeated 6-gram), in this process:

* **transformers**: the default local model, the bundled GGUF converted once to safetensors
  (``manualqa.lib.local_models``), the baseline;
* **llama.cpp** (``manualqa.lib.llamacpp``; needs ``make install-llamacpp``) on the bundled
  ``SmolLM2-135M-Instruct.Q4_1.gguf`` as it is, and on the default model exported here
  (``manualqa.lib.gguf_export``, into ``var/bench/gguf/``) as f16, q8_0 and q4_k_m.

Per runtime: time to the first token (the prompt's prefill), decode tokens/s after it, time
to a whole answer, the process's resident memory after loading, the model's file size, and
the share of the first 32 greedy tokens that equal transformers'.

Last line, one JSON object: {"transformers_decode_tok_s", "llamacpp_q8_decode_tok_s",
"speedup_decode" (q8_0 against transformers), "transformers_ttft_ms", "llamacpp_q8_ttft_ms",
"speedup_answer" (a whole answer, the fastest llama.cpp file against transformers),
"fastest_llamacpp", "q4_agreement" (q4_k_m), "q8_agreement", "f16_agreement", ..., "llamacpp":
{file: figures}}.

Usage: ``make bench-local_runtime`` (the database holds the sample manual after ``make run``
or ``manage.py bootstrap``). Knob: ``BENCH_LOCAL_PROMPTS`` (prompts per runtime, default 6).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from pathlib import Path

import _django

_django.setup()

from django.conf import settings  # noqa: E402

from chat import prompts  # noqa: E402
from chat.retrieval import retrieve  # noqa: E402
from chat.services.answering import _prompt_passages  # noqa: E402
from curation.models import Manual  # noqa: E402
from manualqa.lib.gguf_export import export_gguf  # noqa: E402
from manualqa.lib.llamacpp import llama_cpp_available, load_gguf  # noqa: E402
from manualqa.lib.local_models import (  # noqa: E402
    DEFAULT_MODEL_FOLDER,
    Decoding,
    default_gguf_path,
    load_local,
)
from training.evaluation import questions_parse_jsonl  # noqa: E402

QUESTIONS = _django.BASE_DIR / "curation" / "sample_manual" / "questions.jsonl"
MAX_NEW_TOKENS = 80
AGREEMENT_TOKENS = 32


def say(message: str) -> None:
    print(message, flush=True)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def prompts_for(count: int) -> list[list[dict[str, str]]]:
    manual = Manual.objects.filter(name__icontains="Aster").order_by("pk").first()
    if manual is None:
        raise SystemExit("no sample manual in the database: run `manage.py bootstrap` first")
    questions = questions_parse_jsonl(QUESTIONS.read_text(encoding="utf-8"))
    answerable = [q for q in questions if q["must_include"]][:count]
    built = []
    for question in answerable:
        found = retrieve(question=question["question"], manual_ids=[manual.pk], k=6)
        built.append(
            prompts.grounded_messages(
                question=question["question"], passages=_prompt_passages(found.passages)
            )
        )
    return built


def run(model, messages_list) -> dict:
    decoding = Decoding(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0)
    model.generate(messages_list[0], Decoding(max_new_tokens=4, temperature=0.0))  # warm up
    ttft, decode, answer, texts, tokens_in = [], [], [], [], []
    for messages in messages_list:
        started = time.perf_counter()
        stream = model.stream(messages, decoding)
        first = None
        pieces = []
        for piece in stream:
            if first is None:
                first = time.perf_counter()
            pieces.append(piece)
        ended = time.perf_counter()
        first = first or ended
        ttft.append(1000 * (first - started))
        answer.append(1000 * (ended - started))
        if stream.tokens_out > 1 and ended > first:
            decode.append((stream.tokens_out - 1) / (ended - first))
        texts.append("".join(pieces))
        tokens_in.append(stream.tokens_in)
    return {
        "ttft_ms": round(statistics.median(ttft)),
        "decode_tok_s": round(statistics.median(decode), 1) if decode else None,
        "answer_ms": round(statistics.median(answer)),
        "prompt_tokens": round(statistics.median(tokens_in)),
        "texts": texts,
    }


def agreement(tokenizer, reference: list[str], other: list[str]) -> float:
    """Share of the first tokens of ``other`` equal to ``reference``'s at the same place."""
    same = total = 0
    for a, b in zip(reference, other, strict=True):
        ids_a = tokenizer(a, add_special_tokens=False)["input_ids"][:AGREEMENT_TOKENS]
        ids_b = tokenizer(b, add_special_tokens=False)["input_ids"][:AGREEMENT_TOKENS]
        length = max(len(ids_a), len(ids_b)) or 1
        same += sum(1 for x, y in zip(ids_a, ids_b, strict=False) if x == y)
        total += length
    return round(same / total, 3) if total else 0.0


def llamacpp_build() -> str | None:
    """llama.cpp's own account of its CPU build (instruction sets, OpenMP), or None."""
    if not llama_cpp_available():
        return None
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode().strip()


def folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def main() -> int:
    count = int(os.environ.get("BENCH_LOCAL_PROMPTS", "6"))
    messages_list = prompts_for(count)
    models_dir = Path(settings.MODELS_DIR)
    say(f"{len(messages_list)} RAG prompts, {MAX_NEW_TOKENS} new tokens at most, greedy")

    before = rss_mb()
    transformers_model = load_local("", models_dir)
    hf = run(transformers_model, messages_list)
    hf["rss_mb"] = round(rss_mb() - before)
    hf["file_mb"] = folder_mb(models_dir / DEFAULT_MODEL_FOLDER)
    say(f"transformers: {json.dumps({k: v for k, v in hf.items() if k != 'texts'})}")

    runs: dict[str, dict] = {}
    if llama_cpp_available():
        out_dir = _django.BASE_DIR / "var" / "bench" / "gguf"
        files = {"q4_1": default_gguf_path()}
        for quant in ("f16", "q8_0", "q4_k_m"):
            started = time.perf_counter()
            files[quant] = export_gguf(
                models_dir / DEFAULT_MODEL_FOLDER, out_dir / f"smollm2-{quant}.gguf", quant=quant
            ).path
            say(f"exported {quant} in {time.perf_counter() - started:.1f} s")
        for label, path in files.items():
            gc.collect()  # the previous file's model is gone before this one is measured
            before = rss_mb()
            run_ = run(load_gguf(path), messages_list)
            run_["rss_mb"] = round(rss_mb() - before)
            run_["file_mb"] = round(path.stat().st_size / 2**20, 1)
            run_["agreement"] = agreement(transformers_model.tokenizer, hf["texts"], run_["texts"])
            runs[label] = run_
            say(f"llama.cpp {label}: {json.dumps({k: v for k, v in run_.items() if k != 'texts'})}")
        for question, a, b in zip(messages_list, hf["texts"], runs["q8_0"]["texts"], strict=True):
            say(f"- {question[-1]['content'].splitlines()[-1][:90]}")
            say(f"    transformers: {a[:160]!r}")
            say(f"    llama.cpp q8_0: {b[:160]!r}")
    else:
        say("llama.cpp: not installed (`make install-llamacpp`); its figures are null")

    def ratio(a, b):
        return round(a / b, 2) if a and b else None

    def figure(label: str, key: str):
        return runs[label][key] if label in runs else None

    fastest = min(runs, key=lambda label: runs[label]["answer_ms"]) if runs else None
    result = {
        "transformers_decode_tok_s": hf["decode_tok_s"],
        "llamacpp_q8_decode_tok_s": figure("q8_0", "decode_tok_s"),
        "speedup_decode": ratio(figure("q8_0", "decode_tok_s"), hf["decode_tok_s"]),
        "transformers_ttft_ms": hf["ttft_ms"],
        "llamacpp_q8_ttft_ms": figure("q8_0", "ttft_ms"),
        "speedup_answer": fastest and ratio(hf["answer_ms"], runs[fastest]["answer_ms"]),
        "fastest_llamacpp": fastest,
        "q4_agreement": figure("q4_k_m", "agreement"),
        "q8_agreement": figure("q8_0", "agreement"),
        "f16_agreement": figure("f16", "agreement"),
        "transformers_answer_ms": hf["answer_ms"],
        # How llama.cpp was built: OpenMP, when on, halves decode in a worker thread once torch
        # is loaded (the Makefile's LLAMACPP_CMAKE says why it is off).
        "llamacpp_build": llamacpp_build(),
        "prompt_tokens": hf["prompt_tokens"],
        "transformers_rss_mb": hf["rss_mb"],
        "transformers_file_mb": hf["file_mb"],
        "llamacpp": {
            label: {k: v for k, v in run_.items() if k != "texts"} for label, run_ in runs.items()
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
