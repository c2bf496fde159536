"""GET /healthz: anyone learns whether the site is up, staff and monitors with the token learn
why (security review M8), and the Celery probe is not repeated on every call."""

from __future__ import annotations

import pytest

from manualqa import health

pytestmark = pytest.mark.django_db


def test_healthz_anonymous_body_is_minimal(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_healthz_reports_database_pgvector_and_redis_to_staff(admin_client):
    response = admin_client.get("/healthz")
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is True
    assert report["database"]["ok"] is True
    assert report["database"]["server"].startswith("PostgreSQL")
    assert report["pgvector"].count(".") == 2  # e.g. "0.6.2"
    assert report["redis"]["ok"] is True
    assert "celery" in report


def test_a_monitor_with_the_token_gets_the_details_and_a_wrong_token_does_not(client, settings):
    settings.HEALTHZ_TOKEN = "monitor-secret-123"

    with_token = client.get("/healthz", HTTP_AUTHORIZATION="Bearer monitor-secret-123").json()
    wrong = client.get("/healthz", HTTP_AUTHORIZATION="Bearer guess").json()

    assert with_token["redis"]["ok"] is True
    assert wrong == {"ok": True}


def test_healthz_is_unhealthy_when_redis_is_down(client, admin_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    anonymous = client.get("/healthz")
    response = admin_client.get("/healthz")

    assert (anonymous.status_code, anonymous.json()) == (503, {"ok": False})
    assert response.status_code == 503
    report = response.json()
    assert report["redis"]["ok"] is False
    assert "Connection" in report["redis"]["error"]
    assert report["database"]["ok"] is True


def test_healthz_probes_celery_at_most_once_per_cache_window(admin_client, settings, monkeypatch):
    settings.HEALTHZ_CELERY_CACHE_S = 60
    health._celery_cache.clear()
    probes = []
    real_probe = health.celery_status
    monkeypatch.setattr(health, "celery_status", lambda: probes.append(1) or real_probe(0.1))

    first = admin_client.get("/healthz").json()
    second = admin_client.get("/healthz").json()
    admin_client.get("/healthz", HTTP_AUTHORIZATION="Bearer x")
    client_answers = [first["celery"], second["celery"]]

    assert len(probes) == 1
    assert client_answers[0] == client_answers[1]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_healthz_lists_live_workers_with_their_queues(admin_client, celery_worker, settings):
    settings.HEALTHZ_CELERY_CACHE_S = 0
    report = admin_client.get("/healthz").json()
    queues = list(report["celery"]["workers"].values())
    assert ["default", "gpu"] in queues
