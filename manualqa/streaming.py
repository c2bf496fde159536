"""Responses that stream piece by piece under WSGI (tests, ``runserver``) and ASGI (``make
run``'s uvicorn workers) alike.

Under ASGI, Django would read a synchronous iterator to its end before sending anything, so
there the pieces are drawn one at a time in the request's own thread and sent from the event
loop in between: an owner who reads slowly, or not at all, then holds no worker thread while
the server waits to write to them (security review H2). When the client goes away, the
iterator is closed, so the answer behind it stops and records that it was interrupted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse


def event_stream(request: HttpRequest, events: Iterator[str]) -> StreamingHttpResponse:
    """A ``text/event-stream`` response of ``events`` (server-sent event strings)."""
    django_request = getattr(request, "_request", request)  # DRF wraps Django's request
    content = _drawn(events) if isinstance(django_request, ASGIRequest) else events
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass pieces on as they come
    return response


async def _drawn(pieces: Iterator[str]) -> AsyncIterator[str]:
    # thread_sensitive: every step runs in this request's one thread, which keeps the
    # iterator's database connection and transaction state where they belong.
    step = sync_to_async(next, thread_sensitive=True)
    end = object()
    try:
        while (piece := await step(pieces, end)) is not end:
            yield piece
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()
