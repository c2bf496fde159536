"""ManualQA project package: settings, URLs, the Celery app and embedded services."""

from manualqa.celery import app as celery_app

__all__ = ["celery_app"]
