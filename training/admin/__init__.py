"""Admin pages for dataset snapshots: build one, browse its pairs, export it, compare two.

Snapshots are immutable, so their pages are read-only. A snapshot is built on the "Build a
dataset snapshot" page (a button on the list), which calls ``training.services.snapshot_create``;
exports and comparisons call the same services the command and the API use.

Evaluation runs and their answers are read-only here (they are read on the evaluation pages),
as are assistants' baselines. Question sets have their own module, :mod:`.question_sets`.
"""

from __future__ import annotations

import tempfile

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import slugify

from curation.models import Manual, QAPair
from manualqa.admin_tools import (
    ExtraViewsMixin,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
    shortened,
    sortable_column,
)
from manualqa.forms import add_service_errors
from training import services
from training.admin import question_sets, retrieval  # noqa: F401  (registers their pages)
from training.models import (
    DatasetSnapshot,
    EvaluationBaseline,
    EvaluationItem,
    EvaluationRun,
    SavedPreset,
    SnapshotPair,
    TrainingJob,
)
from training.raft import DISTRACTOR_SOURCES, RaftOptions

# A comparison shows at most this many pairs of each kind; the counts are always complete.
DIFF_DISPLAY_LIMIT = 200


def _pairs_url(snapshot_id: int, split: str = "") -> str:
    url = reverse("admin:training_snapshotpair_changelist") + f"?snapshot__id__exact={snapshot_id}"
    return url + (f"&split__exact={split}" if split else "")


class ManualWithCountsField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Manual) -> str:
        return f"{obj.name} ({obj.approved_pairs:,} approved pairs)"


class BuildSnapshotForm(forms.Form):
    """What ``snapshot_create`` takes; the service does the validation that matters."""

    manual = ManualWithCountsField(queryset=Manual.objects.none())
    name = forms.CharField(
        max_length=200, required=False, help_text="Empty means “<manual> dataset”."
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    prompt_format = forms.ChoiceField(
        choices=DatasetSnapshot.PromptFormat.choices,
        initial=DatasetSnapshot.PromptFormat.CHAT_TEMPLATE,
    )
    system_prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    train_fraction = forms.FloatField(min_value=0, max_value=1, initial=0.8)
    eval_fraction = forms.FloatField(min_value=0, max_value=1, initial=0.1)
    test_fraction = forms.FloatField(min_value=0, max_value=1, initial=0.1)
    seed = forms.IntegerField(
        min_value=0,
        max_value=2**31 - 1,
        initial=42,
        help_text="The same seed over the same pairs gives the same split.",
    )
    exclude_flagged = forms.BooleanField(
        required=False, help_text="Leave out approved pairs that still carry a quality flag."
    )

    def __init__(self, *args, manuals, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["manual"].queryset = manuals


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        choices=DatasetSnapshot.PromptFormat.choices, help_text="The format of every record."
    )
    raft = forms.BooleanField(
        required=False,
        label="RAFT records",
        help_text="Each question with passages from the manual's retrieval, as the chat's "
        "grounded prompt: the source passage kept with probability P and cited, else the "
        "answer is the decline. Needs the manual embedded.",
    )
    raft_oracle_p = forms.FloatField(
        label="P (source kept)",
        initial=RaftOptions.oracle_p,
        min_value=0.0,
        max_value=1.0,
        required=False,
    )
    raft_passages = forms.IntegerField(
        label="Passages (k)",
        initial=RaftOptions.passages,
        min_value=1,
        max_value=10,
        required=False,
    )
    raft_distractors = forms.ChoiceField(
        label="Distractors",
        choices=[(s, s) for s in DISTRACTOR_SOURCES],
        initial=RaftOptions.distractors,
        required=False,
        help_text="retrieved: the passages retrieval ranks highest (hard); random: any others.",
    )

    def raft_options(self) -> RaftOptions | None:
        data = self.cleaned_data
        if not data.get("raft"):
            return None
        defaults = RaftOptions()
        return RaftOptions(
            oracle_p=defaults.oracle_p if data["raft_oracle_p"] is None else data["raft_oracle_p"],
            passages=data["raft_passages"] or defaults.passages,
            distractors=data["raft_distractors"] or defaults.distractors,
        )


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(ReadOnlyAdminMixin, ExtraViewsMixin, admin.ModelAdmin):
    # Read only: a snapshot is built on the build page, which freezes and splits the pairs,
    # and never changes after (it is what a model was trained on).
    extra_views = (
        ("build/", "build_view", "build"),
        ("<int:object_id>/export/", "export_view", "export"),
        ("<int:object_id>/compare/", "compare_view", "compare"),
    )
    list_display = (
        "name",
        "version",
        "manual",
        "pairs",
        "train_pairs",
        "eval_pairs",
        "test_pairs",
        "prompt_format",
        "short_hash",
        "created_by",
        "created_at",
    )
    list_display_links = ("name", "version")
    list_select_related = ("manual", "created_by")
    list_filter = ("manual", "prompt_format", "created_at")
    search_fields = ("name", "description", "manual__name", "content_hash")
    actions = ["export_snapshot", "compare_snapshots"]
    fieldsets = [
        (
            None,
            {"fields": ("name", "manual", "version", "description", "created_by", "created_at")},
        ),
        (
            "Data",
            {"fields": ("pairs_by_split", "content_hash", "filters", "seed", "fractions")},
        ),
        ("Prompt", {"fields": ("prompt_format", "system_prompt")}),
        ("Retrieval", {"fields": ("train_retriever",)}),
    ]
    readonly_fields = ("pairs_by_split", "fractions", "train_retriever")

    @admin.display(description="Tune the retriever")
    def train_retriever(self, obj: DatasetSnapshot) -> str:
        """A link to the retrievers page with this snapshot chosen (issue 18)."""
        return format_html(
            '<a href="{}?snapshot={}" id="train-retriever">Train a retriever or reranker on it</a>',
            reverse("training:retrievers"),
            obj.pk,
        )

    # -- immutability ------------------------------------------------------------------------

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def get_deleted_objects(self, objs, request):
        # The stock confirmation page lists every related row: 100,000 pairs would not render.
        # A snapshot's pairs are its own, so they are summarised instead.
        snapshots = list(objs)
        pair_total = sum(snapshot.pair_count for snapshot in snapshots)
        to_delete = [
            format_html("Dataset snapshot: {} ({} pairs)", snapshot, f"{snapshot.pair_count:,}")
            for snapshot in snapshots
        ]
        model_count = {"dataset snapshots": len(snapshots), "snapshot pairs": pair_total}
        return to_delete, model_count, set(), []

    # -- columns and fields ------------------------------------------------------------------

    pairs = sortable_column("pair_count", "Pairs")
    train_pairs = sortable_column("train_count", "Train")
    eval_pairs = sortable_column("eval_count", "Eval")
    test_pairs = sortable_column("test_count", "Test")

    @admin.display(description="Hash", ordering="content_hash")
    def short_hash(self, obj: DatasetSnapshot) -> str:
        return obj.content_hash[:12]

    @admin.display(description="Pairs")
    def pairs_by_split(self, obj: DatasetSnapshot) -> str:
        links = format_html_join(
            ", ",
            '<a href="{}">{} {}</a>',
            (
                (_pairs_url(obj.pk, split), split, f"{getattr(obj, f'{split}_count'):,}")
                for split in SnapshotPair.Split.values
            ),
        )
        return format_html(
            '<a href="{}">{} pairs</a>: {}', _pairs_url(obj.pk), f"{obj.pair_count:,}", links
        )

    @admin.display(description="Fractions (train / eval / test)")
    def fractions(self, obj: DatasetSnapshot) -> str:
        return f"{obj.train_fraction:g} / {obj.eval_fraction:g} / {obj.test_fraction:g}"

    # -- actions -----------------------------------------------------------------------------

    @admin.action(description="Export…", permissions=["view"])
    def export_snapshot(self, request: HttpRequest, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one snapshot to export.", messages.WARNING)
            return None
        return HttpResponseRedirect(
            reverse("admin:training_datasetsnapshot_export", args=[queryset.get().pk])
        )

    @admin.action(description="Compare with…", permissions=["view"])
    def compare_snapshots(self, request: HttpRequest, queryset):
        chosen = list(queryset.order_by("version")[:3])
        if len(chosen) > 2 or len({s.manual_id for s in chosen}) != 1:
            self.message_user(
                request, "Choose one snapshot, or two of the same manual.", messages.WARNING
            )
            return None
        url = reverse("admin:training_datasetsnapshot_compare", args=[chosen[-1].pk])
        return HttpResponseRedirect(url + (f"?other={chosen[0].pk}" if len(chosen) == 2 else ""))

    # -- pages -------------------------------------------------------------------------------

    def _viewable(self, request: HttpRequest, object_id: int) -> DatasetSnapshot:
        snapshot = (
            DatasetSnapshot.objects.select_related("manual", "created_by")
            .filter(pk=object_id)
            .first()
        )
        if snapshot is None:
            raise Http404("No such dataset snapshot.")
        if not self.has_view_permission(request, snapshot):
            raise PermissionDenied
        return snapshot

    def build_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("training.add_datasetsnapshot"):
            raise PermissionDenied
        manuals = Manual.objects.annotate(
            approved_pairs=Count("qa_pairs", filter=Q(qa_pairs__status=QAPair.Status.APPROVED)),
            approved_unflagged=Count(
                "qa_pairs",
                filter=Q(qa_pairs__status=QAPair.Status.APPROVED, qa_pairs__flags=[]),
            ),
        ).order_by("name")
        initial = {"manual": request.GET.get("manual")} if request.GET.get("manual") else {}
        form = BuildSnapshotForm(request.POST or None, manuals=manuals, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                snapshot = services.snapshot_create_from(data, user=request.user)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                return self.to_created(
                    request,
                    snapshot,
                    f"Built {snapshot}: {snapshot.pair_count:,} pairs (train "
                    f"{snapshot.train_count:,}, eval {snapshot.eval_count:,}, test "
                    f"{snapshot.test_count:,}).",
                )
        context = self.page_context(
            request, "Build a dataset snapshot", form=form, manuals=list(manuals)
        )
        return TemplateResponse(request, "admin/training/datasetsnapshot/build.html", context)

    def export_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        snapshot = self._viewable(request, object_id)
        form = ExportForm(request.POST or None, initial={"format": snapshot.prompt_format})
        if request.method == "POST" and form.is_valid():
            fmt = form.cleaned_data["format"]
            raft = form.raft_options()
            # Not a ``with`` block: FileResponse streams the file and closes it when sent.
            archive = tempfile.TemporaryFile()  # noqa: SIM115
            try:
                services.snapshot_export_zip(snapshot=snapshot, target=archive, fmt=fmt, raft=raft)
            except ValidationError as exc:
                archive.close()
                add_service_errors(form, exc)
            else:
                archive.seek(0)
                kind = f"raft-{fmt}" if raft else fmt
                filename = f"{slugify(snapshot.name) or 'dataset'}-v{snapshot.version}-{kind}.zip"
                return FileResponse(
                    archive,
                    as_attachment=True,
                    filename=filename,
                    content_type="application/zip",
                )
        context = self.page_context(
            request, f"Export {snapshot}", form=form, snapshot=snapshot, original=snapshot
        )
        return TemplateResponse(request, "admin/training/datasetsnapshot/export.html", context)

    def compare_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        snapshot = self._viewable(request, object_id)
        others = list(
            DatasetSnapshot.objects.filter(manual_id=snapshot.manual_id)
            .exclude(pk=snapshot.pk)
            .order_by("-version")
        )
        other = next((s for s in others if str(s.pk) == request.GET.get("other", "")), None)
        if other is None and request.GET.get("other"):
            self.message_user(
                request, "Choose another snapshot of the same manual.", messages.WARNING
            )
        diff = old = new = None
        if other is not None:
            old, new = sorted((snapshot, other), key=lambda s: s.version)
            diff = services.snapshot_diff(old=old, new=new)
        context = self.page_context(
            request,
            f"Compare {snapshot}",
            snapshot=snapshot,
            original=snapshot,
            others=others,
            other=other,
            old=old,
            new=new,
            diff=diff,
            limit=DIFF_DISPLAY_LIMIT,
            sections=[
                ("Added", "added", diff.added[:DIFF_DISPLAY_LIMIT], len(diff.added)),
                ("Removed", "removed", diff.removed[:DIFF_DISPLAY_LIMIT], len(diff.removed)),
            ]
            if diff
            else [],
            edited=diff.edited[:DIFF_DISPLAY_LIMIT] if diff else [],
        )
        return TemplateResponse(request, "admin/training/datasetsnapshot/compare.html", context)


class SnapshotFilter(admin.SimpleListFilter):
    """The snapshot a pair belongs to, newest first.

    Unlike the stock related-field filter, it applies even while only one snapshot exists, so
    a link to one snapshot's pairs always shows that snapshot's pairs only.
    """

    title = "snapshot"
    parameter_name = "snapshot__id__exact"

    def lookups(self, request, model_admin):
        snapshots = DatasetSnapshot.objects.select_related("manual").order_by("-id")[:50]
        return [(str(s.pk), f"{s} ({s.manual.name})") for s in snapshots]

    def queryset(self, request, queryset):
        if (self.value() or "").isdigit():
            return queryset.filter(snapshot_id=int(self.value()))
        return queryset


@admin.register(SnapshotPair)
class SnapshotPairAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The frozen pairs, browsed page by page (a snapshot can hold 100,000 of them)."""

    list_display = ("short_question", "split", "section", "source_name", "snapshot")
    list_select_related = ("snapshot",)
    list_filter = ("split", SnapshotFilter)
    search_fields = ("question", "answer", "section")
    list_per_page = 100
    show_full_result_count = False
    # The order the pairs were frozen and are exported in, snapshot by snapshot. The model's
    # ordering would follow the snapshot's own (a join and a sort of every pair); the primary
    # key is served by its index, filtered or not.
    ordering = ("id",)
    fields = ("snapshot", "split", "question", "answer", "section", "source_name", "qa_pair")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # pairs leave only with their snapshot

    @admin.display(description="Question", ordering="question")
    def short_question(self, obj: SnapshotPair) -> str:
        return shortened(obj.question, 120)


@admin.register(TrainingJob)
class TrainingJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only view of training jobs; they are launched and steered on the training pages."""

    list_display = (
        "id",
        "name",
        "snapshot",
        "method",
        "status",
        "step",
        "total_steps",
        "created_at",
    )
    list_select_related = ("snapshot",)
    list_filter = ("status", "method")
    search_fields = ("name", "base_model", "message")
    exclude = ("metrics", "log_tail")


@admin.register(SavedPreset)
class SavedPresetAdmin(admin.ModelAdmin):
    list_display = ("label", "key", "base_preset", "base_model", "created_by", "created_at")
    search_fields = ("label", "key", "description")
    readonly_fields = ("created_by", "created_at")


class EvaluationItemInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = EvaluationItem
    fields = (
        "position",
        "subject",
        "question_id",
        "short_answer",
        "refused",
        "latency_ms",
        "error",
    )
    max_num = 0

    @admin.display(description="Answer")
    def short_answer(self, obj: EvaluationItem) -> str:
        return shortened(obj.answer, 120)


@admin.register(EvaluationRun)
class EvaluationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only view of evaluation runs; they are launched and read on the evaluation pages."""

    list_display = (
        "id",
        "name",
        "status",
        "retrieval_only",
        "questions_name",
        "done",
        "total",
        "created_by",
        "created_at",
        "report_link",
    )
    list_select_related = ("created_by",)
    list_filter = ("status", "retrieval_only", "question_source")
    search_fields = ("name", "questions_name", "message")
    exclude = ("questions", "traceback")
    raw_id_fields = ("snapshot", "manual", "training_job", "judge_endpoint", "created_by")
    inlines = [EvaluationItemInline]

    @admin.display(description="Report")
    def report_link(self, obj: EvaluationRun) -> str:
        return format_html('<a href="{}">report</a>', reverse("training:evaluation", args=[obj.pk]))


@admin.register(EvaluationItem)
class EvaluationItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """One answer of an evaluation run with its metrics (read only)."""

    list_display = ("id", "run", "subject", "question_id", "kind", "refused", "latency_ms")
    list_select_related = ("run",)
    list_filter = ("kind", "refused")
    search_fields = ("question", "answer", "subject", "question_id")
    raw_id_fields = ("run", "assistant")


@admin.register(EvaluationBaseline)
class EvaluationBaselineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Which run each assistant is measured against; set on the run's page, the API or
    ``manage.py evaluate --set-baseline`` (only a run that succeeded, for its own assistants)."""

    list_display = ("assistant", "run", "set_by", "set_at")
    list_select_related = ("assistant", "run", "set_by")
    raw_id_fields = ("assistant", "run", "set_by")
