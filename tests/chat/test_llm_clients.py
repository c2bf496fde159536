"""The ``sagemaker`` endpoint kind and raw-prompt completions, against real loopback servers.

``manualqa.lib.llm`` gained these for chat: a SageMaker TGI client (boto3, with the endpoint URL
pointed at a fake SageMaker runtime on 127.0.0.1) and ``complete_prompt``/``stream_prompt``
for models that must be prompted in their own trained format.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from manualqa.lib.llm import EndpointConfig, LLMError, StreamDelta, StreamEnd, make_client
from tests.chat.fakesagemaker import FakeSageMaker
from tests.chat.support import FakeOpenAIWithCompletions

CHAT = [
    {"role": "system", "content": "Answer from the manual."},
    {"role": "user", "content": "How do I open the charge port without power?"},
]
ANSWER = "Pull the manual release cable on the left side of the trunk."


@pytest.fixture(autouse=True)
def dummy_aws_credentials(monkeypatch) -> None:
    # boto3 signs every request; the fake does not check the signature.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def sagemaker() -> Iterator[FakeSageMaker]:
    with FakeSageMaker(lambda inputs: ANSWER) as fake:
        yield fake


def sagemaker_config(fake: FakeSageMaker, **overrides) -> EndpointConfig:
    fields = {
        "kind": "sagemaker",
        "model": "tgi-endpoint",
        "base_url": fake.endpoint_url,
        "region": "eu-west-1",
        "max_retries": 2,
        "backoff_s": 0.01,
    }
    return EndpointConfig(**{**fields, **overrides})


def test_sagemaker_sends_tgi_inputs_and_parameters_and_reads_generated_text(sagemaker):
    client = make_client(sagemaker_config(sagemaker, temperature=0.7, top_p=0.9))

    completion = client.complete(CHAT, max_tokens=64)

    assert completion.text == ANSWER
    assert completion.tokens_out == len(ANSWER.split())
    assert completion.finish_reason == "stop"
    request = sagemaker.requests[-1]
    assert request["endpoint"] == "tgi-endpoint" and request["operation"] == "invocations"
    assert request["body"] == {
        "inputs": "<s>[INST] <<SYS>>\nAnswer from the manual.\n<</SYS>>\n\n"
        "How do I open the charge port without power? [/INST]",
        "parameters": {
            "max_new_tokens": 64,
            "temperature": 0.7,
            "top_p": 0.9,
            "do_sample": True,
            "return_full_text": False,
            "details": True,
            "stop": ["</s>", "[INST]"],
        },
    }
    # Signed for SageMaker in the configured region, as AWS expects.
    assert "/eu-west-1/sagemaker/aws4_request" in request["headers"]["authorization"]


def test_sagemaker_greedy_decoding_sends_no_temperature(sagemaker):
    make_client(sagemaker_config(sagemaker, temperature=0.0)).complete(CHAT)

    parameters = sagemaker.requests[-1]["body"]["parameters"]
    assert parameters["do_sample"] is False
    assert "temperature" not in parameters and "top_p" not in parameters


def test_sagemaker_stream_reassembles_tgi_tokens_from_event_stream_parts(sagemaker):
    sagemaker.responder = lambda inputs: "Réglez la pression à 42 PSI quand les pneus sont froids."
    client = make_client(sagemaker_config(sagemaker))

    events = list(client.stream(CHAT))

    deltas = [e.text for e in events if isinstance(e, StreamDelta)]
    (end,) = [e for e in events if isinstance(e, StreamEnd)]
    assert len(deltas) > 5
    assert "".join(deltas) == end.completion.text == sagemaker.responder("")
    assert sagemaker.requests[-1]["operation"] == "invocations-response-stream"
    assert sagemaker.requests[-1]["body"]["stream"] is True


def test_sagemaker_stream_stops_at_the_seed_formats_end_marker(sagemaker):
    sagemaker.responder = lambda inputs: "Use 42 PSI. </s> [INST] next question"

    events = list(make_client(sagemaker_config(sagemaker)).stream(CHAT))

    assert "".join(e.text for e in events if isinstance(e, StreamDelta)) == "Use 42 PSI. "
    assert events[-1].completion.finish_reason == "stop"


def test_sagemaker_retries_a_503_then_answers(sagemaker):
    sagemaker.fail_next(1, status=503)

    completion = make_client(sagemaker_config(sagemaker)).complete(CHAT)

    assert completion.text == ANSWER and completion.attempts == 2


def test_sagemaker_gives_up_after_its_retries_with_a_clear_error(sagemaker):
    sagemaker.fail_next(5, status=503)

    with pytest.raises(LLMError) as caught:
        make_client(sagemaker_config(sagemaker, max_retries=1)).complete(CHAT)

    message = str(caught.value)
    assert "HTTP 503" in message and "/endpoints/tgi-endpoint/invocations" in message
    assert "gave up after 2 attempts" in message
    assert caught.value.retryable


def test_an_unknown_sagemaker_endpoint_is_not_retried_and_says_to_check_the_name(sagemaker):
    with pytest.raises(LLMError) as caught:
        make_client(sagemaker_config(sagemaker, model="no-such-endpoint")).complete(CHAT)

    assert "check the SageMaker endpoint name and region" in str(caught.value)
    assert caught.value.attempts == 1 and not caught.value.retryable
    assert len(sagemaker.requests) == 1


def test_a_container_error_names_the_containers_own_status(sagemaker):
    sagemaker.fail_next(1, status=424)

    with pytest.raises(LLMError, match=r"HTTP 424 .*the model container answered HTTP 422"):
        make_client(sagemaker_config(sagemaker)).complete(CHAT)


def test_sagemaker_without_aws_credentials_is_a_configuration_error(sagemaker, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    with pytest.raises(LLMError, match="no AWS credentials"):
        make_client(sagemaker_config(sagemaker)).complete(CHAT)


def test_sagemaker_needs_an_endpoint_name():
    with pytest.raises(LLMError, match="SageMaker endpoint name"):
        make_client(EndpointConfig(kind="sagemaker"))


def test_openai_compatible_raw_prompts_go_to_the_completions_api():
    with FakeOpenAIWithCompletions(lambda messages: "Use 42 PSI. </s>") as fake:
        client = make_client(
            EndpointConfig(kind="openai", model="tuned", base_url=fake.base_url, max_retries=0)
        )
        completion = client.complete_prompt(
            "<s>[INST] Tire pressure? [/INST]", max_tokens=20, stop=["</s>"]
        )
        streamed = list(client.stream_prompt("<s>[INST] Tire pressure? [/INST]", stop=["</s>"]))

    assert completion.text == "Use 42 PSI. "
    assert not completion.usage_estimated
    assert "".join(e.text for e in streamed if isinstance(e, StreamDelta)) == "Use 42 PSI. "
    assert isinstance(streamed[-1], StreamEnd) and not streamed[-1].completion.usage_estimated
    requests = fake.completion_requests()
    assert len(requests) == 2 and not fake.chat_requests()
    assert requests[0]["body"]["prompt"] == "<s>[INST] Tire pressure? [/INST]"
    assert requests[0]["body"]["stop"] == ["</s>"]
