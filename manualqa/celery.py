"""The Celery application. Workers run ``celery -A manualqa worker -Q default,gpu``."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "manualqa.settings")

app = Celery("manualqa")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# A worker on the gpu queue publishes what it can run (CUDA, 4-bit on CPU), so that a launch is
# validated against the workers that will run it rather than against the web server.
_capabilities_publisher = None


@worker_ready.connect
def _publish_gpu_capabilities(sender=None, **kwargs) -> None:
    global _capabilities_publisher
    consumer = getattr(sender, "task_consumer", None)
    queues = {queue.name for queue in consumer.queues} if consumer is not None else set()
    if "gpu" not in queues:
        return
    from training.capabilities import start_publisher

    _capabilities_publisher = start_publisher(sender.hostname)


@worker_shutdown.connect
def _withdraw_gpu_capabilities(**kwargs) -> None:
    if _capabilities_publisher is not None:
        _capabilities_publisher.stop()
