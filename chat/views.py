"""Chat pages for car owners: the chat, compare mode, and the forms behind them.

Views only parse input and call ``chat.services`` / ``chat.selectors``. Owners need no
account: a conversation belongs to the signed-in user or to the browser session
(``chat.owners``), and one that is not the owner's answers 404.

* ``GET /chat/``: a new conversation (``?assistant=<slug>`` picks the assistant), with the
  owner's earlier conversations in the sidebar. "Clear" comes back here: it starts a new
  conversation and keeps the old ones, which stay in the list (feedback and compare-mode
  preferences point at their messages).
* ``GET /chat/c/<id>/``: one of the owner's conversations, rendered on the server.
* ``POST /chat/stream/``: the answer as server-sent events (what the page's script reads with
  ``fetch``); a refused question is a JSON error with the status the service gives it.
* ``POST /chat/ask/``: the same without a script: answers, then redirects to the conversation;
  a refused question re-renders the page with the reason.
* ``POST /chat/messages/<id>/feedback/``: thumbs up or down, with an optional comment.
* ``GET /chat/compare/`` and ``POST /chat/compare/preference/``: two assistants side by side
  and which answer was better.

Everything a model or a manual wrote reaches the page as sanitised markdown
(``manualqa.rendering``) or escaped text; the stream's ``done`` event carries the answer as the
server rendered it, so the script never inserts model text as HTML.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib import messages as flash
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import selectors, services
from chat.events import ChatEvent, Done, Failed, Quote, event_to_sse
from chat.models import Assistant, Conversation, Feedback
from chat.owners import Owner, existing_owner, owner_from_request
from manualqa.lib.llm import LLMError
from manualqa.rendering import render_markdown
from manualqa.streaming import event_stream

#: Conversations listed in the sidebar (the most recent ones).
SIDEBAR_CONVERSATIONS = 30

FEEDBACK_THANKS = {
    Feedback.Rating.UP: "Thanks! Your thumbs-up is recorded.",
    Feedback.Rating.DOWN: "Thanks! Your thumbs-down is recorded; a reviewer will check this "
    "answer against the manual.",
}


# --------------------------------------------------------------------------------------------
# Helpers


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _assistant_for(ref: str) -> Assistant:
    """The named active assistant (or the default); a clear refusal when there is none."""
    if ref:
        try:
            return selectors.assistant_get(ref=ref)
        except Http404:
            raise services.AssistantUnavailable(
                "That assistant is not available any more. Pick another one and ask again."
            ) from None
    assistant = selectors.assistant_default() or selectors.assistants_available().first()
    if assistant is None:
        raise services.AssistantUnavailable("No assistant is available yet.")
    return assistant


def _error_json(exc: services.ChatError) -> JsonResponse:
    """A refusal for the page's script: the message to show, and when to try again."""
    body: dict[str, Any] = {"error": exc.message, "code": exc.code, "field": exc.field}
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        body["retry_after_s"] = retry_after_s
    response = JsonResponse(body, status=exc.status)
    if retry_after_s is not None:
        response["Retry-After"] = str(retry_after_s)
    return response


def _conversation_from_post(request: HttpRequest, owner: Owner) -> Conversation | None:
    conversation_id = request.POST.get("conversation", "").strip()
    if not conversation_id:
        return None
    if not conversation_id.isdigit():
        raise Http404("No such conversation.")
    return selectors.conversation_get(owner=owner, conversation_id=int(conversation_id))


def _page_context(
    *,
    owner: Owner | None,
    conversation: Conversation | None = None,
    picked: str = "",
) -> dict[str, Any]:
    assistants = list(selectors.assistants_available())
    if conversation is not None:
        current = conversation.assistant
    else:
        by_ref = {a.slug: a for a in assistants} | {str(a.pk): a for a in assistants}
        current = by_ref.get(picked) or next((a for a in assistants if a.is_default), None)
        current = current or (assistants[0] if assistants else None)
    return {
        "assistants": assistants,
        "current_assistant": current,
        "conversation": conversation,
        "chat_messages": (
            list(selectors.conversation_messages(conversation=conversation))
            if conversation is not None
            else []
        ),
        "conversations": (
            list(selectors.conversations_for(owner=owner)[:SIDEBAR_CONVERSATIONS])
            if owner is not None
            else []
        ),
        "max_question_chars": settings.CHAT_MAX_QUESTION_CHARS,
        "rate_limit": settings.CHAT_RATE_LIMIT,
    }


# --------------------------------------------------------------------------------------------
# The chat


@require_GET
def chat_home(request: HttpRequest) -> HttpResponse:
    context = _page_context(owner=existing_owner(request), picked=request.GET.get("assistant", ""))
    return render(request, "chat/chat.html", context)


@require_GET
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    owner = existing_owner(request)
    if owner is None:
        raise Http404("No such conversation.")
    conversation = selectors.conversation_get(owner=owner, conversation_id=conversation_id)
    return render(request, "chat/chat.html", _page_context(owner=owner, conversation=conversation))


@require_POST
def chat_stream(request: HttpRequest) -> HttpResponseBase:
    """The answer to a question as server-sent events (see ``chat.events``).

    Everything that can refuse the question is checked before the stream starts, so a refusal
    is an ordinary JSON error (400, 404, or 429 with ``Retry-After``). ``done`` and ``failed``
    carry ``html``: the answer as the page shows it, rendered and sanitised here; so does the
    quote (``quote.html``).
    """
    owner = owner_from_request(request)
    try:
        assistant = _assistant_for(request.POST.get("assistant", "").strip())
        conversation = _conversation_from_post(request, owner)
        events = services.answer_stream(
            assistant=assistant,
            question=request.POST.get("question", ""),
            owner=owner,
            conversation=conversation,
        )
    except services.ChatError as exc:
        return _error_json(exc)
    except Http404:
        return JsonResponse(
            {"error": "That conversation is not yours, or it no longer exists.", "code": "404"},
            status=404,
        )
    return event_stream(request, _page_events(request, events))


def _page_events(request: HttpRequest, events: Iterator[ChatEvent]) -> Iterator[str]:
    """The service's events as ``chat.events.event_to_sse`` writes them, with the rendered
    answer added to ``done`` and ``failed``, and the rendered quote to ``quote``."""
    # Closing this stream (the owner went away) closes the service's, which records that the
    # answer was interrupted.
    with contextlib.closing(events):
        for event in events:
            if isinstance(event, Done | Failed) and event.message is not None:
                html = render_to_string("chat/_answer.html", {"message": event.message}, request)
                yield event_to_sse(event, {**event.payload(), "html": html})
            elif isinstance(event, Quote):
                # as the finished answer will show it: a table or a list from the first moment,
                # not pipes and dashes while a model writes the rest
                html = render_markdown(event.quote["text"])
                yield event_to_sse(event, {"quote": {**event.quote, "html": html}})
            else:
                yield event_to_sse(event)


@require_POST
def chat_ask(request: HttpRequest) -> HttpResponse:
    """Ask without a script: answer, then show the conversation (or the page with the reason
    the question was refused)."""
    owner = owner_from_request(request)
    conversation = None
    picked = request.POST.get("assistant", "").strip()
    try:
        conversation = _conversation_from_post(request, owner)
        assistant = _assistant_for(picked)
        message = services.answer(
            assistant=assistant,
            question=request.POST.get("question", ""),
            owner=owner,
            conversation=conversation,
        )
    except services.ChatError as exc:
        context = _page_context(owner=owner, conversation=conversation, picked=picked)
        context["error"] = exc
        context["question"] = request.POST.get("question", "")
        response = render(request, "chat/chat.html", context, status=exc.status)
        if isinstance(exc, services.RateLimited):
            response["Retry-After"] = str(exc.retry_after_s)
        return response
    except LLMError as exc:  # nothing could be stored
        flash.error(request, f"The assistant failed: {exc}")
        return redirect("chat:home")
    url = reverse("chat:conversation", args=[message.conversation_id])
    return redirect(f"{url}#answer-{message.pk}")


@require_POST
def feedback_submit(request: HttpRequest, message_id: int) -> HttpResponse:
    owner = owner_from_request(request)
    message = selectors.message_get(owner=owner, message_id=message_id)
    try:
        feedback = services.feedback_submit(
            owner=owner,
            message=message,
            rating=request.POST.get("rating", ""),
            comment=request.POST.get("comment", ""),
        )
    except services.ChatError as exc:
        if _wants_json(request):
            return _error_json(exc)
        flash.error(request, exc.message)
    else:
        thanks = FEEDBACK_THANKS[Feedback.Rating(feedback.rating)]
        if _wants_json(request):
            return JsonResponse({"rating": feedback.rating, "message": thanks}, status=201)
        flash.success(request, thanks)
    url = reverse("chat:conversation", args=[message.conversation_id])
    return redirect(f"{url}#answer-{message.pk}")


# --------------------------------------------------------------------------------------------
# Compare mode


@require_http_methods(["GET", "POST"])
def compare(request: HttpRequest) -> HttpResponse:
    """The compare page (GET), and its session (POST, 204).

    The page asks two questions at once. A visitor without a session would get one from each
    of the two requests, and keep only one of them: the other answer would no longer be theirs
    to compare. So the page's script POSTs here first to get one, once. A GET makes none: a bot
    fetching pages in a loop must not add a session row each time (security review L2).
    """
    if request.method == "POST":
        owner_from_request(request)
        return HttpResponse(status=204)
    assistants = list(selectors.assistants_available())
    by_ref = {a.slug: a for a in assistants} | {str(a.pk): a for a in assistants}
    left = by_ref.get(request.GET.get("a", "")) or (assistants[0] if assistants else None)
    others = [a for a in assistants if a != left]
    right = by_ref.get(request.GET.get("b", "")) or (others[0] if others else left)
    return render(
        request,
        "chat/compare.html",
        {
            "assistants": assistants,
            "assistant_a": left,
            "assistant_b": right,
            "max_question_chars": settings.CHAT_MAX_QUESTION_CHARS,
        },
    )


@require_POST
def preference_submit(request: HttpRequest) -> HttpResponse:
    owner = owner_from_request(request)
    ids = [request.POST.get("message_a", ""), request.POST.get("message_b", "")]
    if not all(value.isdigit() for value in ids):
        return JsonResponse(
            {"error": "Ask both assistants first, then say which answer was better."},
            status=400,
        )
    message_a = selectors.message_get(owner=owner, message_id=int(ids[0]))
    message_b = selectors.message_get(owner=owner, message_id=int(ids[1]))
    try:
        preference = services.preference_record(
            owner=owner,
            message_a=message_a,
            message_b=message_b,
            chosen=request.POST.get("chosen", ""),
        )
    except services.ChatError as exc:
        return _error_json(exc)
    return JsonResponse(
        {
            "preference": preference.pk,
            "chosen": preference.chosen,
            "message": f"Recorded: {preference.get_chosen_display()}. Thank you!",
        },
        status=201,
    )
