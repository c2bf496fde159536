"""Experiment tracking for training runs: which trackers a launch may use, what a job stores,
where its page and the API say the logs are, and a real run whose TensorBoard scalars match
the metrics ManualQA records on the job's row."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.training.conftest import add_pairs, build_manual
from training import jobs
from training.models import TrainingJob
from training.presets import TrainingConfig, validate_config
from training.services import snapshot_create
from training.tracking import resolve_report_to, tracker_problems

ALL_INSTALLED = {"tensorboard", "wandb", "mlflow"}
CPU = {"cuda_available": False, "bnb_cpu_4bit_ok": False, "model_context": 8192}
TINY = {"max_steps": 2, "max_length": 64, "per_device_train_batch_size": 2, "save_steps": 0}


# --------------------------------------------------------------------------------------------
# Which trackers (plain functions, no database)


@pytest.mark.parametrize(
    ("environ", "installed", "expected"),
    [
        ({}, ALL_INSTALLED, ("tensorboard",)),
        ({}, set(), ()),
        ({"WANDB_MODE": "offline"}, ALL_INSTALLED, ("tensorboard", "wandb")),
        ({"WANDB_API_KEY": "k"}, {"wandb"}, ("wandb",)),
        ({"WANDB_API_KEY": "k", "WANDB_MODE": "disabled"}, {"wandb"}, ()),
        ({"MLFLOW_TRACKING_URI": "file:///tmp/mlruns"}, ALL_INSTALLED, ("tensorboard", "mlflow")),
        ({"WANDB_MODE": "offline", "MLFLOW_TRACKING_URI": "file:///m"}, {"mlflow"}, ("mlflow",)),
    ],
)
def test_auto_logs_to_tensorboard_where_installed_and_to_wandb_and_mlflow_once_configured(
    environ, installed, expected
):
    assert resolve_report_to("auto", environ=environ, installed=installed) == expected
    assert tracker_problems("auto", environ=environ, installed=installed) == []


def test_none_and_named_trackers_resolve_to_exactly_those():
    assert resolve_report_to("none", environ={}, installed=ALL_INSTALLED) == ()
    assert resolve_report_to("mlflow", environ={}, installed=ALL_INSTALLED) == ("mlflow",)
    assert resolve_report_to(("wandb", "tensorboard"), environ={}, installed=set()) == (
        "wandb",
        "tensorboard",
    )


@pytest.mark.parametrize(
    ("report_to", "environ", "installed", "message"),
    [
        (("wandb",), {}, set(), "W&B (wandb) is not installed here: pip install wandb"),
        (("mlflow",), {}, set(), "MLflow (mlflow) is not installed here: pip install mlflow"),
        ("tensorboard", {}, set(), "TensorBoard (tensorboard) is not installed here"),
        (
            ("wandb",),
            {},
            {"wandb"},
            "W&B (wandb) is installed but not configured: set WANDB_API_KEY, or WANDB_MODE=offline",
        ),
        (
            ("wandb",),
            {"WANDB_MODE": "disabled"},
            {"wandb"},
            "W&B (wandb) is turned off here (WANDB_MODE=disabled)",
        ),
        (
            ("tensorboard", "mlflow"),
            {"WANDB_MODE": "offline"},
            ALL_INSTALLED,
            "MLflow (mlflow) is installed but not configured: set MLFLOW_TRACKING_URI",
        ),
    ],
)
def test_a_tracker_that_is_not_installed_or_not_configured_is_named(
    report_to, environ, installed, message
):
    problems = tracker_problems(report_to, environ=environ, installed=installed)
    assert len(problems) == 1 and problems[0].startswith(message)


def test_configured_trackers_have_no_problems():
    environ = {"WANDB_API_KEY": "k", "MLFLOW_TRACKING_URI": "file:///tmp/mlruns"}
    assert (
        tracker_problems(
            ("tensorboard", "wandb", "mlflow"), environ=environ, installed=ALL_INSTALLED
        )
        == []
    )


def test_report_to_is_a_validated_hyperparameter_that_round_trips_through_json():
    config = TrainingConfig.from_dict({"report_to": ["tensorboard", "mlflow"]})
    assert config.report_to == ("tensorboard", "mlflow")
    assert config.to_dict()["report_to"] == ["tensorboard", "mlflow"]
    assert TrainingConfig().report_to == "auto"
    assert validate_config(config, **CPU) == []
    assert validate_config(TrainingConfig(report_to="none"), **CPU) == []
    with pytest.raises(TypeError, match='report_to must be "auto", "none" or a list of'):
        TrainingConfig.from_dict({"report_to": 1})
    assert validate_config(TrainingConfig(report_to="comet"), **CPU) == [
        'report_to must be "auto", "none" or a list of tensorboard, wandb, mlflow (got \'comet\').'
    ]
    assert validate_config(TrainingConfig(report_to=("tensorboard", "neptune")), **CPU) == [
        "report_to names unknown trackers: 'neptune' (use tensorboard, wandb, mlflow)."
    ]


# --------------------------------------------------------------------------------------------
# Launches, the job page and the API


@pytest.fixture
def job_outputs(settings, tmp_path):
    settings.TRAINING_OUTPUT_DIR = tmp_path / "jobs"
    # Whatever this machine's environment says: W&B and MLflow are not configured here.
    settings.WANDB_API_KEY = settings.WANDB_MODE = settings.MLFLOW_TRACKING_URI = ""
    settings.TRAINING_REPORT_TO = "auto"
    return settings.TRAINING_OUTPUT_DIR


@pytest.fixture
def snapshot(trainer):
    """Twelve sections, so the seeded split by section gives the eval split some pairs."""
    manual = build_manual("Tracking manual", pages=2, sections=6)
    add_pairs(manual)
    snapshot = snapshot_create(
        manual=manual, user=trainer, train_fraction=0.6, eval_fraction=0.2, test_fraction=0.2
    )
    assert snapshot.eval_count > 0
    return snapshot


def _problem(name: str) -> str:
    """How a launch names ``name`` here: not installed, or installed without configuration."""
    if importlib.util.find_spec(name) is None:
        return "is not installed here"
    return "is installed but not configured"


@pytest.mark.django_db
@pytest.mark.parametrize(("tracker", "label"), [("wandb", "W&B"), ("mlflow", "MLflow")])
def test_asking_for_wandb_or_mlflow_that_cannot_log_here_is_refused_at_launch(
    snapshot, trainer, job_outputs, tracker, label
):
    with pytest.raises(ValidationError) as refused:
        jobs.training_job_create(
            snapshot=snapshot,
            user=trainer,
            overrides={**TINY, "report_to": ["tensorboard", tracker]},
            enqueue=False,
        )
    [message] = refused.value.messages
    assert message.startswith(f"{label} ({tracker}) {_problem(tracker)}")
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_the_api_refuses_an_unknown_tracker_naming_it(snapshot, trainer, job_outputs):
    client = APIClient()
    client.force_authenticate(trainer)
    payload = {
        "snapshot": snapshot.pk,
        "preset": "cpu_quick",
        "hyperparameters": {**TINY, "report_to": ["tensorbored"]},
    }
    response = client.post("/api/training-jobs/", payload, format="json")
    assert response.status_code == 400
    assert "report_to names unknown trackers: 'tensorbored'" in response.content.decode()
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_the_setting_asking_for_mlflow_refuses_launches_until_it_is_configured(
    snapshot, trainer, job_outputs, settings
):
    settings.TRAINING_REPORT_TO = ("tensorboard", "mlflow")
    with pytest.raises(ValidationError, match=rf"MLflow \(mlflow\) {_problem('mlflow')}"):
        jobs.training_job_create(snapshot=snapshot, user=trainer, overrides=TINY, enqueue=False)
    # A launch that names its trackers itself is not held to the default.
    job = jobs.training_job_create(
        snapshot=snapshot, user=trainer, overrides={**TINY, "report_to": "none"}, enqueue=False
    )
    assert job.hyperparameters["report_to"] == []


@pytest.mark.django_db
def test_a_launch_stores_its_trackers_and_the_page_and_api_say_where_the_logs_are(
    snapshot, trainer, job_outputs, client
):
    job = jobs.training_job_create(snapshot=snapshot, user=trainer, overrides=TINY, enqueue=False)

    # "auto" was resolved at launch: TensorBoard is installed with ManualQA, W&B and MLflow
    # are not configured here.
    assert job.hyperparameters["report_to"] == ["tensorboard"]
    logdir = f"{job.output_dir}/tensorboard"
    client.force_login(trainer)
    page = client.get(reverse("training:job", args=[job.pk])).content.decode()
    assert f'<code id="tensorboard-dir">{logdir}</code>' in page
    assert f"tensorboard --logdir {logdir}" in page
    api = APIClient()
    api.force_authenticate(trainer)
    detail = api.get(f"/api/training-jobs/{job.pk}/").json()
    assert detail["tracking"] == {
        "report_to": ["tensorboard"],
        "tensorboard_dir": logdir,
        "run_name": Path(job.output_dir).name,
    }


@pytest.mark.django_db
def test_a_job_without_trackers_says_so(snapshot, trainer, job_outputs, client, settings):
    settings.TRAINING_REPORT_TO = "none"
    job = jobs.training_job_create(snapshot=snapshot, user=trainer, overrides=TINY, enqueue=False)
    assert job.hyperparameters["report_to"] == []
    client.force_login(trainer)
    page = client.get(reverse("training:job", args=[job.pk])).content.decode()
    assert 'id="tracking-none"' in page and "tensorboard --logdir" not in page
    assert jobs.training_job_tracking(job)["tensorboard_dir"] == ""


@pytest.mark.django_db
def test_a_worker_where_a_stored_tracker_cannot_log_fails_the_job_before_training(
    snapshot, trainer, job_outputs
):
    # Launched where MLflow was configured; the worker that takes the job has no MLflow set up.
    job = jobs.training_job_create(snapshot=snapshot, user=trainer, overrides=TINY, enqueue=False)
    TrainingJob.objects.filter(pk=job.pk).update(
        hyperparameters={**job.hyperparameters, "report_to": ["mlflow"]}
    )

    assert jobs.training_job_claim(job_id=job.pk)
    job = jobs.training_job_execute(job_id=job.pk)

    assert job.status == TrainingJob.Status.FAILED, job.traceback
    assert job.message.startswith(f"MLflow (mlflow) {_problem('mlflow')}")
    assert job.step == 0 and not job.traceback


# --------------------------------------------------------------------------------------------
# A real run


def _scalars(logdir, tag: str) -> dict[int, float]:
    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {event.step: event.value for event in accumulator.Scalars(tag)}


@pytest.mark.slow
@pytest.mark.django_db
def test_a_tiny_job_writes_tensorboard_scalars_that_match_its_recorded_metrics(
    snapshot, trainer, job_outputs
):
    job = jobs.training_job_create(
        snapshot=snapshot, user=trainer, overrides={**TINY, "warmup_ratio": 0.0}, enqueue=False
    )
    assert jobs.training_job_claim(job_id=job.pk)
    job = jobs.training_job_execute(job_id=job.pk)
    assert job.status == TrainingJob.Status.SUCCEEDED, job.message or job.traceback

    logdir = Path(job.output_dir) / "tensorboard"
    assert jobs.training_job_tracking(job)["tensorboard_dir"] == str(logdir)
    assert list(logdir.glob("events.out.tfevents.*"))
    assert f"tensorboard --logdir {logdir}" in job.log_tail
    # transformers' default folder (runs/<date>_<host> under the checkpoints) is not used.
    assert not (logdir.parent / "checkpoints" / "runs").exists()

    steps = [point for point in job.metrics if point["loss"] is not None]
    evals = [point for point in job.metrics if point["eval_loss"] is not None]
    assert [point["step"] for point in steps] == [1, 2] and len(evals) == 1
    # TensorBoard keeps float32: the same values to float32 precision.
    same = {"rel": 1e-6}
    losses = _scalars(logdir, "train/loss")
    assert losses == {p["step"]: pytest.approx(p["loss"], **same) for p in steps}
    rates = _scalars(logdir, "train/learning_rate")
    assert rates == {p["step"]: pytest.approx(p["learning_rate"], **same) for p in steps}
    assert losses[2] == pytest.approx(job.final_train_loss, **same)
    eval_losses = _scalars(logdir, "eval/loss")
    assert eval_losses == {2: pytest.approx(evals[0]["eval_loss"], **same)}
    assert eval_losses[2] == pytest.approx(job.eval_loss, **same)
    assert all(math.isfinite(value) for value in [*losses.values(), *eval_losses.values()])
