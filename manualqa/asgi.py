"""ASGI entry point (``make run``: gunicorn with uvicorn workers on ``manualqa.asgi``).

Streamed answers (``manualqa.streaming``) are sent from the event loop, so owners who read
slowly, or not at all, hold no worker thread while the server waits on them.
"""

import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "manualqa.settings")
application = get_asgi_application()


def _warm_up() -> None:
    # The first owner of a new web worker should not wait for models to load (seconds).
    from chat.services import answering_warm_up

    answering_warm_up()


if os.environ.get("CHAT_WARM_UP", "1") != "0":
    threading.Thread(target=_warm_up, name="chat-warm-up", daemon=True).start()
