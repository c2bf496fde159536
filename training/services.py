"""Writes for dataset snapshots: create (freeze + split), and export in every training format.

A snapshot is built by one ``INSERT ... SELECT`` in PostgreSQL: the approved pairs' text is
copied, each pair's split is drawn from a seeded hash of its *group* (its document section, or
its canonical pair's section for near-duplicates), and the content hash is computed over the
frozen rows. That keeps 100,000 pairs within seconds and makes the split reproducible.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, Q

from curation.models import Manual, QAPair, QAPairRevision
from manualqa import roles
from manualqa.lib import prompt_formats
from training.models import DatasetSnapshot, SnapshotPair

if TYPE_CHECKING:
    from training.raft import RaftOptions

EXPORT_FORMATS = prompt_formats.FORMATS
MIN_PAIRS = 1


def _check_fractions(train: float, eval_: float, test: float) -> None:
    if not all(math.isfinite(value) for value in (train, eval_, test)):
        raise ValidationError({"train_fraction": "Split fractions must be numbers."})
    if min(train, eval_, test) < 0:
        raise ValidationError({"train_fraction": "Split fractions cannot be negative."})
    if abs(train + eval_ + test - 1.0) > 1e-6:
        raise ValidationError(
            {"train_fraction": f"Split fractions must add up to 1 (got {train + eval_ + test:g})."}
        )
    if train <= 0:
        raise ValidationError({"train_fraction": "The train split cannot be empty."})


# The split of a pair is decided by its group: the ``##`` section (second heading-path level) of
# its canonical pair's document, which is the pair itself unless it is a near-duplicate. A
# near-duplicate takes its canonical pair's document and section together, never a mix of the
# two. The group key is hashed with the seed into [0, 1).
_INSERT_SQL = """
WITH chosen AS (
    SELECT p.id, p.question, p.answer,
           COALESCE(d.source_name, '') AS source_name,
           COALESCE(c.heading_path, '') AS section,
           CASE WHEN canon.id IS NULL
                THEN COALESCE(d.source_name, '') || '|' ||
                     split_part(COALESCE(c.heading_path, ''), ' > ', 2)
                ELSE COALESCE(cd.source_name, '') || '|' ||
                     split_part(COALESCE(cc.heading_path, ''), ' > ', 2)
           END AS group_key
    FROM curation_qapair p
    LEFT JOIN curation_manualdocument d ON d.id = p.document_id
    LEFT JOIN curation_documentchunk c ON c.id = p.chunk_id
    LEFT JOIN curation_qapair canon ON canon.id = p.duplicate_of_id
    LEFT JOIN curation_documentchunk cc ON cc.id = canon.chunk_id
    LEFT JOIN curation_manualdocument cd ON cd.id = canon.document_id
    WHERE p.manual_id = %(manual_id)s AND p.status = 'approved'
      AND (p.origin <> 'chat_feedback' OR EXISTS (
            SELECT 1 FROM curation_qapairrevision r WHERE r.pair_id = p.id AND r.action = 'edit'
          )) {extra}
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


#: What a snapshot is built from besides its manual, as the admin's form and the API name it.
SNAPSHOT_CHOICES = (
    "name",
    "description",
    *DatasetSnapshot.RECIPE,
    "exclude_flagged",
)


def snapshot_create_from(
    data: dict, *, user, document_ids: list[int] | None = None
) -> DatasetSnapshot:
    """:func:`snapshot_create` from a validated form's or serializer's data."""
    return snapshot_create(
        manual=data["manual"],
        user=user,
        document_ids=document_ids,
        **{choice: data[choice] for choice in SNAPSHOT_CHOICES},
    )


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
    roles.require(user, "training.add_datasetsnapshot", "Building datasets needs the Trainer role.")
    if prompt_format not in DatasetSnapshot.PromptFormat.values:
        raise ValidationError({"prompt_format": f"Unknown prompt format {prompt_format!r}."})
    _check_fractions(train_fraction, eval_fraction, test_fraction)
    _check_system_prompt(system_prompt)
    # An owner's thumbs-down pair holds the answer they marked wrong, written by whoever asked:
    # it trains a model only once a reviewer has edited it (security review M4).
    edited = QAPairRevision.objects.filter(pair=OuterRef("pk"), action=QAPairRevision.Action.EDIT)
    approved = QAPair.objects.filter(manual=manual, status=QAPair.Status.APPROVED).exclude(
        Q(origin=QAPair.Origin.CHAT_FEEDBACK) & ~Exists(edited)
    )
    extra, params = "", {}
    if document_ids:
        extra += " AND p.document_id = ANY(%(document_ids)s)"
        params["document_ids"] = list(document_ids)
        approved = approved.filter(document_id__in=document_ids)
    if exclude_flagged:
        extra += " AND cardinality(p.flags) = 0"
        approved = approved.filter(flags=[])
    if approved.count() < MIN_PAIRS:
        scope = []
        if document_ids:
            scope.append("in the chosen documents")
        if exclude_flagged:
            scope.append("without flags")
        raise ValidationError(
            f"{manual.name} has no approved pairs{' ' if scope else ''}{' and '.join(scope)} "
            "to build a dataset from."
        )
    # Text holding the seed format's own markers would corrupt a [INST] export: refuse it now,
    # naming the pairs, rather than fail halfway through an export.
    marker_filter = Q()
    for marker in prompt_formats.INST_MARKERS:
        marker_filter |= Q(question__contains=marker) | Q(answer__contains=marker)
    broken = list(approved.filter(marker_filter).values_list("id", flat=True)[:10])
    if broken:
        raise ValidationError(
            "These approved pairs contain prompt-format markers such as [INST] or </s>; edit "
            f"them first: {', '.join(f'#{pk}' for pk in broken)}"
        )
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


# Pairs are matched by their QA pair; one whose QA pair was deleted since is matched by its text.
# Only the rows that differ leave the database, so comparing two 100,000-pair snapshots that
# differ by a handful of edits loads a handful of rows.
_DIFF_SQL = """
WITH old AS (
    SELECT id, question, answer,
           COALESCE(qa_pair_id::text, 'text:' || md5(question || chr(31) || answer)) AS key
    FROM training_snapshotpair WHERE snapshot_id = %(old)s
), new AS (
    SELECT id, question, answer,
           COALESCE(qa_pair_id::text, 'text:' || md5(question || chr(31) || answer)) AS key
    FROM training_snapshotpair WHERE snapshot_id = %(new)s
)
SELECT old.id, new.id
FROM old FULL OUTER JOIN new ON old.key = new.key
WHERE old.id IS NULL OR new.id IS NULL
   OR old.question <> new.question OR old.answer <> new.answer
"""


def snapshot_diff(*, old: DatasetSnapshot, new: DatasetSnapshot) -> SnapshotDiff:
    """What changed from ``old`` to ``new`` (two snapshots of one manual), pair by pair."""
    if old.manual_id != new.manual_id:
        raise ValidationError("Only snapshots of the same manual can be compared.")
    with connection.cursor() as cursor:
        cursor.execute(_DIFF_SQL, {"old": old.pk, "new": new.pk})
        rows = cursor.fetchall()
    wanted = {pk for row in rows for pk in row if pk is not None}
    loaded = SnapshotPair.objects.in_bulk(list(wanted))
    added = sorted((loaded[n] for o, n in rows if o is None), key=_by_id)
    removed = sorted((loaded[o] for o, n in rows if n is None), key=_by_id)
    edited = sorted(
        ((loaded[o], loaded[n]) for o, n in rows if o is not None and n is not None),
        key=lambda both: _by_id(both[1]),
    )
    return SnapshotDiff(added=added, removed=removed, edited=edited)


def _by_id(pair: SnapshotPair) -> tuple[int, int]:
    return (pair.qa_pair_id or 0, pair.pk)


def format_record(pair: SnapshotPair, *, fmt: str, system_prompt: str = "") -> dict:
    """One training record in ``fmt`` (see ``EXPORT_FORMATS``)."""
    _check_export_format(fmt)
    if fmt == "seed_inst":
        # A reviewer may have typed one of the format's own markers into a pair.
        try:
            prompt_formats.format_inst(pair.question, pair.answer)
        except ValueError as exc:
            raise ValidationError(
                f"Pair {pair.qa_pair_id or pair.pk} cannot be written as seed_inst: {exc}."
            ) from None
        if system_prompt:
            _check_system_prompt(system_prompt)
    return prompt_formats.to_training_record(
        pair.question, pair.answer, fmt=fmt, system_prompt=system_prompt
    )


def _check_system_prompt(system_prompt: str) -> None:
    if problem := prompt_formats.system_prompt_problem(system_prompt):
        raise ValidationError({"system_prompt": problem})


def _check_export_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(
            {"format": f"Unknown export format {fmt!r}: use {', '.join(EXPORT_FORMATS)}."}
        )


def snapshot_records(
    snapshot: DatasetSnapshot,
    *,
    split: str,
    fmt: str | None = None,
    raft: RaftOptions | None = None,
):
    """Yield the records of one split, in a stable order: the pairs in ``fmt``, or with
    ``raft`` options their RAFT records (:mod:`training.raft`; pairs without a known source
    chunk are left out of those)."""
    fmt = fmt or snapshot.prompt_format
    if raft is not None:
        from training.raft import raft_problems, raft_records

        if problems := raft.problems() + raft_problems(snapshot, split=None):
            raise ValidationError({"raft": problems})
        try:
            yield from raft_records(snapshot, split=split, options=raft, fmt=fmt).records
        except ValueError as exc:
            raise ValidationError({"raft": str(exc)}) from None
        return
    for pair in snapshot.pairs.filter(split=split).order_by("id").iterator(chunk_size=2000):
        yield format_record(pair, fmt=fmt, system_prompt=snapshot.system_prompt)


def snapshot_export_jsonl(
    *,
    snapshot: DatasetSnapshot,
    out_dir: Path,
    fmt: str | None = None,
    raft: RaftOptions | None = None,
) -> dict[str, Path]:
    """Write ``{split}.jsonl`` files (train, eval, test) in ``fmt`` (RAFT records with ``raft``
    options); return their paths."""
    fmt = fmt or snapshot.prompt_format
    _check_export_format(fmt)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SnapshotPair.Split.values:
        path = out_dir / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for record in snapshot_records(snapshot, split=split, fmt=fmt, raft=raft):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        paths[split] = path
    return paths


def snapshot_metadata(
    snapshot: DatasetSnapshot, *, fmt: str | None = None, raft: RaftOptions | None = None
) -> dict:
    """What an export says about itself: which snapshot, which data, which format."""
    return {
        "raft": raft.to_dict() if raft is not None else None,
        "snapshot_id": snapshot.pk,
        "name": snapshot.name,
        "manual": snapshot.manual.name,
        "version": snapshot.version,
        "content_hash": snapshot.content_hash,
        "format": fmt or snapshot.prompt_format,
        "system_prompt": snapshot.system_prompt,
        "seed": snapshot.seed,
        "fractions": {
            "train": snapshot.train_fraction,
            "eval": snapshot.eval_fraction,
            "test": snapshot.test_fraction,
        },
        "filters": snapshot.filters,
        "counts": {
            "total": snapshot.pair_count,
            "train": snapshot.train_count,
            "eval": snapshot.eval_count,
            "test": snapshot.test_count,
        },
        "created_at": snapshot.created_at.isoformat(),
        "created_by": snapshot.created_by.get_username() if snapshot.created_by else None,
    }


_README = """# {name} (version {version})

Dataset snapshot #{snapshot_id} of the manual "{manual}", exported by ManualQA.

- Format: `{format}`, one JSON record per line
- Content hash: `{content_hash}`
- Pairs: {total} (train {train}, eval {eval}, test {test})
- Split: by manual section with seed {seed}; near-duplicates follow their canonical pair

`metadata.json` holds the same facts for programs.
"""

_RAFT_README = """
## RAFT records

Each record is the chat's grounded prompt over {passages} passages from ManualQA's retrieval
({distractors} distractors). With probability {oracle_p:g} one of them is the pair's source
passage and the answer cites it as [n]; otherwise the answer is the decline. Pairs whose source
passage is unknown are left out. Records: {records}.
"""


def snapshot_export_zip(
    *,
    snapshot: DatasetSnapshot,
    target: BinaryIO,
    fmt: str | None = None,
    raft: RaftOptions | None = None,
) -> None:
    """Write a zip of ``{split}.jsonl`` in ``fmt`` (RAFT records with ``raft`` options) plus
    ``metadata.json`` and ``README.md``.

    Records are streamed into the archive, so a large snapshot never sits in memory whole.
    """
    fmt = fmt or snapshot.prompt_format
    _check_export_format(fmt)
    metadata = snapshot_metadata(snapshot, fmt=fmt, raft=raft)
    written = {}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for split in SnapshotPair.Split.values:
            written[split] = 0
            with archive.open(f"{split}.jsonl", "w") as raw:
                handle = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
                for record in snapshot_records(snapshot, split=split, fmt=fmt, raft=raft):
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    written[split] += 1
                handle.flush()
                handle.detach()
        archive.writestr("metadata.json", json.dumps(metadata, indent=2, ensure_ascii=False))
        readme = _README.format(**{**metadata, **metadata["counts"]})
        if raft is not None:
            readme += _RAFT_README.format(
                **raft.to_dict(), records=", ".join(f"{k} {v}" for k, v in written.items())
            )
        archive.writestr("README.md", readme)


def snapshot_export_hf(
    *,
    snapshot: DatasetSnapshot,
    out_dir: Path,
    fmt: str | None = None,
    push_to: str = "",
    raft: RaftOptions | None = None,
) -> Path:
    """Save the snapshot as a Hugging Face ``DatasetDict`` (and push it when asked)."""
    fmt = fmt or snapshot.prompt_format
    _check_export_format(fmt)
    token = settings.HF_TOKEN
    if push_to and not token:
        # Refused before anything is written, so a failed push leaves nothing half done.
        raise ValidationError("Pushing to the Hub needs HF_TOKEN in the environment.")
    from datasets import Dataset, DatasetDict

    dataset = DatasetDict(
        {
            split: Dataset.from_list(
                list(snapshot_records(snapshot, split=split, fmt=fmt, raft=raft))
            )
            for split in SnapshotPair.Split.values
            if snapshot.pairs.filter(split=split).exists()
        }
    )
    dataset.save_to_disk(str(out_dir))
    if push_to:
        dataset.push_to_hub(push_to, token=token, private=True)
    return out_dir


def snapshot_export_dir(snapshot: DatasetSnapshot) -> Path:
    return settings.VAR_DIR / "datasets" / f"snapshot-{snapshot.pk}-v{snapshot.version}"
