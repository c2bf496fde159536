"""Training jobs: launch validation, roles, pages, and a real tiny LoRA job on the CPU."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from curation.models import LLMEndpoint
from training import jobs
from training.models import SavedPreset, TrainingJob
from training.services import snapshot_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def job_outputs(settings, tmp_path):
    settings.TRAINING_OUTPUT_DIR = tmp_path / "jobs"


TINY = {"max_steps": 2, "max_length": 64, "per_device_train_batch_size": 2, "save_steps": 1}


@pytest.fixture
def snapshot(manual, trainer):
    return snapshot_create(
        manual=manual, user=trainer, train_fraction=0.8, eval_fraction=0.1, test_fraction=0.1
    )


def test_a_snapshot_with_too_few_train_pairs_is_refused(snapshot, trainer, settings):
    settings.TRAINING_MIN_TRAIN_PAIRS = snapshot.train_count + 1
    with pytest.raises(ValidationError, match="train pairs; training needs at least"):
        jobs.training_job_create(snapshot=snapshot, user=trainer, overrides=TINY, enqueue=False)
    assert not TrainingJob.objects.exists()


def test_a_base_model_that_cannot_be_found_is_refused(snapshot, trainer, tmp_path):
    missing = tmp_path / "no-model-here"
    with pytest.raises(ValidationError, match="base model cannot be found"):
        jobs.training_job_create(
            snapshot=snapshot, user=trainer, base_model=str(missing), overrides=TINY, enqueue=False
        )


def test_a_sequence_length_beyond_the_model_context_is_refused(snapshot, trainer):
    with pytest.raises(ValidationError, match="context"):
        jobs.training_job_create(
            snapshot=snapshot,
            user=trainer,
            overrides={**TINY, "max_length": 1_000_000},
            enqueue=False,
        )


def test_unknown_hyperparameters_are_refused_naming_them(snapshot, trainer):
    with pytest.raises(ValidationError, match="learning_rat"):
        jobs.training_job_create(
            snapshot=snapshot, user=trainer, overrides={"learning_rat": 1e-4}, enqueue=False
        )


def test_a_reviewer_cannot_launch_training(snapshot, reviewer, client):
    with pytest.raises(PermissionDenied):
        jobs.training_job_create(snapshot=snapshot, user=reviewer, overrides=TINY, enqueue=False)
    client.force_login(reviewer)
    assert client.get(reverse("training:launch")).status_code == 403
    assert client.get(reverse("training:home")).status_code == 403


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse("training:home"))
    assert response.status_code == 302
    assert reverse("admin:login") in response.url


def test_the_launch_form_queues_a_job_for_a_trainer(
    snapshot, trainer, client, django_capture_on_commit_callbacks
):
    client.force_login(trainer)
    assert client.get(reverse("training:launch")).status_code == 200
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("training:launch"),
            {"snapshot": snapshot.pk, "preset": "cpu_quick", "max_steps": 2, "max_length": 64},
        )
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("training:job", args=[job.pk])
    assert (job.status, job.hyperparameters["max_steps"], job.created_by) == ("queued", 2, trainer)
    assert len(callbacks) == 1
    page = client.get(response.url).content.decode()
    assert 'id="loss-curve"' in page and 'id="job-progress"' in page
    status = client.get(reverse("training:job_status", args=[job.pk])).json()
    assert status["status"] == "queued" and status["progress_percent"] == 0


def test_cancelling_a_queued_job_stops_it_before_it_runs(snapshot, trainer):
    job = jobs.training_job_create(snapshot=snapshot, user=trainer, overrides=TINY, enqueue=False)
    job = jobs.training_job_cancel(job=job, user=trainer)
    assert job.status == TrainingJob.Status.CANCELLED
    assert jobs.training_job_claim(job_id=job.pk) is False


@pytest.mark.slow
def test_a_tiny_lora_job_trains_merges_registers_and_resumes_after_cancel(snapshot, trainer):
    job = jobs.training_job_create(snapshot=snapshot, user=trainer, overrides=TINY, enqueue=False)
    TrainingJob.objects.filter(pk=job.pk).update(cancel_requested=True)  # stop at the first step

    assert jobs.training_job_claim(job_id=job.pk)
    job = jobs.training_job_execute(job_id=job.pk, heartbeat_s=0)

    assert job.status == TrainingJob.Status.CANCELLED, job.message or job.traceback
    assert job.step >= 1
    job = jobs.training_job_resume(job=job, user=trainer)
    assert jobs.training_job_claim(job_id=job.pk)
    job = jobs.training_job_execute(job_id=job.pk)

    assert job.status == TrainingJob.Status.SUCCEEDED, job.message or job.traceback
    assert job.step == job.total_steps == 2
    assert job.metrics and all(point["loss"] is None or point["loss"] > 0 for point in job.metrics)
    assert job.final_train_loss is not None and job.final_train_loss > 0
    endpoint = job.registered_endpoint
    assert endpoint.kind == LLMEndpoint.Kind.LOCAL and endpoint.model == job.merged_dir
    assert endpoint.prompt_format == snapshot.prompt_format == "chat_template"
    from manualqa.lib.llm import make_client

    answer = make_client(endpoint.config()).complete(
        [{"role": "user", "content": "How do I open the charge port?"}], max_tokens=8
    )
    assert answer.text.strip()


def test_a_registered_model_carries_the_format_and_system_prompt_it_was_trained_with(
    manual, trainer, tmp_path
):
    snapshot = snapshot_create(
        manual=manual,
        user=trainer,
        prompt_format="seed_inst",
        system_prompt="Answer from the manual.",
        train_fraction=0.8,
        eval_fraction=0.1,
        test_fraction=0.1,
    )
    job = jobs.training_job_create(snapshot=snapshot, user=trainer, overrides=TINY, enqueue=False)

    endpoint = jobs._register(job, tmp_path / "merged")

    # Chat reads these off the endpoint; it never looks up the training job.
    assert (endpoint.prompt_format, endpoint.system_prompt) == (
        "seed_inst",
        "Answer from the manual.",
    )


def test_the_data_migration_writes_the_newest_jobs_format_onto_endpoints_registered_before(
    manual, trainer
):
    migration = importlib.import_module("training.migrations.0005_endpoint_trained_format")
    endpoint = LLMEndpoint.objects.create(name="Fine-tuned #1", kind="local", model="/m")
    untouched = LLMEndpoint.objects.create(name="Plain", kind="local")
    for version, fmt in ((1, "alpaca"), (2, "seed_inst")):
        snapshot = snapshot_create(
            manual=manual,
            user=trainer,
            name=f"v{version}",
            prompt_format=fmt,
            system_prompt=f"System {version}.",
            train_fraction=0.8,
            eval_fraction=0.1,
            test_fraction=0.1,
        )
        job = jobs.training_job_create(
            snapshot=snapshot, user=trainer, overrides=TINY, enqueue=False
        )
        TrainingJob.objects.filter(pk=job.pk).update(registered_endpoint=endpoint)

    migration.write_trained_formats(django_apps, None)

    endpoint.refresh_from_db()
    untouched.refresh_from_db()
    assert (endpoint.prompt_format, endpoint.system_prompt) == ("seed_inst", "System 2.")
    assert (untouched.prompt_format, untouched.system_prompt) == ("", "")


def test_a_trainer_saves_a_preset_from_the_launch_form_and_launches_it_again(
    snapshot, trainer, client, django_capture_on_commit_callbacks
):
    client.force_login(trainer)
    form = {"snapshot": snapshot.pk, "preset": "cpu_quick", "max_steps": 3, "lora_r": 4}
    with django_capture_on_commit_callbacks():
        response = client.post(reverse("training:launch"), {**form, "save_as": "Tiny r4"})
    assert response.status_code == 302
    saved = SavedPreset.objects.get()
    assert (saved.key, saved.base_preset, saved.created_by) == ("tiny-r4", "cpu_quick", trainer)
    assert saved.overrides == {"max_steps": 3, "lora_r": 4}

    page = client.get(reverse("training:launch")).content.decode()
    assert 'value="tiny-r4"' in page and "Tiny r4 (saved)" in page
    with django_capture_on_commit_callbacks():
        client.post(reverse("training:launch"), {"snapshot": snapshot.pk, "preset": "tiny-r4"})
    job = TrainingJob.objects.get(preset="tiny-r4")
    assert job.hyperparameters["lora_r"] == 4 and job.hyperparameters["max_steps"] == 3
    # A variant of a saved preset is stored flat, on the built-in one it came from.
    variant = jobs.saved_preset_create(
        user=trainer, label="Tiny r4 long", base_preset="tiny-r4", overrides={"max_steps": 9}
    )
    assert variant.base_preset == "cpu_quick"
    assert variant.overrides == {"max_steps": 9, "lora_r": 4}


def test_a_refused_launch_does_not_keep_the_preset_it_asked_to_save(snapshot, trainer, client):
    client.force_login(trainer)
    response = client.post(
        reverse("training:launch"),
        {"snapshot": snapshot.pk, "preset": "cpu_quick", "max_length": 999_999, "save_as": "Huge"},
    )
    assert response.status_code == 200
    assert "context" in response.content.decode()
    assert not SavedPreset.objects.exists() and not TrainingJob.objects.exists()


@pytest.mark.parametrize(
    ("label", "base", "overrides", "message"),
    [
        ("Bad", "cpu_quick", {"lora_rank": 4}, "lora_rank"),
        ("Bad", "no-such-preset", {}, "Unknown preset"),
        ("CPU quick", "cpu_quick", {}, "already exists"),
        ("!!!", "cpu_quick", {}, "letters or digits"),
        ("Bad", "cpu_quick", {"learning_rate": -1.0}, "learning_rate"),
    ],
)
def test_a_preset_that_cannot_be_saved_is_refused_naming_the_problem(
    trainer, label, base, overrides, message
):
    jobs.saved_preset_create(user=trainer, label="Existing", base_preset="cpu_quick")
    with pytest.raises(ValidationError, match=message):
        jobs.saved_preset_create(user=trainer, label=label, base_preset=base, overrides=overrides)
    assert list(SavedPreset.objects.values_list("key", flat=True)) == ["existing"]


def test_a_reviewer_cannot_save_a_preset(reviewer):
    with pytest.raises(PermissionDenied):
        jobs.saved_preset_create(user=reviewer, label="Mine", base_preset="cpu_quick")


def test_a_trainer_launches_training_through_the_api_and_a_reviewer_cannot(
    snapshot, trainer, reviewer
):
    from rest_framework.test import APIClient

    payload = {"snapshot": snapshot.pk, "preset": "cpu_quick", "hyperparameters": TINY}
    as_reviewer, as_trainer = APIClient(), APIClient()
    as_reviewer.force_authenticate(reviewer)
    as_trainer.force_authenticate(trainer)

    refused = as_reviewer.post("/api/training-jobs/", payload, format="json")
    launched = as_trainer.post("/api/training-jobs/", payload, format="json")

    assert refused.status_code == 403
    assert launched.status_code == 201, launched.content
    job = TrainingJob.objects.get()
    assert (job.pk, job.created_by, job.status) == (launched.json()["id"], trainer, "queued")

    cancelled = as_trainer.post(f"/api/training-jobs/{job.pk}/cancel/")
    again = as_trainer.post(f"/api/training-jobs/{job.pk}/cancel/")

    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert again.status_code == 400 and "non_field_errors" in again.json()
