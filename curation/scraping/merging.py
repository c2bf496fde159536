"""Joining an item with the one after it: the pass that HTML paragraphs, PDF blocks and PDF
line segments each make to put a lone label or list marker back with the text it belongs to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def merge_with_next(
    items: Sequence[T],
    join: Callable[[T, T], T | None],
    keep: Callable[[T], T] | None = None,
) -> list[T]:
    """``items`` in order, each pair that ``join(item, following)`` joins replaced by what it
    returns; ``None`` from ``join`` leaves ``item`` standing alone, passed through ``keep``
    where given. A joined item is not joined again with the one after it."""
    merged: list[T] = []
    index = 0
    while index < len(items):
        item = items[index]
        joined = join(item, items[index + 1]) if index + 1 < len(items) else None
        if joined is not None:
            merged.append(joined)
            index += 2
            continue
        merged.append(keep(item) if keep is not None else item)
        index += 1
    return merged
