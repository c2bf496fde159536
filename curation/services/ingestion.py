"""Writes for manuals and their ingestion runs; the pages themselves are stored by
``curation.services.documents``.

Every entry point (admin, management command, Celery task) calls these functions, so the rules
live in one place: a failed page never aborts a run, and a run's row reports progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone

from curation.models import IngestionRun, Manual
from curation.scraping import PageRejected
from curation.services.documents import (
    CleanDocument,
    chunks_embed_pending,
    clean_page,
    document_upsert,
)
from curation.services.pdfs import clean_pdf
from curation.signals import manual_embedded
from curation.sources import (
    PDF_CONTENT_TYPE,
    CrawlOptions,
    RawPage,
    SourceError,
    count_hint,
    iter_source,
)
from manualqa import roles
from manualqa.jobs import lifecycle, queues, runner

logger = logging.getLogger("curation.ingestion")

__all__ = [
    "IngestionFailed",
    "crawl_options",
    "ingestion_run_again",
    "ingestion_run_claim",
    "ingestion_run_create",
    "ingestion_run_embed",
    "ingestion_run_execute",
    "ingestion_run_process_pages",
    "ingestion_runs_fail_stale",
    "manual_get_or_create",
]


class IngestionFailed(Exception):
    """An expected failure of a whole run (unusable source), reported to the user as is."""


# --- Manuals --------------------------------------------------------------------------------------


@transaction.atomic
def manual_get_or_create(
    *,
    name: str,
    vehicle_make: str = "",
    vehicle_model: str = "",
    vehicle_year: int | None = None,
    source_url: str = "",
) -> Manual:
    """Return the manual called ``name``, creating it with the given details if it is new.

    Details given for an existing manual fill in blanks but never overwrite what is there.
    """
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A manual needs a name."})
    manual, created = Manual.objects.get_or_create(
        name=name,
        defaults={
            "vehicle_make": vehicle_make,
            "vehicle_model": vehicle_model,
            "vehicle_year": vehicle_year,
            "source_url": source_url,
        },
    )
    if not created:
        changed = []
        for field, value in (
            ("vehicle_make", vehicle_make),
            ("vehicle_model", vehicle_model),
            ("vehicle_year", vehicle_year),
            ("source_url", source_url),
        ):
            if value and not getattr(manual, field):
                setattr(manual, field, value)
                changed.append(field)
        if changed:
            manual.save(update_fields=[*changed, "updated_at"])
    return manual


# --- Ingestion runs -------------------------------------------------------------------------------


def _source_kind(source: str) -> str:
    if source.startswith(("http://", "https://")):
        return IngestionRun.SourceKind.URL
    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".zip":
        return IngestionRun.SourceKind.HTML_ZIP
    if path.is_file() and path.suffix.lower() == ".pdf":
        return IngestionRun.SourceKind.PDF
    if path.is_dir():
        return IngestionRun.SourceKind.FOLDER
    if path.exists():
        raise ValidationError(
            {
                "source": f"{source} is a file but not a .zip or a .pdf: give a URL, a "
                "folder, a zip or a PDF"
            }
        )
    raise ValidationError({"source": f"{source} is neither an http(s) URL nor an existing path"})


def _folder_kind(run: IngestionRun) -> None:
    """Find what a folder run holds, in the run's task (it may be a large tree)."""
    path = Path(run.source)
    has_html = any(path.rglob("*.htm*"))
    if has_html:
        kind = IngestionRun.SourceKind.HTML_FOLDER
    elif any(path.rglob("*.md")):
        kind = IngestionRun.SourceKind.MARKDOWN_FOLDER
    elif any(p.suffix.lower() == ".pdf" for p in path.rglob("*.[pP][dD][fF]")):
        kind = IngestionRun.SourceKind.PDF_FOLDER
    else:
        raise IngestionFailed(f"{run.source} holds no .html, .md or .pdf files")
    IngestionRun.objects.filter(pk=run.pk).update(source_kind=kind)
    run.source_kind = kind


def _local_source(source: str, user) -> str:
    """The resolved path of a local source. For a person (the admin's ingest page), it must
    lie under one of ``INGEST_ROOTS``, checked after symlinks are resolved, or it is refused
    with the same message whether or not it exists, so the page cannot probe the server's
    disk (security review M2); the system (commands, the bootstrap) may name any path."""
    if source.startswith("file://"):
        source = source.removeprefix("file://")
    path = Path(source).expanduser().resolve()
    if user is None:
        return str(path)
    roots = [Path(root).expanduser().resolve() for root in settings.INGEST_ROOTS]
    if not any(path == root or path.is_relative_to(root) for root in roots) or not path.exists():
        places = ", ".join(str(root) for root in roots) or "nowhere (INGEST_ROOTS is empty)"
        raise ValidationError(
            {"source": f"Give a URL, or a folder or zip file that exists under {places}."}
        )
    return str(path)


def crawl_options(options: dict) -> CrawlOptions:
    """Crawl options from a run's ``options``, defaulting to the settings."""
    return CrawlOptions(
        max_pages=int(options.get("max_pages", settings.CRAWL_MAX_PAGES)),
        timeout_s=float(options.get("timeout_s", settings.CRAWL_TIMEOUT_S)),
        retries=int(options.get("retries", settings.CRAWL_RETRIES)),
        max_bytes=int(options.get("max_bytes", settings.CRAWL_MAX_BYTES)),
        max_pdf_bytes=int(options.get("max_pdf_bytes", settings.PDF_MAX_BYTES)),
        max_image_bytes=int(options.get("max_image_bytes", settings.FIGURE_MAX_BYTES)),
        min_delay_s=float(options.get("min_delay_s", settings.CRAWL_MIN_DELAY_S)),
        backoff_s=float(options.get("backoff_s", 0.5)),
        allow_private_networks=bool(
            options.get("allow_private_networks", settings.CRAWL_ALLOW_PRIVATE_NETWORKS)
        ),
    )


@transaction.atomic
def ingestion_run_create(
    *,
    manual: Manual,
    source: str,
    options: dict | None = None,
    user=None,
    enqueue: bool = True,
) -> IngestionRun:
    """Record a run for ``source`` and, with ``enqueue``, queue it once this transaction commits.

    The source is checked now, so a typo is refused with a message instead of a failed job.
    """
    roles.require(
        user, "curation.add_ingestionrun", "Ingesting a manual needs the add ingestion run right."
    )
    source = source.strip()
    if not source:
        raise ValidationError({"source": "Give a URL, a folder or a zip file to ingest."})
    if not source.startswith(("http://", "https://")):
        source = _local_source(source, user)
    options = dict(options or {})
    if "max_pages" in options and int(options["max_pages"]) < 1:
        raise ValidationError({"max_pages": "The page limit must be at least 1."})
    run = IngestionRun.objects.create(
        manual=manual,
        source=source,
        source_kind=_source_kind(source),
        options=options,
        created_by=roles.recorded_user(user),
    )
    if enqueue:
        from curation.tasks import ingest_run

        queues.enqueue(ingest_run, run.pk)
    return run


def ingestion_run_claim(*, run_id: int, task_id: str = "", redelivered: bool = False) -> bool:
    """Atomically move a queued run to running. False means another worker has it.

    Another worker's crawl is never taken over halfway, but a task delivered again after its
    own worker died takes its run back and starts the pages over (each page's upsert is
    idempotent), its counters from zero.
    """
    claimed = lifecycle.claim(
        IngestionRun, run_id, task_id=task_id, takeover=False, redelivered=redelivered
    )
    if claimed and redelivered:
        IngestionRun.objects.filter(pk=run_id).update(
            pages_done=0,
            pages_failed=0,
            documents_created=0,
            documents_updated=0,
            documents_unchanged=0,
            chunks_created=0,
            chunks_embedded=0,
            errors=[],
        )
    return claimed


def ingestion_runs_fail_stale() -> int:
    """Mark failed every running ingestion whose worker stopped beating; return how many.

    Called by the periodic ``manualqa.reap_stale_jobs`` task. The pages stored so far stay;
    ingesting the source again updates them.
    """

    return lifecycle.fail_silent(
        IngestionRun,
        progress=lambda run: f"after {run.pages_done} pages",
        then="Ingest the source again to finish.",
    )


def ingestion_run_again(*, run: IngestionRun, user=None) -> IngestionRun:
    """Ingest a run's source again, as a new run with the same manual and options: for a run
    that failed, crashed, or whose worker died (its heartbeat went stale; it is marked failed
    first). Refused while the run is alive."""
    roles.require(
        user, "curation.add_ingestionrun", "Ingesting a manual needs the add ingestion run right."
    )
    run.refresh_from_db()
    if lifecycle.is_stale(run):
        ingestion_runs_fail_stale()
        run.refresh_from_db()
    if run.status not in (IngestionRun.Status.FAILED, IngestionRun.Status.ERRORED):
        raise ValidationError(
            f"Run #{run.pk} is {run.get_status_display().lower()}; only a failed, crashed or "
            "stalled run is ingested again."
        )
    # Queued by the system on the person's behalf: the source was checked when they made it.
    again = ingestion_run_create(manual=run.manual, source=run.source, options=run.options)
    IngestionRun.objects.filter(pk=again.pk).update(created_by=user)
    return again


def _pages(run: IngestionRun) -> Iterator[RawPage]:
    try:
        yield from iter_source(run.source, crawl_options(run.options))
    except SourceError as exc:
        raise IngestionFailed(str(exc)) from exc


def ingestion_run_process_pages(
    *, run_id: int, on_progress: Callable[[IngestionRun], None] | None = None
) -> IngestionRun:
    """Read every page of a claimed run and store the good ones, one transaction per page.

    A bad page is recorded in the run's ``errors`` and the run goes on. An unusable source fails
    the run with a message; a bug marks it errored with the traceback. Ends in ``embedding``.
    """
    run = IngestionRun.objects.get(pk=run_id)
    try:
        if run.source_kind == IngestionRun.SourceKind.FOLDER:
            _folder_kind(run)
        total = count_hint(run.source)  # exact for files; unknown (None) for a crawl
        IngestionRun.objects.filter(pk=run.pk).update(pages_total=total)
        run.pages_total = total
        for page in _pages(run):
            _ingest_page(run, page)
            if on_progress is not None:
                on_progress(run)
        if run.pages_done == 0:
            raise IngestionFailed(f"no pages found at {run.source}")
        if run.pages_done == run.pages_failed:
            raise IngestionFailed(f"all {run.pages_done} pages failed; see the page errors")
    except IngestionFailed as exc:
        return _finish(run, IngestionRun.Status.FAILED, message=str(exc))
    except Exception as exc:
        return runner.errored(run, exc)
    IngestionRun.objects.filter(pk=run.pk).update(
        status=IngestionRun.Status.EMBEDDING, pages_total=run.pages_done
    )
    run.refresh_from_db()
    return run


def _clean(run: IngestionRun, page: RawPage) -> tuple[list[CleanDocument], list[str]]:
    """What a fetched page holds: one document (a web page, a markdown file), or one per
    section of a PDF, and the notes on what was skipped in it."""
    if page.error is None and page.content_type == PDF_CONTENT_TYPE:
        return clean_pdf(page, manual=run.manual)
    notes: list[str] = []
    return [clean_page(page, on_note=notes.append)], notes


def _ingest_page(run: IngestionRun, page: RawPage) -> None:
    counters: dict[str, object] = {"pages_done": F("pages_done") + 1}
    run.pages_done += 1
    try:
        cleaned, notes = _clean(run, page)
        # Figures left out while storing add to the page's notes; the page is still stored.
        outcomes = [
            document_upsert(manual=run.manual, clean=clean, on_note=notes.append)
            for clean in cleaned
        ]
    except PageRejected as exc:
        logger.info("page %s rejected: %s", page.source_name, exc)
        run.pages_failed += 1
        error = {"page": page.source_name, "url": page.source_url, "error": str(exc)}
        run.errors = [*run.errors, error]
        counters.update(pages_failed=F("pages_failed") + 1, errors=run.errors)
    else:
        created = 0
        for _, outcome, chunk_count in outcomes:
            field = f"documents_{outcome}"
            setattr(run, field, getattr(run, field) + 1)
            counters[field] = counters.get(field, F(field)) + 1
            created += chunk_count
        run.chunks_created += created
        counters["chunks_created"] = F("chunks_created") + created
        if notes:
            run.errors = [
                *run.errors,
                *({"page": page.source_name, "url": page.source_url, "note": n} for n in notes),
            ]
            counters["errors"] = run.errors
    if run.pages_total is not None and run.pages_done > run.pages_total:
        run.pages_total = run.pages_done
        counters["pages_total"] = run.pages_done
    IngestionRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now(), **counters)


def ingestion_run_embed(
    *, run_id: int, on_progress: Callable[[int], None] | None = None
) -> IngestionRun:
    """Embed the manual's pending chunks for a run in the ``embedding`` state, then finish it."""
    run = IngestionRun.objects.select_related("manual").get(pk=run_id)
    if run.status != IngestionRun.Status.EMBEDDING:
        logger.info("run %s is %s, not embedding; nothing to do", run.pk, run.status)
        return run

    def progress(count: int) -> None:
        # Capped: a second delivery of this task embeds only what is still missing, but its
        # batches must not count the run's chunks twice (security review M9).
        IngestionRun.objects.filter(pk=run.pk).update(
            chunks_embedded=Least(F("chunks_embedded") + count, F("chunks_created")),
            heartbeat_at=timezone.now(),
        )
        if on_progress is not None:
            on_progress(count)

    try:
        chunks_embed_pending(manual=run.manual, on_batch=progress)
    except Exception as exc:
        return runner.errored(run, exc, doing="embedding failed: ")
    run = _finish(run, IngestionRun.Status.SUCCEEDED)
    if run.status == IngestionRun.Status.SUCCEEDED:
        _manual_embedded(run.manual)
    return run


def _manual_embedded(manual: Manual) -> None:
    """Tell other apps (chat: its quotable units' vectors) that ``manual`` is embedded; what
    they keep of it is theirs to fail: the run has succeeded."""
    for receiver, outcome in manual_embedded.send_robust(sender=Manual, manual=manual):
        if isinstance(outcome, Exception):
            logger.error(
                "after embedding %s, %s failed: %s",
                manual,
                getattr(receiver, "__qualname__", receiver),
                outcome,
                exc_info=outcome,
            )


def _finish(run: IngestionRun, status: str, *, message: str = "", trace: str = "") -> IngestionRun:
    return lifecycle.finish(run, status, message=message, trace=trace)


def ingestion_run_execute(
    *,
    run_id: int,
    on_progress: Callable[[IngestionRun], None] | None = None,
    on_embedded: Callable[[int], None] | None = None,
) -> IngestionRun:
    """Run a queued ingestion start to finish in this process (the CLI path).

    The Celery path runs the same two phases as two tasks, so that embedding happens on the
    ``gpu`` queue.
    """
    if not ingestion_run_claim(run_id=run_id):
        return IngestionRun.objects.get(pk=run_id)
    run = ingestion_run_process_pages(run_id=run_id, on_progress=on_progress)
    if run.status != IngestionRun.Status.EMBEDDING:
        return run
    return ingestion_run_embed(run_id=run_id, on_progress=on_embedded)
