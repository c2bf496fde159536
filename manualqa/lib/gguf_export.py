"""Write a transformers model folder as a GGUF file that llama.cpp (and Ollama) can run.

Written on the ``gguf`` package, for what ManualQA trains: llama-architecture models
(``LlamaForCausalLM``: SmolLM2, Llama, Mistral-style) with a byte-level BPE tokenizer
(``tokenizer.json``, llama.cpp's ``gpt2`` vocabulary). What it writes:

* the hyperparameters llama.cpp reads (``llama.*``) from ``config.json``;
* the vocabulary: tokens in id order, their types (special tokens are control tokens), the BPE
  merges, the special token ids, and the chat template given (the snapshot's prompt format; see
  :func:`manualqa.lib.prompt_formats.gguf_chat_template`);
* the tensors under llama.cpp's names, with the query and key projections permuted from the
  Hugging Face rotary layout to llama.cpp's, the norms in f32 and the matrices in f16, or in
  q8_0 quantized here with ``gguf.quants``. ``q4_k_m`` and other llama.cpp types are made from
  the f16 file by llama.cpp's own quantizer (``llama-cpp-python``, optional).

A SentencePiece tokenizer (``tokenizer.model``, Llama 2 and Mistral's) is refused with a message
for now. Plain Python (no Django).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

__all__ = ["QUANTS", "ExportResult", "export_gguf"]

#: The types an export can have: written here (f16, q8_0), or by llama.cpp from the f16 file.
QUANTS: Final = ("f16", "q8_0", "q4_k_m")
# llama.cpp's file type numbers (LLAMA_FTYPE_MOSTLY_*), for its quantizer. q8_0 goes through it
# too where it is installed: from the f16 file, as llama.cpp's tools make q8_0, its greedy
# tokens agreed with transformers' more often than gguf.quants' q8_0 from f32 (50% against
# 40% of the first 32 tokens, 12 prompts, SmolLM2-135M); without it gguf.quants writes q8_0.
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
    if (model_dir / "tokenizer.model").is_file() and not (model_dir / "tokenizer.json").is_file():
        raise ValueError("SentencePiece tokenizers (tokenizer.model) do not export to GGUF yet")
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
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(f"only BPE tokenizers export to GGUF here, not {model.get('type')}")
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
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(tokens, warnings))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for token, add in (
        (tokenizer.bos_token_id, writer.add_bos_token_id),
        (tokenizer.eos_token_id, writer.add_eos_token_id),
        (tokenizer.unk_token_id, writer.add_unk_token_id),
        (tokenizer.pad_token_id, writer.add_pad_token_id),
    ):
        if token is not None:
            add(int(token))
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    template = chat_template or tokenizer.chat_template
    if template:
        writer.add_chat_template(template)
    return template


def _pre_tokenizer(tokens: list[str], warnings: list[str]) -> str:
    """llama.cpp's name for how text is split before BPE. A vocabulary identical to the bundled
    SmolLM2 GGUF's takes that file's name for it; any other gets llama.cpp's default, with a
    warning in the result (llama.cpp may then split some text differently)."""
    from manualqa.lib.local_models import default_gguf_path

    try:
        bundled = _bundled_vocabulary(str(default_gguf_path()))
    except (FileNotFoundError, OSError):
        bundled = None
    if bundled is not None and bundled[0] == _digest(tokens):
        return bundled[1]
    warnings.append("unknown BPE pre-tokenizer: llama.cpp's default is used")
    return "default"


def _digest(tokens: list[str]) -> str:
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


@functools.cache
def _bundled_vocabulary(path: str) -> tuple[str, str]:
    """The digest of a GGUF file's token list and its pre-tokenizer name (read once)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    tokens = list(reader.fields["tokenizer.ggml.tokens"].contents())
    return _digest(tokens), str(reader.fields["tokenizer.ggml.pre"].contents())


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
