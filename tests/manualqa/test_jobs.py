"""The one job lifecycle (``manualqa.jobs``) over the four kinds of job row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from curation import services
from curation.models import GenerationRun, IngestionRun, LLMEndpoint, ReembedRun
from manualqa.celery import app as celery_app
from manualqa.jobs import lifecycle, runner
from manualqa.jobs.models import CancellableJobRow, JobRow
from manualqa.jobs.queues import enqueue
from manualqa.tasks import reap_stale_jobs
from tests.conftest import SAMPLE_SITE
from training.models import DatasetSnapshot, EvaluationRun, RetrievalJob, TrainingJob

JOB_MODELS = [IngestionRun, GenerationRun, TrainingJob, EvaluationRun, RetrievalJob, ReembedRun]


def test_each_kind_of_job_reads_its_own_stale_threshold_from_the_settings(settings):
    settings.INGESTION_STALE_AFTER_S = 601
    settings.GENERATION_STALE_AFTER_S = 121
    settings.EVALUATION_STALE_AFTER_S = 302
    settings.TRAINING_STALE_AFTER_S = 303
    assert {model.__name__: model.stale_after_s() for model in JOB_MODELS} == {
        "IngestionRun": 601,
        "GenerationRun": 121,
        "TrainingJob": 303,
        "EvaluationRun": 302,
        "RetrievalJob": 303,
        "ReembedRun": 303,
    }


def test_a_claim_takes_over_a_row_silent_for_longer_than_its_kinds_threshold(ingestion, settings):
    settings.GENERATION_STALE_AFTER_S = 60
    endpoint = LLMEndpoint.objects.create(name="Jobs endpoint", kind="local")
    run = GenerationRun.objects.create(manual=ingestion.manual, endpoint=endpoint)
    assert lifecycle.claim(GenerationRun, run.pk, task_id="first")
    GenerationRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=30)
    )
    assert not lifecycle.claim(GenerationRun, run.pk, task_id="second")
    run.refresh_from_db()
    assert not lifecycle.is_stale(run)
    settings.GENERATION_STALE_AFTER_S = 20
    assert lifecycle.is_stale(run)
    assert lifecycle.claim(GenerationRun, run.pk, task_id="second")


@pytest.mark.parametrize("model", JOB_MODELS, ids=lambda m: m.__name__)
def test_every_job_model_declares_a_transition_table_over_its_own_statuses(model):
    statuses = set(model.Status.values)
    assert issubclass(model, JobRow)
    assert set(model.TRANSITIONS) == statuses
    assert all(targets <= statuses for targets in model.TRANSITIONS.values())
    # A worker claims a queued row; a final row only ever goes back to the queue.
    assert lifecycle.may_move(model, "queued", "running")
    for final in model.FINISHED:
        assert model.TRANSITIONS[final] <= {"queued"}
    # Every status is reachable from "queued", and every path can end.
    reached, frontier = {"queued"}, ["queued"]
    while frontier:
        for target in model.TRANSITIONS[frontier.pop()] - reached:
            reached.add(target)
            frontier.append(target)
    assert reached == statuses
    assert set(model.FINISHED) <= statuses


@pytest.mark.parametrize("model", JOB_MODELS, ids=lambda m: m.__name__)
def test_a_user_can_ask_to_stop_every_kind_but_ingestion(model):
    assert issubclass(model, CancellableJobRow) == (model is not IngestionRun)


@pytest.fixture
def ingestion(db):
    manual = services.manual_get_or_create(name="Jobs manual")
    return services.ingestion_run_create(
        manual=manual, source=str(SAMPLE_SITE / "manual"), enqueue=False
    )


def test_finishing_a_row_in_a_status_that_is_not_final_is_refused(ingestion):
    with pytest.raises(ValueError, match="'embedding' is not a final status of IngestionRun"):
        lifecycle.finish(ingestion, IngestionRun.Status.EMBEDDING)
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionRun.Status.QUEUED and ingestion.finished_at is None

    lifecycle.finish(ingestion, IngestionRun.Status.FAILED, message="no pages found")
    assert (ingestion.status, ingestion.message) == ("failed", "no pages found")
    assert ingestion.is_finished and ingestion.finished_at is not None


def test_a_queued_only_claim_never_takes_a_silent_workers_row(ingestion):
    assert lifecycle.claim(IngestionRun, ingestion.pk, task_id="t1", takeover=False)
    long_ago = timezone.now() - timedelta(hours=1)
    IngestionRun.objects.filter(pk=ingestion.pk).update(heartbeat_at=long_ago)

    assert not lifecycle.claim(IngestionRun, ingestion.pk, task_id="t2", takeover=False)
    # A kind that can be taken over takes the same silent row.
    assert lifecycle.claim(IngestionRun, ingestion.pk, task_id="t2")
    ingestion.refresh_from_db()
    assert ingestion.celery_task_id == "t2" and not lifecycle.is_stale(ingestion)


def test_the_reaper_fails_only_rows_whose_worker_went_silent(ingestion, settings):
    settings.INGESTION_STALE_AFTER_S = 60
    lifecycle.claim(IngestionRun, ingestion.pk, task_id="t", takeover=False)
    failed = []

    def reap() -> int:
        return lifecycle.fail_stale(
            IngestionRun,
            message=lambda row, quiet: f"silent for {quiet:.0f} s",
            on_failed=lambda row, text: failed.append((row.pk, text)),
        )

    assert reap() == 0  # it beat just now
    IngestionRun.objects.filter(pk=ingestion.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=300)
    )
    assert reap() == 1
    ingestion.refresh_from_db()
    assert ingestion.status == "failed" and ingestion.message.startswith("silent for 30")
    assert failed == [(ingestion.pk, ingestion.message)]


def test_the_reapers_message_says_how_long_how_far_and_what_next():
    text = lifecycle.silence_message(
        301.4, stale_after_s=120, progress="after 3 pages", then="Ingest the source again."
    )
    assert text == (
        "The worker stopped sending heartbeats (301 s of silence, more than the 120 s allowed) "
        "after 3 pages: it was probably killed or lost its machine. Ingest the source again."
    )
    bare = lifecycle.silence_message(5, stale_after_s=1, progress="after 1 of 2 answers")
    assert bare.endswith("after 1 of 2 answers: it was probably killed or lost its machine.")


def test_a_cancel_ends_a_row_at_once_or_asks_its_worker_to_stop(ingestion):
    manual = ingestion.manual
    endpoint = LLMEndpoint.objects.create(name="Jobs endpoint", kind="local")
    queued, running = (
        GenerationRun.objects.create(manual=manual, endpoint=endpoint) for _ in range(2)
    )
    GenerationRun.objects.filter(pk=running.pk).update(status=GenerationRun.Status.RUNNING)
    running.refresh_from_db()

    lifecycle.cancel_now(queued, message="Cancelled before it started.")
    lifecycle.request_cancel(running)

    queued.refresh_from_db()
    running.refresh_from_db()
    assert (queued.status, queued.message) == ("cancelled", "Cancelled before it started.")
    assert queued.finished_at is not None and not queued.cancel_requested
    assert running.status == "running" and running.cancel_requested
    assert running.finished_at is None


def test_only_an_ended_or_stalled_row_resumes_and_resuming_wipes_its_last_outcome(ingestion):
    endpoint = LLMEndpoint.objects.create(name="Resume endpoint", kind="local")
    run = GenerationRun.objects.create(manual=ingestion.manual, endpoint=endpoint)

    with pytest.raises(ValidationError) as refused:
        lifecycle.require_resumable(run, stale=False, noun="run")
    assert refused.value.messages == [
        f"Run #{run.pk} is queued; only a cancelled, failed or stalled run can be resumed."
    ]
    lifecycle.require_resumable(run, stale=True, noun="run")  # a silent worker's row resumes

    GenerationRun.objects.filter(pk=run.pk).update(
        status=GenerationRun.Status.FAILED,
        message="out of memory",
        traceback="Traceback ...",
        cancel_requested=True,
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    lifecycle.require_resumable(run, stale=False, noun="run")
    lifecycle.requeue(run)

    run.refresh_from_db()
    assert run.status == "queued" and not run.cancel_requested
    assert (run.message, run.traceback, run.finished_at) == ("", "", None)


def test_a_crash_ends_the_row_errored_with_the_message_and_the_traceback(ingestion):
    lifecycle.claim(IngestionRun, ingestion.pk, task_id="t", takeover=False)
    try:
        raise RuntimeError("disk full")
    except RuntimeError as exc:
        row = runner.errored(ingestion, exc, doing="embedding failed: ")

    assert row.status == "errored"
    assert row.message == "embedding failed: RuntimeError: disk full"
    assert 'raise RuntimeError("disk full")' in row.traceback


def wait_for_beat(run, after, heartbeat, tries: int = 100) -> None:
    for _ in range(tries):
        run.refresh_from_db()
        if run.heartbeat_at > after:
            return
        heartbeat.stopped.wait(0.05)


def quiet_claimed_run(name: str):
    """A claimed ingestion run whose heartbeat last beat an hour ago, and that time."""
    manual = services.manual_get_or_create(name=name)
    run = services.ingestion_run_create(
        manual=manual, source=str(SAMPLE_SITE / "manual"), enqueue=False
    )
    lifecycle.claim(IngestionRun, run.pk, task_id="t", takeover=False)
    long_ago = timezone.now() - timedelta(hours=1)
    IngestionRun.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    return run, long_ago


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_a_running_row_until_stopped():
    run, long_ago = quiet_claimed_run("Heartbeat manual")

    heartbeat = runner.Heartbeat(IngestionRun, run.pk, interval=0.05)
    heartbeat.start()
    try:
        wait_for_beat(run, long_ago, heartbeat)
    finally:
        heartbeat.stop()

    assert run.heartbeat_at > long_ago
    assert not heartbeat.is_alive()


@pytest.mark.django_db(transaction=True)
def test_heartbeat_reconnects_after_a_dropped_connection():
    """Security review M6: a database blip (here the server ends the heartbeat thread's
    connection) must not leave a live job beating no more until the reaper fails it."""
    from django.db import connection

    run, long_ago = quiet_claimed_run("Blip manual")
    heartbeat = runner.Heartbeat(IngestionRun, run.pk, interval=0.05)
    heartbeat.start()
    try:
        wait_for_beat(run, long_ago, heartbeat)  # the thread has its connection now
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        IngestionRun.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
        wait_for_beat(run, long_ago, heartbeat)
    finally:
        heartbeat.stop()

    assert run.heartbeat_at > long_ago  # beating again, on a new connection


def test_a_superseded_worker_does_not_beat_or_finish_the_job(ingestion):
    """Security review M6: once another task has claimed the row (the job was reported dead
    and resumed), the first worker's heartbeat and outcome write nothing."""
    lifecycle.claim(IngestionRun, ingestion.pk, task_id="first", takeover=False)
    IngestionRun.objects.filter(pk=ingestion.pk).update(celery_task_id="second")
    long_ago = timezone.now() - timedelta(hours=1)
    IngestionRun.objects.filter(pk=ingestion.pk).update(heartbeat_at=long_ago)

    runner.Heartbeat(IngestionRun, ingestion.pk, interval=1, fence="first").beat()
    lifecycle.finish(ingestion, IngestionRun.Status.FAILED, message="old worker", fence="first")

    ingestion.refresh_from_db()
    assert (ingestion.status, ingestion.celery_task_id) == ("running", "second")
    assert ingestion.heartbeat_at == long_ago and ingestion.message == ""
    lifecycle.finish(ingestion, IngestionRun.Status.SUCCEEDED, fence="second")
    assert ingestion.status == "succeeded"


@pytest.fixture
def silent_and_alive_rows(ingestion):
    """A running row of every kind whose worker went silent long ago, and one that beat now."""
    manual = ingestion.manual
    endpoint = LLMEndpoint.objects.create(name="Reaper endpoint", kind="local")
    snapshot = DatasetSnapshot.objects.create(
        manual=manual, name="s", version=1, content_hash="0" * 64
    )
    rows = {
        IngestionRun: lambda: services.ingestion_run_create(
            manual=manual, source=str(SAMPLE_SITE / "manual"), enqueue=False
        ),
        GenerationRun: lambda: GenerationRun.objects.create(
            manual=manual,
            endpoint=endpoint,
            questions_system_prompt="q",
            questions_user_template="q",
            answer_system_prompt="a",
            answer_user_template="a",
        ),
        TrainingJob: lambda: TrainingJob.objects.create(name="job", snapshot=snapshot),
        EvaluationRun: lambda: EvaluationRun.objects.create(name="run", question_source="upload"),
        RetrievalJob: lambda: RetrievalJob.objects.create(name="retriever", snapshot=snapshot),
        ReembedRun: lambda: ReembedRun.objects.create(manual=manual),
    }
    silent, alive = {}, {}
    long_ago = timezone.now() - timedelta(days=1)
    for model, make in rows.items():
        for bucket, beat in ((silent, long_ago), (alive, timezone.now())):
            row = make()
            model.objects.filter(pk=row.pk).update(status="running", heartbeat_at=beat)
            bucket[model] = row
    return silent, alive


def test_the_periodic_reaper_fails_silent_jobs_of_every_kind_and_only_those(
    silent_and_alive_rows,
):
    silent, alive = silent_and_alive_rows

    marked = reap_stale_jobs()

    assert sorted(marked.values()) == [1] * len(JOB_MODELS)
    for model, row in silent.items():
        row.refresh_from_db()
        assert row.status == "failed", model.__name__
        assert "stopped sending heartbeats" in row.message and row.finished_at is not None
    for model, row in alive.items():
        row.refresh_from_db()
        assert row.status == "running", model.__name__
    assert set(reap_stale_jobs().values()) == {0}  # nothing left to mark


def test_beat_runs_the_reaper_on_the_default_queue(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["reap-stale-jobs"]
    assert entry["task"] == reap_stale_jobs.name == "manualqa.reap_stale_jobs"
    assert entry["schedule"] == settings.JOBS_REAP_EVERY_S
    assert celery_app.amqp.router.route({}, entry["task"])["queue"].name == "default"
    assert len(settings.JOB_REAPERS) == len(JOB_MODELS)


@pytest.mark.django_db
def test_beat_clears_expired_sessions_daily(settings):
    """Security review L2: anonymous owners' sessions do not pile up for ever."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    from manualqa.tasks import clear_sessions

    expired, live = SessionStore(), SessionStore()
    expired.create()
    live.create()
    Session.objects.filter(session_key=expired.session_key).update(
        expire_date=timezone.now() - timedelta(days=1)
    )

    assert clear_sessions() == 1
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]
    entry = settings.CELERY_BEAT_SCHEDULE["clear-sessions"]
    assert entry["task"] == clear_sessions.name and entry["schedule"] == 24 * 3600


@pytest.mark.django_db
def test_enqueue_sends_to_the_chosen_queue_only_once_the_transaction_commits(
    django_capture_on_commit_callbacks, monkeypatch
):
    from curation.tasks import embed_run_chunks, ingest_run

    sent = []
    monkeypatch.setattr(
        celery_app,
        "send_task",
        lambda name, args=None, *rest, **kw: sent.append((name, args, kw.get("queue"))),
    )

    with django_capture_on_commit_callbacks(execute=True):
        enqueue(ingest_run, 7)
        enqueue(embed_run_chunks, 7, gpu=True)
        assert sent == []  # nothing leaves before the commit

    assert sent == [
        ("curation.ingest_run", (7,), "default"),
        ("curation.embed_run_chunks", (7,), "gpu"),
    ]
