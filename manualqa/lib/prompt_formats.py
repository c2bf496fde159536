"""Prompt formats: the one home of how a question is put to a model, in training and in serving.

A fine-tuned model is only usable if serving sends it exactly the text it was trained on, so the
three formats are written once, here, for both sides (a parity test holds them together):

* ``chat_template``: chat messages, rendered by the model's own tokenizer or server template;
* ``seed_inst``: the seed project's Llama 2 text, ``<s>[INST] q [/INST] a </s>``, with a system
  prompt as a ``<<SYS>>`` block inside the first ``[INST]``;
* ``alpaca``: the Alpaca instruction/response text.

Training writes a reviewed pair as a record (:func:`to_training_record`) and reads a record back
as a prompt and a completion (:func:`parse_training_record`); serving renders a chat for a model
(:func:`render_inference`). Chat assistants name the formats ``chat``, ``inst`` and ``alpaca``
(:data:`CHAT_FORMATS`); :func:`canonical` maps either vocabulary onto :data:`FORMATS`.

Plain Python (no Django).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ALPACA_PREAMBLE",
    "ALPACA_STOP",
    "CHAT_FORMATS",
    "FORMATS",
    "INST_MARKERS",
    "INST_STOP",
    "InferencePrompt",
    "TrainExample",
    "canonical",
    "chat_format",
    "format_inst",
    "gguf_chat_template",
    "parse_training_record",
    "render_inference",
    "render_inst",
    "system_prompt_problem",
    "to_training_record",
]

Message = Mapping[str, str]

#: The formats a dataset snapshot is exported in and a model is trained on.
FORMATS: Final = ("chat_template", "seed_inst", "alpaca")
#: The same formats as chat assistants name them (``Assistant.prompt_format``).
CHAT_FORMATS: Final = ("chat", "inst", "alpaca")
_CHAT_NAMES: Final = dict(zip(FORMATS, CHAT_FORMATS, strict=True))
_ALIASES: Final = {**{name: name for name in FORMATS}, **{v: k for k, v in _CHAT_NAMES.items()}}

_INST_OPEN: Final = "<s>[INST]"
_INST_CLOSE: Final = "[/INST]"
_INST_END: Final = "</s>"
#: Every marker of the seed format; a question, answer or system prompt holding one would be
#: read back as a different (or broken) pair.
INST_MARKERS: Final = ("<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")
#: Markers that end an answer in the seed format: the literal ``</s>`` a model fine-tuned on
#: ``<s>[INST] q [/INST] a </s>`` text writes after its answer, and the start of a new turn.
INST_STOP: Final = ("</s>", "[INST]")
_SYS_RE: Final = re.compile(r"^<<SYS>>\n(?P<system>.*?)\n<</SYS>>\n\n", re.DOTALL)

ALPACA_PREAMBLE: Final = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request."
)
_ALPACA_PREAMBLE_WITH_INPUT: Final = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request."
)
ALPACA_STOP: Final = ("### Instruction:",)


def canonical(name: str) -> str:
    """``name`` in either vocabulary as one of :data:`FORMATS`; ``ValueError`` when unknown."""
    try:
        return _ALIASES[name]
    except KeyError:
        raise ValueError(f"Unknown prompt format {name!r}: use {', '.join(FORMATS)}.") from None


def chat_format(name: str) -> str:
    """``name`` in either vocabulary as one of :data:`CHAT_FORMATS`."""
    return _CHAT_NAMES[canonical(name)]


def _inst_system_block(system: str) -> str:
    """Where Llama 2 places a system prompt: a block at the start of the first ``[INST]``."""
    return f"<<SYS>>\n{system.strip()}\n<</SYS>>\n\n"


def _alpaca_prompt(instruction: str, system: str = "", extra: str = "") -> str:
    preamble = system or (_ALPACA_PREAMBLE_WITH_INPUT if extra else ALPACA_PREAMBLE)
    prompt = f"{preamble}\n\n### Instruction:\n{instruction}\n\n"
    if extra:
        prompt += f"### Input:\n{extra}\n\n"
    return prompt + "### Response:\n"


# --------------------------------------------------------------------------------------------
# Training: a pair as a record, and a record as a prompt and a completion


def format_inst(question: str, answer: str) -> str:
    """One pair in the seed project's Llama 2 training format: ``<s>[INST] q [/INST] a </s>``.

    Raises ``ValueError`` when the question or answer itself holds one of the format's markers,
    because such a line would be read back as a different (or broken) pair.
    """
    question, answer = question.strip(), answer.strip()
    for marker in INST_MARKERS:
        if marker in question or marker in answer:
            raise ValueError(f"the question or answer contains the marker {marker!r}")
    if not question or not answer:
        raise ValueError("the question and the answer must not be empty")
    return f"<s>[INST] {question} [/INST] {answer} </s>"


def system_prompt_problem(system_prompt: str) -> str | None:
    """Why ``system_prompt`` cannot go into a seed_inst record, or None when it can."""
    found = [marker for marker in INST_MARKERS if marker in system_prompt]
    if found:
        return f"The system prompt cannot contain the prompt marker {found[0]!r}."
    return None


def to_training_record(
    question: str, answer: str, *, fmt: str, system_prompt: str = ""
) -> dict[str, Any]:
    """One training record for a pair in ``fmt`` (one of :data:`FORMATS`).

    Raises ``ValueError`` for an unknown format, and for a seed_inst pair or system prompt that
    holds the format's own markers (see :func:`format_inst`).
    """
    fmt = canonical(fmt)
    if fmt == "chat_template":
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        return {"messages": messages}
    if fmt == "seed_inst":
        # format_inst refuses text holding the format's own markers (a reviewer may have typed
        # one); the system block is added after that check, as Llama 2 places it.
        text = format_inst(question, answer)
        if system_prompt:
            if problem := system_prompt_problem(system_prompt):
                raise ValueError(problem)
            text = text.replace("[INST] ", f"[INST] {_inst_system_block(system_prompt)}", 1)
        return {"text": text}
    record = {"instruction": question, "input": "", "output": answer}
    if system_prompt:
        record["system"] = system_prompt
    return record


@dataclass(frozen=True)
class TrainExample:
    """One training pair in its prompt format; the loss goes on ``completion`` only.

    ``prompt``/``completion`` are strings (seed_inst, alpaca) or chat messages (chat_template,
    rendered by the tokenizer's chat template). ``question`` and ``reference`` are the bare
    question and answer, for sample generations and reports.
    """

    prompt: str | list[dict[str, str]]
    completion: str | list[dict[str, str]]
    question: str = ""
    reference: str = ""


def _inst_example(text: Any, system_prompt: str, where: str) -> TrainExample:
    if not isinstance(text, str) or not text.strip().startswith(_INST_OPEN):
        raise ValueError(
            f'{where}: "text" must look like "<s>[INST] question [/INST] answer </s>".'
        )
    text = text.strip()
    head, marker, tail = text.partition(_INST_CLOSE)
    if not marker or not tail.strip() or tail.strip() == _INST_END:
        raise ValueError(f"{where}: no answer after [/INST].")
    inner = head[len(_INST_OPEN) :].lstrip()
    match = _SYS_RE.match(inner)
    if match is None and system_prompt.strip():
        # Where Llama 2 places a system prompt, as to_training_record does.
        head = head.replace("[INST] ", f"[INST] {_inst_system_block(system_prompt)}", 1)
    question = (inner[match.end() :] if match else inner).strip()
    answer = tail.strip()
    if answer.endswith(_INST_END):
        answer = answer[: -len(_INST_END)].rstrip()
    return TrainExample(prompt=head + marker, completion=tail, question=question, reference=answer)


def _alpaca_example(record: Mapping[str, Any], system_prompt: str, where: str) -> TrainExample:
    instruction, extra, output = (record.get(key) for key in ("instruction", "input", "output"))
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f'{where}: "instruction" must be a non-empty string.')
    if not isinstance(output, str) or not output.strip():
        raise ValueError(f'{where}: "output" must be a non-empty string.')
    extra = extra if isinstance(extra, str) else ""
    system = record.get("system") or system_prompt
    system = system.strip() if isinstance(system, str) else ""
    prompt = _alpaca_prompt(instruction.strip(), system, extra.strip())
    return TrainExample(
        prompt=prompt, completion=output.strip(), question=instruction.strip(), reference=output
    )


def _chat_example(record: Mapping[str, Any], system_prompt: str, where: str) -> TrainExample:
    messages = record.get("messages")
    if not isinstance(messages, list) or not all(
        isinstance(message, dict)
        and isinstance(message.get("role"), str)
        and isinstance(message.get("content"), str)
        for message in messages
    ):
        raise ValueError(f'{where}: "messages" must be a list of {{"role", "content"}} objects.')
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the last message must be the assistant's answer.")
    prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
    users = [m["content"] for m in prompt if m["role"] == "user"]
    if not users:
        raise ValueError(f"{where}: there is no user message to answer.")
    if system_prompt.strip() and prompt[0]["role"] != "system":
        prompt.insert(0, {"role": "system", "content": system_prompt.strip()})
    answer = messages[-1]["content"]
    return TrainExample(
        prompt=prompt,
        completion=[{"role": "assistant", "content": answer}],
        question=users[-1],
        reference=answer,
    )


def parse_training_record(
    record: Mapping[str, Any], *, prompt_format: str, system_prompt: str = "", index: int = 0
) -> TrainExample:
    """One training record (:func:`to_training_record`) as a prompt and a completion.

    ``system_prompt`` is used only where the record carries none of its own, so records that
    already hold the snapshot's system prompt never get it twice. Raises ``ValueError`` naming
    the record (``index``) and what is wrong with it.
    """
    where = f"Record {index + 1}"
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(record).__name__}.")
    if prompt_format == "chat_template":
        return _chat_example(record, system_prompt, where)
    if prompt_format == "seed_inst":
        return _inst_example(record.get("text"), system_prompt, where)
    if prompt_format == "alpaca":
        return _alpaca_example(record, system_prompt, where)
    raise ValueError(f"Unknown prompt format {prompt_format!r}: use {', '.join(FORMATS)}.")


# --------------------------------------------------------------------------------------------
# Serving: a chat as the model was trained to read it


def render_inst(messages: Iterable[Message]) -> str:
    """A chat in the seed project's Llama 2 format, ready for the model to continue.

    ``<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST]``, earlier turns as
    ``<s>[INST] q [/INST] a </s>``; exactly the prompt that :func:`parse_training_record` gives
    for a seed_inst record (``<s>[INST] q [/INST]``, the answer following after a space).
    System messages are merged into the first user turn, where Llama 2 puts them.
    """
    messages = list(messages)
    system = "\n\n".join(
        str(m.get("content") or "").strip()
        for m in messages
        if m.get("role") == "system" and str(m.get("content") or "").strip()
    )
    parts: list[str] = []
    first_user = True
    for message in messages:
        role, content = message.get("role"), str(message.get("content") or "").strip()
        if role == "user":
            if first_user and system:
                content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
            first_user = False
            parts.append(f"<s>[INST] {content} [/INST]")
        elif role == "assistant":
            parts.append(f" {content} </s>")
    return "".join(parts)


@dataclass(frozen=True)
class InferencePrompt:
    """What is sent: chat ``messages``, or a raw ``prompt`` (then ``messages`` is None)."""

    messages: list[dict[str, str]] | None
    prompt: str | None
    stop: list[str]


def render_inference(messages: list[dict[str, str]], *, prompt_format: str) -> InferencePrompt:
    """``messages`` as a model trained in ``prompt_format`` (either vocabulary) reads them."""
    fmt = canonical(prompt_format)
    if fmt == "chat_template":
        return InferencePrompt(messages=messages, prompt=None, stop=[])
    if fmt == "seed_inst":
        return InferencePrompt(messages=None, prompt=render_inst(messages), stop=list(INST_STOP))
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system").strip()
    users = [m["content"] for m in messages if m["role"] == "user"]
    instruction = users[-1].strip() if users else ""
    return InferencePrompt(
        messages=None, prompt=_alpaca_prompt(instruction, system), stop=list(ALPACA_STOP)
    )


# --------------------------------------------------------------------------------------------
# Exports: the same rendering as a Jinja chat template, for a GGUF file or a server

#: :func:`render_inst` as a Jinja chat template (llama.cpp, Ollama's Jinja import, vLLM).
INST_JINJA: Final = (
    "{%- set ns = namespace(system='', first=true) -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' and (m['content'] or '') | trim -%}"
    "{%- set ns.system = ns.system ~ ('\\n\\n' if ns.system else '') ~ (m['content'] | trim) -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- set content = (m['content'] or '') | trim -%}"
    "{%- if m['role'] == 'user' -%}"
    "{%- if ns.first and ns.system -%}"
    "{%- set content = '<<SYS>>\\n' ~ ns.system ~ '\\n<</SYS>>\\n\\n' ~ content -%}"
    "{%- endif -%}"
    "{%- set ns.first = false -%}"
    "{{ '<s>[INST] ' ~ content ~ ' [/INST]' }}"
    "{%- elif m['role'] == 'assistant' -%}"
    "{{ ' ' ~ content ~ ' </s>' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

#: The Alpaca prompt of :func:`render_inference` as a Jinja chat template: the system messages
#: (or the standard preamble) and the last user message as the instruction.
ALPACA_JINJA: Final = (
    "{%- set system = messages | selectattr('role', 'equalto', 'system') "
    "| map(attribute='content') | join('\\n\\n') | trim -%}"
    "{%- set users = messages | selectattr('role', 'equalto', 'user') "
    "| map(attribute='content') | list -%}"
    "{%- set instruction = (users[-1] if users else '') | trim -%}"
    "{{ (system or " + json.dumps(ALPACA_PREAMBLE) + ") ~ '\\n\\n### Instruction:\\n' "
    "~ instruction ~ '\\n\\n### Response:\\n' }}"
)


def gguf_chat_template(prompt_format: str, tokenizer_template: str | None) -> str | None:
    """The Jinja chat template that renders ``prompt_format`` (either vocabulary) exactly as
    training saw it: the tokenizer's own for ``chat_template``, else the format's."""
    fmt = canonical(prompt_format)
    if fmt == "chat_template":
        return tokenizer_template
    return INST_JINJA if fmt == "seed_inst" else ALPACA_JINJA
