from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_pgvector_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is True
    assert report["database"]["ok"] is True
    assert report["database"]["server"].startswith("PostgreSQL")
    assert report["pgvector"].count(".") == 2  # e.g. "0.6.2"
    assert report["redis"]["ok"] is True
    assert "celery" in report


def test_healthz_is_unhealthy_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    report = response.json()
    assert report["redis"]["ok"] is False
    assert "Connection" in report["redis"]["error"]
    assert report["database"]["ok"] is True


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_healthz_lists_live_workers_with_their_queues(client, celery_worker):
    report = client.get("/healthz").json()
    queues = list(report["celery"]["workers"].values())
    assert ["default", "gpu"] in queues
