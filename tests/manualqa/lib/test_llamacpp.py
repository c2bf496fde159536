"""GGUF models through llama.cpp: the bundled SmolLM2 GGUF answering without conversion.

Needs the optional ``llama-cpp-python`` package (``make install-llamacpp``); those tests skip
with that hint where it is missing. The no-repeat rule is plain Python and always runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from manualqa.lib.llamacpp import _NoRepeatNGram, llama_cpp_available, uses_flash_attention
from manualqa.lib.local_models import Decoding, default_gguf_path, load_local, local_model_path

BUNDLED = "SmolLM2-135M-Instruct.Q4_1.gguf"
needs_llama = pytest.mark.skipif(
    not llama_cpp_available(),
    reason="llama-cpp-python is not installed: `make install-llamacpp` builds it",
)
MESSAGES = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]


def test_the_no_repeat_rule_forbids_only_a_repeated_run_of_generated_tokens():
    rule = _NoRepeatNGram(size=3, prompt_length=2)
    # Prompt 7 7; generated 1 2 5 1 2: "1 2" was followed by 5, so 5 is forbidden next. The
    # prompt's "7 7" is not generated text: 7 stays allowed.
    scores = rule(np.array([7, 7, 1, 2, 5, 1, 2]), np.zeros(10, dtype=np.float32))
    assert np.isneginf(scores[5]) and np.isfinite(np.delete(scores, 5)).all()
    fresh = rule(np.array([7, 7, 1, 2]), np.zeros(10, dtype=np.float32))
    assert np.isfinite(fresh).all()


def test_the_bundled_gguf_is_found_by_its_file_name(tmp_path):
    assert local_model_path(BUNDLED, tmp_path) == default_gguf_path()
    assert local_model_path("", tmp_path) is None


def test_a_quantized_gguf_runs_with_flash_attention():
    # The bundled file is Q4_1 (general.file_type 3); an f16 export keeps exact attention
    # (test_gguf_export's greedy-agreement test).
    assert uses_flash_attention(default_gguf_path())


@needs_llama
def test_the_bundled_gguf_answers_through_llama_cpp(tmp_path):
    model = load_local(BUNDLED, tmp_path)
    assert type(model).__name__ == "GGUFModel"
    assert not (tmp_path / "smollm2-135m-instruct").exists()  # no conversion happened

    answer = model.generate(MESSAGES, Decoding(max_new_tokens=24, temperature=0.0))
    assert "Paris" in answer.text
    assert answer.tokens_in > 10 and 0 < answer.tokens_out <= 24

    # Greedy is repeatable, and a stream yields the same text as generate().
    stream = model.stream(MESSAGES, Decoding(max_new_tokens=24, temperature=0.0))
    assert "".join(stream) == answer.text
    assert stream.tokens_out == answer.tokens_out

    # A stop string ends the answer before it.
    stopped = model.generate(MESSAGES, Decoding(max_new_tokens=24, temperature=0.0, stop=["Paris"]))
    assert "Paris" not in stopped.text and stopped.finish_reason == "stop"


@needs_llama
def test_a_closed_stream_frees_the_model_at_once(tmp_path):
    model = load_local(BUNDLED, tmp_path)
    stream = model.stream(
        [{"role": "user", "content": "Count from one to two hundred in words."}],
        Decoding(max_new_tokens=400, temperature=0.0, no_repeat_ngram=0),
    )
    first = next(iter(stream))
    stream.close()
    started = time.monotonic()
    # The model's lock is free again within a token or two, not after 400 tokens.
    again = model.generate(MESSAGES, Decoding(max_new_tokens=4, temperature=0.0, wait_s=5))
    assert first and again.text
    assert time.monotonic() - started < 5


def test_a_gguf_file_that_is_not_there_is_refused_naming_it(tmp_path):
    with pytest.raises((FileNotFoundError, ImportError), match="missing.gguf"):
        load_local(str(tmp_path / "missing.gguf"), Path(tmp_path))


@pytest.mark.django_db
def test_a_local_endpoint_takes_a_folder_or_a_gguf_file(tmp_path):
    from django.core.exceptions import ValidationError

    from curation.models import LLMEndpoint

    LLMEndpoint(name="GGUF", kind="local", model=BUNDLED).full_clean()
    (tmp_path / "notes.txt").write_text("not a model")
    for model in (str(tmp_path / "notes.txt"), str(tmp_path / "missing.gguf")):
        with pytest.raises(ValidationError, match="No model folder or .gguf file"):
            LLMEndpoint(name="Bad", kind="local", model=model).full_clean()


@needs_llama
def test_a_local_endpoint_naming_a_gguf_answers_and_streams_through_the_client(tmp_path):
    from manualqa.lib.llm import EndpointConfig, make_client

    client = make_client(
        EndpointConfig(kind="local", model=BUNDLED, models_dir=str(tmp_path), max_tokens=24)
    )
    whole = client.complete(MESSAGES, temperature=0.0)
    deltas = list(client.stream(MESSAGES, temperature=0.0))
    text = "".join(getattr(delta, "text", "") for delta in deltas)
    assert "Paris" in whole.text and text == whole.text
    assert whole.tokens_in > 10 and whole.finish_reason in ("stop", "length")
