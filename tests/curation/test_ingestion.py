"""Ingestion end to end against the real database, a real HTTP server and the real embedder."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from curation import selectors, services
from curation.models import DocumentChunk, IngestionRun, ManualDocument
from tests.conftest import SAMPLE_SITE
from tests.httpserver import LocalHTTPServer, Response

pytestmark = pytest.mark.django_db

SAMPLE_PAGES = sorted(
    p.name for p in (SAMPLE_SITE / "manual").glob("*.html") if p.name != "index.html"
)
FAST = {"min_delay_s": 0, "backoff_s": 0.01, "retries": 1, "timeout_s": 5}


def ingest(source: str, *, manual_name: str = "Corvan Aster", **options) -> IngestionRun:
    manual = services.manual_get_or_create(name=manual_name)
    run = services.ingestion_run_create(
        manual=manual, source=source, options={**FAST, **options}, enqueue=False
    )
    return services.ingestion_run_execute(run_id=run.pk)


def test_crawling_the_sample_site_stores_every_manual_page(sample_start_url):
    run = ingest(sample_start_url)

    assert run.status == IngestionRun.Status.SUCCEEDED, run.message
    names = set(ManualDocument.objects.values_list("source_name", flat=True))
    assert set(SAMPLE_PAGES) <= names
    assert "about.html" not in names  # outside the /manual/ prefix
    assert not any(name.startswith("internal/") for name in names)  # robots.txt disallows it
    assert run.pages_failed == 0
    assert run.documents_created == len(names)
    chunks = DocumentChunk.objects.all()
    assert run.chunks_created == chunks.count() > len(names)
    assert run.chunks_embedded == chunks.count()
    assert not chunks.filter(embedding__isnull=True).exists()
    charging = ManualDocument.objects.get(source_name="charging.html")
    assert charging.markdown.startswith(f"# {charging.title}\n")
    assert "<script" not in charging.markdown and "<nav" not in charging.markdown
    assert not set("\u00b0\u2019\u201c\u2014\u00a0") & set(charging.markdown)  # ASCII equivalents
    assert charging.content_hash and charging.word_count > 100 and charging.version == 1
    for chunk in charging.chunks.all():
        assert chunk.heading_path.startswith(charging.title)
        assert chunk.text.startswith(chunk.heading_path)


def test_reingesting_an_unchanged_site_rewrites_nothing(sample_start_url):
    ingest(sample_start_url)
    chunk_ids = set(DocumentChunk.objects.values_list("id", flat=True))

    again = ingest(sample_start_url)

    assert again.status == IngestionRun.Status.SUCCEEDED
    assert again.documents_unchanged == ManualDocument.objects.count()
    assert again.documents_created == again.documents_updated == again.chunks_created == 0
    assert set(DocumentChunk.objects.values_list("id", flat=True)) == chunk_ids
    assert set(ManualDocument.objects.values_list("version", flat=True)) == {1}


def test_reingest_after_one_page_changed_versions_only_that_page(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(SAMPLE_SITE, site)
    with LocalHTTPServer(root=site) as server:
        start = server.url("/manual/index.html")
        ingest(start)
        tires = ManualDocument.objects.get(source_name="tires.html")
        old_chunk_ids = set(tires.chunks.values_list("id", flat=True))
        page = site / "manual" / "tires.html"
        page.write_text(
            page.read_text(encoding="utf-8").replace(
                "</h1>", "</h1><p>Updated guidance: check tire pressures every two weeks.</p>", 1
            ),
            encoding="utf-8",
        )

        run = ingest(start)

    assert run.documents_updated == 1
    assert run.documents_unchanged == ManualDocument.objects.count() - 1
    tires.refresh_from_db()
    assert tires.version == 2
    assert "every two weeks" in tires.markdown
    new_chunks = tires.chunks.all()
    assert not old_chunk_ids & set(new_chunks.values_list("id", flat=True))
    assert all(chunk.embedding is not None for chunk in new_chunks)
    assert set(ManualDocument.objects.exclude(pk=tires.pk).values_list("version", flat=True)) == {1}


def _bad_site(tmp_path: Path) -> LocalHTTPServer:
    pages = ["good", "unreachable", "not-html", "too-large", "undecodable", "empty"]
    links = "".join(f'<li><a href="{name}.html">{name}</a></li>' for name in pages)
    root = tmp_path / "site" / "manual"
    root.mkdir(parents=True)
    (root / "index.html").write_text(
        f"<html><head><title>Index</title></head><body><main><h1>Contents</h1>"
        f"<p>All pages of the test manual are listed below for owners.</p><ul>{links}</ul>"
        f"</main></body></html>"
    )
    (root / "good.html").write_text(
        "<html><body><main><h1>Good Page</h1><h2>Section</h2>"
        "<p>This page has plenty of real words about checking the coolant level.</p>"
        "</main></body></html>"
    )
    (root / "too-large.html").write_text(
        "<html><body><main><h1>Huge</h1><p>" + "word " * 4000 + "</p></main></body></html>"
    )
    (root / "empty.html").write_text(
        "<html><body><nav><a href='good.html'>Good</a></nav><script>var x=1;</script>"
        "<footer>(c) Corvan</footer></body></html>"
    )
    server = LocalHTTPServer(root=tmp_path / "site").start()
    server.script("/manual/unreachable.html", Response(drop=True))
    server.script(
        "/manual/not-html.html",
        Response(headers={"Content-Type": "application/zip"}, body=b"PK\x03\x04 ..."),
    )
    server.script(
        "/manual/undecodable.html",
        Response(
            headers={"Content-Type": "text/html; charset=utf-8"},
            body=b"<html><body><h1>Broken</h1><p>caf\xe9 \xff\xfe bytes</p></body></html>",
        ),
    )
    return server


def test_bad_pages_are_reported_and_never_stop_the_others(tmp_path):
    with _bad_site(tmp_path) as server:
        run = ingest(server.url("/manual/index.html"), max_bytes=10_000)

    assert run.status == IngestionRun.Status.SUCCEEDED, run.message
    errors = {error["page"]: error["error"] for error in run.errors}
    assert set(errors) == {
        "unreachable.html",
        "not-html.html",
        "too-large.html",
        "undecodable.html",
        "empty.html",
    }
    assert errors["unreachable.html"].startswith("unreachable")
    assert "not HTML" in errors["not-html.html"]
    assert "too large" in errors["too-large.html"]
    assert "undecodable" in errors["undecodable.html"]
    assert "empty after cleaning" in errors["empty.html"]
    assert run.pages_failed == 5
    assert set(ManualDocument.objects.values_list("source_name", flat=True)) == {
        "index.html",
        "good.html",
    }
    assert not any(
        "ERROR" in md for md in ManualDocument.objects.values_list("markdown", flat=True)
    )


def test_a_page_that_turns_bad_keeps_its_previous_version(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(SAMPLE_SITE, site)
    with LocalHTTPServer(root=site) as server:
        start = server.url("/manual/index.html")
        ingest(start)
        before = ManualDocument.objects.get(source_name="climate.html")
        chunk_texts = list(before.chunks.values_list("text", flat=True))
        server.script("/manual/climate.html", Response(status=200, drop=True))

        run = ingest(start)

    assert run.pages_failed == 1
    after = ManualDocument.objects.get(pk=before.pk)
    assert (after.version, after.markdown, after.content_hash) == (
        before.version,
        before.markdown,
        before.content_hash,
    )
    assert list(after.chunks.values_list("text", flat=True)) == chunk_texts


@pytest.mark.parametrize(
    ("question", "expected_page"),
    [
        ("How do I open the charge port if the car has no power?", "charging.html"),
        ("What tire pressure should I use?", "tires.html"),
    ],
)
def test_vector_search_finds_the_page_that_answers(sample_start_url, question, expected_page):
    ingest(sample_start_url)

    chunks = selectors.chunks_for_question(question=question, k=3)

    assert chunks[0].document.source_name == expected_page
    assert chunks[0].distance < chunks[-1].distance or len(chunks) == 1


def test_markdown_folder_keeps_file_names_as_source_names(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "charging_instructions.md").write_text(
        "# Charging Instructions\n\n## Opening the Charge Port\n\nPress the button on the "
        "charge cable to open the charge port door.\n"
    )
    (folder / "wipers.md").write_text(
        "# Wipers\n\n## Replacing Blades\n\nLift the wiper arm and press the release tab.\n"
    )

    run = ingest(str(folder), manual_name="Markdown manual")

    assert run.status == IngestionRun.Status.SUCCEEDED
    assert run.source_kind == IngestionRun.SourceKind.MARKDOWN_FOLDER
    doc = ManualDocument.objects.get(source_name="charging_instructions.md")
    assert doc.title == "Charging Instructions"
    chunk = doc.chunks.get()
    assert chunk.heading_path == "Charging Instructions > Opening the Charge Port"


def test_zip_of_html_pages_is_ingested(tmp_path):
    archive = tmp_path / "manual.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in SAMPLE_PAGES[:3]:
            zf.write(SAMPLE_SITE / "manual" / name, arcname=f"pages/{name}")

    run = ingest(str(archive), manual_name="Zipped manual")

    assert run.status == IngestionRun.Status.SUCCEEDED, run.message
    assert run.source_kind == IngestionRun.SourceKind.HTML_ZIP
    assert run.pages_total == 3
    assert set(ManualDocument.objects.values_list("source_name", flat=True)) == {
        f"pages/{name}" for name in SAMPLE_PAGES[:3]
    }


def test_a_source_that_does_not_exist_is_refused_naming_it(tmp_path):
    manual = services.manual_get_or_create(name="Nowhere")
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ValidationError, match="no-such-folder"):
        services.ingestion_run_create(manual=manual, source=str(missing), enqueue=False)
    assert not IngestionRun.objects.exists()


def test_an_unreachable_start_url_fails_the_run_with_a_message():
    run = ingest("http://127.0.0.1:1/manual/index.html")

    assert run.status == IngestionRun.Status.FAILED
    assert "failed" in run.message
    assert run.errors[0]["error"].startswith("unreachable")
    assert not ManualDocument.objects.exists()


def test_a_run_is_claimed_only_once():
    manual = services.manual_get_or_create(name="Claims")
    run = services.ingestion_run_create(manual=manual, source=str(SAMPLE_SITE), enqueue=False)

    assert services.ingestion_run_claim(run_id=run.pk) is True
    assert services.ingestion_run_claim(run_id=run.pk) is False
    run.refresh_from_db()
    assert run.status == IngestionRun.Status.RUNNING and run.started_at is not None


@pytest.mark.needs_model3
def test_the_model3_markdown_pages_all_ingest(model3_dir, settings):
    manual = services.manual_get_or_create(name="Model 3")
    run = services.ingestion_run_create(
        manual=manual, source=str(model3_dir / "docs"), enqueue=False
    )
    services.ingestion_run_claim(run_id=run.pk)

    run = services.ingestion_run_process_pages(run_id=run.pk)  # embedding is benchmarked

    assert run.status == IngestionRun.Status.EMBEDDING
    assert (run.pages_done, run.pages_failed, run.documents_created) == (128, 0, 128)
    doc = ManualDocument.objects.get(source_name="charging_instructions.md")
    assert doc.title == "Charging Instructions"
    assert doc.chunks.filter(heading_path__contains="Opening the Charge Port").exists()
    longest = DocumentChunk.objects.order_by("-token_count").first()
    assert longest.token_count <= settings.CHUNK_MAX_TOKENS
