"""Labelled rows and items of a passage's tables and lists, read by the names a question gives
them. Plain Python (no Django); ``chat.quoting`` scores units by them.

A question picks from a table or list by name when it uses a word of some of its labels, not
of all ("solid blue light": "BLUE - SOLID", not "AMBER - SOLID"; "weight" in each of a table's
labels tells none apart). :func:`label_shares` measures, per such row or item, the share of its
label's IDF weight the question does not use; :func:`below_best` takes the least of them off,
so that the best-named ones lose nothing (``QuoteSettings.label_weight`` says how much the rest
lose); :func:`named_items` are the list items whose whole label the question uses ("what does a
red charge port light mean": "- RED: A fault is detected ..."). Only labels of at most
``label_words`` words count, in tables and lists with at least ``labelled`` of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from chat.text_units import Block, Unit, Vocabulary, terms

__all__ = ["below_best", "label_shares", "named_items"]


def below_best(shares: dict[tuple[int, int, int], float]) -> dict[tuple[int, int, int], float]:
    """:func:`label_shares` less the least of them (see the module docstring)."""
    least = min(shares.values(), default=0.0)
    return {place: share - least for place, share in shares.items()}


def named_items(
    parsed: Sequence[Sequence[Block]], shares: dict[tuple[int, int, int], float]
) -> set[tuple[int, int, int]]:
    """The items (passage, block, unit) of lists whose whole label the question uses, of
    those :func:`label_shares` measured ("what does a red charge port light mean": "- RED: A
    fault is detected ...")."""
    return {
        place
        for place, share in shares.items()
        if share == 0.0 and parsed[place[0]][place[1]].kind == "items"
    }


def label_shares(
    parsed: Sequence[Sequence[Block]],
    question_terms: set[str],
    vocabulary: Vocabulary,
    *,
    label_words: int,
    labelled: int,
) -> dict[tuple[int, int, int], float]:
    """Per labelled row or item of a table or list the question picks from by name: the share
    of its label's IDF weight the question does not use (see the module docstring)."""
    found: dict[tuple[int, int, int], float] = {}
    for passage, blocks in enumerate(parsed):
        for number, block in enumerate(blocks):
            if block.kind not in ("table", "items"):
                continue
            labels = [_label_terms(unit, label_words) for unit in block.units]
            named = [label for label in labels if label]
            if len(named) < labelled:
                continue
            if not question_terms & (set().union(*named) - set.intersection(*named)):
                continue  # no word of the question tells the rows apart ("weight" in each)
            for unit, label in zip(block.units, labels, strict=True):
                weight = sum(vocabulary.idf(term) for term in label)
                if weight > 0:
                    missing = sum(vocabulary.idf(term) for term in label - question_terms)
                    found[(passage, number, unit.index)] = missing / weight
    return found


_ASIDE: Final = re.compile(r"\([^)]*\)|<br\s*/?>", re.IGNORECASE)


def _label_terms(unit: Unit, label_words: int) -> set[str]:
    """The terms of a unit's label, asides in brackets left out ("WHITE (OR LIGHT BLUE)" is
    white); none for a label longer than ``label_words`` (a description, not a name)."""
    label = _ASIDE.sub(" ", unit.label)
    if not label.strip() or len(label.split()) > label_words:
        return set()
    return set(terms(label))
