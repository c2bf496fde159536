"""``manage.py train``: create a job without running it, then run it by id (the form used under
``accelerate launch``); and a Hub upload that fails leaves the trained model and the job's
success in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.httpserver import LocalHTTPServer, Response
from training.models import TrainingJob
from training.services import snapshot_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def job_outputs(settings, tmp_path):
    settings.TRAINING_OUTPUT_DIR = tmp_path / "jobs"


@pytest.fixture
def snapshot(manual, trainer):
    return snapshot_create(
        manual=manual, user=trainer, train_fraction=0.8, eval_fraction=0.1, test_fraction=0.1
    )


def test_create_only_makes_a_queued_job_that_nothing_runs(snapshot, capsys):
    call_command("train", str(snapshot.pk), "--max-steps", "2", "--create-only")
    job = TrainingJob.objects.get()
    assert job.status == "queued" and job.hyperparameters["max_steps"] == 2
    assert f"Created training job #{job.pk}" in capsys.readouterr().out


def test_running_a_job_that_is_not_queued_is_refused(snapshot):
    call_command("train", str(snapshot.pk), "--create-only")
    job = TrainingJob.objects.get()
    TrainingJob.objects.filter(pk=job.pk).update(status="succeeded")
    with pytest.raises(CommandError, match="is succeeded; it cannot be run now"):
        call_command("train", "--job", str(job.pk))
    with pytest.raises(CommandError, match="No training job #999999"):
        call_command("train", "--job", "999999")
    with pytest.raises(CommandError, match="snapshot id, or --job"):
        call_command("train")


@pytest.mark.slow
def test_a_job_run_by_id_succeeds_even_when_the_hub_refuses_the_upload(
    snapshot, settings, monkeypatch
):
    refused = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
    with LocalHTTPServer() as hub:
        hub.script("/api/repos/create", Response(status=401, body=refused))
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        settings.HF_TOKEN = "hf_not_a_real_token"
        settings.TRAINING_HUB_NAMESPACE = "manualqa-team"
        call_command(
            "train", str(snapshot.pk), "--max-steps", "2", "--max-length", "64", "--create-only"
        )
        job = TrainingJob.objects.get()
        call_command("train", "--job", str(job.pk))
        assert hub.hit_count("/api/repos/create") >= 1

    job.refresh_from_db()
    assert job.status == "succeeded", job.message
    assert "Push to the Hugging Face Hub failed" in job.log_tail
    assert (Path(job.merged_dir) / "model.safetensors").is_file()
    assert job.registered_endpoint is not None
