"""Signals curation sends, for other apps to act on without curation importing them."""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["manual_embedded"]

#: Sent by an ingestion run that has embedded its manual's chunks and succeeded, with
#: ``manual`` (the Manual); ``sender`` is the Manual class. Receivers run in the worker that
#: embedded, after the run is marked succeeded; one that fails is logged, and the run stays
#: succeeded (``chat.receivers.store_sentence_vectors``).
manual_embedded = Signal()
