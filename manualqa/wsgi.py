"""WSGI entry point (gunicorn ``manualqa.wsgi``)."""

import os
import threading

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "manualqa.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    # The first owner of a new web worker should not wait for models to load (seconds).
    from chat.services import answering_warm_up

    answering_warm_up()


if os.environ.get("CHAT_WARM_UP", "1") != "0":
    threading.Thread(target=_warm_up, name="chat-warm-up", daemon=True).start()
