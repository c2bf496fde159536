"""Answer-quality metrics for evaluating a model on a question set: pure functions, plain values.

Each answer to an evaluation question is scored on its own (:func:`token_f1`, :func:`rouge_l`,
:func:`must_include_rate`, :func:`retrieval_ranks`, :func:`is_refusal`, :func:`cosine` between
embeddings, latency and token counts) into one dict of metrics, and :func:`aggregate` turns the
list of those dicts into the summary a run stores and a page shows.

Conventions, chosen so that numbers from different runs compare:

* Text is compared after SQuAD's normalisation (:func:`normalize_tokens`): lowercase, no
  punctuation, no English articles. "The 42 psi." and "42 PSI" are the same answer.
* Two empty texts agree perfectly (1.0); an empty text against a non-empty one scores 0.0.
* A metric that does not apply to an answer is ``None`` (a question with no ``must_include``
  strings has no must-include rate), and is left out of the means rather than counted as zero.
  :func:`aggregate` leaves a summary key out altogether when no answer had its input.

Deliberately plain Python (no Django import, no numpy needed): the evaluation task, a management
command, a notebook and the tests all call it with plain values.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from manualqa.lib.loop_guard import find_loop
from manualqa.lib.refusals import REFUSAL_PATTERNS, is_refusal

__all__ = [
    "REFUSAL_PATTERNS",
    "aggregate",
    "answer_words",
    "cosine",
    "hit_at",
    "is_refusal",
    "loops",
    "must_include_rate",
    "normalize_tokens",
    "percentile",
    "reciprocal_rank",
    "refusal_outcome",
    "retrieval_ranks",
    "rouge_l",
    "source_key",
    "token_f1",
]

_ARTICLES: Final = re.compile(r"\b(?:a|an|the)\b")
_ASCII_PUNCTUATION: Final = frozenset(string.punctuation)


def _is_punctuation(char: str) -> bool:
    # string.punctuation is SQuAD's set (it includes symbols such as "$" and "+"); the Unicode
    # "P*" categories add the curly quotes, dashes and ellipses that LLM output is full of.
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize_tokens(text: str) -> list[str]:
    """SQuAD-style normalisation of ``text`` into tokens.

    Lowercases, deletes punctuation (so "don't" becomes "dont" and "3.5" becomes "35", exactly
    as the SQuAD evaluation script does), drops the articles "a", "an" and "the", and splits on
    whitespace.
    """
    lowered = text.lower()
    without_punctuation = "".join(char for char in lowered if not _is_punctuation(char))
    return _ARTICLES.sub(" ", without_punctuation).split()


def _empty_convention(prediction: list[str], reference: list[str]) -> float | None:
    """1.0 when both token lists are empty, 0.0 when exactly one is, ``None`` otherwise."""
    if not prediction and not reference:
        return 1.0
    if not prediction or not reference:
        return 0.0
    return None


def _f_measure(matched: int, predicted: int, expected: int) -> float:
    if matched == 0:
        return 0.0
    precision = matched / predicted
    recall = matched / expected
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between ``prediction`` and ``reference``.

    Tokens are matched as multisets: a token shared by both counts as many times as it appears
    in both (the smaller of its two counts), never more. Word order does not matter.
    """
    predicted = normalize_tokens(prediction)
    expected = normalize_tokens(reference)
    empty = _empty_convention(predicted, expected)
    if empty is not None:
        return empty
    shared = sum((Counter(predicted) & Counter(expected)).values())
    return _f_measure(shared, len(predicted), len(expected))


def _lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence, in O(len(first) * len(second)) time."""
    if len(first) < len(second):
        first, second = second, first
    previous = [0] * (len(second) + 1)
    for item in first:
        current = [0]
        for index, other in enumerate(second, start=1):
            if item == other:
                current.append(previous[index - 1] + 1)
            else:
                current.append(max(previous[index], current[index - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1) between ``prediction`` and ``reference``.

    Precision and recall are the length of the longest common subsequence of the normalised
    tokens divided by the prediction's and the reference's token counts. Unlike
    :func:`token_f1` it rewards keeping the reference's word order.
    """
    predicted = normalize_tokens(prediction)
    expected = normalize_tokens(reference)
    empty = _empty_convention(predicted, expected)
    if empty is not None:
        return empty
    return _f_measure(_lcs_length(predicted, expected), len(predicted), len(expected))


def _collapse(text: str) -> str:
    return " ".join(text.casefold().split())


def must_include_rate(answer: str, must_include: Iterable[str]) -> float | None:
    """Fraction of the ``must_include`` strings that appear in ``answer``.

    Matching is a plain substring test, case-insensitive and with every run of whitespace
    (newlines included) collapsed to one space on both sides, so "42 psi" is found in
    "set them to 42\\nPSI". Blank strings are ignored. ``None`` when there is nothing to check.
    """
    wanted = [_collapse(text) for text in must_include]
    wanted = [text for text in wanted if text]
    if not wanted:
        return None
    haystack = _collapse(answer)
    return sum(text in haystack for text in wanted) / len(wanted)


def answer_words(answer: str) -> int:
    """How many words an answer has (what an owner has to read)."""
    return len(answer.split())


def loops(answer: str, sources: Sequence[str] = ()) -> int:
    """1 when the answer repeats itself (a line, a sentence or a long run of words comes
    again, ``manualqa.lib.loop_guard``), else 0.

    A line the answer quotes word for word from ``sources`` (the passages it rests on), no
    more often than they hold it, is the manual's own text: manuals repeat long runs from one
    step to the next (the Model 3 manual's silver door handle procedure: "of the door handle,
    use the bottom of your fist to forcefully bump the door handle", 16 words, in steps 2 and
    3), and quoting them is no loop. A line the answer holds more often than the sources is
    checked with the rest."""
    held = Counter(line.strip() for source in sources for line in source.splitlines())
    written = Counter(line.strip() for line in answer.splitlines())
    own = [
        "" if line.strip() and written[line.strip()] <= held[line.strip()] else line
        for line in answer.splitlines()
    ]
    return 0 if find_loop("\n".join(own)) is None else 1


def source_key(name: str) -> str:
    """The page file name that a document source name or a chunk's source path refers to.

    Expected sources in a question set are page file names ("charging_instructions.md");
    retrieval returns whatever the ingestion recorded, which may be the same name, a path
    ("data_gpt35_v2/docs/charging_instructions.md") or a path with the chunk's heading appended
    ("data_gpt35_v2/docs/charging_instructions.md/##Charging Settings"). All three reduce to
    "charging_instructions.md". The heading part starts at the first path segment beginning
    with "#" and is dropped; of what remains, the last segment ending in ".md" is the page (or
    the last segment, for sources that are not markdown files). Case is folded, because file
    systems and URLs disagree about it.
    """
    segments = [segment.strip() for segment in name.replace("\\", "/").split("/")]
    segments = [segment for segment in segments if segment]
    for index, segment in enumerate(segments):
        if segment.startswith("#"):
            segments = segments[:index]
            break
    if not segments:
        return ""
    for segment in reversed(segments):
        if segment.casefold().endswith(".md"):
            return segment.casefold()
    return segments[-1].casefold()


def retrieval_ranks(
    retrieved_sources: Sequence[str], expected_sources: Iterable[str]
) -> int | None:
    """1-based rank of the first retrieved item whose page is one of ``expected_sources``.

    Both sides are compared by :func:`source_key`. ``None`` when no retrieved item matches (or
    nothing was expected), which :func:`hit_at` and :func:`reciprocal_rank` score as a miss.
    """
    expected = {source_key(source) for source in expected_sources} - {""}
    for rank, source in enumerate(retrieved_sources, start=1):
        if source_key(source) in expected:
            return rank
    return None


def _check_rank(rank: int | None) -> None:
    if rank is not None and rank < 1:
        raise ValueError(f"A retrieval rank starts at 1, got {rank}.")


def hit_at(rank: int | None, k: int) -> float:
    """1.0 when the first relevant item was retrieved within the top ``k``, else 0.0."""
    _check_rank(rank)
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None) -> float:
    """1 / ``rank`` of the first relevant item, 0.0 when none was retrieved (the MRR term)."""
    _check_rank(rank)
    return 0.0 if rank is None else 1.0 / rank


def refusal_outcome(answer: str, unanswerable: bool) -> dict[str, bool | None]:
    """How an answer's (non-)refusal scores, given whether the manual answers the question.

    ``refused`` is :func:`is_refusal`. On an unanswerable question ``correct_refusal`` is
    ``refused`` (declining is the right answer) and ``false_refusal`` is ``None``; on an
    answerable one ``false_refusal`` is ``refused`` (declining lost a good answer) and
    ``correct_refusal`` is ``None``. :func:`aggregate` averages them into ``refusal_accuracy``
    and ``false_refusal_rate`` from the ``refused`` and ``unanswerable`` keys.
    """
    refused = is_refusal(answer)
    return {
        "refused": refused,
        "unanswerable": unanswerable,
        "correct_refusal": refused if unanswerable else None,
        "false_refusal": None if unanswerable else refused,
    }


def percentile(values: Iterable[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100) of ``values``, ``None`` when there are none.

    Linear interpolation between the two nearest ranks, as ``numpy.percentile``'s default
    ("linear") method: the position is ``(n - 1) * p / 100`` in the sorted values.
    """
    if not 0 <= p <= 100:
        raise ValueError(f"A percentile is between 0 and 100, got {p}.")
    ordered = sorted(float(value) for value in values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * p / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def cosine(a: Iterable[float], b: Iterable[float]) -> float:
    """Cosine similarity of two embedding vectors (lists, tuples or 1-D numpy arrays).

    0.0 when either vector is all zeros (an embedding that carries no direction is similar to
    nothing). Vectors of different lengths are a programming error and raise ``ValueError``.
    """
    first = [float(value) for value in a]
    second = [float(value) for value in b]
    if len(first) != len(second):
        raise ValueError(f"Vectors differ in length: {len(first)} and {len(second)}.")
    norm_first = math.sqrt(math.fsum(value * value for value in first))
    norm_second = math.sqrt(math.fsum(value * value for value in second))
    if norm_first == 0 or norm_second == 0:
        return 0.0
    dot = math.fsum(x * y for x, y in zip(first, second, strict=True))
    return dot / (norm_first * norm_second)


def _mean(values: Iterable[float]) -> float | None:
    collected = [float(value) for value in values]
    return math.fsum(collected) / len(collected) if collected else None


def aggregate(items: Sequence[Mapping[str, Any]]) -> dict[str, float | int]:
    """The summary of one evaluation run from its per-answer metric dicts.

    Each item may carry ``token_f1``, ``rouge_l``, ``semantic_similarity``,
    ``must_include_rate``, ``rank`` (present only when the question had expected sources and
    retrieval ran; ``None`` means nothing relevant was retrieved), ``refused``,
    ``unanswerable`` (missing means answerable), ``latency_ms``, ``prompt_tokens`` and
    ``completion_tokens``. A ``None`` value means "does not apply" and is skipped.

    Items may also carry ``supported_sentence_rate`` (share of the answer's sentences the
    passages support), ``model_supported_rate`` (the same for the model's own text before
    unsupported sentences were cut), ``loops`` (0/1) and ``answer_words``.

    Returns ``hit@1``, ``hit@3``, ``hit@5`` and ``mrr`` (over items with a ``rank`` key),
    ``must_include_rate`` (mean), ``refusal_accuracy`` (share of unanswerable questions
    declined), ``false_refusal_rate`` (share of answerable questions declined), ``token_f1``,
    ``rouge_l`` and ``semantic_similarity`` (means over answerable items only: an unanswerable
    question has no reference to compare with), ``latency_p50_ms`` and ``latency_p95_ms``,
    ``prompt_tokens`` and ``completion_tokens`` (means per answer), ``supported_sentence_rate``,
    ``model_supported_rate`` and ``loop_rate`` (means), ``answer_words`` (the median over
    answerable questions) and ``count`` (all items).
    A key whose input no item has is left out rather than set to ``None``.
    """
    summary: dict[str, float | int] = {}

    def put(key: str, value: float | None) -> None:
        if value is not None:
            summary[key] = value

    def values(key: str, *, answerable_only: bool = False) -> list[Any]:
        return [
            item[key]
            for item in items
            if item.get(key) is not None
            and not (answerable_only and item.get("unanswerable", False))
        ]

    ranks = [item["rank"] for item in items if "rank" in item]
    if ranks:
        for k in (1, 3, 5):
            put(f"hit@{k}", _mean(hit_at(rank, k) for rank in ranks))
        put("mrr", _mean(reciprocal_rank(rank) for rank in ranks))

    put("must_include_rate", _mean(values("must_include_rate")))

    declines = [
        (bool(item["refused"]), bool(item.get("unanswerable", False)))
        for item in items
        if item.get("refused") is not None
    ]
    put("refusal_accuracy", _mean(refused for refused, unanswerable in declines if unanswerable))
    put(
        "false_refusal_rate",
        _mean(refused for refused, unanswerable in declines if not unanswerable),
    )

    for key in ("token_f1", "rouge_l", "semantic_similarity"):
        put(key, _mean(values(key, answerable_only=True)))

    put("supported_sentence_rate", _mean(values("supported_sentence_rate")))
    put("model_supported_rate", _mean(values("model_supported_rate")))
    put("loop_rate", _mean(values("loops")))
    put("answer_words", percentile(values("answer_words", answerable_only=True), 50))

    latencies = values("latency_ms")
    put("latency_p50_ms", percentile(latencies, 50))
    put("latency_p95_ms", percentile(latencies, 95))
    put("prompt_tokens", _mean(values("prompt_tokens")))
    put("completion_tokens", _mean(values("completion_tokens")))

    summary["count"] = len(items)
    return summary
