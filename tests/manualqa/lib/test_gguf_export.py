"""GGUF export of a transformers model (issue 15, point 2), on the real SmolLM2-135M.

The export's file is read back with the ``gguf`` package always; llama.cpp runs it where
``llama-cpp-python`` is installed (``make install-llamacpp``), and its greedy tokens are
compared with the transformers model's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from jinja2.sandbox import ImmutableSandboxedEnvironment

from manualqa.lib import prompt_formats
from manualqa.lib.gguf_export import export_gguf
from manualqa.lib.llamacpp import llama_cpp_available, load_gguf
from manualqa.lib.local_models import Decoding, ensure_default_model, load_local

needs_llama = pytest.mark.skipif(
    not llama_cpp_available(),
    reason="llama-cpp-python is not installed: `make install-llamacpp` builds it",
)
CHATS = [
    [{"role": "user", "content": " How do I open the frunk with no power? "}],
    [
        {"role": "system", "content": "Answer from the manual.\n"},
        {"role": "user", "content": "What pressure for 18 inch tires?"},
        {"role": "assistant", "content": "42 PSI cold. "},
        {"role": "user", "content": "And how often should I check it?\n"},
    ],
    [{"role": "system", "content": ""}, {"role": "user", "content": "Where is the VIN?"}],
]
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "Answer from the manual."},
        {
            "role": "user",
            "content": "Passage: Inflate the tires to 42 PSI when cold.\n\n"
            "Question: What pressure should the tires have?",
        },
    ],
    [{"role": "user", "content": "How do I open the charge port if the car has no power?"}],
    [{"role": "user", "content": "Explain what a battery does."}],
]


@pytest.mark.parametrize("prompt_format", ["seed_inst", "alpaca"])
def test_the_exported_template_renders_what_training_saw_byte_for_byte(prompt_format):
    # Rendered as llama-cpp-python and transformers render chat templates.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(prompt_formats.gguf_chat_template(prompt_format, None))
    for chat in CHATS:
        rendered = template.render(messages=chat, add_generation_prompt=True)
        expected = prompt_formats.render_inference(chat, prompt_format=prompt_format).prompt
        assert rendered == expected
    assert prompt_formats.gguf_chat_template("chat", "{{ own }}") == "{{ own }}"


@pytest.fixture(scope="module")
def default_model() -> Path:
    return ensure_default_model(Path(settings.MODELS_DIR))


def test_an_f16_export_holds_the_model_and_its_vocabulary(default_model, tmp_path):
    from gguf import GGUFReader

    result = export_gguf(default_model, tmp_path / "smol.gguf", quant="f16", name="smol")

    reader = GGUFReader(str(result.path))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert (field("general.architecture"), field("llama.block_count")) == ("llama", 30)
    assert (field("llama.attention.head_count"), field("llama.attention.head_count_kv")) == (9, 3)
    assert field("tokenizer.ggml.model") == "gpt2" and field("tokenizer.ggml.pre") == "smollm"
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == 49152
    assert "<|im_start|>" in field("tokenizer.chat_template")
    assert result.tensors == len(reader.tensors) == 272 and result.warnings == []
    assert not list(tmp_path.glob(".*"))  # no staging file left behind


def test_bad_exports_are_refused_naming_the_problem(default_model, tmp_path):
    with pytest.raises(ValueError, match="unknown quantization 'q2'"):
        export_gguf(default_model, tmp_path / "x.gguf", quant="q2")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        export_gguf(tmp_path, tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf"))


def greedy_agreement(reference, exported) -> float:
    """Share of the first 32 greedy tokens of ``exported`` equal to ``reference``'s."""
    decoding = Decoding(max_new_tokens=32, temperature=0.0, no_repeat_ngram=0)
    tokenizer = reference.tokenizer
    same = total = 0
    for chat in PROMPTS:
        ids = [
            tokenizer(model.generate(chat, decoding).text, add_special_tokens=False)["input_ids"][
                :32
            ]
            for model in (reference, exported)
        ]
        same += sum(1 for a, b in zip(*ids, strict=False) if a == b)
        total += max(len(ids[0]), len(ids[1]), 1)
    return same / total


@needs_llama
def test_the_f16_export_gives_the_transformers_models_greedy_tokens(default_model, tmp_path):
    reference = load_local("", Path(settings.MODELS_DIR))
    f16 = load_gguf(export_gguf(default_model, tmp_path / "smol-f16.gguf").path)
    assert greedy_agreement(reference, f16) >= 0.95


@needs_llama
def test_quantized_exports_run_and_the_seed_format_export_renders_its_prompt(
    default_model, tmp_path
):
    template = prompt_formats.gguf_chat_template("seed_inst", None)
    for quant in ("q8_0", "q4_k_m"):
        path = export_gguf(default_model, tmp_path / f"smol-{quant}.gguf", quant=quant).path
        assert path.stat().st_size < (default_model / "model.safetensors").stat().st_size / 3
    model = load_gguf(
        export_gguf(
            default_model, tmp_path / "inst.gguf", quant="q8_0", chat_template=template
        ).path
    )
    chat = CHATS[1]
    assert model.render(chat) == prompt_formats.render_inst(chat)
    answer = model.generate(chat, Decoding(max_new_tokens=8, temperature=0.0))
    assert answer.tokens_out > 0
