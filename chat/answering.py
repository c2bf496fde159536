"""The answer path, stage by stage: decide, quote, build the prompt, generate, verify, compose.

Plain Python (no Django): every stage is a function with plain inputs and outputs, so each is
tested without a database, and ``chat.services`` reads as the list of stages it runs:

1. **retrieve** (``chat.retrieval.retrieve``, the one stage that reads the database) gives the
   passages and the confidence;
2. :func:`decide` declines a question the manual does not answer (nothing close enough, key
   terms the manual never uses, a price, a unit it has no figure in; ``chat.declines``);
3. :func:`quote` composes the quote from the manual (``chat.quoting``): the whole answer of
   the ``quoted`` style, the second half of ``grounded``, the fallback of ``generated``;
   :func:`quote_declines` declines when it holds no figure of the amount asked for, or
   shares almost none of the question's key words, and :func:`quote_asked` then quotes what
   a question asks after telling the owner's situation ("theres a rattle. how do i book");
4. :func:`build_prompt` renders the grounded (or direct) prompt within the endpoint's context;
5. :class:`GuardedStream` generates: it reads any endpoint's stream through a
   ``LoopGuard`` and stops it at the first loop;
6. :class:`StreamingVerifier` verifies each sentence as it completes (``chat.verification``),
   so only supported sentences ever reach the owner;
7. :func:`compose` decides what the owner reads from the verified text and the quote;
8. **record** (``chat.services``) stores it with the raw output and every verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from chat import prompts
from chat.asking import asked_part, key_terms
from chat.declines import Decline, decline_reason, missing_amount, off_the_point
from chat.quoting import Quote, QuotePassage, compose_quote
from chat.text_units import Vocabulary, split_sentences, term_set
from chat.verification import Verdict, Verification, rebuild, verify, word_count
from manualqa.lib.llm import Completion, StreamDelta, StreamEnd
from manualqa.lib.loop_guard import LoopGuard

__all__ = [
    "GROUNDED_MAX_TOKENS",
    "MIN_VERIFIED_WORDS",
    "RARE_TERM_CHUNKS",
    "RARE_TERM_MARGIN",
    "STYLES",
    "AnswerPolicy",
    "Composed",
    "GuardedStream",
    "StreamingVerifier",
    "asked_part",
    "build_prompt",
    "compose",
    "decide",
    "names_a_rare_term",
    "quote",
    "quote_asked",
    "quote_declines",
]

Embed = Callable[[list[str]], np.ndarray]

#: ``generated``: the model's answer, verified; ``quoted``: the quote from the manual alone;
#: ``grounded``: a short verified answer from the model, then the quote.
STYLES: Final = ("generated", "quoted", "grounded")
#: A ``grounded`` answer is a sentence or two before the quote; it never needs more tokens.
GROUNDED_MAX_TOKENS: Final = 64
#: When fewer words than this of the model's answer pass verification, a ``generated`` answer
#: falls back to the quote: a fragment is not an answer. Citation and list markers are not words
#: (:func:`chat.verification.word_count`).
MIN_VERIFIED_WORDS: Final = 6

#: How far under the assistant's ``min_score`` a question may come and still be answered when
#: the passages hold a word of it that the manual uses in at most :data:`RARE_TERM_CHUNKS`
#: chunks: an icon named by one word is described in one item of a long list, which reads far
#: from a short question ("whats the turtle symbol on the screen mean": 0.2997, its item is
#: in the third passage). Over the 453 questions of the seven read Model 3 sets, no unanswerable
#: question came within 0.05 of the threshold with such a word in its passages.
RARE_TERM_MARGIN: Final = 0.05
RARE_TERM_CHUNKS: Final = 3

_PROBE: Final = " Zz"
# How a finished sentence or line ends: punctuation, a closing bracket or quote, a table pipe.
_FINISHED: Final = re.compile(r"[.!?:;)\]\"'|*]\s*$")

GROUNDED_STYLE_INSTRUCTION: Final = (
    "Answer in one or two short sentences, using the words of the passages. Do not add steps, "
    "numbers or advice that the passages do not state."
)


@dataclass(frozen=True)
class AnswerPolicy:
    """How an assistant answers: its style, the token budget of its answers, and its decline
    thresholds (retrieval similarity, key-term coverage and, with a reranker, its score)."""

    style: str
    max_tokens: int
    min_score: float
    min_coverage: float
    #: The assistant's reranker's threshold (``RetrievalModel.decline_below``); None: none.
    decline_below: float | None = None

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown answer style {self.style!r}; expected one of {STYLES}")

    @property
    def generation_tokens(self) -> int:
        """The token budget of the model's part of the answer."""
        if self.style == "grounded":
            return min(self.max_tokens, GROUNDED_MAX_TOKENS)
        return self.max_tokens


# -- 2. decide ---------------------------------------------------------------------------------


def decide(
    question: str,
    passages: Sequence[QuotePassage],
    *,
    confidence: float | None,
    vocabulary: Vocabulary,
    policy: AnswerPolicy,
    embed: Embed,
    answerability: float | None = None,
) -> Decline | None:
    """Why the manual does not answer ``question``, or None when it may.

    ``answerability``: the best passage's reranker score, with ``policy.decline_below`` set
    (an assistant with a reranker). Every signal can decline on its own, in this order:
    nothing similar enough, the reranker's best score under its threshold, then the key-term,
    price and unit checks. Measured by bench/reranker.py (a reranker trained 80 steps on the
    CPU) on the 68 Model 3 owner questions, declines of the 8 unanswerable / false refusals of
    the 60 answerable: all signals 6/8 and 6/60, the reranker alone 1/8 and 5/60, reranker and
    similarity 1/8 and 6/60, the existing signals without a reranker 5/8 and 1/60; on the
    sample manual's questions 3/4 and 0/24 for all signals and for the existing ones. Trained
    150 steps: all signals 5/8 and 5/60, the reranker alone 2/8 and 4/60. Of the ways to use
    the reranker, all signals together declines the most, so that is the rule; such a briefly
    trained reranker does not yet beat the existing signals (see bench/reranker.py).
    """
    if (
        not passages
        or confidence is None
        or (
            confidence < policy.min_score
            and not (
                confidence >= policy.min_score - RARE_TERM_MARGIN
                and names_a_rare_term(question, passages, vocabulary)
            )
        )
    ):
        return Decline(
            reason="similarity",
            message="Nothing in the manual is close to this question.",
            detail={"confidence": confidence, "min_score": policy.min_score},
        )
    if (
        policy.decline_below is not None
        and answerability is not None
        and answerability < policy.decline_below
    ):
        return Decline(
            reason="reranker",
            message="No passage of the manual answers this question.",
            detail={
                "answerability": round(answerability, 4),
                "decline_below": policy.decline_below,
                "confidence": confidence,
            },
        )
    return decline_reason(
        question,
        [f"{p.heading_path}\n{p.body}" for p in passages],
        vocabulary,
        embed=embed,
        min_coverage=policy.min_coverage,
    )


def names_a_rare_term(
    question: str, passages: Sequence[QuotePassage], vocabulary: Vocabulary
) -> bool:
    """Whether the passages hold a key term of ``question`` that the manual uses in at most
    :data:`RARE_TERM_CHUNKS` chunks ("turtle")."""
    rare = {
        term
        for term in key_terms(vocabulary.spell_out(question))
        if 0 < vocabulary.document_frequency.get(term, 0) <= RARE_TERM_CHUNKS
    }
    return bool(rare) and any(
        rare & term_set(f"{passage.heading_path}\n{passage.body}") for passage in passages
    )


# -- 3. quote ----------------------------------------------------------------------------------


#: The quote from the manual that best answers a question: ``chat.quoting.compose_quote``.
quote = compose_quote


# Words of an asked part that refer back to the owner's situation ("... fogging up on the inside,
# how do I clear it fast"): the asked part alone does not say what it asks about.
_REFERS_BACK: Final = re.compile(r"\b(?:it|its|that|this|them|they|these|those)\b", re.IGNORECASE)


def quote_declines(question: str, composed: Quote) -> Decline | None:
    """Why the ``composed`` quote does not answer ``question`` after all: an amount asked for
    that it holds no figure of (``chat.declines.missing_amount``), or it is off the point
    (``chat.declines.off_the_point``)."""
    return missing_amount(question, composed.text) or off_the_point(
        composed.coverage, composed.score
    )


def quote_asked(
    question: str,
    passages: Sequence[QuotePassage],
    decline: Decline | None,
    *,
    embed: Embed,
    vocabulary: Vocabulary,
    whole: Quote | None = None,
) -> Quote | None:
    """The quote for what ``question`` asks after it tells the owner's situation
    (:func:`asked_part`), when that one answers it; else None. Two cases:

    * the quote for the whole question was declined (``decline``) as off the point: the
      situation's words ("theres a weird rattle from the back") count against a quote that
      answers the question ("how do i book a service appt": "After touching Schedule
      Service, ...");
    * it was not, but the situation reads like another passage than what is asked ("buddys
      car battery died, can i use my model 3 to give him a jump" quoted a discharged battery's
      Caution, not "Model 3 cannot be used to jump start another vehicle"): the asked part's
      quote is taken when it fits its question (score plus coverage) better than the
      ``whole`` quote fits the whole, the question ends on what it asks (not "how do i pop off
      the lug nut covers? dont have the tool": the tool finds the removal steps), and what it
      asks does not refer back to the situation ("..., how do I clear it fast"). Measured on
      2026-12-07: blind2 c-015, blind4 f-042 and blind6 h-032 gain their must-include; held-out,
      development, blind, blind3 and blind7 answers word for word the same."""
    if decline is not None and decline.reason != "off_point":
        return None
    asked = asked_part(question)
    if asked == question:
        return None
    if decline is None and (
        whole is None
        or not question.rstrip().endswith(asked.rstrip())  # asked first, then the situation
        or _REFERS_BACK.search(asked)
    ):
        return None
    composed = compose_quote(asked, passages, embed=embed, vocabulary=vocabulary)
    if composed is None or quote_declines(asked, composed) is not None:
        return None
    if decline is None and composed.fit <= whole.fit:
        return None
    return composed


# -- 4. build the prompt -------------------------------------------------------------------------


def build_prompt(
    question: str,
    passages: Sequence[prompts.PromptPassage],
    *,
    mode: str,
    prompt_format: str,
    policy: AnswerPolicy,
    context_window: int,
    system_prompt: str = "",
    history: Sequence[dict[str, str]] = (),
) -> tuple[prompts.RenderedPrompt, int]:
    """The prompt to send, and how many of ``passages`` it holds (all of them are cited in
    ``direct`` mode, where the model sees none). ``rag`` fits the leading passages into the
    endpoint's context after the answer's token budget; ``grounded`` asks for a sentence or
    two."""
    if mode == "direct":
        messages = prompts.direct_messages(question=question, system_prompt=system_prompt)
        return prompts.render(messages, prompt_format=prompt_format), 0
    history = list(history) if prompt_format == "chat" else []
    instructions = system_prompt
    if policy.style == "grounded":
        instructions = (
            f"{system_prompt or prompts.GROUNDED_SYSTEM_PROMPT} {GROUNDED_STYLE_INSTRUCTION}"
        )
    overhead = prompts.render(
        prompts.grounded_messages(
            question=question, passages=[], system_prompt=instructions, history=history
        ),
        prompt_format=prompt_format,
    ).estimated_tokens
    fitted = prompts.fit_passages(
        passages,
        budget_tokens=context_window - policy.generation_tokens,
        overhead_tokens=overhead,
    )
    messages = prompts.grounded_messages(
        question=question, passages=fitted, system_prompt=instructions, history=history
    )
    return prompts.render(messages, prompt_format=prompt_format), len(fitted)


# -- 5. generate, guarded ------------------------------------------------------------------------


class GuardedStream:
    """An endpoint's stream read through a :class:`~manualqa.lib.loop_guard.LoopGuard`.

    Iterating yields the text that is safe so far (complete sentences, never a loop); the
    stream is closed as soon as the guard sees a loop, which stops a local model at its next
    token and a remote one by closing the connection. Afterwards :attr:`raw` is everything
    the model wrote, :attr:`text` what is kept, :attr:`looped` whether it looped, and
    :attr:`completion` the endpoint's usage (None when the stream was stopped early).
    """

    def __init__(self, events: Iterable[StreamDelta | StreamEnd]) -> None:
        self._events = events
        self.guard = LoopGuard()
        self.completion: Completion | None = None
        self.first_piece_at: float | None = None

    @property
    def raw(self) -> str:
        return self.guard.raw

    @property
    def text(self) -> str:
        return self.guard.text.strip()

    @property
    def looped(self) -> bool:
        return self.guard.looped

    @property
    def cut_short(self) -> bool:
        """Whether the model was stopped before it finished: at its token budget, or by the
        guard, or the stream ended without its usage report."""
        return self.looped or self.completion is None or self.completion.finish_reason == "length"

    def __iter__(self) -> Iterator[str]:
        import time

        events = iter(self._events)
        try:
            for event in events:
                if isinstance(event, StreamDelta):
                    if self.first_piece_at is None:
                        self.first_piece_at = time.monotonic()
                    released = self.guard.feed(event.text)
                    if released:
                        yield released
                    if self.guard.looped:
                        break
                elif isinstance(event, StreamEnd):
                    self.completion = event.completion
            rest = self.guard.finish()
            if rest:
                yield rest
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()


# -- 6. verify -----------------------------------------------------------------------------------


class StreamingVerifier:
    """Verifies an answer sentence by sentence as its text arrives.

    ``feed(text)`` returns the verdicts of the sentences it completed (a sentence is complete
    once text follows it); ``finish()`` those of the rest. :meth:`verification` is the whole
    record. Verdicts are the same as :func:`chat.verification.verify` gives on the whole text.
    """

    def __init__(
        self, passages: Sequence[tuple[int, str]], *, embed: Embed, threshold: float | None = None
    ) -> None:
        self._passages = list(passages)
        self._embed = embed
        self._threshold = threshold
        self._text = ""
        self._done = 0
        self.verdicts: list[Verdict] = []

    def feed(self, text: str) -> list[Verdict]:
        self._text += text
        # A sentence is complete when more text could not change it: up to the last space or
        # line break, split the text with a new sentence after it; every sentence but that
        # probe is final ("1." or "e.g." at the end is not).
        settled = self._text[: max(self._text.rfind(" "), self._text.rfind("\n")) + 1]
        complete = split_sentences(settled + _PROBE)[:-1] if settled else []
        return self._verify(complete)

    def finish(self, *, cut_short: bool = False) -> list[Verdict]:
        """Verify what is left. ``cut_short``: the model stopped at its token budget (or was
        stopped), so a last sentence without closing punctuation is an unfinished fragment:
        it is marked so and not shown."""
        sentences = split_sentences(self._text)
        fragment = None
        if cut_short and sentences and not _FINISHED.search(sentences[-1]):
            fragment = sentences.pop()
        verdicts = self._verify(sentences)
        if fragment is not None:
            unfinished = Verdict(text=fragment, supported=False, reason="unfinished")
            self.verdicts.append(unfinished)
            verdicts.append(unfinished)
        return verdicts

    def verification(self) -> Verification:
        return Verification(verdicts=list(self.verdicts), text=rebuild(self._text, self.verdicts))

    def _verify(self, sentences: list[str]) -> list[Verdict]:
        new = sentences[self._done :]
        if not new:
            return []
        kwargs = {} if self._threshold is None else {"threshold": self._threshold}
        checked = verify("\n".join(new), self._passages, embed=self._embed, **kwargs).verdicts
        self._done = len(sentences)
        self.verdicts.extend(checked)
        return checked


# -- 7. compose ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Composed:
    """What the owner reads: ``content`` (the verified answer, or the quote when it stands
    alone), whether the quote is shown under it, and whether the answer fell back to the quote
    because too little of the model's text was supported."""

    content: str
    show_quote: bool
    fell_back: bool = False
    notes: list[str] = field(default_factory=list)


def compose(style: str, *, quote: Quote | None, verified: Verification | None) -> Composed:
    """The answer to show for ``style`` from the quote and the verified model text."""
    quote_text = quote.text if quote is not None else ""
    if style == "quoted" or verified is None:
        return Composed(content=quote_text, show_quote=quote is not None)
    kept = verified.text.strip()
    enough = word_count(kept) >= MIN_VERIFIED_WORDS
    if style == "grounded":
        if enough:
            return Composed(content=kept, show_quote=quote is not None)
        return Composed(content=quote_text, show_quote=quote is not None, fell_back=True)
    if enough:
        return Composed(content=kept, show_quote=False)
    return Composed(content=quote_text, show_quote=quote is not None, fell_back=True)
