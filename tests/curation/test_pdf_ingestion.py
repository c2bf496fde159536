"""PDF manuals through the ingestion service (issue 17): sections as documents, chunks with
their pages, the original stored once and served to the document page at the cited page,
idempotent re-ingests, and every bad PDF refused with nothing stored.

The PDFs are printed by a real Chromium from the bundled sample manual's pages
(``tests/curation/pdf_support.py``); the tests skip where Chromium or Playwright is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from curation import services
from curation.models import IngestionRun, Manual, ManualDocument, QAPair, SourceFile
from curation.qa import FLAG_SOURCE_CHANGED
from tests.curation.pdf_support import (
    PdfPrinter,
    combine_pdfs,
    encrypt_pdf,
    print_page,
    require_chromium,
    sample_site_page_html,
)

pytestmark = pytest.mark.django_db

PAGES = ("charging", "tires", "troubleshooting")
TITLES = ("Charging", "Tires and Wheels", "Troubleshooting")


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """The guide (three sample pages, one section each), a copy with one section changed, and
    the bad ones: encrypted, scanned (no text layer), truncated."""
    require_chromium()
    folder = tmp_path_factory.mktemp("pdfs")
    parts = folder / "parts"
    parts.mkdir()
    with PdfPrinter() as printer:
        printed = [
            printer.print(sample_site_page_html(name), parts / f"{name}.pdf", outline=False)
            for name in PAGES
        ]
        changed_tires = printer.print(
            sample_site_page_html("tires").replace("42 PSI", "44 PSI"),
            parts / "tires-changed.pdf",
            outline=False,
        )
        scanned = printer.print(
            print_page("Scan", '<div style="width:15cm;height:20cm;background:#777"></div>'),
            folder / "scanned.pdf",
            outline=False,
        )
    guide = combine_pdfs(printed, folder / "guide.pdf", titles=TITLES, title="Aster guide")
    (folder / "changed").mkdir()
    changed = combine_pdfs(
        [printed[0], changed_tires, printed[2]], folder / "changed" / "guide.pdf", titles=TITLES
    )
    truncated = folder / "truncated.pdf"
    truncated.write_bytes(guide.read_bytes()[: guide.stat().st_size // 3])
    yield {
        "guide": guide,
        "changed": changed,
        "encrypted": encrypt_pdf(guide, folder / "encrypted.pdf"),
        "scanned": scanned,
        "truncated": truncated,
    }


def ingest(manual: Manual, source: Path, **options) -> IngestionRun:
    run = services.ingestion_run_create(
        manual=manual, source=str(source), enqueue=False, options=options
    )
    return services.ingestion_run_execute(run_id=run.pk)


@pytest.fixture
def manual() -> Manual:
    return services.manual_get_or_create(name="Aster (PDF)")


def test_each_section_of_a_pdf_is_a_document_whose_chunks_know_their_pages(manual, pdfs):
    run = ingest(manual, pdfs["guide"])

    assert run.status == IngestionRun.Status.SUCCEEDED, (run.message, run.errors)
    assert run.source_kind == IngestionRun.SourceKind.PDF
    assert (run.pages_done, run.documents_created) == (1, 3)
    documents = {d.source_name: d for d in manual.documents.select_related("source_file")}
    assert set(documents) == {f"guide.pdf/{title}" for title in TITLES}
    stored = SourceFile.objects.get(manual=manual)
    assert stored.name == "guide.pdf" and stored.page_count >= 3
    assert stored.file.read() == pdfs["guide"].read_bytes()
    tires = documents["guide.pdf/Tires and Wheels"]
    assert tires.source_file == stored and tires.first_page > 1
    assert "42 PSI" in tires.markdown
    chunks = list(tires.chunks.order_by("position"))
    assert chunks and all(c.pages and c.pages[0] >= tires.first_page for c in chunks)
    assert all("<!--" not in c.text for c in chunks)
    charging = documents["guide.pdf/Charging"]
    assert charging.first_page == 1
    assert charging.chunks.order_by("position").first().pages[0] == 1


def test_a_citation_opens_the_pdf_at_the_passages_page_beside_the_text(client, manual, pdfs):
    ingest(manual, pdfs["guide"])
    tires = manual.documents.get(source_name="guide.pdf/Tires and Wheels")
    chunk = tires.chunks.exclude(pages=[]).order_by("-position").first()
    stored = tires.source_file

    page = client.get(
        reverse("curation:document", args=[manual.pk, tires.pk]) + f"?chunk={chunk.pk}"
    ).content.decode()
    served = client.get(reverse("curation:source_file", args=[manual.pk, stored.pk]))

    pdf_url = reverse("curation:source_file", args=[manual.pk, stored.pk])
    assert f'src="{pdf_url}#page={chunk.pages[0]}"' in page
    assert re.search(rf'id="chunk-{chunk.pk}" class="chunk highlighted"', page)
    assert f"page {chunk.pages[0]}" in page or f"pages {chunk.pages[0]}" in page
    assert served.status_code == 200 and served["Content-Type"] == "application/pdf"
    assert b"".join(served.streaming_content) == pdfs["guide"].read_bytes()
    assert served["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in served["Content-Security-Policy"]
    assert served["Content-Disposition"].startswith("inline")
    # A stored file is served only under its own manual.
    other = services.manual_get_or_create(name="Another manual")
    assert (
        client.get(reverse("curation:source_file", args=[other.pk, stored.pk])).status_code == 404
    )


def test_re_ingesting_a_pdf_is_idempotent_per_section(manual, pdfs):
    ingest(manual, pdfs["guide"])
    tires = manual.documents.get(source_name="guide.pdf/Tires and Wheels")
    pair = QAPair.objects.create(
        manual=manual,
        document=tires,
        question="What pressure?",
        answer="42 PSI",
        question_hash="h-tires",
        original_question="-",
        original_answer="-",
    )

    again = ingest(manual, pdfs["guide"])
    changed = ingest(manual, pdfs["changed"])

    assert (again.documents_unchanged, again.documents_updated) == (3, 0)
    assert (changed.documents_unchanged, changed.documents_updated) == (2, 1)
    tires.refresh_from_db()
    assert tires.version == 2 and "44 PSI" in tires.markdown
    pair.refresh_from_db()
    assert FLAG_SOURCE_CHANGED in pair.flags
    # The changed PDF is a second stored original; the first is not stored twice.
    assert SourceFile.objects.filter(manual=manual).count() == 2
    assert tires.source_file.file.read() == pdfs["changed"].read_bytes()


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("encrypted", "encrypted"),
        ("scanned", "no text layer"),
        ("truncated", ""),
    ],
)
def test_a_bad_pdf_is_refused_naming_the_problem_and_nothing_is_stored(manual, pdfs, kind, problem):
    run = ingest(manual, pdfs[kind])

    assert run.status == IngestionRun.Status.FAILED
    assert run.pages_failed == 1 and len(run.errors) == 1
    error = run.errors[0]["error"]
    assert problem in error.lower(), error
    assert not ManualDocument.objects.filter(manual=manual).exists()
    assert not SourceFile.objects.filter(manual=manual).exists()


def test_a_pdf_over_the_size_limit_is_refused_naming_the_limit(manual, pdfs):
    run = ingest(manual, pdfs["guide"], max_pdf_bytes=10_000)

    assert run.status == IngestionRun.Status.FAILED
    assert "limit 10000" in run.errors[0]["error"]
    assert not SourceFile.objects.exists()


def test_the_command_ingests_a_folder_of_pdfs(manual, pdfs, tmp_path, capsys):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    (folder / "guide.pdf").write_bytes(pdfs["guide"].read_bytes())

    call_command("ingest", str(folder), manual=manual.name)

    run = IngestionRun.objects.get(manual=manual)
    assert run.source_kind == IngestionRun.SourceKind.PDF_FOLDER
    assert manual.documents.count() == 3


def test_a_crawled_page_that_says_it_is_a_pdf_but_is_not_is_reported(manual, tmp_path):
    from tests.httpserver import LocalHTTPServer, Response

    root = tmp_path / "site"
    (root / "manual").mkdir(parents=True)
    (root / "manual" / "index.html").write_text(
        '<html><body><h1>Guide</h1><p>The printed guide is <a href="guide.pdf">here</a> '
        "for owners who like paper.</p></body></html>"
    )
    with LocalHTTPServer(root=root) as server:
        server.script(
            "/manual/guide.pdf",
            Response(headers={"Content-Type": "application/pdf"}, body=b"%PDF-1.4 ..."),
        )
        run = ingest(manual, server.url("/manual/index.html"))

    assert run.status == IngestionRun.Status.SUCCEEDED
    errors = {error["page"]: error.get("error", "") for error in run.errors}
    assert "guide.pdf" in errors and "pdf" in errors["guide.pdf"].lower()
    assert manual.documents.count() == 1 and not SourceFile.objects.exists()
