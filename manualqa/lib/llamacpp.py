"""GGUF models through llama.cpp (the ``llama-cpp-python`` package): a second local runtime.

A ``local`` endpoint whose model is a ``.gguf`` file runs here instead of in transformers:
the bundled SmolLM2 GGUF without converting it, or a trained model exported to GGUF.
:class:`GGUFModel` has :class:`~manualqa.lib.local_models.LocalModel`'s interface
(``generate`` and ``stream`` with a :class:`~manualqa.lib.local_models.Decoding`), so the
callers, the stop strings, the loop guard and cancellation work the same:

* the prompt is the GGUF's own chat template (its ``tokenizer.chat_template``), rendered as
  transformers renders it, or a raw prompt string for a model trained on one;
* ``no_repeat_ngram`` applies to the generated tokens only, as in the transformers runtime, and
  ``repetition_penalty`` is llama.cpp's over the generated tokens (``last_n`` the budget);
* generation runs in a background thread that holds the model's lock and stops at the next
  token once the stream is closed, so an abandoned stream never leaves the model locked.

``llama-cpp-python`` is optional (``make install-llamacpp`` builds it with the options these
machines need); without it, loading a GGUF says how to install it.

Deliberately plain Python (no Django import).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from manualqa.lib.local_models import (
    Decoding,
    LocalGeneration,
    LocalStream,
    generate_in_background,
)

__all__ = ["GGUFModel", "llama_cpp_available", "load_gguf", "uses_flash_attention"]

#: Context the model is loaded with: a RAG prompt of 4 passages and an answer fit in 4,096
#: tokens, and the KV cache stays small.
CONTEXT_TOKENS: Final = 4096
_INSTALL_HINT: Final = (
    "the llama-cpp-python package is not installed: run `make install-llamacpp` "
    "(it builds llama.cpp for this CPU, about 4 minutes)"
)
_END: Final = object()


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


class _NoRepeatNGram:
    """Forbid a token that would repeat an ``size``-token run already generated (the prompt's
    tokens are free to copy), as ``local_models._GeneratedNoRepeatNGram`` does."""

    def __init__(self, size: int, prompt_length: int) -> None:
        self.size = size
        self.prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        generated = [int(token) for token in input_ids[self.prompt_length :]]
        prefix = tuple(generated[len(generated) - self.size + 1 :])
        if self.size < 2 or len(generated) < self.size:
            return scores
        for start in range(len(generated) - self.size + 1):
            if tuple(generated[start : start + self.size - 1]) == prefix:
                scores[generated[start + self.size - 1]] = -float("inf")
        return scores


class GGUFModel:
    """A GGUF model loaded by llama.cpp, shared by the threads of a process."""

    def __init__(self, path: Path, llama: Any) -> None:
        self.path = path
        self.llama = llama
        self._lock = threading.Lock()
        self._template = _chat_template(llama)

    def __repr__(self) -> str:
        return f"<GGUFModel {self.path}>"

    def render(self, messages: Sequence[Mapping[str, str]] | str) -> str:
        """The prompt text for ``messages`` (a raw prompt is used as it is)."""
        if isinstance(messages, str):
            return messages
        return self._template(messages)

    def generate(
        self, messages: Sequence[Mapping[str, str]] | str, decoding: Decoding
    ) -> LocalGeneration:
        stream = self.stream(messages, decoding)
        text = "".join(stream)  # stop strings are already cut from the stream
        return LocalGeneration(text, stream.tokens_in, stream.tokens_out, stream.finish_reason)

    def stream(
        self, messages: Sequence[Mapping[str, str]] | str, decoding: Decoding
    ) -> LocalStream:
        prompt = self.render(messages)
        prompt_tokens = self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        pieces: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        outcome: dict[str, Any] = {"tokens_out": 0}
        finished = threading.Event()
        processors = []
        if decoding.no_repeat_ngram and decoding.no_repeat_ngram > 1:
            processors.append(_NoRepeatNGram(decoding.no_repeat_ngram, len(prompt_tokens)))

        def run() -> None:
            from llama_cpp import LogitsProcessorList

            try:
                chunks = self.llama.create_completion(
                    prompt_tokens,
                    max_tokens=decoding.max_new_tokens,
                    temperature=decoding.temperature,
                    repeat_penalty=decoding.repetition_penalty or 1.0,
                    stop=[marker for marker in decoding.stop if marker] or None,
                    logits_processor=LogitsProcessorList(processors) if processors else None,
                    stream=True,
                )
                try:
                    for chunk in chunks:
                        outcome["tokens_out"] += 1
                        text = chunk["choices"][0]["text"]
                        if text:
                            pieces.put(text)
                        if cancel.is_set():
                            break
                finally:
                    chunks.close()
            except BaseException as exc:  # handed to the consumer, never lost in this thread
                outcome["error"] = exc
            finally:
                self._lock.release()
                pieces.put(_END)
                finished.set()

        def drain() -> Iterator[str]:
            while (piece := pieces.get(timeout=600)) is not _END:
                yield piece

        def result() -> int:
            finished.wait()
            if "error" in outcome:
                raise RuntimeError(f"generation failed: {outcome['error']}") from outcome["error"]
            return min(int(outcome["tokens_out"]), decoding.max_new_tokens)

        generate_in_background(self._lock, decoding.wait_s, run, f"gguf:{self.path.name}")
        return LocalStream(
            drain(),
            tokens_in=len(prompt_tokens),
            max_new_tokens=decoding.max_new_tokens,
            stop=decoding.stop,
            result=result,
            cancel=cancel,
        )


def _chat_template(llama: Any):
    """A function rendering messages with the GGUF's chat template and a generation prompt."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    metadata = llama.metadata
    template = metadata.get("tokenizer.chat_template")
    if not template:
        raise ValueError("the GGUF carries no chat template (tokenizer.chat_template)")

    def token(key: str) -> str:
        token_id = metadata.get(key)
        if token_id is None:
            return ""
        return llama.detokenize([int(token_id)], special=True).decode("utf-8", "replace")

    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=token("tokenizer.ggml.eos_token_id"),
        bos_token=token("tokenizer.ggml.bos_token_id"),
        add_generation_prompt=True,
    )

    def render(messages: Sequence[Mapping[str, str]]) -> str:
        return formatter(messages=[dict(message) for message in messages]).prompt

    return render


#: ``general.file_type`` of GGUF files whose weights are not quantized: f32, f16, bf16.
_UNQUANTIZED_FILE_TYPES: Final = frozenset({0, 1, 32})


def uses_flash_attention(path: Path) -> bool:
    """Whether ``path`` runs with llama.cpp's flash attention: quantized files do, files of
    full-precision weights do not.

    On the CPU flash attention computes attention scores in f16. Measured on the bundled model's
    1,100-token RAG prompts (2 cores) it cut the prompt's prefill from 2.36 to 1.94 s (q8_0),
    decode unchanged; but an f16 export's greedy tokens then agreed with the transformers model's
    on 80% instead of 100% (tests/manualqa/lib/test_gguf_export.py). An f16 or f32 file is asked
    for to answer as the trained model does, so it keeps exact attention; a quantized one has
    already traded that for speed.
    """
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get("general.file_type")
    if field is None:
        return False
    return int(field.parts[field.data[0]][0]) not in _UNQUANTIZED_FILE_TYPES


def load_gguf(path: Path, *, threads: int | None = None) -> GGUFModel:
    """Load the GGUF file ``path`` with llama.cpp on the CPU."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ImportError(f"{path.name}: {_INSTALL_HINT}") from exc
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a GGUF file")
    llama = Llama(
        model_path=str(path),
        n_ctx=CONTEXT_TOKENS,
        n_threads=threads or os.cpu_count() or 1,
        n_batch=512,
        flash_attn=uses_flash_attention(path),
        verbose=False,
    )
    return GGUFModel(path, llama)
