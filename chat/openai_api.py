"""ManualQA's assistants behind the OpenAI API, for any OpenAI client (the openai SDK, Open WebUI).

* ``GET /v1/models``: the active assistants; a model's ``id`` is the assistant's slug.
* ``POST /v1/chat/completions`` ``{model, messages, stream?, conversation?}``: the answer to
  the last user message, through the same answer path as the chat page (retrieval, declines,
  the quote, verification), so an owner reads the same thing here. ``content`` is what the
  page shows (the answer, then the quote from the manual when it differs); the citations come
  in an extra ``citations`` field, and ``manualqa`` carries the stored conversation and message
  ids, whether the answer was declined, and the quote. With ``stream: true`` the answer comes as
  ``chat.completion.chunk`` server-sent events, ending with ``data: [DONE]``.

The assistant's own settings decide how it answers: ``temperature``, ``max_tokens`` and the
other sampling fields of the request are accepted and ignored, and earlier messages of
``messages`` are not read (a client sends the whole history each time). To ask a follow-up
in the same stored conversation, send the ``conversation`` id the previous answer returned
(``extra_body={"conversation": id}`` with the openai SDK).

Authentication is an API token as a bearer key (``Authorization: Bearer <token>``; a user's
token is made in the admin or with ``manage.py drf_create_token``), never a cookie, so these
views need no CSRF check. The chat's per-owner rate limit and stream cap apply. Errors have the
OpenAI shape, ``{"error": {"message", "type", "param", "code"}}``, with the status the SDK maps
to its exceptions (401, 404, 400, 429 with ``Retry-After``, 502).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from rest_framework.authtoken.models import Token

from chat import selectors, services
from chat.events import ChatEvent, Citations, Done, Failed
from chat.events import Token as TokenEvent
from chat.models import Assistant, Message
from chat.owners import Owner
from manualqa.clients import client_ip
from manualqa.streaming import event_stream

__all__ = ["chat_completions", "models"]

OWNED_BY = "manualqa"


def _error(
    status: int, message: str, *, kind: str, code: str, param: str | None = None, **headers: str
) -> JsonResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _invalid(message: str, param: str | None = None) -> JsonResponse:
    return _error(400, message, kind="invalid_request_error", code="invalid", param=param)


def _owner(request: HttpRequest) -> Owner | None:
    """The token's user as the owner, or None without a valid ``Authorization: Bearer``."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    token = Token.objects.select_related("user").filter(key=key.strip()).first()
    if token is None or not token.user.is_active:
        return None
    return Owner.for_user(token.user, client_ip=client_ip(request))


def _unauthorized() -> JsonResponse:
    return _error(
        401,
        "Send an API token as the bearer key: Authorization: Bearer <token>.",
        kind="invalid_request_error",
        code="invalid_api_key",
        WWW_Authenticate='Bearer realm="manualqa"',
    )


def _model(assistant: Assistant) -> dict[str, Any]:
    return {
        "id": assistant.slug,
        "object": "model",
        "created": int(assistant.created_at.timestamp()),
        "owned_by": OWNED_BY,
        "name": assistant.name,
    }


@csrf_exempt
@require_GET
def models(request: HttpRequest) -> HttpResponse:
    if _owner(request) is None:
        return _unauthorized()
    data = [_model(assistant) for assistant in selectors.assistants_available()]
    return JsonResponse({"object": "list", "data": data})


def _question(body: dict[str, Any]) -> str | JsonResponse:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid("messages must be a non-empty list of {role, content}.", "messages")
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return _invalid("The last message must be the user's question.", "messages")
    content = last.get("content")
    if isinstance(content, list):  # content parts: the text ones are the question
        content = " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    if not isinstance(content, str):
        return _invalid("The user's message content must be text.", "messages")
    return content


@csrf_exempt
@require_POST
def chat_completions(request: HttpRequest) -> HttpResponse:
    owner = _owner(request)
    if owner is None:
        return _unauthorized()
    try:
        body = json.loads(request.body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _invalid(f"The body is not JSON: {exc}.")
    if not isinstance(body, dict):
        return _invalid("The body must be a JSON object.")
    slug = body.get("model")
    if not isinstance(slug, str) or not slug:
        return _invalid("Name the assistant's slug as the model (see GET /v1/models).", "model")
    question = _question(body)
    if isinstance(question, JsonResponse):
        return question
    try:
        assistant = selectors.assistant_get(ref=slug)
    except Http404:
        return _error(
            404,
            f"The model {slug!r} does not exist: GET /v1/models lists the assistants.",
            kind="invalid_request_error",
            code="model_not_found",
            param="model",
        )
    conversation = None
    if body.get("conversation") is not None:
        try:
            conversation = selectors.conversation_get(
                owner=owner, conversation_id=int(body["conversation"])
            )
        except (Http404, TypeError, ValueError):
            return _error(
                404,
                f"No conversation {body['conversation']!r} of yours.",
                kind="invalid_request_error",
                code="conversation_not_found",
                param="conversation",
            )
    try:
        events = services.answer_stream(
            assistant=assistant, question=question, owner=owner, conversation=conversation
        )
    except services.RateLimited as exc:
        return _error(
            429,
            exc.message,
            kind="rate_limit_error",
            code=exc.code,
            Retry_After=str(exc.retry_after_s),
        )
    except services.ChatError as exc:
        return _invalid(exc.message, exc.field)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.get("stream"):
        return event_stream(request, _chunks(events, completion_id, assistant.slug))
    message, failure = None, ""
    for event in events:
        if isinstance(event, Done):
            message = event.message
        elif isinstance(event, Failed):
            message, failure = event.message, event.error
    if message is None or message.error:
        return _error(
            502,
            failure or (message.error if message else "The answer failed."),
            kind="api_error",
            code="answer_failed",
        )
    return JsonResponse(_completion(message, completion_id, assistant.slug))


def _usage(message: Message) -> dict[str, int]:
    prompt, completion = message.prompt_tokens or 0, message.completion_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _extra(message: Message) -> dict[str, Any]:
    return {
        "citations": message.citations,
        "manualqa": {
            "conversation": message.conversation_id,
            "message": message.pk,
            "declined": message.declined,
            "answer_style": message.answer_style,
            "quote": message.quote if message.shows_quote else None,
        },
    }


def _completion(message: Message, completion_id: str, model: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(message.created_at.timestamp()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": message.visible_text},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(message),
        **_extra(message),
    }


def _chunks(events: Iterator[ChatEvent], completion_id: str, model: str) -> Iterator[str]:
    """The answer's events as ``chat.completion.chunk`` events. Verified text is passed on as
    it comes; what the page shows after it (the quote) follows once the answer is stored, so
    the deltas join into the same ``content`` as the non-streamed answer."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        document = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(document, ensure_ascii=False)}\n\n"

    sent = ""
    with contextlib.closing(events):
        yield chunk({"role": "assistant", "content": ""})
        for event in events:
            if isinstance(event, TokenEvent) and event.text:
                sent += event.text
                yield chunk({"content": event.text})
            elif isinstance(event, Citations):
                continue  # sent with the last chunk, with the stored answer's numbering
            elif isinstance(event, Done):
                message = event.message
                text = message.visible_text
                rest = text[len(sent) :] if text.startswith(sent) else f"\n\n{text}"
                if rest:
                    yield chunk({"content": rest})
                yield chunk({}, "stop", usage=_usage(message), **_extra(message))
            elif isinstance(event, Failed):
                error = {"message": event.error, "type": "api_error", "code": "answer_failed"}
                yield f"data: {json.dumps({'error': error}, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"
