"""Importers of the seed project's two data formats: question_extractor's JSON and the
``<s>[INST] q [/INST] a </s>`` JSON Lines used for fine-tuning."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

# --------------------------------------------------------------------------------------------
# Importers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRecord:
    """One QA pair read from an import file.

    ``page`` is the source document's file name (``charging_instructions.md``: the base name
    of the source path before any ``/##``), which is how ingestion names documents, so the
    service can find the document; it is ``""`` where the format has no source (the
    ``[INST]`` JSON Lines). ``section_slug`` is the question_extractor heading slug without
    its ``##`` (see ``heading_slug``), or None for a whole page.
    """

    line: int
    page: str
    section_slug: str | None
    question: str
    answer: str


@dataclass(frozen=True)
class ImportProblem:
    """A record that could not be imported; ``message`` starts with where it is."""

    line: int
    message: str


_QE_FIELDS: Final = ("source", "question", "answer")


def _decode(raw: str | bytes) -> str | ImportProblem:
    """The file's text (a byte-order mark dropped), or a problem at the first undecodable line."""
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return ImportProblem(line, f"line {line}: the file is not UTF-8 text ({error.reason})")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _split_source(source: str) -> tuple[str, str | None]:
    path, _, slug = source.partition("/##")
    page = re.split(r"[\\/]", path.rstrip("/\\"))[-1]
    return page, (slug.strip() or None)


def _question_extractor_record(value: Any, line: int, where: str) -> ImportRecord | ImportProblem:
    if not isinstance(value, dict):
        return ImportProblem(
            line, f'{where}: expected an object with "source", "question" and "answer", '
            f"got {_json_type(value)}"
        )  # fmt: skip
    complaints = []
    fields: dict[str, str] = {}
    for name in _QE_FIELDS:
        if name not in value:
            complaints.append(f'missing "{name}"')
        elif not isinstance(value[name], str):
            complaints.append(f'"{name}" must be a string, got {_json_type(value[name])}')
        elif not value[name].strip():
            complaints.append(f'"{name}" is empty')
        else:
            fields[name] = value[name].strip()
    if complaints:
        return ImportProblem(line, f"{where}: {'; '.join(complaints)}")
    page, slug = _split_source(fields["source"])
    return ImportRecord(line, page, slug, fields["question"], fields["answer"])


def parse_question_extractor_json(
    raw: str | bytes,
) -> tuple[list[ImportRecord], list[ImportProblem]]:
    """Read question_extractor output: records ``{"source", "question", "answer"}``.

    Two layouts are accepted: a JSON array of records (the seed project's ``qa_pairs.json``)
    and JSON Lines, one record per line. A JSON array has no useful line numbers (it may be
    one line, or pretty-printed over many), so there ``line`` is the record's 1-based position
    in the array and messages say "record N"; in JSON Lines it is the line number and messages
    say "line N" (blank lines are skipped but counted).

    ``source`` looks like ``data_gpt35_v2/docs/<page>.md[/##<section-slug>]``; it becomes the
    record's ``page`` and ``section_slug``. A record with a missing, empty or non-string field
    becomes a problem and the others still import. A file that is not valid JSON at all gives
    one problem at the line where the JSON parser stopped.
    """
    text = _decode(raw)
    if isinstance(text, ImportProblem):
        return [], [text]
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            message = f"line {error.lineno}: not valid JSON: {error.msg}"
            return [], [ImportProblem(error.lineno, message)]
        outcomes = [
            _question_extractor_record(value, index, f"record {index}")
            for index, value in enumerate(data, start=1)
        ]
    else:
        # A single pretty-printed object is neither an array nor JSON Lines; accept it too.
        try:
            whole = json.loads(text) if stripped.startswith("{") else None
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            outcomes = [_question_extractor_record(whole, 1, "record 1")]
        else:
            outcomes = []
            for number, line in _json_lines(text):
                outcomes.append(
                    line
                    if isinstance(line, ImportProblem)
                    else _question_extractor_record(line, number, f"line {number}")
                )
    records = [outcome for outcome in outcomes if isinstance(outcome, ImportRecord)]
    problems = [outcome for outcome in outcomes if isinstance(outcome, ImportProblem)]
    return records, problems


def _json_lines(text: str) -> list[tuple[int, Any]]:
    """(line number, parsed value or ImportProblem) for each non-blank line."""
    parsed: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            message = f"line {number}: not valid JSON: {error.msg}"
            parsed.append((number, ImportProblem(number, message)))
    return parsed


_INST_RE: Final = re.compile(
    r"""^\s*(?:<s>)?\s*\[INST\](?P<question>.*?)\[/INST\](?P<answer>.*?)\s*(?:</s>)?\s*$""",
    re.DOTALL,
)
_SYS_BLOCK_RE: Final = re.compile(r"<<SYS>>.*?<</SYS>>", re.DOTALL)


def _inst_record(value: Any, number: int) -> ImportRecord | ImportProblem:
    where = f"line {number}"
    if not isinstance(value, dict):
        return ImportProblem(number, f'{where}: expected an object with "text", got '
                             f"{_json_type(value)}")  # fmt: skip
    if "text" not in value:
        return ImportProblem(number, f'{where}: missing "text"')
    text = value["text"]
    if not isinstance(text, str):
        return ImportProblem(number, f'{where}: "text" must be a string, got {_json_type(text)}')
    match = _INST_RE.match(text)
    if match is None:
        return ImportProblem(
            number, f'{where}: "text" is not in the form "<s>[INST] question [/INST] answer </s>"'
        )
    question = _SYS_BLOCK_RE.sub("", match.group("question")).strip()
    answer = match.group("answer").strip()
    if "[INST]" in answer or "[INST]" in question:
        return ImportProblem(number, f"{where}: more than one [INST] turn; expected exactly one")
    complaints = []
    if not question:
        complaints.append("the question is empty")
    if not answer:
        complaints.append("the answer is empty")
    if complaints:
        return ImportProblem(number, f"{where}: {'; '.join(complaints)}")
    return ImportRecord(number, "", None, question, answer)


def parse_inst_jsonl(raw: str | bytes) -> tuple[list[ImportRecord], list[ImportProblem]]:
    """Read the seed project's fine-tuning data: JSON Lines of ``{"text": "<s>[INST] ..."}``.

    Each line is ``{"text": "<s>[INST] question [/INST] answer </s>"}``, the Llama 2 chat
    format. Tolerated: a missing ``<s>`` or ``</s>``, extra whitespace, and a
    ``<<SYS>>...<</SYS>>`` system block inside ``[INST]``, which is dropped (it is the same
    instruction on every line, not part of the question). Blank lines are skipped. A line that
    is not JSON, has no ``text`` string, lacks the markers, holds more than one turn or has an
    empty question or answer becomes a problem with its line number; the rest import. The
    format names no source, so ``page`` is ``""``.
    """
    text = _decode(raw)
    if isinstance(text, ImportProblem):
        return [], [text]
    records: list[ImportRecord] = []
    problems: list[ImportProblem] = []
    for number, value in _json_lines(text):
        outcome = value if isinstance(value, ImportProblem) else _inst_record(value, number)
        (records if isinstance(outcome, ImportRecord) else problems).append(outcome)
    return records, problems


def heading_slug(heading: str) -> str:
    """question_extractor's slug for a heading, as it appears after ``/##`` in a source.

    Lower case, surrounding whitespace stripped, each space replaced by "-", every other
    character kept: ``"Alert: DIF_a251 / DIR_a251"`` -> ``"alert:-dif_a251-/-dir_a251"``.
    Leading ``#`` marks are not part of the heading and are removed if passed in.
    """
    return heading.strip().lstrip("#").strip().lower().replace(" ", "-")
