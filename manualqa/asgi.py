"""ASGI entry point (``make run``: gunicorn with uvicorn workers on ``manualqa.asgi``).

Streamed answers (``manualqa.streaming``) are sent from the event loop, so owners who read
slowly, or not at all, hold no worker thread while the server waits on them.
"""

import os

from django.core.asgi import get_asgi_application

from manualqa import warm_up

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "manualqa.settings")
application = get_asgi_application()
warm_up.start()
