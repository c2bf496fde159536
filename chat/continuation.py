"""Procedures, lists and tables that chunking split in two, put back together for the answer.

A chunk holds at most the embedding model's token budget, so a long procedure or table, or a
short one after a long paragraph, goes on in the next chunk of its section. Retrieval may find
only one half: a passage that starts at step 5, that ends on step 3 or on the Warning after it
while step 4 opens the next chunk, or that ends on a table's first rows while the row the owner
asks about is in the next chunk; or the Notes under a list whose items are a chunk or two
back ("what is creep mode" was given "Note: If you choose Creep or Roll, ..." without the
"- Creep: ..." item). Quoted like that, an owner reads half a procedure.
:func:`may_continue_before` and :func:`may_continue_after` tell when to fetch a passage's
neighbours in its section, :func:`continued_from` and :func:`continues_after` whether
they hold the rest, and :func:`joined` puts two neighbours' bodies together without the text
the chunker repeated at the seam (its overlap, a table's header row). Up to
:data:`MAX_CONTINUED` neighbours on each side are joined, one after the other: a procedure
over three chunks ("where are the cabin air filters": steps 1-3, 4-5 and 6-10) is read whole
from whichever of them retrieval found.

Plain Python; ``chat.retrieval`` fetches the neighbours.
"""

from __future__ import annotations

import re
from typing import Final

from chat.text_units import BULLET_LINE, CALLOUT_LINE, STEP_LINE, TABLE_LINE, TABLE_SEPARATOR

__all__ = [
    "MAX_CONTINUED",
    "continued_from",
    "continues_after",
    "has_steps",
    "joined",
    "may_continue_after",
    "may_continue_before",
    "procedure_follows",
]

#: How many neighbouring chunks a passage may be joined with on each side.
MAX_CONTINUED: Final = 2
#: The shortest run of text taken for the chunker's overlap at a seam.
_MIN_OVERLAP: Final = 16


def _steps(body: str) -> list[int]:
    return [int(found.group(1)) for line in body.splitlines() if (found := STEP_LINE.match(line))]


def _last_line(body: str) -> str:
    lines = [line for line in body.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _table_header(body: str, *, last: bool) -> str | None:
    """The header row of the first (or ``last``) table of ``body``: the line above a
    separator line."""
    lines = body.splitlines()
    headers = [
        lines[index - 1].strip()
        for index, line in enumerate(lines)
        if index and TABLE_SEPARATOR.match(line) and TABLE_LINE.match(lines[index - 1])
    ]
    if not headers:
        return None
    return headers[-1] if last else headers[0]


def has_steps(body: str) -> bool:
    """Whether ``body`` holds a numbered step."""
    return bool(_steps(body))


def procedure_follows(body: str, following: str) -> bool:
    """Whether ``following``, the next chunk of ``body``'s section, holds the procedure that
    ``body`` (no step of its own) leaves out: a section often tells what a feature does
    before how to turn it on ("Camp allows you to power electronics ..." and, in the next
    chunk, "To operate Keep Climate On, Dog, or Camp: 1. ...")."""
    return not has_steps(body) and has_steps(following)


def may_continue_before(body: str) -> bool:
    """Whether ``body`` starts inside a procedure (its first numbered step is not step 1) or
    may start inside a list (it opens with an item, or a Note or Warning)."""
    steps = _steps(body)
    return bool(steps) and steps[0] > 1 or _list_opening(body) is not None


def continued_from(preceding: str, body: str) -> bool:
    """Whether ``body`` goes on with the procedure of ``preceding``, the chunk before it in its
    section: that one's last step comes just before ``body``'s first (or is repeated by the
    chunker's overlap)."""
    steps, earlier = _steps(body), _steps(preceding)
    if steps and steps[0] > 1:
        return bool(earlier) and steps[0] - 1 <= earlier[-1] <= steps[0]
    return _ends_in_list(preceding) and _list_goes_on(preceding, body)


def _ends_in(body: str, line_pattern: re.Pattern[str]) -> bool:
    """Whether the last run of ``body`` (after its last blank line) holds a line matching
    ``line_pattern`` and does not end on a table row."""
    last_run = body.rstrip().rsplit("\n\n", 1)[-1]
    lines = [line for line in last_run.splitlines() if line.strip()]
    return (
        bool(lines)
        and not TABLE_LINE.match(lines[-1])
        and any(line_pattern.match(line) for line in lines)
    )


def _ends_in_steps(body: str) -> bool:
    """Whether ``body`` ends inside a procedure: on a step, or on the Notes, Warnings, options
    or text that follow a step with no blank line between ("3. Pull the release cable.",
    "Warning: Do not pull ..."; the chunk ends there, and step 4 is in the next one)."""
    return _ends_in(body, STEP_LINE)


def _ends_in_list(body: str) -> bool:
    """Whether ``body`` ends inside a bulleted list: on an item, or on the Note or Warning
    under one with no blank line between ("- Creep: ...", "Warning: Never rely on Creep
    ..."; the chunk ends there, and "- Hold: ..." opens the next one)."""
    return _ends_in(body, BULLET_LINE)


def _list_opening(body: str) -> str | None:
    """What ``body`` holds before the first item of a list, or Note or Warning, in its first
    run (the chunker's overlap, when it goes on with a list); None when that run has none."""
    first_run = body.lstrip().split("\n\n", 1)[0]
    lines = [line.strip() for line in first_run.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if BULLET_LINE.match(line) or CALLOUT_LINE.match(line):
            return " ".join(lines[:index])
    return None


def _list_goes_on(body: str, following: str) -> bool:
    """Whether ``following`` goes on with the list ``body`` ends in: it opens with an item, or
    with a Note or Warning (under the last item), after nothing but what the chunker repeated
    from the end of ``body``."""
    before = _list_opening(following)
    return before is not None and (not before or before in " ".join(body.split()))


def may_continue_after(body: str) -> bool:
    """Whether ``body`` ends on a table row, inside a procedure (on a step, or on what
    follows one) or inside a list, so that the next chunk may go on with it."""
    return bool(TABLE_LINE.match(_last_line(body)) or _ends_in_steps(body) or _ends_in_list(body))


def continues_after(body: str, following: str) -> bool:
    """Whether ``following``, the next chunk of ``body``'s section, goes on with the
    procedure or table ``body`` ends on: its first step is the next one (or the last one,
    repeated by the chunker's overlap, when ``body`` ends on it), or it starts with a table
    under the same header."""
    if _ends_in_steps(body):
        steps, next_steps = _steps(body), _steps(following)
        if not next_steps:
            return False
        last_step = next(line for line in reversed(body.splitlines()) if STEP_LINE.match(line))
        # The same step again is the chunker's overlap: always when ``body`` ends on it, and
        # after its Notes only when it is the same line.
        repeated = next_steps[0] == steps[-1] and (
            last_step == _last_line(body) or last_step.strip() in following
        )
        return next_steps[0] == steps[-1] + 1 or repeated
    if not TABLE_LINE.match(_last_line(body)):
        return _ends_in_list(body) and _list_goes_on(body, following)
    header = _table_header(body, last=True)
    return header is not None and _table_header(following, last=False) == header


def joined(first: str, second: str) -> str:
    """The bodies of two neighbouring chunks as one text: what the chunker repeated at the seam
    (the end of ``first`` at the start of ``second``; a table's header row) appears once."""
    first, second = first.rstrip(), second.lstrip()
    header = _table_header(first, last=True)
    if header is not None and _table_header(second, last=False) == header:
        lines = second.splitlines()
        at = next(index for index, line in enumerate(lines) if line.strip() == header)
        if at + 1 < len(lines) and TABLE_SEPARATOR.match(lines[at + 1]):
            before = "\n".join(lines[:at]).strip()
            rows = "\n".join(lines[at + 2 :])
            if not before or first.endswith(before):
                return f"{first}\n{rows}"
    # The overlap in whole lines, however short ("2. Hand Wash", a step that is only its
    # title), then in characters, at least _MIN_OVERLAP of them.
    ends = [line.strip() for line in first.splitlines()]
    second_lines = second.splitlines()
    starts = [line.strip() for line in second_lines]
    for size in range(min(len(ends), len(starts)), 0, -1):
        if ends[-size:] == starts[:size]:
            rest = "\n".join(second_lines[size:])  # a blank line after the seam stays
            return f"{first}\n{rest}" if rest else first
    for size in range(min(len(first), len(second)), _MIN_OVERLAP - 1, -1):
        if first.endswith(second[:size]):
            return first + second[size:]
    # A procedure the chunker parted goes on without a blank line, which would end it at the
    # seam ("- For the speaker, ...", "CAUTION: Do not pull on the wires ...", "4. ...").
    return f"{first}\n{second}" if _ends_in_steps(first) else f"{first}\n\n{second}"
