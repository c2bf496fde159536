"""The list filters of the QA-pair review list."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import F, Q

from curation import qa
from curation.models import (
    GenerationRun,
    Manual,
    ManualDocument,
    QAPair,
)
from manualqa.admin_tools import ChoicesFilter, ForeignKeyFilter


class GroundingBandFilter(ChoicesFilter):
    title = "grounding score"
    parameter_name = "grounding"
    options = {
        "low": (
            f"Low (< {qa.LOW_GROUNDING_THRESHOLD})",
            Q(grounding_score__lt=qa.LOW_GROUNDING_THRESHOLD),
        ),
        "mid": (
            f"Medium ({qa.LOW_GROUNDING_THRESHOLD}-0.7)",
            Q(grounding_score__gte=qa.LOW_GROUNDING_THRESHOLD, grounding_score__lt=0.7),
        ),
        "high": ("High (>= 0.7)", Q(grounding_score__gte=0.7)),
        "none": ("Not scored yet", Q(grounding_score__isnull=True)),
    }


class FlagFilter(admin.SimpleListFilter):
    title = "quality flag"
    parameter_name = "flag"

    def lookups(self, request, model_admin):
        return [
            (flag, flag.replace("_", " "))
            for flag in (
                qa.FLAG_DUPLICATE,
                qa.FLAG_LOW_GROUNDING,
                qa.FLAG_SOURCE_CHANGED,
                qa.FLAG_REFUSAL,
                qa.FLAG_EMPTY_ANSWER,
                qa.FLAG_NOT_A_QUESTION,
                qa.FLAG_TOO_SHORT,
                qa.FLAG_TOO_LONG,
            )
        ] + [("any", "Any flag"), ("clean", "No flags")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "any":
            return queryset.exclude(flags=[])
        if value == "clean":
            return queryset.filter(flags=[])
        if value:
            return queryset.filter(flags__contains=[value])
        return queryset


class DocumentFilter(ForeignKeyFilter):
    """Documents of the chosen manual (or of the only manual), so the list stays short."""

    title = "document"
    parameter_name = "document"
    field = "document"

    def lookups(self, request, model_admin):
        documents = ManualDocument.objects.only("id", "title", "source_name")
        manual_id = request.GET.get("manual__id__exact", "")
        if manual_id.isdigit():
            documents = documents.filter(manual_id=int(manual_id))
        elif (self.value() or "").isdigit():
            documents = documents.filter(manual__documents__id=int(self.value()))
        elif Manual.objects.count() != 1:
            return []  # choose a manual first
        return [(str(document.pk), str(document)) for document in documents.order_by("title")]


class GenerationRunFilter(ForeignKeyFilter):
    """The latest generation runs (of the chosen manual), named by endpoint and date."""

    title = "generation run"
    parameter_name = "run"
    field = "generation_run"

    def lookups(self, request, model_admin):
        runs = GenerationRun.objects.select_related("endpoint").only(
            "id", "created_at", "endpoint__name"
        )
        manual_id = request.GET.get("manual__id__exact", "")
        if manual_id.isdigit():
            runs = runs.filter(manual_id=int(manual_id))
        return [
            (str(run.pk), f"#{run.pk} {run.endpoint.name}, {run.created_at:%Y-%m-%d}")
            for run in runs.order_by("-created_at")[:30]
        ]


#: A pair whose document changed after it was generated, flagged or not yet.
_SOURCE_CHANGED = (
    Q(flags__contains=[qa.FLAG_SOURCE_CHANGED])
    | Q(document__version__lt=F("document_version"))
    | Q(document__version__gt=F("document_version"))
)


class SourceChangedFilter(ChoicesFilter):
    """Pairs whose document changed after they were generated, flagged or not yet."""

    title = "source changed since generation"
    parameter_name = "source_changed"
    options = {
        "yes": ("Yes", _SOURCE_CHANGED),
        "no": (
            "No",
            lambda pairs: pairs.exclude(pk__in=QAPair.objects.filter(_SOURCE_CHANGED).values("pk")),
        ),
    }
