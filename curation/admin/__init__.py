"""Admin pages for manuals, documents, chunks, ingestion and generation runs, and QA review.

Ingestion is started from the "Ingest a source" page (a button on the runs list) or from the
"Re-ingest" action on manuals; both call ``curation.services.ingestion_run_create``.

QA pairs are reviewed in the list (filters, bulk actions), on the change page (edit with
history), on the focused review page (``review/``: one pending pair at a time, keyboard driven) and
followed on the dashboard (``dashboard/``). All of it is for the Reviewer role
(``curation.review_qapair``), and every write goes through ``curation.services``.

One module per area; importing them registers their admins.
"""

from curation.admin import endpoints, generation, ingestion, manuals, qa_pairs, retrieval  # noqa: F401
