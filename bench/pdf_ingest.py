"""Benchmark: the Model 3 manual as one PDF against the same pages as markdown (issue 17).

In one run, on the 128 markdown pages of ``../shared/data/model3-manual/docs`` (skipped with a
note where they are absent):

1. print every page to PDF with Chromium (each page rendered from its markdown with the
   ``markdown`` package and a plain print style) and join them with pypdf into one PDF whose
   outline has one top-level entry per page, titled as the page is (``var/bench/model3.pdf``,
   rebuilt when missing or with ``BENCH_PDF_REBUILD=1``);
2. ingest that PDF into the manual "Model 3 (PDF bench)" from scratch and time reading it
   (extraction, cleaning, chunking, storing: pages/s over the PDF's pages; embedding is timed
   apart, being the same work for both sources);
3. ingest the markdown pages into "Model 3 (quality bench)" (as ``bench/quality.py`` does;
   re-running skips unchanged pages);
4. measure retrieval alone (the default retrieval RAG assistants get) on
   ``bench/questions/model3-owners.jsonl`` over each manual. The PDF names a page's section
   by its title (``model3.pdf/Charging Instructions``), so for the PDF run each expected
   source (``charging_instructions.md``) is replaced by the section the bench made from that
   very file: the same pages, named as the PDF names them.

Last line: ``{"pdf_pages", "pdf_pages_per_s", "sections", "figures", "pdf_hit_at_3",
"markdown_hit_at_3", ...}`` with the PDF's size, the embedding times and both runs' hit@1,
hit@5 and MRR. Goal: hit@3 from the PDF within 0.03 of the markdown ingestion.

Usage: ``make bench-pdf_ingest`` (PostgreSQL and Redis reachable: ``make services``).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
from pathlib import Path

import _django

_django.setup()

import markdown  # noqa: E402
from django.conf import settings  # noqa: E402

from curation import services as curation_services  # noqa: E402
from curation.models import Figure, Manual  # noqa: E402
from training import evaluation  # noqa: E402
from training.models import EvaluationRun  # noqa: E402

PDF_MANUAL = "Model 3 (PDF bench)"
MARKDOWN_MANUAL = os.environ.get("BENCH_QUALITY_MANUAL", "").strip() or "Model 3 (quality bench)"
QUESTIONS = _django.BASE_DIR / "bench" / "questions" / "model3-owners.jsonl"
OUT = Path(settings.VAR_DIR) / "bench"
PDF_NAME = "model3.pdf"
#: The printed PDF's cache file: renamed whenever the way pages are printed changes.
PDF_CACHE = "model3-v2.pdf"
CHROMIUM = Path("/usr/bin/chromium")
PRINT_STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 11pt; line-height: 1.4;
       margin: 0; }
h1 { font-size: 20pt; } h2 { font-size: 15pt; } h3 { font-size: 12.5pt; }
table { border-collapse: collapse; } td, th { border: 1px solid #999; padding: 3px 6px; }
"""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


_LIST_LINE = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,3}[.)])\s+\S")


def printable(text: str) -> str:
    """The page's markdown with a blank line before a list that follows its paragraph
    directly, as the scraped pages have it: Python-Markdown would run it into the paragraph,
    and the printed page would show a paragraph of dashes instead of a list."""
    out: list[str] = []
    previous = ""
    for line in text.splitlines():
        if _LIST_LINE.match(line) and previous.strip() and not _LIST_LINE.match(previous):
            out.append("")
        out.append(line)
        previous = line
    return "\n".join(out) + "\n"


def page_title(text: str, path: Path) -> str:
    match = re.search(r"^# (.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else path.stem.replace("_", " ").title()


def build_pdf(docs: Path, target: Path) -> dict[str, str]:
    """Print every page and join them with an outline; returns {file name: section title}."""
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader, PdfWriter

    files = sorted(docs.glob("*.md"))
    titles = {path.name: page_title(path.read_text(encoding="utf-8"), path) for path in files}
    if target.is_file() and os.environ.get("BENCH_PDF_REBUILD") != "1":
        return titles
    writer = PdfWriter()
    started = time.perf_counter()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        for path in files:
            body = markdown.markdown(
                printable(path.read_text(encoding="utf-8")), extensions=["tables", "sane_lists"]
            )
            page.set_content(
                f"<!doctype html><html><head><meta charset='utf-8'><title>{titles[path.name]}"
                f"</title><style>{PRINT_STYLE}</style></head><body>{body}</body></html>"
            )
            printed = page.pdf(format="A4", margin={"top": "18mm", "bottom": "18mm"})
            first = len(writer.pages)
            for printed_page in PdfReader(io.BytesIO(printed)).pages:
                writer.add_page(printed_page)
            writer.add_outline_item(title=titles[path.name], page_number=first)
        browser.close()
    writer.add_metadata({"/Title": "Model 3 Owner's Manual"})
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        writer.write(handle)
    say(f"printed {len(files)} pages to {target} in {time.perf_counter() - started:.0f} s")
    return titles


def ingest(manual_name: str, source: Path) -> tuple[Manual, float, float]:
    """Ingest ``source``; returns (manual, seconds reading pages, seconds embedding)."""
    manual = curation_services.manual_get_or_create(name=manual_name)
    run = curation_services.ingestion_run_create(manual=manual, source=str(source), enqueue=False)
    assert curation_services.ingestion_run_claim(run_id=run.pk)
    started = time.perf_counter()
    run = curation_services.ingestion_run_process_pages(run_id=run.pk)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    run = curation_services.ingestion_run_embed(run_id=run.pk)
    embed_s = time.perf_counter() - started
    if run.status != run.Status.SUCCEEDED:
        raise SystemExit(f"ingesting {source} {run.status}: {run.message} {run.errors[:3]}")
    return manual, read_s, embed_s


def retrieval(manual: Manual, questions: str, label: str) -> dict[str, float]:
    run = evaluation.evaluation_run_create(
        user=None,
        name=f"PDF bench: retrieval over {manual.name}",
        questions_jsonl=questions,
        questions_name=QUESTIONS.name,
        manual=manual,
        retrieval_only=True,
        enqueue=False,
    )
    assert evaluation.evaluation_run_claim(run_id=run.pk)
    run = evaluation.evaluation_run_execute(run_id=run.pk)
    summary = next(iter(run.summary.values()))
    say(f"{label}: " + evaluation.summary_table(run.summary).splitlines()[-1])
    return summary


def main() -> int:
    docs = _django.MODEL3_DIR / "docs"
    if not docs.is_dir():
        say(f"skipped: the Model 3 pages are not at {docs} (they live in ../shared)")
        print(json.dumps({"skipped": True}))
        return 0
    if not CHROMIUM.is_file():
        say("skipped: no Chromium at /usr/bin/chromium to print the pages")
        print(json.dumps({"skipped": True}))
        return 0
    pdf = OUT / PDF_CACHE
    titles = build_pdf(docs, pdf)
    named = OUT / "pdf" / PDF_NAME  # the name the documents carry: model3.pdf/Section
    named.parent.mkdir(parents=True, exist_ok=True)
    named.write_bytes(pdf.read_bytes())

    # Measured from scratch every run: the bench's own manual, and its earlier retrieval runs.
    EvaluationRun.objects.filter(manual__name=PDF_MANUAL).delete()
    Manual.objects.filter(name=PDF_MANUAL).delete()
    pdf_manual, read_s, pdf_embed_s = ingest(PDF_MANUAL, named)
    from pypdf import PdfReader

    pages = len(PdfReader(str(pdf)).pages)
    sections = pdf_manual.documents.count()
    figures = Figure.objects.filter(document__manual=pdf_manual).count()
    say(f"PDF: {pages} pages, {sections} sections, {figures} figures, read in {read_s:.1f} s")

    markdown_manual, _, markdown_embed_s = ingest(MARKDOWN_MANUAL, docs)

    raw = QUESTIONS.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    for row in rows:
        row["sources"] = [
            f"{PDF_NAME}/{titles[name].replace('/', '-')}" if name in titles else name
            for name in row.get("sources", [])
        ]
    pdf_questions = "".join(json.dumps(row) + "\n" for row in rows)
    on_pdf = retrieval(pdf_manual, pdf_questions, "PDF")
    on_markdown = retrieval(markdown_manual, raw, "markdown")

    result = {
        "pdf_pages": pages,
        "pdf_pages_per_s": round(pages / read_s, 2),
        "sections": sections,
        "figures": figures,
        "pdf_hit_at_3": round(on_pdf.get("hit@3", 0.0), 3),
        "markdown_hit_at_3": round(on_markdown.get("hit@3", 0.0), 3),
        "pdf_mb": round(pdf.stat().st_size / 2**20, 1),
        "pdf_read_s": round(read_s, 1),
        "pdf_embed_s": round(pdf_embed_s, 1),
        "markdown_embed_s": round(markdown_embed_s, 1),
        "pdf_chunks": sum(d.chunks.count() for d in pdf_manual.documents.all()),
    }
    for key in ("hit@1", "hit@5", "mrr", "context_recall"):
        result[f"pdf_{key}"] = round(on_pdf.get(key, 0.0), 3)
        result[f"markdown_{key}"] = round(on_markdown.get(key, 0.0), 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
