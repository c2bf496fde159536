"""Write a transformers model folder as a GGUF file that llama.cpp (and Ollama) can run.

Written on the ``gguf`` package, for what ManualQA trains: llama-architecture models
(``LlamaForCausalLM``: SmolLM2, Llama 2, Mistral-style). What it writes:

* the hyperparameters llama.cpp reads (``llama.*``) from ``config.json``;
* the vocabulary of the transformers tokenizer the model was trained with: a byte-level BPE
  (``tokenizer.json``, SmolLM2's) as llama.cpp's ``gpt2`` vocabulary with its merges, or a
  SentencePiece BPE with byte fallback (Llama 2's and Mistral's ``tokenizer.model`` /
  ``tokenizer.json``) as its ``llama`` vocabulary with the piece scores that order the merges;
  token types (special tokens are control tokens, ``<0xNN>`` pieces bytes), the special token
  ids, and the chat template given (the snapshot's prompt format; see
  :func:`manualqa.lib.prompt_formats.gguf_chat_template`);
* the tensors under llama.cpp's names, with the query and key projections permuted from the
  Hugging Face rotary layout to llama.cpp's, the norms in f32 and the matrices in f16, or in
  q8_0 quantized here with ``gguf.quants``. ``q4_k_m`` and other llama.cpp types are made from
  the f16 file by llama.cpp's own quantizer (``llama-cpp-python``, optional).

Other tokenizers (Unigram, WordPiece) are refused, naming what they are. Plain Python (no
Django).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

__all__ = ["QUANTS", "ExportResult", "export_gguf"]

#: The types an export can have: written here (f16, q8_0), or by llama.cpp from the f16 file.
QUANTS: Final = ("f16", "q8_0", "q4_k_m")
# llama.cpp's file type numbers (LLAMA_FTYPE_MOSTLY_*), for its quantizer. q8_0 goes through it
# too where it is installed, from the f16 file as llama.cpp's own tools make q8_0; without it
# gguf.quants writes q8_0 from f32. On SmolLM2-135M the two differ by noise only: 16 and 10 of
# 284 greedy tokens flipped against transformers' (teacher-forced), 49% and 43% of the first 32
# free-running tokens agreeing on short chats. q8_0 itself, not how it is written, is what flips
# this model's many near ties (see bench/local_runtime.py).
_LLAMA_FTYPES: Final = {"q8_0": 7, "q4_k_m": 15}

# Hugging Face parameter names (per layer after "model.layers.N.") and llama.cpp's.
_LAYER_TENSORS: Final = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_TOP_TENSORS: Final = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    quant: str
    size_bytes: int
    tensors: int
    warnings: list[str] = field(default_factory=list)
    #: The chat template written into the file (the one given, else the tokenizer's own).
    chat_template: str | None = None


def export_gguf(
    model_dir: Path,
    out_path: Path,
    *,
    quant: str = "f16",
    chat_template: str | None = None,
    name: str = "",
) -> ExportResult:
    """Write ``model_dir`` (a merged transformers model) to ``out_path`` as ``quant``.

    ``chat_template`` is a Jinja chat template for the file (default: the tokenizer's own).
    The file is written beside its target and renamed into place, so a failed export leaves
    nothing half-written.
    """
    if quant not in QUANTS:
        raise ValueError(f"unknown quantization {quant!r}: choose one of {', '.join(QUANTS)}")
    model_dir = Path(model_dir)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if quant == "q4_k_m" or (quant == "q8_0" and _llama_cpp_available()):
        with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".gguf-f16-") as work:
            f16 = export_gguf(
                model_dir, Path(work) / "model-f16.gguf", chat_template=chat_template, name=name
            )
            _llama_quantize(f16.path, out_path, quant)
            size = out_path.stat().st_size
            return ExportResult(out_path, quant, size, f16.tensors, f16.warnings, f16.chat_template)
    config = _config(model_dir)
    warnings: list[str] = []
    fd, staging = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}-")
    os.close(fd)
    try:
        count, template = _write(
            model_dir, Path(staging), config, quant, chat_template, name, warnings
        )
        os.replace(staging, out_path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return ExportResult(out_path, quant, out_path.stat().st_size, count, warnings, template)


def _config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a transformers model folder (no config.json)")
    config = json.loads(path.read_text(encoding="utf-8"))
    architectures = config.get("architectures") or []
    if config.get("model_type") != "llama" and "LlamaForCausalLM" not in architectures:
        raise ValueError(
            f"only llama-architecture models export to GGUF here; {model_dir.name} is "
            f"{config.get('model_type') or architectures or 'unknown'}"
        )
    return config


def _write(
    model_dir: Path,
    path: Path,
    config: dict[str, Any],
    quant: str,
    chat_template: str | None,
    name: str,
    warnings: list[str],
) -> tuple[int, str | None]:
    """Write the file; the tensor count and the chat template written."""
    import gguf

    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    rope = config.get("rope_parameters") or {}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name or model_dir.name)
    writer.add_context_length(int(config.get("max_position_embeddings", 4096)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_rope_dimension_count(head_dim)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-5)))
    writer.add_rope_freq_base(float(rope.get("rope_theta") or config.get("rope_theta", 10000.0)))
    writer.add_vocab_size(int(config["vocab_size"]))
    writer.add_file_type(
        gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    )
    template = _add_vocabulary(
        writer, model_dir, int(config["vocab_size"]), chat_template, warnings
    )

    count = 0
    tied = bool(config.get("tie_word_embeddings"))
    for hf_name, tensor in _tensors(model_dir):
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp uses the token embeddings as the output when it is absent
        gguf_name = _gguf_name(hf_name)
        data = tensor.astype(np.float32)
        if hf_name.endswith("self_attn.q_proj.weight"):
            data = _permute(data, heads, heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            data = _permute(data, heads, kv_heads)
        if data.ndim == 1:
            writer.add_tensor(gguf_name, data)
        elif quant == "q8_0" and data.shape[-1] % 32 == 0:
            quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(gguf_name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(gguf_name, data.astype(np.float16))
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count, template


def _gguf_name(hf_name: str) -> str:
    if hf_name in _TOP_TENSORS:
        return _TOP_TENSORS[hf_name]
    prefix = "model.layers."
    if hf_name.startswith(prefix):
        layer, _, rest = hf_name[len(prefix) :].partition(".")
        if rest in _LAYER_TENSORS:
            return f"blk.{int(layer)}.{_LAYER_TENSORS[rest]}"
    raise ValueError(f"a llama model has no tensor {hf_name!r}: not a plain llama checkpoint")


def _permute(weights: np.ndarray, heads: int, kv_heads: int) -> np.ndarray:
    """Hugging Face's rotary layout (halves) to llama.cpp's (interleaved pairs), per head."""
    n = kv_heads if kv_heads != heads else heads
    return (
        weights.reshape(n, 2, weights.shape[0] // n // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _tensors(model_dir: Path):
    from safetensors.numpy import load_file

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir} holds no .safetensors weights")
    for file in files:
        try:
            tensors = load_file(str(file))
        except TypeError:  # bfloat16, which numpy cannot hold: go through torch
            from safetensors.torch import load_file as load_torch

            tensors = {k: v.float().numpy() for k, v in load_torch(str(file)).items()}
        yield from sorted(tensors.items())


def _add_vocabulary(
    writer: Any, model_dir: Path, vocab_size: int, chat_template: str | None, warnings: list[str]
) -> str | None:
    """Write the tokenizer the model was trained with, as llama.cpp's ``gpt2`` (byte-level BPE)
    or ``llama`` (SentencePiece) vocabulary, with its special tokens and chat template."""
    kind = _vocabulary_kind(model_dir)
    tokenizer = _load_tokenizer(model_dir)
    if kind == "gpt2":
        _add_bpe_vocabulary(writer, model_dir, tokenizer, vocab_size, warnings)
    else:
        _add_sentencepiece_vocabulary(writer, model_dir, tokenizer, vocab_size, warnings)
    for token, add in (
        (tokenizer.bos_token_id, writer.add_bos_token_id),
        (tokenizer.eos_token_id, writer.add_eos_token_id),
        (tokenizer.unk_token_id, writer.add_unk_token_id),
        (tokenizer.pad_token_id, writer.add_pad_token_id),
    ):
        if token is not None:
            add(int(token))
    add_bos, add_eos = _adds_special(tokenizer)
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(add_eos)
    template = chat_template or tokenizer.chat_template
    if template:
        writer.add_chat_template(template)
    return template


def _load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError, ImportError) as exc:
        # A folder with only a SentencePiece tokenizer.model needs protobuf (and sometimes
        # tiktoken) for transformers to convert it; saving the tokenizer once writes the
        # tokenizer.json that the model was really trained with.
        raise ValueError(
            f"transformers cannot load the tokenizer in {model_dir.name} ({exc}); "
            "save it with tokenizer.save_pretrained() so the folder has a tokenizer.json"
        ) from exc


def _vocabulary_kind(model_dir: Path) -> str:
    """``gpt2`` for a byte-level BPE (SmolLM2's), ``llama`` for a SentencePiece BPE
    with byte fallback (Llama 2, Mistral); anything else is refused, naming what it is."""
    spec_path = model_dir / "tokenizer.json"
    if not spec_path.is_file():
        if (model_dir / "tokenizer.model").is_file():
            return "llama"
        raise FileNotFoundError(f"{model_dir} has no tokenizer.json or tokenizer.model")
    model = json.loads(spec_path.read_text(encoding="utf-8")).get("model") or {}
    kind = model.get("type")
    if kind == "BPE":
        return "llama" if model.get("byte_fallback") else "gpt2"
    if kind == "Unigram":
        raise ValueError(
            "a Unigram SentencePiece tokenizer (T5-style) does not export to GGUF here: "
            "llama-architecture models need a BPE tokenizer (byte-level, or SentencePiece BPE "
            "with byte fallback as in Llama 2 and Mistral)"
        )
    raise ValueError(
        f"a {kind or 'unknown'} tokenizer does not export to GGUF here: llama-architecture "
        "models need a BPE tokenizer (byte-level, or SentencePiece BPE with byte fallback)"
    )


def _add_bpe_vocabulary(
    writer: Any, model_dir: Path, tokenizer: Any, vocab_size: int, warnings: list[str]
) -> None:
    import gguf

    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    by_id = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    added = {token.content: token.special for token in tokenizer.added_tokens_decoder.values()}
    tokens, types = [], []
    for token_id in range(vocab_size):
        token = by_id.get(token_id)
        if token is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[token] else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(spec, warnings))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(_merges(spec))


def _merges(spec: dict[str, Any]) -> list[str]:
    """The BPE merges of a ``tokenizer.json``, as "left right" strings in rank order."""
    merges = (spec.get("model") or {}).get("merges", [])
    return [merge if isinstance(merge, str) else " ".join(merge) for merge in merges]


_BYTE_PIECE: Final = re.compile(r"<0x[0-9A-Fa-f]{2}>")
#: SentencePiece's word-boundary mark, which stands for a space in its pieces.
_SPACE_MARK: Final = "\u2581"


def _add_sentencepiece_vocabulary(
    writer: Any, model_dir: Path, tokenizer: Any, vocab_size: int, warnings: list[str]
) -> None:
    """llama.cpp's ``llama`` vocabulary: pieces in id order, their scores and types.

    llama.cpp tokenizes such a vocabulary as SentencePiece does: it merges the adjacent pair
    whose joined piece has the highest score, and spells a character that no piece covers
    as ``<0xNN>`` byte pieces. So the scores carry the merge order: the SentencePiece model's
    own (``tokenizer.model``) where it is there and matches, else one made from the rank of
    the ``tokenizer.json`` merge that makes each piece, the order transformers merges in.
    """
    import gguf

    by_id = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    added = {token_id: token.special for token_id, token in tokenizer.added_tokens_decoder.items()}
    scores = _sentencepiece_scores(model_dir, by_id, warnings)
    if scores is None:
        scores = _merge_scores(model_dir, by_id)
    tokens, token_scores, types = [], [], []
    for token_id in range(vocab_size):
        token = by_id.get(token_id)
        if token is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            if token_id == tokenizer.unk_token_id:
                types.append(gguf.TokenType.UNKNOWN)
            elif _BYTE_PIECE.fullmatch(token):
                types.append(gguf.TokenType.BYTE)
            elif token_id in added:
                special = added[token_id]
                types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
            else:
                types.append(gguf.TokenType.NORMAL)
        token_scores.append(float(scores.get(token_id, 0.0)))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(token_scores)
    writer.add_token_types(types)
    writer.add_add_space_prefix(_space_prefix(tokenizer, warnings))


def _sentencepiece_scores(
    model_dir: Path, by_id: dict[int, str], warnings: list[str]
) -> dict[int, float] | None:
    """The piece scores of ``tokenizer.model``, or None where there is none to trust."""
    path = model_dir / "tokenizer.model"
    if not path.is_file():
        return None
    try:
        from sentencepiece import SentencePieceProcessor
    except ImportError:
        warnings.append("sentencepiece is not installed: scores made from the BPE merges")
        return None
    processor = SentencePieceProcessor(model_file=str(path))
    pieces = processor.get_piece_size()
    if any(processor.id_to_piece(i) != by_id.get(i) for i in range(pieces)):
        # The transformers tokenizer is what the model was trained with; a tokenizer.model
        # that disagrees with it is a leftover, so its scores would tokenize differently.
        warnings.append("tokenizer.model differs from tokenizer.json: scores made from merges")
        return None
    return {i: processor.get_score(i) for i in range(pieces)}


def _merge_scores(model_dir: Path, by_id: dict[int, str]) -> dict[int, float]:
    """A score per piece from the rank of the first ``tokenizer.json`` merge making it: the
    earlier the merge, the higher the score, so llama.cpp merges in transformers' order."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} has no tokenizer.json to read the merges from")
    ids = {token: token_id for token_id, token in by_id.items()}
    scores: dict[int, float] = {}
    for rank, merge in enumerate(_merges(json.loads(path.read_text(encoding="utf-8")))):
        left, _, right = merge.partition(" ")
        token_id = ids.get(left + right)
        if token_id is not None and token_id not in scores:
            scores[token_id] = -float(rank)
    return scores


def _space_prefix(tokenizer: Any, warnings: list[str]) -> bool:
    """llama.cpp's ``add_space_prefix`` for the tokenizer: whether to mark the start of text as
    a word start (SentencePiece's dummy prefix, the piece "▁").

    llama.cpp adds that mark at the start of the text and after every special token, as
    Llama 2's and Mistral's own (legacy) tokenizers do. transformers' non-legacy Llama
    tokenizer marks the very start only, so ``<s>[INST]`` gives ``[INST]`` there but
    ``▁[INST]`` in llama.cpp, on every turn of a chat. For it the mark is left out: chat
    prompts, where text follows a special token, then tokenize as in training, and only a
    prompt that starts with plain text differs (by its first mark), as the warning says.
    """

    def pieces(text: str) -> list[str]:
        return tokenizer.convert_ids_to_tokens(tokenizer.encode(text, add_special_tokens=False))

    def marked(found: list[str]) -> bool:
        return bool(found) and found[0].startswith(_SPACE_MARK)

    at_start = marked(pieces("a"))
    special = tokenizer.bos_token or tokenizer.eos_token
    after_special = marked(pieces(f"{special}a")[1:]) if special else at_start
    if at_start and not after_special:
        warnings.append(
            "the tokenizer marks a word start at the beginning of the text only (transformers' "
            "non-legacy Llama tokenizer), which llama.cpp cannot do: text after a special token "
            "tokenizes as in transformers, a prompt that begins with plain text lacks its mark"
        )
    return at_start and after_special


def _adds_special(tokenizer: Any) -> tuple[bool, bool]:
    """Whether the tokenizer puts its BOS before, and its EOS after, text it encodes.

    Read from what it does rather than its ``add_bos_token`` attribute, which transformers'
    Llama tokenizer does not always carry over when it is saved and loaded again.
    """
    ids = tokenizer.encode("a", add_special_tokens=True)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return (
        bool(ids) and bos is not None and ids[0] == bos,
        len(ids) > 1 and eos is not None and ids[-1] == eos,
    )


#: llama.cpp's pre-tokenizers (its names) for the transformers ones that split text the same
#: way before BPE: GPT-2's regex alone, or each digit apart first and then GPT-2's regex
#: (the original SmolLM2 tokenizer's).
_PRE_TOKENIZERS: Final = {
    (("ByteLevel", True),): "gpt-2",
    (("Digits", True), ("ByteLevel", True)): "smollm",
}


def _pre_tokenizer(spec: dict[str, Any], warnings: list[str]) -> str:
    """llama.cpp's name for how the tokenizer splits text before BPE, read from its
    ``tokenizer.json``: it must split as in training, or the model sees other tokens (the
    converted default model's tokenizer has GPT-2's split without SmolLM2's digit rule, so a
    space or newline before a digit joins differently). An unknown split gets llama.cpp's
    default, with a warning in the result."""
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    shape = tuple(
        (step.get("type"), bool(step.get("use_regex", step.get("individual_digits"))))
        for step in steps
        if not (step.get("type") == "ByteLevel" and step.get("add_prefix_space"))
    )
    name = _PRE_TOKENIZERS.get(shape) if len(shape) == len(steps) else None
    if name is None:
        warnings.append(
            f"unknown BPE pre-tokenizer {json.dumps(pre)[:200]}: llama.cpp's default is used, "
            "which may split some text differently"
        )
        return "default"
    return name


def _llama_cpp_available() -> bool:
    from manualqa.lib.llamacpp import llama_cpp_available

    return llama_cpp_available()


def _llama_quantize(source: Path, target: Path, quant: str) -> None:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ImportError(
            f"{quant} is made by llama.cpp's quantizer: run `make install-llamacpp`"
        ) from exc
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _LLAMA_FTYPES[quant]
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    os.close(fd)
    try:
        status = llama_cpp.llama_model_quantize(
            str(source).encode(), str(staging).encode(), ctypes.byref(params)
        )
        if status != 0:
            raise RuntimeError(f"llama.cpp could not quantize {source.name} to {quant}")
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
