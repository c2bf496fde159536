"""The embedded services and Celery wiring, exercised for real."""

from __future__ import annotations

import socket

import pytest

from manualqa import embedded
from manualqa.celery import app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_real_redis_is_started_where_none_answers(tmp_path):
    url = f"redis://127.0.0.1:{_free_port()}/0"
    assert not embedded.redis_answers(url, timeout=0.2)

    process = embedded.start_redis(url, tmp_path)
    try:
        assert embedded.redis_answers(url)
    finally:
        process.terminate()
        process.wait(10)
    assert not embedded.redis_answers(url, timeout=0.2)


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("curation.ingest_run", "default"),
        ("curation.embed_run_chunks", "gpu"),
        ("curation.generate_local_qa", "gpu"),
        ("training.run_job", "gpu"),
    ],
)
def test_model_heavy_tasks_are_routed_to_the_gpu_queue(task_name, queue):
    route = app.amqp.router.route({}, task_name)
    assert route["queue"].name == queue


def test_celery_speaks_json_only_and_acknowledges_late():
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_acks_late is True
