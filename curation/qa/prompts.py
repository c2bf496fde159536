"""The default generation prompts, safe formatting and validation of user-edited templates."""

from __future__ import annotations

import string
from typing import Final

# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------

DEFAULT_QUESTIONS_SYSTEM_PROMPT: Final = (
    "You help build a question-answering dataset from a car owner's manual. You write the "
    "questions a car owner would really ask, and you only ask questions that the text you are "
    "given answers completely on its own."
)

#: How both default templates show the model a chunk.
_PASSAGE: Final = """\
Manual page: {title}
Section: {heading_path}

Text:
\"\"\"
{text}
\"\"\"
"""

DEFAULT_QUESTIONS_USER_TEMPLATE: Final = (
    _PASSAGE
    + """
Write a numbered list of up to {count} distinct questions that a car owner might ask and that \
THIS text alone answers fully. Each question must make sense without seeing the text (name the \
feature or alert it is about). Do not ask about anything the text does not cover, and do not \
write the answers.

Put one question per line, like this:
1. ...
2. ..."""
)

DEFAULT_ANSWER_SYSTEM_PROMPT: Final = (
    "You answer a car owner's questions using only the text from the owner's manual that you "
    "are given. You never add facts that are not in that text."
)

DEFAULT_ANSWER_USER_TEMPLATE: Final = (
    _PASSAGE
    + """
Question: {question}

Answer the question using only the text above. Be concise but complete: include every step, \
condition and warning from the text that the owner needs. If the text does not answer the \
question, say plainly that the text does not answer it, and do not guess."""
)

# The placeholders each user template must use, no more and no less: a template without
# {text} would generate questions about nothing, and an unknown name would fail at run time.
QUESTIONS_TEMPLATE_PLACEHOLDERS: Final = frozenset({"title", "heading_path", "text", "count"})
ANSWER_TEMPLATE_PLACEHOLDERS: Final = frozenset({"title", "heading_path", "text", "question"})


def validate_template(template: str, required: set[str] | frozenset[str]) -> None:
    """Check a user-edited prompt template before it is saved or used.

    The template must use every name in ``required`` as a ``{name}`` placeholder and no other
    placeholder. Literal braces are written doubled (``{{`` and ``}}``), as in ``str.format``.
    Raises ``ValueError`` with a message that names the unknown and missing placeholders (or
    the brace that breaks the syntax), so the edit form can show it to the user.

    Placeholders with attribute or index access (``{text.upper}``, ``{text[0]}``), positional
    ones (``{}``, ``{0}``) and conversions or format specs on unknown names count as unknown:
    templates come from users, and ``str.format`` attribute access is a known way to reach
    objects that a template has no business reaching. A conversion or format spec on a known
    name (``{text!r}``, ``{text:>300000000}``) is refused too: a width can make one chunk's
    prompt hundreds of megabytes.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(
            f"the template is not valid: {error} (write a literal brace as {{{{ or }}}})"
        ) from error
    used: list[str] = []
    unknown: list[str] = []
    # A format spec can hold placeholders of its own ("{text:{width}}"); check those too.
    fields = [field for _literal, field, _spec, _conv in parsed if field is not None]
    fields += [
        field
        for _literal, _field, spec, _conv in parsed
        if spec and "{" in spec
        for _nested_literal, field, _nested_spec, _nested_conv in string.Formatter().parse(spec)
        if field is not None
    ]
    for field_name in fields:
        if field_name in required:
            used.append(field_name)
        elif field_name not in unknown:
            unknown.append(field_name)
    missing = sorted(set(required) - set(used))
    complaints = []
    dressed = [
        "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        for _literal, field, spec, conversion in parsed
        if field is not None and (spec or conversion)
    ]
    if dressed:
        complaints.append(f"placeholders take no format spec or conversion: {', '.join(dressed)}")
    if unknown:
        names = ", ".join("{" + name + "}" for name in unknown)
        complaints.append(f"unknown placeholder(s) {names}")
    if missing:
        names = ", ".join("{" + name + "}" for name in missing)
        complaints.append(f"missing placeholder(s) {names}")
    if complaints:
        allowed = ", ".join("{" + name + "}" for name in sorted(required))
        raise ValueError(f"{'; '.join(complaints)} (the template must use exactly {allowed})")


def _chat(
    system_prompt: str, user_template: str, required: frozenset[str], values: dict[str, object]
) -> list[dict[str, str]]:
    validate_template(user_template, required)
    # format_map inserts each value as is: braces inside the manual text or the question are
    # never parsed as placeholders, because formatting happens once, on the template only.
    user = user_template.format_map(values)
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def questions_messages(
    *,
    title: str,
    heading_path: str,
    text: str,
    count: int,
    system_prompt: str = DEFAULT_QUESTIONS_SYSTEM_PROMPT,
    user_template: str = DEFAULT_QUESTIONS_USER_TEMPLATE,
) -> list[dict[str, str]]:
    """Chat messages (system + user) asking for up to ``count`` questions about ``text``.

    Stage one of question_extractor. ``system_prompt`` is used verbatim (it has no
    placeholders); ``user_template`` is validated and formatted. Raises ``ValueError`` for a
    bad template or a ``count`` below 1.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    values = {"title": title, "heading_path": heading_path, "text": text, "count": count}
    return _chat(system_prompt, user_template, QUESTIONS_TEMPLATE_PLACEHOLDERS, values)


def answer_messages(
    *,
    title: str,
    heading_path: str,
    text: str,
    question: str,
    system_prompt: str = DEFAULT_ANSWER_SYSTEM_PROMPT,
    user_template: str = DEFAULT_ANSWER_USER_TEMPLATE,
) -> list[dict[str, str]]:
    """Chat messages (system + user) asking for the answer to ``question`` from ``text`` only.

    Stage two of question_extractor; same formatting rules as ``questions_messages``.
    """
    values = {"title": title, "heading_path": heading_path, "text": text, "question": question}
    return _chat(system_prompt, user_template, ANSWER_TEMPLATE_PLACEHOLDERS, values)
