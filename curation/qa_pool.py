"""Two-stage QA generation over many chunks, with bounded concurrency. No Django here.

For each chunk the model first lists the questions that the chunk alone answers, then answers
each question from the chunk (question_extractor's method). Calls for all chunks share one pool
of ``concurrency`` threads. Answer calls go before new chunks' question calls, so chunks finish
in order and a stop or crash loses little work. Each finished chunk is handed to ``on_outcome``
in the calling thread, which is where the caller writes to its database.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from curation import qa
from manualqa.lib.llm import Completion, LLMClient, LLMError, estimate_tokens, messages_tokens

logger = logging.getLogger("curation.generation")

# Room left for chat-template overhead that token estimates do not see.
_CONTEXT_SAFETY_TOKENS = 64


@dataclass(frozen=True)
class Prompts:
    """The four prompt parts of a run (defaults in ``curation.qa``)."""

    questions_system: str = qa.DEFAULT_QUESTIONS_SYSTEM_PROMPT
    questions_user: str = qa.DEFAULT_QUESTIONS_USER_TEMPLATE
    answer_system: str = qa.DEFAULT_ANSWER_SYSTEM_PROMPT
    answer_user: str = qa.DEFAULT_ANSWER_USER_TEMPLATE


@dataclass(frozen=True)
class ChunkJob:
    """One chunk to generate from. ``key`` is the caller's id for it."""

    key: int
    title: str
    heading_path: str
    text: str
    count: int


@dataclass(frozen=True)
class GeneratedPair:
    question: str
    answer: str
    source_text: str  # the text the answer was written from (a part, if the chunk was split)


@dataclass
class ChunkOutcome:
    """Everything that happened for one chunk: its pairs, or the reason it failed."""

    key: int
    pairs: list[GeneratedPair] = field(default_factory=list)
    error: str | None = None
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


@dataclass
class GenerationStats:
    chunks_done: int = 0
    chunks_failed: int = 0
    pairs: int = 0
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    stopped: bool = False


@dataclass
class _ChunkState:
    job: ChunkJob
    parts: list[str]
    outcome: ChunkOutcome
    open_calls: int = 0
    failed: bool = False


@dataclass(frozen=True)
class _Call:
    state: _ChunkState
    kind: str  # "questions" | "answer"
    part: str
    count: int = 0
    question: str = ""


def split_job(job: ChunkJob, *, client: LLMClient, prompts: Prompts) -> list[str]:
    """The chunk's text, split into parts that fit the endpoint's context with the prompt."""
    config = client.config
    overhead = messages_tokens(
        qa.questions_messages(
            title=job.title,
            heading_path=job.heading_path,
            text="",
            count=job.count,
            system_prompt=prompts.questions_system,
            user_template=prompts.questions_user,
        )
    )
    budget = config.context_window - config.max_tokens - overhead - _CONTEXT_SAFETY_TOKENS
    if budget < 32:
        raise ValueError(
            f"the endpoint's context window ({config.context_window} tokens) leaves no room for "
            f"the text after the prompt and max_tokens={config.max_tokens}"
        )
    return qa.split_to_fit(job.text, budget_tokens=budget, count_tokens=estimate_tokens)


def run_generation(
    jobs: Iterable[ChunkJob],
    *,
    client: LLMClient,
    prompts: Prompts,
    concurrency: int,
    on_outcome: Callable[[ChunkOutcome], None],
    should_stop: Callable[[], bool] = lambda: False,
    poll_s: float = 0.5,
) -> GenerationStats:
    """Generate pairs for every job, ``concurrency`` LLM calls at a time.

    ``on_outcome`` receives each finished chunk (done or failed) in this thread. A chunk with
    any failed call is reported failed with the reason and without pairs. When ``should_stop``
    turns true, no new call starts; calls in flight finish, and chunks left incomplete are not
    reported (they stay pending for a resume). An unexpected exception (a bug, not an LLM
    failure) propagates after the pool has drained.
    """
    stats = GenerationStats()
    started = time.perf_counter()
    job_iter: Iterator[ChunkJob] = iter(jobs)
    answer_calls: deque[_Call] = deque()
    question_calls: deque[_Call] = deque()
    in_flight: dict[Future, _Call] = {}
    stopping = False
    jobs_left = True

    def start_job(job: ChunkJob) -> None:
        state = _ChunkState(job=job, parts=[], outcome=ChunkOutcome(key=job.key))
        try:
            state.parts = split_job(job, client=client, prompts=prompts)
        except ValueError as exc:
            state.outcome.error = str(exc)
            finish(state)
            return
        per_part = max(1, math.ceil(job.count / len(state.parts)))
        for part in state.parts:
            question_calls.append(_Call(state, "questions", part, count=per_part))
            state.open_calls += 1

    finished: list[ChunkOutcome] = []

    def finish(state: _ChunkState) -> None:
        outcome = state.outcome
        if outcome.error is not None:
            outcome.pairs = []
            stats.chunks_failed += 1
        else:
            stats.chunks_done += 1
            stats.pairs += len(outcome.pairs)
        # Handed over only after the free slots are refilled, so that the caller's writes
        # (a database transaction per chunk) overlap with calls in flight instead of idling them.
        finished.append(outcome)

    def hand_over() -> None:
        while finished:
            on_outcome(finished.pop(0))

    def messages_for(call: _Call) -> list[dict[str, str]]:
        job = call.state.job
        passage = {"title": job.title, "heading_path": job.heading_path, "text": call.part}
        if call.kind == "questions":
            return qa.questions_messages(
                **passage,
                count=call.count,
                system_prompt=prompts.questions_system,
                user_template=prompts.questions_user,
            )
        return qa.answer_messages(
            **passage,
            question=call.question,
            system_prompt=prompts.answer_system,
            user_template=prompts.answer_user,
        )

    def handle(call: _Call, future: Future) -> None:
        state = call.state
        state.open_calls -= 1
        try:
            completion: Completion = future.result()
        except LLMError as exc:
            if not state.failed:
                state.failed = True
                state.outcome.error = f"{call.kind} call failed: {exc}"
        else:
            stats.llm_calls += 1
            stats.tokens_in += completion.tokens_in
            stats.tokens_out += completion.tokens_out
            state.outcome.llm_calls += 1
            state.outcome.tokens_in += completion.tokens_in
            state.outcome.tokens_out += completion.tokens_out
            state.outcome.cost += completion.cost(client.config) or 0.0
            if not state.failed:
                accept(call, completion.text)
        if state.open_calls == 0:
            finish(state)

    def accept(call: _Call, text: str) -> None:
        state = call.state
        if call.kind == "answer":
            state.outcome.pairs.append(
                GeneratedPair(call.question, qa.clean_answer(text), source_text=call.part)
            )
            return
        try:
            questions = qa.parse_question_list(text, limit=call.count)
        except qa.MalformedOutput as exc:
            state.failed = True
            state.outcome.error = f"malformed question list: {exc}"
            return
        for question in questions:
            answer_calls.append(_Call(state, "answer", call.part, question=question))
            state.open_calls += 1

    def next_call() -> _Call | None:
        nonlocal jobs_left
        while True:
            while answer_calls:
                call = answer_calls.popleft()
                if call.state.failed:
                    # The chunk already failed: skip its remaining answers.
                    call.state.open_calls -= 1
                    if call.state.open_calls == 0:
                        finish(call.state)
                    continue
                return call
            if question_calls:
                return question_calls.popleft()
            if not jobs_left:
                return None
            job = next(job_iter, None)
            if job is None:
                jobs_left = False
                return None
            start_job(job)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="qa-gen") as pool:
        try:
            while True:
                while not stopping and len(in_flight) < concurrency:
                    call = next_call()
                    if call is None:
                        break
                    future = pool.submit(
                        client.complete,
                        messages_for(call),
                        temperature=None,
                        max_tokens=None,
                    )
                    in_flight[future] = call
                hand_over()
                if not in_flight:
                    break
                done, _ = wait(list(in_flight), timeout=poll_s, return_when=FIRST_COMPLETED)
                for future in done:
                    handle(in_flight.pop(future), future)
                if not stopping and should_stop():
                    stopping = True
                    stats.stopped = True
                    logger.info("generation stopping: %d calls in flight", len(in_flight))
        finally:
            # On an unexpected error let the calls in flight end before the pool closes.
            for future in list(in_flight):
                future.cancel()
    stats.seconds = time.perf_counter() - started
    return stats
