"""WSGI entry point (gunicorn ``manualqa.wsgi``; ``make run`` serves ``manualqa.asgi``)."""

import os

from django.core.wsgi import get_wsgi_application

from manualqa import warm_up

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "manualqa.settings")
application = get_wsgi_application()
warm_up.start()
