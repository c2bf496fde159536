"""The ``local`` endpoint kind: the bundled SmolLM2-135M-Instruct, converted and run on the CPU.

The slow tests share one conversion, cached in the project's ``var/models`` (git-ignored) so
that it happens once per checkout: a fresh CI clone pays it once (under a minute), later runs
load the converted folder in a second or two.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from manualqa.lib.llm import EndpointConfig, LLMConfigError, StreamDelta, StreamEnd, make_client
from manualqa.lib.local_models import (
    DEFAULT_LOCAL_MODEL,
    DEFAULT_MODEL_FOLDER,
    LocalModelCache,
    LocalStream,
    ensure_default_model,
)

# Independent of Django settings on purpose: the cache must survive between test runs.
PROJECT_MODELS_DIR = Path(__file__).resolve().parents[3] / "var" / "models"
SKY = [{"role": "user", "content": "What colour is the sky? Answer in one word."}]


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    return ensure_default_model(PROJECT_MODELS_DIR)


def local_config(**overrides: object) -> EndpointConfig:
    settings: dict[str, object] = {
        "kind": "local",
        "models_dir": str(PROJECT_MODELS_DIR),
        "temperature": 0.0,
    }
    settings.update(overrides)
    return EndpointConfig(**settings)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# With the real model


@pytest.mark.slow
def test_default_model_converts_to_a_plain_transformers_folder(default_model_dir: Path) -> None:
    assert default_model_dir == PROJECT_MODELS_DIR / DEFAULT_MODEL_FOLDER
    config = json.loads((default_model_dir / "config.json").read_text())
    assert "quantization_config" not in config  # or from_pretrained would look for the GGUF

    model = AutoModelForCausalLM.from_pretrained(default_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)

    assert model.config.model_type == "llama"
    assert "<|im_start|>" in tokenizer.chat_template
    assert not list(PROJECT_MODELS_DIR.glob(f".{DEFAULT_MODEL_FOLDER}-*"))  # no staging left


@pytest.mark.slow
def test_local_client_answers_a_short_prompt(default_model_dir: Path) -> None:
    completion = make_client(local_config()).complete(SKY, max_tokens=8)

    assert completion.text.strip()
    assert 0 < completion.tokens_out <= 8
    assert completion.tokens_in > 10  # the chat template wraps the question
    assert completion.attempts == 1
    assert completion.model == DEFAULT_LOCAL_MODEL
    assert completion.finish_reason in ("stop", "length")


@pytest.mark.slow
def test_local_stream_yields_deltas_then_end_with_their_concatenation(
    default_model_dir: Path,
) -> None:
    client = make_client(local_config())

    events = list(client.stream(SKY, max_tokens=8))

    *deltas, end = events
    assert len(deltas) >= 2
    assert all(isinstance(delta, StreamDelta) for delta in deltas)
    assert isinstance(end, StreamEnd)
    assert end.completion.text == "".join(delta.text for delta in deltas)  # type: ignore[union-attr]
    assert end.completion.tokens_out == 8
    assert end.completion.finish_reason == "length"
    # Greedy decoding: streaming and one-shot generation give the same answer.
    assert end.completion.text == client.complete(SKY, max_tokens=8).text


@pytest.mark.slow
def test_local_stop_string_cuts_streamed_and_whole_answers_alike(default_model_dir: Path) -> None:
    client = make_client(local_config())

    whole = client.complete(SKY, max_tokens=8, stop=[" "])
    *deltas, end = list(client.stream(SKY, max_tokens=8, stop=[" "]))

    assert whole.text and " " not in whole.text
    assert end.completion.text == whole.text  # type: ignore[union-attr]
    assert "".join(delta.text for delta in deltas) == whole.text  # type: ignore[union-attr]
    assert whole.finish_reason == "stop"


@pytest.mark.slow
def test_local_client_is_safe_to_share_between_threads(default_model_dir: Path) -> None:
    client = make_client(local_config(max_concurrency=4))

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda _: client.complete(SKY, max_tokens=4).text, range(3)))

    assert len(set(answers)) == 1 and answers[0]  # greedy: the same answer every time


# --------------------------------------------------------------------------------------------
# Without loading a model


def test_existing_conversion_is_reused_without_converting(tmp_path: Path) -> None:
    target = tmp_path / DEFAULT_MODEL_FOLDER
    target.mkdir()
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"")
    started = time.monotonic()

    assert ensure_default_model(tmp_path) == target
    assert time.monotonic() - started < 0.5


def test_missing_local_model_folder_is_a_config_error(tmp_path: Path) -> None:
    client = make_client(local_config(model=str(tmp_path / "nowhere"), models_dir=str(tmp_path)))

    with pytest.raises(LLMConfigError, match="nowhere"):
        client.complete(SKY)


def test_model_cache_keeps_the_most_recently_used_models() -> None:
    loads: list[Path] = []
    cache = LocalModelCache(capacity=2, loader=lambda path: loads.append(path) or path.name)
    first, second, third = Path("/m/first"), Path("/m/second"), Path("/m/third")

    cache.get(first)
    cache.get(second)
    cache.get(first)  # now the most recent
    cache.get(third)  # evicts second
    cache.get(first)

    assert cache.loaded() == [third, first]
    assert loads == [first, second, third]


def test_model_cache_loads_once_for_concurrent_callers() -> None:
    loads = 0
    lock = threading.Lock()

    def slow_loader(path: Path) -> str:
        nonlocal loads
        with lock:
            loads += 1
        time.sleep(0.1)
        return str(path)

    cache = LocalModelCache(loader=slow_loader)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: cache.get(Path("/m/shared")), range(8)))

    assert results == ["/m/shared"] * 8
    assert loads == 1


def test_streamed_text_never_shows_a_stop_string_split_across_pieces() -> None:
    stream = LocalStream(
        iter(["The sk", "y is bl", "ue today"]),
        tokens_in=5,
        max_new_tokens=10,
        stop=["blue"],
        result=lambda: 6,
    )

    pieces = list(stream)

    assert pieces == ["The sk", "y is "]
    assert (stream.tokens_out, stream.finish_reason) == (6, "stop")


def test_stream_that_reaches_the_token_limit_reports_length() -> None:
    stream = LocalStream(
        iter(["a ", "b"]), tokens_in=1, max_new_tokens=2, stop=["zzz"], result=lambda: 2
    )

    assert "".join(stream) == "a b"
    assert stream.finish_reason == "length"


@pytest.mark.slow
def test_closing_a_local_stream_stops_the_model_at_its_next_token(
    default_model_dir: Path,
) -> None:
    client = make_client(local_config())
    long_answer = [{"role": "user", "content": "Write a long story about a car, in detail."}]

    stream = client.stream(long_answer, max_tokens=400)
    first = next(stream)
    started = time.monotonic()
    stream.close()
    # The model is free again at once: a second answer does not wait for 400 tokens.
    completion = client.complete(SKY, max_tokens=4)
    waited = time.monotonic() - started

    assert isinstance(first, StreamDelta) and completion.text.strip()
    assert waited < 10, f"the closed stream kept the model for {waited:.1f} s"


def test_repetition_control_counts_only_the_generated_tokens() -> None:
    import torch

    from manualqa.lib.local_models import _repetition_processors

    prompt = [5, 6, 7, 5, 6]  # "5 6 7" already in the prompt: copying it must stay possible
    generated = [9, 5, 6]  # the answer so far
    input_ids = torch.tensor([prompt + generated])
    scores = torch.zeros((1, 12))

    (no_repeat,) = _repetition_processors(len(prompt), 1.0, 3)
    after_no_repeat = no_repeat(input_ids, scores.clone())
    assert after_no_repeat[0, 7] == 0  # "5 6 7" is only in the prompt: still allowed
    generated_again = torch.tensor([prompt + [5, 6, 8, 5, 6]])
    assert no_repeat(generated_again, scores.clone())[0, 8] == float("-inf")  # "5 6 8" twice

    (penalty,) = _repetition_processors(len(prompt), 2.0, 0)
    scores = torch.ones((1, 12))
    penalised = penalty(input_ids, scores.clone())
    assert penalised[0, 9] == 0.5  # generated: divided by the penalty
    assert penalised[0, 7] == 1.0  # only in the prompt: untouched


@pytest.mark.slow
def test_a_busy_local_model_is_waited_for_at_most_the_timeout(default_model_dir: Path) -> None:
    """Security review H2: while one answer streams (and nobody reads it), another caller gets
    a retryable error after ``timeout_s`` instead of blocking its worker for ever."""
    from manualqa.lib.llm import LLMError

    holder = make_client(local_config(max_concurrency=2))
    held = holder.stream(SKY, max_tokens=64)
    assert isinstance(next(held), StreamDelta)  # the model's lock is held by this stream
    waiting = make_client(local_config(timeout_s=0.5))

    started = time.monotonic()
    with pytest.raises(LLMError, match="stayed busy") as refused:
        waiting.complete(SKY, max_tokens=4)

    assert refused.value.retryable and time.monotonic() - started < 5
    held.close()  # closing stops the generation and frees the model
    assert waiting.complete(SKY, max_tokens=4).text.strip()
