"""GGUF export of a transformers model (issue 15, point 2).

On the real SmolLM2-135M (a byte-level BPE vocabulary), and on a tiny Llama 2-style model made
here: a SentencePiece tokenizer trained on the sample manual, with byte fallback as Llama's,
and a two-layer LlamaForCausalLM trained briefly on the manual's text.

The export's file is read back with the ``gguf`` package always; llama.cpp runs it where
``llama-cpp-python`` is installed (``make install-llamacpp``), and its tokens and greedy
tokens are compared with the transformers model's.
"""

from __future__ import annotations

import html
import io
import itertools
import json
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from jinja2.sandbox import ImmutableSandboxedEnvironment

from manualqa.lib import prompt_formats
from manualqa.lib.gguf_export import export_gguf
from manualqa.lib.llamacpp import llama_cpp_available, load_gguf, uses_flash_attention
from manualqa.lib.local_models import Decoding, LocalModel, ensure_default_model, load_local

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

SAMPLE_PAGES = Path(settings.BASE_DIR) / "curation" / "sample_manual" / "site" / "manual"


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
    # GPT-2's split, as the converted model's tokenizer.json has it (not SmolLM2's "smollm").
    assert field("tokenizer.ggml.model") == "gpt2" and field("tokenizer.ggml.pre") == "gpt-2"
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


def greedy_agreement(reference, exported, prompts=PROMPTS) -> float:
    """Share of the next tokens ``exported`` predicts as ``reference`` does, read along the
    reference's own first 32 greedy tokens after each prompt (teacher forcing: where the two
    break a near tie differently, that one token differs, not every token after it; comparing
    two free generations, one early tie made an AVX2 build score 0.80 where AVX-512 scored
    0.95)."""
    import numpy as np
    import torch
    from llama_cpp import Llama

    decoding = Decoding(max_new_tokens=32, temperature=0.0, no_repeat_ngram=0)
    forced = Llama(model_path=str(exported.path), n_ctx=1024, logits_all=True, verbose=False)
    same = total = 0
    for chat in prompts:
        prompt = llama_tokens(exported, exported.render(chat))
        answer = reference.generate(chat, decoding).text
        tokens = prompt + reference.tokenizer(answer, add_special_tokens=False)["input_ids"][:32]
        with torch.inference_mode():
            expected = reference.model(torch.tensor([tokens])).logits[0].argmax(-1).tolist()
        forced.reset()
        forced.eval(tokens)
        predicted = np.asarray(forced.scores[: len(tokens)]).argmax(-1).tolist()
        positions = range(len(prompt) - 1, len(tokens) - 1)
        same += sum(1 for i in positions if predicted[i] == expected[i])
        total += len(positions)
    return same / max(total, 1)


@needs_llama
def test_the_f16_export_gives_the_transformers_models_greedy_tokens(default_model, tmp_path):
    reference = load_local("", Path(settings.MODELS_DIR))
    f16_path = export_gguf(default_model, tmp_path / "smol-f16.gguf").path
    assert not uses_flash_attention(f16_path)  # f16 attention scores would cost agreement
    f16 = load_gguf(f16_path)
    # The whole sample manual, markup and text, splits into the same tokens: numbered steps
    # and table cells (a newline or a space before a digit) included.
    for page in sorted(SAMPLE_PAGES.glob("*.html")):
        for text in (page.read_text(encoding="utf-8"), "\n".join(manual_lines_of(page))):
            expected = reference.tokenizer(text, add_special_tokens=False)["input_ids"]
            assert llama_tokens(f16, text) == expected, page.name
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


def test_the_pre_tokenizer_written_is_the_one_the_tokenizer_splits_text_with():
    from manualqa.lib.gguf_export import _pre_tokenizer

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    digits = {"type": "Digits", "individual_digits": True}
    warnings: list[str] = []
    # The converted default model's tokenizer: GPT-2's split, without SmolLM2's digit rule.
    assert _pre_tokenizer({"pre_tokenizer": byte_level}, warnings) == "gpt-2"
    sequence = {"type": "Sequence", "pretokenizers": [digits, byte_level]}
    assert _pre_tokenizer({"pre_tokenizer": sequence}, warnings) == "smollm"
    assert warnings == []
    split = {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated"}
    assert _pre_tokenizer({"pre_tokenizer": split}, warnings) == "default"
    assert warnings and "unknown BPE pre-tokenizer" in warnings[0]


# --------------------------------------------------------------------------------------------
# A SentencePiece tokenizer (Llama 2 and Mistral's vocabulary kind), on a tiny model made here

# Text with runs of spaces, newlines and tabs (which this vocabulary spells as <0x0A>, <0x09>),
# digits (split one by one, as Llama's), characters no piece covers (byte fallback), and
# special tokens. Not text that starts with a space: transformers' Llama tokenizer does not
# add its word mark to such text, where SentencePiece and llama.cpp do ("▁▁leading").
STRINGS = [
    "Inflate the tires to 42 PSI when cold.",
    "two  spaces,\nnew\n\nlines and a\ttab ",
    "digits 1234567890 and 3.5 kW",
    "a snowman ☃ and ü need byte fallback",
    "<s>[INST] Where is the VIN? [/INST] Under the windshield. </s>",
]


def manual_lines_of(page: Path) -> list[str]:
    """A sample manual page's text, one line per heading, paragraph or table cell."""
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.DOTALL)
    text = html.unescape(re.sub(r"<[^>]+>", "\n", text))
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def manual_lines() -> list[str]:
    return [line for page in sorted(SAMPLE_PAGES.glob("*.html")) for line in manual_lines_of(page)]


def train_sentencepiece(lines: list[str]) -> bytes:
    """A 600-piece SentencePiece BPE model with Llama's settings: byte fallback, digits split,
    no normalization, whitespace kept, and <unk> <s> </s> as ids 0, 1 and 2."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=600,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        character_coverage=0.99,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    return model.getvalue()


def llama_tokenizer(proto: bytes):
    """transformers' Llama tokenizer over a SentencePiece model, as transformers converts one:
    the pieces, and as merges every pair of pieces that joins into a piece, in the order of
    that piece's score. Legacy, as Llama 2's and Mistral's tokenizer.json are: the word mark
    starts the text and the text after each special token."""
    import sentencepiece
    from transformers import LlamaTokenizer

    processor = sentencepiece.SentencePieceProcessor(model_proto=proto)
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    pairs = [(piece[:k], piece[k:]) for piece in vocab for k in range(1, len(piece))]
    merges = sorted(
        ((left, right) for left, right in pairs if left in vocab and right in vocab),
        key=lambda pair: (-processor.get_score(vocab["".join(pair)]), vocab[pair[0]]),
    )
    tokenizer = LlamaTokenizer(vocab=vocab, merges=merges, legacy=True, add_bos_token=True)
    tokenizer.chat_template = prompt_formats.gguf_chat_template("seed_inst", None)
    return tokenizer


def train_tiny_llama(tokenizer, records: list[str], folder: Path) -> None:
    """A two-layer LlamaForCausalLM (grouped-query attention, untied output as Llama 2's)
    trained until it knows ``records`` by heart, so that its greedy choices are clear ones
    rather than near ties that any rounding would flip. 150 steps left a loss of 0.26 on an AMD
    EPYC machine, and its q8_0 export agreed on 61% of greedy tokens; 300 steps reached 0.09
    there, and every token agreed."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    ids = torch.tensor(tokenizer("".join(records), add_special_tokens=False)["input_ids"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    window = 128
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        starts = torch.randint(len(ids) - window, (8,), generator=generator)
        batch = torch.stack([ids[start : start + window] for start in starts])
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(folder)


@pytest.fixture(scope="module")
def llama2_style_model(tmp_path_factory) -> tuple[Path, list]:
    """A Llama 2-style model folder (tokenizer.model, tokenizer.json, seed_inst chat template)
    trained on eight of the manual's question-like lines and the line after each, as seed_inst
    records; with four of those questions as chats to answer."""
    folder = tmp_path_factory.mktemp("llama2-style")
    lines = manual_lines()
    proto = train_sentencepiece(lines)
    tokenizer = llama_tokenizer(proto)
    tokenizer.save_pretrained(folder)
    (folder / "tokenizer.model").write_bytes(proto)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["legacy"] = True  # not saved by transformers, but what the tokenizer does
    config_path.write_text(json.dumps(config), encoding="utf-8")
    pairs = [(q, a) for q, a in itertools.pairwise(lines) if len(q) > 30 and len(a) > 150][:8]
    records = [f"<s>[INST] {question} [/INST] {answer} </s>" for question, answer in pairs]
    train_tiny_llama(tokenizer, records, folder)
    return folder, [[{"role": "user", "content": question}] for question, _ in pairs[::2]]


def without_sentencepiece_file(folder: Path, tmp_path: Path) -> Path:
    """The same model with tokenizer.json only, as some Llama and Mistral folders come."""
    copy = tmp_path / f"{folder.name}-json-only"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("tokenizer.model"))
    return copy


def test_a_sentencepiece_export_writes_the_llama_vocabulary(llama2_style_model, tmp_path):
    import gguf
    import sentencepiece

    folder, _ = llama2_style_model
    result = export_gguf(folder, tmp_path / "tiny.gguf", quant="f16")

    reader = gguf.GGUFReader(str(result.path))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    assert field("tokenizer.ggml.model") == "llama"
    assert field("tokenizer.ggml.tokens") == pieces
    scores = field("tokenizer.ggml.scores")
    assert scores == pytest.approx([processor.get_score(i) for i in range(len(pieces))])
    types = field("tokenizer.ggml.token_type")
    kind = lambda piece: gguf.TokenType(types[pieces.index(piece)])  # noqa: E731
    assert kind("<unk>") == gguf.TokenType.UNKNOWN
    assert kind("<s>") == kind("</s>") == gguf.TokenType.CONTROL
    assert kind("<0x0A>") == gguf.TokenType.BYTE and kind("▁the") == gguf.TokenType.NORMAL
    assert types.count(gguf.TokenType.BYTE) == 256
    ids = ("bos_token_id", "eos_token_id", "unknown_token_id")
    assert [field(f"tokenizer.ggml.{key}") for key in ids] == [1, 2, 0]
    assert field("tokenizer.ggml.add_bos_token") is True
    assert field("tokenizer.ggml.add_eos_token") is False
    assert field("tokenizer.ggml.add_space_prefix") is True
    assert field("tokenizer.chat_template") == prompt_formats.INST_JINJA == result.chat_template
    assert result.warnings == []

    # Without tokenizer.model the scores come from the order of tokenizer.json's merges: the
    # same order of merging as the SentencePiece model's scores give.
    json_only = export_gguf(without_sentencepiece_file(folder, tmp_path), tmp_path / "j.gguf")
    merged_scores = gguf.GGUFReader(str(json_only.path)).fields["tokenizer.ggml.scores"]
    merged = merged_scores.contents()
    normal = [i for i, piece in enumerate(pieces) if kind(piece) == gguf.TokenType.NORMAL]
    multi = [i for i in normal if len(pieces[i]) > 1]
    assert sorted(multi, key=lambda i: -merged[i]) == sorted(multi, key=lambda i: -scores[i])


def test_other_tokenizers_are_refused_naming_them(llama2_style_model, tmp_path):
    folder, _ = llama2_style_model
    unigram = tmp_path / "unigram"
    unigram.mkdir()
    shutil.copy(folder / "config.json", unigram / "config.json")
    spec = {"model": {"type": "Unigram", "vocab": [["<unk>", 0.0]], "unk_id": 0}}
    (unigram / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match="Unigram SentencePiece tokenizer"):
        export_gguf(unigram, tmp_path / "x.gguf")
    spec = {"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}}
    (unigram / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match="a WordPiece tokenizer does not export"):
        export_gguf(unigram, tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf"))


def tiny_reference(folder: Path) -> LocalModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    return LocalModel(folder, model.eval(), AutoTokenizer.from_pretrained(folder))


def llama_tokens(model, text: str) -> list[int]:
    return model.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)


@needs_llama
def test_llama_cpp_tokenizes_and_answers_as_the_sentencepiece_model_does(
    llama2_style_model, tmp_path
):
    folder, chats = llama2_style_model
    reference = tiny_reference(folder)
    tokenizer = reference.tokenizer
    fallback = tokenizer.tokenize(STRINGS[3])
    assert "<0xE2>" in fallback and "<0x0A>" in tokenizer.tokenize(STRINGS[1])  # bytes in use
    exports = {
        quant: load_gguf(export_gguf(folder, tmp_path / f"tiny-{quant}.gguf", quant=quant).path)
        for quant in ("f16", "q8_0")
    }
    json_only = without_sentencepiece_file(folder, tmp_path)
    exports["scores from merges"] = load_gguf(export_gguf(json_only, tmp_path / "j.gguf").path)
    for model in exports.values():
        for text in STRINGS:
            assert (
                llama_tokens(model, text) == tokenizer(text, add_special_tokens=False)["input_ids"]
            ), text
        for chat in chats + CHATS:
            rendered = tokenizer.apply_chat_template(chat, add_generation_prompt=True)
            assert llama_tokens(model, model.render(chat)) == list(rendered["input_ids"])
    assert greedy_agreement(reference, exports["f16"], chats) >= 0.95
    assert greedy_agreement(reference, exports["q8_0"], chats) >= 0.90


def test_a_tokenizer_that_marks_only_the_start_of_text_keeps_chat_prompts_exact(
    llama2_style_model, tmp_path
):
    # transformers' non-legacy Llama tokenizer (its default) puts the word mark at the very
    # start only; llama.cpp cannot, so the export leaves it out and says so: chat prompts,
    # whose text follows special tokens (<s>[INST]), then tokenize as in training.
    import gguf

    folder, chats = llama2_style_model
    modern = tmp_path / "non-legacy"
    shutil.copytree(folder, modern)
    config = json.loads((modern / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["legacy"] = False
    (modern / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")

    result = export_gguf(modern, tmp_path / "modern.gguf")

    reader = gguf.GGUFReader(str(result.path))
    assert reader.fields["tokenizer.ggml.add_space_prefix"].contents() is False
    assert len(result.warnings) == 1 and "beginning of the text only" in result.warnings[0]
    if llama_cpp_available():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(modern)
        model = load_gguf(result.path)
        for chat in chats + CHATS:
            rendered = tokenizer.apply_chat_template(chat, add_generation_prompt=True)
            assert llama_tokens(model, model.render(chat)) == list(rendered["input_ids"])
