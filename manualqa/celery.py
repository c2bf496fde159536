"""The Celery application. Workers run ``celery -A manualqa worker -Q default,gpu``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "manualqa.settings")

app = Celery("manualqa")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
