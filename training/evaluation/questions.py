"""Question sets: a JSON Lines file, or the test split of a dataset snapshot, as plain dicts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from django.conf import settings
from django.core.exceptions import ValidationError

from training.models import DatasetSnapshot, SnapshotPair

#: The two kinds with a meaning of their own: ``answerable`` (the default) and ``unanswerable``
#: (the manual does not answer it: declining is right). Any other short label is a category
#: (``fact``, ``procedure``, ``multi_page``...) that answerable questions are grouped by.
KINDS: Final = ("answerable", "unanswerable")
#: A category label: a letter or digit, then letters, digits, "_", "-" or spaces.
KIND_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_ -]*")
#: Longest category label (the ``EvaluationItem.kind`` column).
MAX_KIND_CHARS: Final = 20
#: Largest question file accepted (bytes): 68 questions take 20 KB.
MAX_QUESTIONS_BYTES: Final = 5 * 1024 * 1024
#: Bad lines listed in a refusal before "and N more".
MAX_LISTED_PROBLEMS: Final = 20


# --------------------------------------------------------------------------------------------
# Question sets


def _string_list(row: Mapping[str, Any], key: str) -> list[str]:
    value = row.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f'"{key}" must be a list of strings')
    return [item.strip() for item in value if item.strip()]


def question_normalize(row: Mapping[str, Any], *, default_id: str) -> dict[str, Any]:
    """One question-set record in the stored form; ``ValueError`` says what is wrong with it."""
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError('it has no "question" (a non-empty string)')
    question = question.strip()
    limit = settings.CHAT_MAX_QUESTION_CHARS
    if len(question) > limit:
        raise ValueError(
            f"the question is {len(question):,} characters, over the chat's limit of {limit:,}"
        )
    answer = row.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise ValueError('"answer" must be a string')
    kind = row.get("kind")
    if kind is None or (isinstance(kind, str) and not kind.strip()):
        kind = "answerable"
    if not isinstance(kind, str):
        raise ValueError('"kind" must be a string (a category such as "fact", or "unanswerable")')
    kind = " ".join(kind.split()).lower()
    if len(kind) > MAX_KIND_CHARS or not KIND_PATTERN.fullmatch(kind):
        raise ValueError(
            f"the kind {kind[:40]!r} is not a short label (up to {MAX_KIND_CHARS} letters, "
            'digits, "_", "-" or spaces, such as "fact" or "unanswerable")'
        )
    identifier = row.get("id")
    if identifier is None or identifier == "":
        identifier = default_id
    elif not isinstance(identifier, str | int) or isinstance(identifier, bool):
        raise ValueError('"id" must be a string or a number')
    return {
        "id": str(identifier),
        "question": question,
        "answer": (answer or "").strip(),
        "sources": _string_list(row, "sources"),
        "must_include": _string_list(row, "must_include"),
        "kind": kind,
    }


def questions_parse_jsonl(raw: str | bytes) -> list[dict[str, Any]]:
    """The questions of a JSON Lines file, each in the stored form (see the module docstring).

    Blank lines are skipped. Any bad line (not JSON, not an object, no ``question``, an unknown
    ``kind``, a repeated ``id``) refuses the whole file with a ``ValidationError`` whose
    messages name every bad line by number, so nothing half-read is ever stored.
    """
    if isinstance(raw, bytes):
        if len(raw) > MAX_QUESTIONS_BYTES:
            raise ValidationError(
                f"The question file is {len(raw):,} bytes; the limit is {MAX_QUESTIONS_BYTES:,}."
            )
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"The question file is not UTF-8 text (byte {exc.start} cannot be read)."
            ) from None
    problems: list[str] = []
    questions: list[dict[str, Any]] = []
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            problems.append(f"Line {number}: not valid JSON ({getattr(exc, 'msg', exc)}).")
            continue
        if not isinstance(row, dict):
            problems.append(f"Line {number}: expected a JSON object, got {type(row).__name__}.")
            continue
        try:
            question = question_normalize(row, default_id=f"line-{number}")
        except ValueError as exc:
            problems.append(f"Line {number}: {exc}.")
            continue
        if question["id"] in first_line_of:
            problems.append(
                f"Line {number}: the id {question['id']!r} is already used on line "
                f"{first_line_of[question['id']]}."
            )
            continue
        first_line_of[question["id"]] = number
        questions.append(question)
    if problems:
        shown = problems[:MAX_LISTED_PROBLEMS]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more bad lines.")
        raise ValidationError(shown)
    if not questions:
        raise ValidationError("The question file has no questions.")
    return questions


def questions_from_snapshot(snapshot: DatasetSnapshot) -> list[dict[str, Any]]:
    """The test split of ``snapshot`` as questions: the approved answer is the reference and
    the pair's document the expected source."""
    pairs = snapshot.pairs.filter(split=SnapshotPair.Split.TEST).order_by("id")
    return [
        {
            "id": f"pair-{pair.qa_pair_id}" if pair.qa_pair_id else f"snapshot-pair-{pair.pk}",
            "question": pair.question,
            "answer": pair.answer,
            "sources": [pair.source_name] if pair.source_name else [],
            "must_include": [],
            "kind": "answerable",
        }
        for pair in pairs
    ]
