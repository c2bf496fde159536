"""The LLM client layer against a real OpenAI-compatible HTTP server on 127.0.0.1.

No HTTP is mocked: every test talks through the openai SDK to :class:`FakeOpenAI`, whose
faults (error statuses, slow answers, dropped connections, cut streams) happen on the wire.
Only the retry *schedule* tests inject a sleep function, to check the numbers without waiting.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import openai
import pytest

from manualqa.lib.llm import (
    Completion,
    EndpointConfig,
    LLMClient,
    LLMConfigError,
    LLMError,
    RateLimiter,
    StreamDelta,
    StreamEnd,
    estimate_tokens,
    make_client,
    messages_tokens,
)
from tests.fakeopenai import FakeOpenAI, default_responder, fake_token_count

CONTEXT = (
    "To open the charge port, press the button on the charge cable handle. "
    "Cold tires lose about 1 psi for every 10 degrees of temperature drop."
)
MESSAGES = [
    {"role": "system", "content": f"Answer from the manual. Context: {CONTEXT}"},
    {"role": "user", "content": "Question: How do I open the charge port?"},
]
KEY_VARIABLE = "MANUALQA_TEST_LLM_KEY"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def openai_config(fake: FakeOpenAI, **overrides: object) -> EndpointConfig:
    """A config for the fake with short backoffs, so retry tests take milliseconds."""
    settings: dict[str, object] = {
        "kind": "openai",
        "model": "fake-model",
        "base_url": fake.base_url,
        "backoff_s": 0.01,
        "max_backoff_s": 2.0,
        "timeout_s": 5.0,
    }
    settings.update(overrides)
    return EndpointConfig(**settings)  # type: ignore[arg-type]


def azure_config(fake: FakeOpenAI, **overrides: object) -> EndpointConfig:
    return replace(
        openai_config(fake),
        kind="azure_openai",
        model="manual-gpt",
        base_url=fake.azure_endpoint,
        api_version="2024-06-01",
        **overrides,  # type: ignore[arg-type]
    )


def collect(client: LLMClient, **options: object) -> tuple[list[StreamDelta], list[StreamEnd]]:
    deltas, ends = [], []
    for event in client.stream(MESSAGES, **options):  # type: ignore[arg-type]
        (deltas if isinstance(event, StreamDelta) else ends).append(event)
    return deltas, ends


class RecordingSleep:
    """Stands in for time.sleep in schedule tests: records the delays, waits for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class UpperBoundRandom(random.Random):
    """Full jitter always drawing its ceiling, so the schedule's bounds are visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


# --------------------------------------------------------------------------------------------
# Answers


def test_complete_returns_answer_with_usage_reported_by_server(fake: FakeOpenAI) -> None:
    completion = make_client(openai_config(fake)).complete(MESSAGES)

    assert completion.text.startswith("According to the manual")
    assert "press the button on the charge cable handle" in completion.text
    assert completion.finish_reason == "stop"
    assert completion.attempts == 1
    assert completion.model == "fake-model"
    assert completion.tokens_out == fake_token_count(completion.text)
    assert completion.tokens_in == sum(fake_token_count(m["content"]) for m in MESSAGES)
    assert not completion.usage_estimated
    assert completion.latency_s > 0
    (request,) = fake.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["messages"] == MESSAGES
    assert request["body"]["temperature"] == 0.2
    assert request["body"]["max_tokens"] == 512
    # No key configured for a local server: a dummy one is sent, as the SDK needs one.
    assert request["headers"]["authorization"] == "Bearer not-needed"


def test_call_options_override_the_config(fake: FakeOpenAI) -> None:
    client = make_client(openai_config(fake))

    short = client.complete(MESSAGES, temperature=0.0, max_tokens=3)
    stopped = client.complete(MESSAGES, stop=["charge"])

    assert fake.requests[0]["body"]["temperature"] == 0.0
    assert fake.requests[0]["body"]["max_tokens"] == 3
    assert short.finish_reason == "length"
    assert short.tokens_out <= 3
    assert fake.requests[1]["body"]["stop"] == ["charge"]
    assert "charge" not in stopped.text


def test_usage_is_estimated_when_server_reports_none(fake: FakeOpenAI) -> None:
    fake.send_usage = False
    client = make_client(openai_config(fake))

    completion = client.complete(MESSAGES)
    _, (end,) = collect(client)

    for result in (completion, end.completion):
        assert result.usage_estimated
        assert result.tokens_in == messages_tokens(MESSAGES)
        assert result.tokens_out == estimate_tokens(result.text)


def test_stream_yields_deltas_then_one_end_with_the_whole_text(fake: FakeOpenAI) -> None:
    deltas, ends = collect(make_client(openai_config(fake)))

    assert len(deltas) > 3
    (end,) = ends
    assert end.completion.text == "".join(delta.text for delta in deltas)
    assert "press the button" in end.completion.text
    assert end.completion.finish_reason == "stop"
    assert end.completion.tokens_out == fake_token_count(end.completion.text)
    assert not end.completion.usage_estimated
    (request,) = fake.requests
    assert request["body"]["stream"] is True
    assert request["body"]["stream_options"] == {"include_usage": True}


def test_azure_calls_the_deployment_path_with_api_version(fake: FakeOpenAI) -> None:
    client = make_client(azure_config(fake))

    completion = client.complete(MESSAGES)
    deltas, (end,) = collect(client)

    assert "press the button" in completion.text
    assert end.completion.text == "".join(delta.text for delta in deltas)
    for request in fake.requests:
        assert request["path"] == "/openai/deployments/manual-gpt/chat/completions"
        assert request["query"] == {"api-version": "2024-06-01"}
        assert request["headers"]["api-key"] == "not-needed"
    assert completion.model == "manual-gpt"


def test_custom_responder_text_is_returned_verbatim(fake: FakeOpenAI) -> None:
    fake.responder = lambda messages: "1) not\n- a proper\nlist??"

    completion = make_client(openai_config(fake)).complete(MESSAGES)

    assert completion.text == "1) not\n- a proper\nlist??"


# --------------------------------------------------------------------------------------------
# Retries


def test_rate_limit_waits_for_retry_after_then_succeeds(fake: FakeOpenAI) -> None:
    fake.fail_next(1, status=429, retry_after=1)
    started = time.monotonic()

    completion = make_client(openai_config(fake)).complete(MESSAGES)

    assert 0.95 <= time.monotonic() - started < 3
    assert completion.attempts == 2
    first, second = fake.requests
    assert second["time"] - first["time"] >= 0.95


def test_server_errors_are_retried_until_success(fake: FakeOpenAI) -> None:
    fake.fail_next(2, status=500)

    completion = make_client(openai_config(fake)).complete(MESSAGES)

    assert completion.attempts == 3
    assert len(fake.requests) == 3
    assert "press the button" in completion.text


def test_gives_up_after_max_retries_naming_status_and_attempts(fake: FakeOpenAI) -> None:
    fake.fail_next(10, status=503)

    with pytest.raises(LLMError) as caught:
        make_client(openai_config(fake, max_retries=2)).complete(MESSAGES)

    error = caught.value
    assert "HTTP 503 from http://127.0.0.1" in str(error)
    assert "/v1/chat/completions" in str(error)
    assert "gave up after 3 attempts" in str(error)
    assert error.status == 503
    assert error.retryable
    assert error.attempts == 3
    assert len(fake.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(fake: FakeOpenAI, status: int) -> None:
    fake.fail_next(1, status=status)

    with pytest.raises(LLMError) as caught:
        make_client(openai_config(fake)).complete(MESSAGES)

    assert caught.value.status == status
    assert not caught.value.retryable
    assert f"HTTP {status}" in str(caught.value)
    assert len(fake.requests) == 1


def test_timeout_is_retried(fake: FakeOpenAI) -> None:
    fake.slow_next(1, delay_s=3.0)
    started = time.monotonic()

    completion = make_client(openai_config(fake, timeout_s=0.5)).complete(MESSAGES)

    assert completion.attempts == 2
    assert 0.5 <= time.monotonic() - started < 2.5


def test_timeouts_exhausting_retries_say_so(fake: FakeOpenAI) -> None:
    fake.slow_next(2, delay_s=3.0)

    with pytest.raises(LLMError) as caught:
        make_client(openai_config(fake, timeout_s=0.3, max_retries=1)).complete(MESSAGES)

    assert "timed out after 0.3 s" in str(caught.value)
    assert "gave up after 2 attempts" in str(caught.value)
    assert caught.value.status is None


def test_dropped_connection_is_retried(fake: FakeOpenAI) -> None:
    fake.drop_next(1)

    completion = make_client(openai_config(fake)).complete(MESSAGES)

    assert completion.attempts == 2
    assert len(fake.requests) == 2


def test_backoff_is_exponential_with_full_jitter_and_capped(fake: FakeOpenAI) -> None:
    fake.fail_next(4, status=500)
    sleep = RecordingSleep()
    client = make_client(
        openai_config(fake, backoff_s=1.0, max_backoff_s=3.0, max_retries=4),
        sleep=sleep,
        rng=UpperBoundRandom(),
    )

    completion = client.complete(MESSAGES)

    # Ceilings 1, 2, 4 -> capped at 3, 8 -> capped at 3.
    assert sleep.delays == [1.0, 2.0, 3.0, 3.0]
    assert completion.attempts == 5


def test_jitter_draws_between_zero_and_the_ceiling(fake: FakeOpenAI) -> None:
    fake.fail_next(3, status=502)
    sleep = RecordingSleep()
    client = make_client(
        openai_config(fake, backoff_s=1.0, max_backoff_s=30.0), sleep=sleep, rng=random.Random(7)
    )

    client.complete(MESSAGES)

    ceilings = [1.0, 2.0, 4.0]
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(sleep.delays, ceilings, strict=True))
    assert len(set(sleep.delays)) == 3


def test_retry_after_longer_than_max_backoff_is_capped(fake: FakeOpenAI) -> None:
    fake.fail_next(1, status=429, retry_after=100)
    sleep = RecordingSleep()

    make_client(openai_config(fake, max_backoff_s=2.0), sleep=sleep).complete(MESSAGES)

    assert sleep.delays == [2.0]


def test_retry_after_as_http_date_is_honoured(fake: FakeOpenAI) -> None:
    fake.fail_next(
        1,
        status=503,
        retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True),
    )
    sleep = RecordingSleep()

    make_client(openai_config(fake, max_backoff_s=30.0), sleep=sleep).complete(MESSAGES)

    (delay,) = sleep.delays
    assert 8.5 <= delay <= 10.0


# --------------------------------------------------------------------------------------------
# Streams that fail


def test_truncated_stream_yields_received_deltas_then_raises_retryable(fake: FakeOpenAI) -> None:
    fake.truncate_next_stream(1, after_chunks=2)
    received: list[StreamDelta | StreamEnd] = []

    with pytest.raises(LLMError) as caught:
        for event in make_client(openai_config(fake)).stream(MESSAGES):
            received.append(event)

    assert [type(event) for event in received] == [StreamDelta, StreamDelta]
    assert "".join(e.text for e in received if isinstance(e, StreamDelta)) == "According to "
    assert "stream from http://127.0.0.1" in str(caught.value)
    assert "ended early after 2 pieces" in str(caught.value)
    assert caught.value.retryable
    assert len(fake.requests) == 1  # text was already shown: the caller decides, not us


def test_stream_cut_mid_body_yields_received_deltas_then_raises(fake: FakeOpenAI) -> None:
    fake.truncate_next_stream(1, after_chunks=3, cut_connection=True)
    received: list[StreamDelta | StreamEnd] = []

    with pytest.raises(LLMError) as caught:
        for event in make_client(openai_config(fake)).stream(MESSAGES):
            received.append(event)

    assert len(received) == 3
    assert all(isinstance(event, StreamDelta) for event in received)
    assert "ended early" in str(caught.value)
    assert "dropped" in str(caught.value)
    assert caught.value.retryable


@pytest.mark.parametrize(
    "inject",
    [
        lambda fake: fake.fail_next(1, status=500),
        lambda fake: fake.drop_next(1),
        lambda fake: fake.truncate_next_stream(1, after_chunks=0),
    ],
    ids=["server-error", "dropped-connection", "cut-before-text"],
)
def test_stream_failure_before_first_delta_is_retried(fake: FakeOpenAI, inject: object) -> None:
    inject(fake)  # type: ignore[operator]

    deltas, (end,) = collect(make_client(openai_config(fake)))

    assert end.completion.attempts == 2
    assert end.completion.text == "".join(delta.text for delta in deltas)
    assert len(fake.requests) == 2


def test_abandoned_stream_releases_its_concurrency_slot(fake: FakeOpenAI) -> None:
    client = make_client(openai_config(fake, max_concurrency=1))

    with contextlib.closing(client.stream(MESSAGES)) as events:
        next(events)

    # Would block for ever if the slot were still held by the abandoned stream.
    assert client.complete(MESSAGES).attempts == 1


# --------------------------------------------------------------------------------------------
# Limits shared by threads


def test_max_concurrency_caps_requests_in_flight_across_threads(fake: FakeOpenAI) -> None:
    fake.latency_s = 0.2
    client = make_client(openai_config(fake, max_concurrency=2))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: client.complete(MESSAGES), range(8)))

    assert len(results) == 8
    assert fake.max_in_flight == 2


def test_the_rate_limiter_gives_each_caller_the_next_even_slot() -> None:
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))

    limiter = RateLimiter(600, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):  # four callers at the same instant: one now, then one every 0.1 s
        limiter.wait()
    now[0] += 1.0  # a caller after a quiet second goes at once
    limiter.wait()

    assert waits == [0.1, 0.2, 0.3]


def test_requests_per_minute_spaces_requests_on_the_wire(fake: FakeOpenAI) -> None:
    client = make_client(openai_config(fake, requests_per_minute=600, max_concurrency=8))

    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(lambda _: client.complete(MESSAGES), range(5)))

    # Five requests at 600 per minute leave 0.1 s apart, so the last arrives about 0.4 s after
    # the first; unlimited, all five would arrive within a few milliseconds.
    arrivals = sorted(request["time"] for request in fake.requests)
    assert arrivals[-1] - arrivals[0] >= 0.25, arrivals


def test_fake_answers_32_concurrent_requests_in_parallel(fake: FakeOpenAI) -> None:
    fake.latency_s = 0.3
    client = make_client(openai_config(fake, max_concurrency=32))
    started = time.monotonic()

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda _: client.complete(MESSAGES), range(32)))

    elapsed = time.monotonic() - started
    assert all(result.attempts == 1 for result in results)
    assert elapsed < 2.0, f"32 calls at 0.3 s took {elapsed:.2f} s: the server serialises"
    assert fake.max_in_flight > 16


# --------------------------------------------------------------------------------------------
# Keys and configuration


def test_missing_key_for_real_openai_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_VARIABLE, raising=False)

    with pytest.raises(LLMConfigError, match=KEY_VARIABLE):
        make_client(EndpointConfig(kind="openai", model="gpt-4o-mini", api_key_env=KEY_VARIABLE))
    with pytest.raises(LLMConfigError, match="OPENAI_API_KEY"):
        make_client(EndpointConfig(kind="openai", model="gpt-4o-mini"))


def test_key_is_sent_but_never_shown(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv(KEY_VARIABLE, secret)
    fake.api_key = secret
    config = openai_config(fake, api_key_env=KEY_VARIABLE)
    client = make_client(config)

    client.complete(MESSAGES)
    fake.api_key = "sk-some-other-key"  # the server now rejects ours and quotes it back
    with pytest.raises(LLMError) as caught:
        client.complete(MESSAGES)

    assert fake.requests[0]["headers"]["authorization"] == f"Bearer {secret}"
    assert caught.value.status == 401
    assert len(fake.requests) == 2  # a 401 is not retried
    for shown in (str(caught.value), repr(caught.value), repr(config), repr(client)):
        assert secret not in shown
    assert caught.value.__context__ is None  # no SDK exception (with the key) chained


def test_azure_without_deployment_or_version_is_a_config_error() -> None:
    with pytest.raises(LLMConfigError, match="api_version"):
        make_client(EndpointConfig(kind="azure_openai", model="d", base_url="https://x.test"))
    with pytest.raises(LLMConfigError, match="deployment"):
        make_client(EndpointConfig(kind="azure_openai", base_url="https://x.test", api_version="v"))


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(LLMConfigError, match="'anthropic'"):
        make_client(EndpointConfig(kind="anthropic", model="m"))


# --------------------------------------------------------------------------------------------
# Plain functions


def test_cost_uses_prices_per_thousand_tokens() -> None:
    completion = Completion("x", 2000, 500, "stop", 0.1, 1, "m")
    priced = EndpointConfig(kind="openai", price_in_per_1k=0.5, price_out_per_1k=2.0)
    output_only = EndpointConfig(kind="openai", price_out_per_1k=2.0)

    assert completion.cost(priced) == pytest.approx(2.0)
    assert completion.cost(output_only) == pytest.approx(1.0)
    assert completion.cost(EndpointConfig(kind="openai")) is None


def test_token_estimate_is_about_four_characters_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert messages_tokens([{"role": "user", "content": "abcd" * 10}]) == 10 + 4


def test_make_client_returns_clients_that_satisfy_the_protocol(fake: FakeOpenAI) -> None:
    assert isinstance(make_client(openai_config(fake)), LLMClient)
    assert isinstance(make_client(azure_config(fake)), LLMClient)
    assert isinstance(make_client(EndpointConfig(kind="local")), LLMClient)


# --------------------------------------------------------------------------------------------
# The fake itself (other tests and the benchmark build on it)


def test_fake_lists_as_many_questions_as_the_prompt_asks_for() -> None:
    text = default_responder(
        [{"role": "user", "content": f"Write 4 questions a driver might ask about:\n{CONTEXT}"}]
    )

    lines = text.splitlines()
    assert [line.split(".")[0] for line in lines] == ["1", "2", "3", "4"]
    assert all(line.endswith("?") for line in lines)
    assert "charge port" in text


def test_fake_says_when_context_has_no_answer() -> None:
    text = default_responder([{"role": "user", "content": "Question: Where is the spare wheel?"}])

    assert text == "I could not find that in the manual."


def test_fake_serves_the_models_list_to_the_sdk(fake: FakeOpenAI) -> None:
    sdk = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0)

    assert [model.id for model in sdk.models.list()] == ["fake-model"]


def test_fake_consumes_faults_in_order_across_threads(fake: FakeOpenAI) -> None:
    fake.fail_next(3, status=500)
    client = make_client(openai_config(fake, max_retries=0))
    outcomes: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            client.complete(MESSAGES)
            result = "ok"
        except LLMError:
            result = "failed"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["failed"] * 3 + ["ok"] * 2
    assert fake.pending_faults() == 0


def test_a_stream_waits_at_most_the_gate_timeout(fake):
    """Security review H2: a caller behind a stream that someone opened and stopped reading
    gets a retryable error after the endpoint's timeout instead of waiting for ever."""
    fake.chunk_delay_s = 0.05
    client = make_client(openai_config(fake, max_concurrency=1, timeout_s=1.0))
    held = client.stream([{"role": "user", "content": "hello there"}])
    assert isinstance(next(held), StreamDelta)  # the slot is now held, and nobody reads on

    started = time.monotonic()
    with pytest.raises(LLMError, match="slots stayed busy") as refused:
        list(client.stream([{"role": "user", "content": "and me?"}]))
    waited = time.monotonic() - started

    assert refused.value.retryable
    assert 0.9 <= waited < 3.0
    held.close()
    # Closing the abandoned stream gives the slot back.
    assert client.complete([{"role": "user", "content": "now?"}]).text
