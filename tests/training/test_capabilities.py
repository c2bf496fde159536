"""Launches are validated against what the running gpu workers can do, which each worker
publishes in Redis, rather than against the web server's own hardware."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.conftest import wait_for
from training import capabilities, jobs
from training.capabilities import WorkerCapabilities
from training.presets import PRESETS, TrainingConfig
from training.services import snapshot_create

pytestmark = pytest.mark.django_db

GPU_BOX = WorkerCapabilities(
    hostname="gpu-box-1@test", cuda=True, devices=("NVIDIA H200",), bnb_cpu_4bit=False, torch="x"
)


@pytest.fixture
def snapshot(manual, trainer):
    return snapshot_create(
        manual=manual, user=trainer, train_fraction=0.8, eval_fraction=0.1, test_fraction=0.1
    )


@pytest.fixture
def clean_registry():
    for worker in capabilities.live_workers():
        if worker.hostname.endswith("@test"):
            capabilities.withdraw(worker.hostname)
    yield
    capabilities.withdraw(GPU_BOX.hostname)


def eight_bit() -> TrainingConfig:
    return TrainingConfig.from_dict({**PRESETS["cpu_quick"].config.to_dict(), "method": "8bit"})


def test_8bit_is_accepted_when_a_running_gpu_worker_has_cuda(snapshot, clean_registry):
    capabilities.publish(GPU_BOX, ttl_s=60)
    problems = jobs.training_job_validate(snapshot=snapshot, base_model="", config=eight_bit())
    assert problems == []


def test_8bit_is_refused_once_that_worker_is_gone(snapshot, clean_registry):
    capabilities.publish(GPU_BOX, ttl_s=60)
    capabilities.withdraw(GPU_BOX.hostname)
    problems = jobs.training_job_validate(snapshot=snapshot, base_model="", config=eight_bit())
    assert any("8-bit LoRA needs a CUDA GPU" in problem for problem in problems), problems


def test_an_unreadable_record_is_ignored(clean_registry):
    import redis

    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.set(capabilities.KEY_PREFIX + "broken@test", "{not json", ex=60)
    try:
        assert all(w.hostname != "broken@test" for w in capabilities.live_workers())
    finally:
        client.delete(capabilities.KEY_PREFIX + "broken@test")


def test_a_chat_template_snapshot_is_refused_for_a_base_model_without_a_template(
    manual, trainer, tmp_path
):
    from manualqa.lib.local_models import ensure_default_model

    default = ensure_default_model(Path(django_settings.MODELS_DIR))
    bare = tmp_path / "base-without-template"
    bare.mkdir()
    (bare / "config.json").write_text((default / "config.json").read_text())
    tokenizer_config = json.loads((default / "tokenizer_config.json").read_text())
    tokenizer_config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    snapshot = snapshot_create(manual=manual, user=trainer, prompt_format="chat_template")
    config = PRESETS["cpu_quick"].config

    problems = jobs.training_job_validate(snapshot=snapshot, base_model=str(bare), config=config)
    assert any("has no chat template" in problem for problem in problems), problems
    assert jobs.training_job_validate(snapshot=snapshot, base_model="", config=config) == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_publishes_what_it_can_run(celery_worker):
    def published():
        return [w for w in capabilities.live_workers() if w.hostname == celery_worker.node]

    wait_for(lambda: published(), timeout=120, what="the worker's capabilities record")
    (record,) = published()
    import torch

    assert record.cuda == torch.cuda.is_available()
    assert record.torch == torch.__version__
