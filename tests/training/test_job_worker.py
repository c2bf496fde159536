"""Training jobs run by a real Celery worker process: a killed worker, its stale heartbeat, and
Resume from the last checkpoint; the launch page and the live job page in headless Chromium.

The worker is the session's real ``celery worker`` on the test database. Rows are committed
(``transaction=True``) so the worker sees them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from manualqa.tasks import reap_stale_jobs
from tests.conftest import wait_for
from tests.training.conftest import add_pairs, build_manual
from training import jobs
from training.models import TrainingJob
from training.services import snapshot_create
from training.trainer import latest_complete_checkpoint, load_merged_and_generate

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(autouse=True)
def job_outputs(settings, tmp_path):
    settings.TRAINING_OUTPUT_DIR = tmp_path / "jobs"


def make_snapshot(user):
    manual = build_manual("Worker manual")
    add_pairs(manual)
    return snapshot_create(
        manual=manual, user=user, train_fraction=0.8, eval_fraction=0.1, test_fraction=0.1
    )


def job_row(job_id: int) -> TrainingJob:
    return TrainingJob.objects.get(pk=job_id)


@pytest.mark.django_db
def test_a_running_job_whose_heartbeat_went_quiet_is_marked_failed_with_the_reason(
    trainer, settings, client
):
    settings.TRAINING_STALE_AFTER_S = 60
    snapshot = make_snapshot(trainer)
    quiet = jobs.training_job_create(
        snapshot=snapshot, user=trainer, overrides={"max_steps": 2}, enqueue=False
    )
    alive = jobs.training_job_create(
        snapshot=snapshot, user=trainer, overrides={"max_steps": 2}, enqueue=False
    )
    now = timezone.now()
    TrainingJob.objects.filter(pk=quiet.pk).update(
        status="running", step=3, heartbeat_at=now - timedelta(seconds=61)
    )
    TrainingJob.objects.filter(pk=alive.pk).update(
        status="running", heartbeat_at=now - timedelta(seconds=30)
    )

    client.force_login(trainer)
    # Reading never writes: the page polls show the row as it is ...
    assert client.get(reverse("training:job_status", args=[quiet.pk])).json()["status"] == "running"
    # ... until the periodic reaper (Celery beat) has run.
    reap_stale_jobs()
    status = client.get(reverse("training:job_status", args=[quiet.pk])).json()

    assert status["status"] == "failed"
    assert "stopped sending heartbeats" in status["message"]
    assert "at step 3" in status["message"] and "Resume" in status["message"]
    assert "stopped sending heartbeats" in job_row(quiet.pk).log_tail
    assert job_row(alive.pk).status == "running"
    assert jobs.training_jobs_fail_stale() == 0  # nothing left to mark


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_qlora_job_whose_worker_is_killed_is_marked_failed_and_resumes_from_its_checkpoint(
    celery_worker, trainer, settings, client
):
    snapshot = make_snapshot(trainer)
    job = jobs.training_job_create(
        snapshot=snapshot,
        user=trainer,
        preset="cpu_quick",
        overrides={
            "method": "qlora",
            "max_steps": 4,
            "max_length": 64,
            "per_device_train_batch_size": 2,
            "save_steps": 1,
            "logging_steps": 1,
        },
    )
    checkpoints = Path(job.output_dir) / "checkpoints"
    wait_for(
        lambda: job_row(job.pk).step >= 2 and latest_complete_checkpoint(checkpoints) is not None,
        timeout=300,
        what="the worker to pass step 2 with checkpoints saved",
    )
    try:
        celery_worker.kill()  # SIGKILL mid-run, as a lost machine would
        killed_at = job_row(job.pk)
        assert killed_at.status == "running"  # nobody has noticed yet

        settings.TRAINING_STALE_AFTER_S = 2
        wait_for(
            lambda: (timezone.now() - job_row(job.pk).heartbeat_at).total_seconds() > 2,
            timeout=30,
            what="the heartbeat to go quiet",
        )
        reap_stale_jobs()  # what beat runs every JOBS_REAP_EVERY_S
        client.force_login(trainer)
        status = client.get(reverse("training:job_status", args=[job.pk])).json()
        assert status["status"] == "failed", status
        assert "stopped sending heartbeats" in status["message"]
    finally:
        celery_worker.start()
    settings.TRAINING_STALE_AFTER_S = 300
    # The kill may land mid-save: resume must take the last checkpoint that was fully written.
    complete = latest_complete_checkpoint(checkpoints)
    assert complete is not None

    response = client.post(reverse("training:job_resume", args=[job.pk]))
    assert response.status_code == 302
    wait_for(lambda: job_row(job.pk).is_finished, timeout=600, what="the resumed job to finish")

    done = job_row(job.pk)
    assert done.status == "succeeded", f"{done.message}\n{done.log_tail}\n{done.traceback}"
    assert done.method == "qlora" and done.step == done.total_steps == 4
    assert f"resuming from {complete.name}" in done.log_tail
    assert done.log_tail.count("Starting ") == 1 and "Resuming " in done.log_tail
    logged_steps = [point["step"] for point in done.metrics if point["loss"] is not None]
    assert logged_steps[-1] == 4 and done.final_train_loss > 0
    assert load_merged_and_generate(Path(done.merged_dir), "How do I charge?", 4).strip()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
def test_a_trainer_launches_a_job_in_the_browser_and_watches_it_finish(
    celery_worker, trainer, live_server
):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    snapshot = make_snapshot(trainer)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{live_server.url}/admin/login/?next={reverse('training:launch')}")
            page.fill("#id_username", "trainer")
            page.fill("#id_password", "pw-123456")
            with page.expect_navigation():
                page.click("input[type=submit]")

            page.select_option("#id_snapshot", str(snapshot.pk))
            page.select_option("#id_preset", "cpu_quick")
            page.fill("#id_name", "Browser job")
            page.click("summary")  # open the advanced section
            page.fill("#id_max_steps", "3")
            page.fill("#id_max_length", "64")
            page.fill("#id_per_device_train_batch_size", "2")
            with page.expect_navigation():
                page.click("#train-button")
            expect(page.locator("h1")).to_have_text("Browser job")
            expect(page.locator(".messages")).to_contain_text("queued")

            # The page polls the job's status; the bar and the curve fill in as it trains.
            expect(page.locator("#job-progress-label")).to_have_text("100%", timeout=420_000)
            expect(page.locator("#job-status")).to_have_text("Succeeded", timeout=600_000)
            assert page.locator("#job-progress").evaluate("el => el.value") == 100
            expect(page.locator("#loss-curve polyline").first).to_be_attached()
            assert page.locator("#loss-curve circle.train-point").count() >= 1
            expect(page.locator("#final-loss")).not_to_have_text("-")
            expect(page.locator("#job-log")).to_contain_text("Merged model saved")
        finally:
            browser.close()

    job = TrainingJob.objects.get(name="Browser job")
    assert (job.status, job.step, job.total_steps, job.created_by) == ("succeeded", 3, 3, trainer)
    assert len([point for point in job.metrics if point["loss"] is not None]) >= 1
    assert load_merged_and_generate(Path(job.merged_dir), "Where is the charge port?", 6).strip()
