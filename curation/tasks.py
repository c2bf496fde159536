"""Celery tasks for ingestion, QA generation and review: thin, they take primary keys."""

from __future__ import annotations

from celery import shared_task

from curation import services
from curation.models import GenerationRun, IngestionRun, QAPair
from manualqa.jobs import queues


@shared_task(name="curation.ingest_run", bind=True)
def ingest_run(self, run_id: int) -> str:
    """Fetch, clean and chunk a run's pages (``default`` queue), then queue the embedding."""
    if not queues.claimed_by(self, services.ingestion_run_claim, run_id=run_id):
        return "already claimed"
    run = services.ingestion_run_process_pages(run_id=run_id)
    if run.status == IngestionRun.Status.EMBEDDING:
        queues.enqueue(embed_run_chunks, run_id, gpu=True)
    return run.status


@shared_task(name="curation.embed_run_chunks")
def embed_run_chunks(run_id: int) -> str:
    """Embed the chunks a run left pending, in batches (``gpu`` queue)."""
    return services.ingestion_run_embed(run_id=run_id).status


def _generate(task, run_id: int) -> str:
    if not queues.claimed_by(task, services.generation_run_claim, run_id=run_id):
        return "already claimed"
    run = services.generation_run_execute(run_id=run_id)
    if run.status == GenerationRun.Status.SCORING:
        queues.enqueue(embed_score_generation, run_id, gpu=True)
    return run.status


@shared_task(name="curation.generate_qa", bind=True)
def generate_qa(self, run_id: int) -> str:
    """Generate QA pairs with a remote endpoint (``default`` queue): only network waits here."""
    return _generate(self, run_id)


@shared_task(name="curation.generate_local_qa", bind=True)
def generate_local_qa(self, run_id: int) -> str:
    """Generate QA pairs with a local model (``gpu`` queue, where the model fits)."""
    return _generate(self, run_id)


@shared_task(name="curation.embed_score_generation")
def embed_score_generation(run_id: int) -> str:
    """Grounding scores and near-duplicate links for a run's pairs (``gpu`` queue)."""
    return services.generation_run_score(run_id=run_id).status


def _regenerate(pair_ids: list[int], endpoint_id: int, reviewer_id: int, batch: str) -> str:
    # Each new answer's rescoring is queued as it is stored (qa_pair_text_changed).
    report = services.qa_pairs_regenerate_answers(
        pair_ids=pair_ids, endpoint_id=endpoint_id, reviewer_id=reviewer_id, batch=batch
    )
    return report.summary()


@shared_task(name="curation.regenerate_answers")
def regenerate_answers(
    pair_ids: list[int], endpoint_id: int, reviewer_id: int, batch: str = ""
) -> str:
    """Answer chosen pairs' questions again with a remote endpoint (``default`` queue)."""
    return _regenerate(pair_ids, endpoint_id, reviewer_id, batch)


@shared_task(name="curation.generate_local_regenerate")
def generate_local_regenerate(
    pair_ids: list[int], endpoint_id: int, reviewer_id: int, batch: str = ""
) -> str:
    """Answer chosen pairs' questions again with a local model (``gpu`` queue)."""
    return _regenerate(pair_ids, endpoint_id, reviewer_id, batch)


@shared_task(name="curation.embed_score_pairs")
def embed_score_pairs(pair_ids: list[int]) -> int:
    """Grounding scores and duplicate links for pairs whose text changed (``gpu`` queue)."""
    return services.qa_pairs_score(pairs=QAPair.objects.filter(pk__in=pair_ids))


@shared_task(name="curation.embed_reembed", bind=True)
def embed_reembed(self, run_id: int) -> str:
    """Re-embed a manual with another embedder, then switch at once (``gpu`` queue)."""
    from curation.services import embedders

    if not queues.claimed_by(self, embedders.reembed_run_claim, run_id=run_id):
        return "already claimed"
    return embedders.reembed_run_execute(run_id=run_id).status
