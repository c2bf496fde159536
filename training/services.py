"""Writes for dataset snapshots: create (freeze + split), and export in every training format.

A snapshot is built by one ``INSERT ... SELECT`` in PostgreSQL: the approved pairs' text is
copied, each pair's split is drawn from a seeded hash of its *group* (its document section, or
its canonical pair's section for near-duplicates), and the content hash is computed over the
frozen rows. That keeps 100,000 pairs within seconds and makes the split reproducible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Max

from curation import qa
from curation.models import Manual, QAPair
from training.models import DatasetSnapshot, SnapshotPair

EXPORT_FORMATS = ("chat_template", "seed_inst", "alpaca")
MIN_PAIRS = 1


def _check_fractions(train: float, eval_: float, test: float) -> None:
    if min(train, eval_, test) < 0:
        raise ValidationError({"train_fraction": "Split fractions cannot be negative."})
    if abs(train + eval_ + test - 1.0) > 1e-6:
        raise ValidationError(
            {"train_fraction": f"Split fractions must add up to 1 (got {train + eval_ + test:g})."}
        )
    if train <= 0:
        raise ValidationError({"train_fraction": "The train split cannot be empty."})


# The split of a pair is decided by its group: the section of its canonical pair (itself, unless
# it is a near-duplicate). The group key is hashed with the seed into [0, 1).
_INSERT_SQL = """
WITH chosen AS (
    SELECT p.id, p.question, p.answer,
           COALESCE(d.source_name, '') AS source_name,
           COALESCE(c.heading_path, '') AS section,
           COALESCE(cd.source_name, d.source_name, '') || '|' ||
           split_part(COALESCE(cc.heading_path, c.heading_path, ''), ' > ', 2) AS group_key
    FROM curation_qapair p
    LEFT JOIN curation_manualdocument d ON d.id = p.document_id
    LEFT JOIN curation_documentchunk c ON c.id = p.chunk_id
    LEFT JOIN curation_qapair canon ON canon.id = p.duplicate_of_id
    LEFT JOIN curation_documentchunk cc ON cc.id = canon.chunk_id
    LEFT JOIN curation_manualdocument cd ON cd.id = canon.document_id
    WHERE p.manual_id = %(manual_id)s AND p.status = 'approved' {extra}
), drawn AS (
    SELECT chosen.*,
           ('x' || substr(md5(%(seed)s || ':' || group_key), 1, 8))::bit(32)::bigint
               / 4294967296.0 AS draw
    FROM chosen
)
INSERT INTO training_snapshotpair (snapshot_id, qa_pair_id, question, answer, source_name,
                                   section, split)
SELECT %(snapshot_id)s, id, question, answer, source_name, section,
       CASE WHEN draw < %(train)s THEN 'train'
            WHEN draw < %(train)s + %(eval)s THEN 'eval'
            ELSE 'test' END
FROM drawn
ORDER BY id
"""

_HASH_SQL = """
SELECT encode(sha256(convert_to(COALESCE(string_agg(
           question || chr(31) || answer || chr(31) || split, chr(30) ORDER BY qa_pair_id
       ), ''), 'UTF8')), 'hex'),
       count(*),
       count(*) FILTER (WHERE split = 'train'),
       count(*) FILTER (WHERE split = 'eval'),
       count(*) FILTER (WHERE split = 'test')
FROM training_snapshotpair WHERE snapshot_id = %s
"""


@transaction.atomic
def snapshot_create(
    *,
    manual: Manual,
    user,
    name: str = "",
    description: str = "",
    prompt_format: str = DatasetSnapshot.PromptFormat.CHAT_TEMPLATE,
    system_prompt: str = "",
    train_fraction: float = 0.8,
    eval_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    document_ids: list[int] | None = None,
    exclude_flagged: bool = False,
) -> DatasetSnapshot:
    """Freeze the manual's approved pairs into a new snapshot version."""
    if user is not None and not user.has_perm("training.add_datasetsnapshot"):
        raise PermissionDenied("Building datasets needs the Trainer role.")
    if prompt_format not in DatasetSnapshot.PromptFormat.values:
        raise ValidationError({"prompt_format": f"Unknown prompt format {prompt_format!r}."})
    _check_fractions(train_fraction, eval_fraction, test_fraction)
    approved = QAPair.objects.filter(manual=manual, status=QAPair.Status.APPROVED)
    extra, params = "", {}
    if document_ids:
        extra += " AND p.document_id = ANY(%(document_ids)s)"
        params["document_ids"] = list(document_ids)
        approved = approved.filter(document_id__in=document_ids)
    if exclude_flagged:
        extra += " AND cardinality(p.flags) = 0"
        approved = approved.filter(flags=[])
    if approved.count() < MIN_PAIRS:
        raise ValidationError(f"{manual.name} has no approved pairs to build a dataset from.")
    # Lock the manual row so two snapshots of one manual never take the same version.
    Manual.objects.select_for_update().get(pk=manual.pk)
    version = (manual.dataset_snapshots.aggregate(v=Max("version"))["v"] or 0) + 1
    snapshot = DatasetSnapshot.objects.create(
        manual=manual,
        name=name.strip() or f"{manual.name} dataset",
        version=version,
        description=description,
        prompt_format=prompt_format,
        system_prompt=system_prompt,
        train_fraction=train_fraction,
        eval_fraction=eval_fraction,
        test_fraction=test_fraction,
        seed=seed,
        filters={"document_ids": document_ids or [], "exclude_flagged": exclude_flagged},
        content_hash="",
        created_by=user,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL.format(extra=extra),
            {
                "manual_id": manual.pk,
                "seed": str(seed),
                "snapshot_id": snapshot.pk,
                "train": train_fraction,
                "eval": eval_fraction,
                **params,
            },
        )
        cursor.execute(_HASH_SQL, [snapshot.pk])
        digest, total, train, eval_, test = cursor.fetchone()
    DatasetSnapshot.objects.filter(pk=snapshot.pk).update(
        content_hash=digest,
        pair_count=total,
        train_count=train,
        eval_count=eval_,
        test_count=test,
    )
    snapshot.refresh_from_db()
    return snapshot


@dataclass(frozen=True)
class SnapshotDiff:
    """Pairs added, removed and edited between two snapshots (by their QA pair)."""

    added: list[SnapshotPair]
    removed: list[SnapshotPair]
    edited: list[tuple[SnapshotPair, SnapshotPair]]


def snapshot_diff(*, old: DatasetSnapshot, new: DatasetSnapshot) -> SnapshotDiff:
    old_pairs = {p.qa_pair_id: p for p in old.pairs.all() if p.qa_pair_id}
    new_pairs = {p.qa_pair_id: p for p in new.pairs.all() if p.qa_pair_id}
    added = [new_pairs[k] for k in sorted(new_pairs.keys() - old_pairs.keys())]
    removed = [old_pairs[k] for k in sorted(old_pairs.keys() - new_pairs.keys())]
    edited = [
        (old_pairs[k], new_pairs[k])
        for k in sorted(old_pairs.keys() & new_pairs.keys())
        if (old_pairs[k].question, old_pairs[k].answer)
        != (new_pairs[k].question, new_pairs[k].answer)
    ]
    return SnapshotDiff(added=added, removed=removed, edited=edited)


def format_record(pair: SnapshotPair, *, fmt: str, system_prompt: str = "") -> dict:
    """One training record in ``fmt`` (see ``EXPORT_FORMATS``)."""
    if fmt == "chat_template":
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages += [
            {"role": "user", "content": pair.question},
            {"role": "assistant", "content": pair.answer},
        ]
        return {"messages": messages}
    if fmt == "seed_inst":
        question = (
            f"<<SYS>>\n{system_prompt}\n<</SYS>>\n\n{pair.question}"
            if system_prompt
            else pair.question
        )
        return {"text": qa.format_inst(question, pair.answer)}
    if fmt == "alpaca":
        record = {"instruction": pair.question, "input": "", "output": pair.answer}
        if system_prompt:
            record["system"] = system_prompt
        return record
    raise ValidationError(
        {"format": f"Unknown export format {fmt!r}: use {', '.join(EXPORT_FORMATS)}."}
    )


def snapshot_records(snapshot: DatasetSnapshot, *, split: str, fmt: str | None = None):
    """Yield the records of one split, in a stable order."""
    fmt = fmt or snapshot.prompt_format
    for pair in snapshot.pairs.filter(split=split).order_by("id").iterator(chunk_size=2000):
        yield format_record(pair, fmt=fmt, system_prompt=snapshot.system_prompt)


def snapshot_export_jsonl(
    *, snapshot: DatasetSnapshot, out_dir: Path, fmt: str | None = None
) -> dict[str, Path]:
    """Write ``{split}.jsonl`` files (train, eval, test) in ``fmt``; return their paths."""
    fmt = fmt or snapshot.prompt_format
    if fmt not in EXPORT_FORMATS:
        raise ValidationError({"format": f"Unknown export format {fmt!r}."})
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SnapshotPair.Split.values:
        path = out_dir / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for record in snapshot_records(snapshot, split=split, fmt=fmt):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        paths[split] = path
    return paths


def snapshot_export_hf(
    *, snapshot: DatasetSnapshot, out_dir: Path, fmt: str | None = None, push_to: str = ""
) -> Path:
    """Save the snapshot as a Hugging Face ``DatasetDict`` (and push it when asked)."""
    from datasets import Dataset, DatasetDict

    fmt = fmt or snapshot.prompt_format
    dataset = DatasetDict(
        {
            split: Dataset.from_list(list(snapshot_records(snapshot, split=split, fmt=fmt)))
            for split in SnapshotPair.Split.values
            if snapshot.pairs.filter(split=split).exists()
        }
    )
    dataset.save_to_disk(str(out_dir))
    if push_to:
        token = settings.HF_TOKEN
        if not token:
            raise ValidationError("Pushing to the Hub needs HF_TOKEN in the environment.")
        dataset.push_to_hub(push_to, token=token, private=True)
    return out_dir


def snapshot_export_dir(snapshot: DatasetSnapshot) -> Path:
    return settings.VAR_DIR / "datasets" / f"snapshot-{snapshot.pk}-v{snapshot.version}"
