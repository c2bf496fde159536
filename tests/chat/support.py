"""Helpers for chat tests: a fake that also serves ``/v1/completions``, small manuals, owners."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from chat import services
from chat.events import ChatEvent
from chat.models import Assistant
from chat.owners import Owner
from curation import services as curation_services
from curation.models import LLMEndpoint, Manual
from curation.services import CleanDocument
from tests.fakeopenai import FakeOpenAI, _json, _limit, fake_token_count
from tests.httpserver import Response

_counter = itertools.count(1)


class FakeOpenAIWithCompletions(FakeOpenAI):
    """:class:`FakeOpenAI` plus the legacy ``POST /v1/completions`` (a raw ``prompt``), which
    vLLM and TGI serve for models with a prompt format of their own.

    The responder sees the prompt as one user message. Completions requests are recorded in
    ``requests`` like chat ones (``path`` tells them apart); :meth:`completion_requests`
    lists them.
    """

    def completion_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v1/completions"]

    def _handle(
        self, method: str, path_with_query: str, headers: Mapping[str, str], body: bytes
    ) -> Response | Iterator[bytes]:
        if urlsplit(path_with_query).path != "/v1/completions":
            return super()._handle(method, path_with_query, headers, body)
        payload = json.loads(body)
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": "/v1/completions",
                    "query": {},
                    "headers": {k.lower(): v for k, v in headers.items()},
                    "body": payload,
                    "deployment": None,
                    "time": time.monotonic(),
                }
            )
        text = self.responder([{"role": "user", "content": payload["prompt"]}])
        text, finish_reason = _limit(text, payload)
        usage = {
            "prompt_tokens": fake_token_count(payload["prompt"]),
            "completion_tokens": fake_token_count(text),
            "total_tokens": fake_token_count(payload["prompt"]) + fake_token_count(text),
        }
        model = str(payload.get("model") or self.model)
        if not payload.get("stream"):
            return _json(
                200,
                {
                    "id": "cmpl-fake",
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
                    ],
                    "usage": usage,
                },
            )

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            document = {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(document)}\n\n".encode()

        def events() -> Iterator[bytes]:
            for piece in re.findall(r"\S+\s*|\s+", text):
                yield chunk([{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}])
            yield chunk(
                [{"index": 0, "text": "", "finish_reason": finish_reason, "logprobs": None}]
            )
            yield chunk([], usage=usage)
            yield b"data: [DONE]\n\n"

        return Response(headers={"Content-Type": "text/event-stream"}, body=events())


def openai_endpoint(base_url: str, **overrides: Any) -> LLMEndpoint:
    fields = {
        "name": f"Fake OpenAI {next(_counter)}",
        "kind": LLMEndpoint.Kind.OPENAI,
        "model": "fake-model",
        "base_url": base_url,
        "temperature": 0.0,
        "max_tokens": 200,
        "max_retries": 0,
        "timeout_s": 10,
    }
    return LLMEndpoint.objects.create(**{**fields, **overrides})


def make_assistant(manual: Manual, **fields: Any) -> Assistant:
    fields.setdefault("name", f"Assistant {next(_counter)}")
    return services.assistant_create(manuals=[manual], **fields)


TINY_PAGES = {
    "wipers.md": (
        "Wipers",
        "# Wipers\n\n## Replacing the Wiper Blades\n\nLift the wiper arm away from the windshield, "
        "press the release tab and slide the old blade off the arm. Fit the new blade until it "
        "clicks.\n",
    ),
    "tires.md": (
        "Tires",
        "# Tires\n\n## Tire Pressure\n\nInflate the tires to 42 PSI (290 kPa) when they are cold. "
        "Check the pressure once a month with an accurate gauge.\n",
    ),
    "charging.md": (
        "Charging",
        "# Charging\n\n## Charge Port Release\n\nIf the charge port door will not open, pull the "
        "manual release cable on the left side of the trunk.\n",
    ),
}


def tiny_manual(name: str = "Tiny manual") -> Manual:
    """A three-page manual, ingested and embedded in the current transaction (a second or so)."""
    manual = curation_services.manual_get_or_create(name=name)
    for source_name, (title, markdown) in TINY_PAGES.items():
        curation_services.document_upsert(
            manual=manual,
            clean=CleanDocument(source_name, "", title, markdown, len(markdown.split())),
        )
    curation_services.chunks_embed_pending(manual=manual)
    return manual


def session_owner(key: str = "session-one", ip: str = "10.0.0.1") -> Owner:
    return Owner.for_session(key, client_ip=ip)


def collect(events: Iterable[ChatEvent]) -> list[ChatEvent]:
    return list(events)


def numbered_passage_containing(prompt: str, phrase: str) -> int:
    """The number ``n`` of the prompt's passage ``[n]`` whose text contains ``phrase``."""
    blocks = re.split(r"\n\n(?=\[\d+\] )", prompt)
    for block in blocks:
        match = re.match(r"(?:.*?\n\n)?\[(\d+)\] ", block, re.DOTALL)
        if match and phrase.lower() in block.lower():
            return int(match.group(1))
    raise AssertionError(f"no passage contains {phrase!r}")
