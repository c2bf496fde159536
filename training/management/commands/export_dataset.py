"""``python manage.py export_dataset SNAPSHOT_ID --format seed_inst --out DIR [--hf]``.

Writes a dataset snapshot's ``train``/``eval``/``test`` JSONL files (and a Hugging Face
``DatasetDict`` under ``DIR/hf`` with ``--hf``, pushed to the Hub with ``--push-to``).
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from manualqa.commands import service_errors
from training import services
from training.models import DatasetSnapshot
from training.raft import DISTRACTOR_SOURCES, RaftOptions


class Command(BaseCommand):
    help = (
        "Export a dataset snapshot as train/eval/test JSONL in a training format, with a "
        "metadata.json, and optionally as a Hugging Face DatasetDict (--hf) pushed to the Hub "
        "(--push-to, needs HF_TOKEN)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("snapshot_id", type=int)
        parser.add_argument(
            "--format",
            default="",
            help=f"One of {', '.join(services.EXPORT_FORMATS)} (default: the snapshot's own).",
        )
        parser.add_argument(
            "--out",
            type=Path,
            help="Folder to write to (default: var/datasets/snapshot-ID-vVERSION).",
        )
        parser.add_argument(
            "--raft",
            action="store_true",
            help="Write RAFT records: each question over retrieved passages, with its source "
            "passage kept with probability --raft-p and cited, else answered with the decline.",
        )
        parser.add_argument("--raft-p", type=float, default=RaftOptions.oracle_p)
        parser.add_argument("--raft-k", type=int, default=RaftOptions.passages)
        parser.add_argument(
            "--raft-distractors",
            default=RaftOptions.distractors,
            choices=DISTRACTOR_SOURCES,
        )
        parser.add_argument(
            "--hf", action="store_true", help="Also save a Hugging Face DatasetDict to OUT/hf."
        )
        parser.add_argument(
            "--push-to",
            default="",
            metavar="REPO",
            help="Push the DatasetDict to this Hub repository (implies --hf; needs HF_TOKEN).",
        )

    def handle(self, *args, **options) -> None:
        snapshot = (
            DatasetSnapshot.objects.select_related("manual", "created_by")
            .filter(pk=options["snapshot_id"])
            .first()
        )
        if snapshot is None:
            raise CommandError(f"No dataset snapshot #{options['snapshot_id']}.")
        fmt = options["format"] or snapshot.prompt_format
        if fmt not in services.EXPORT_FORMATS:
            raise CommandError(
                f"Unknown format {fmt!r}: use one of {', '.join(services.EXPORT_FORMATS)}."
            )
        push_to = options["push_to"]
        if push_to and not settings.HF_TOKEN:
            raise CommandError("--push-to needs HF_TOKEN set in the environment.")
        out: Path = options["out"] or services.snapshot_export_dir(snapshot)
        raft = None
        if options["raft"]:
            raft = RaftOptions(
                oracle_p=options["raft_p"],
                passages=options["raft_k"],
                distractors=options["raft_distractors"],
            )
            if problems := raft.problems():
                raise CommandError(" ".join(problems))

        with service_errors(separator=" "):
            paths = services.snapshot_export_jsonl(
                snapshot=snapshot, out_dir=out, fmt=fmt, raft=raft
            )
            if options["hf"] or push_to:
                hf_dir = services.snapshot_export_hf(
                    snapshot=snapshot, out_dir=out / "hf", fmt=fmt, push_to=push_to, raft=raft
                )
        metadata = services.snapshot_metadata(snapshot, fmt=fmt, raft=raft)
        (out / "metadata.json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False))

        self.stdout.write(
            f"{snapshot} (#{snapshot.pk}, hash {snapshot.content_hash[:12]}) as {fmt}"
            + (
                f", RAFT (P={raft.oracle_p:g}, {raft.passages} passages, "
                f"{raft.distractors} distractors):"
                if raft
                else ":"
            )
        )
        for split, path in paths.items():
            with path.open(encoding="utf-8") as handle:
                count = sum(1 for _ in handle)
            self.stdout.write(f"  {split:<5} {count:>7,} records  {path}")
        if options["hf"] or push_to:
            self.stdout.write(f"  Hugging Face DatasetDict  {hf_dir}")
        if push_to:
            self.stdout.write(f"  pushed to the Hub as {push_to}")
        self.stdout.write(self.style.SUCCESS(f"Exported {snapshot.pair_count:,} pairs to {out}."))
