"""REST API for dataset snapshots (DRF). Views parse input and call the training services.

Snapshots are immutable: they are created, read, exported and compared, never changed or
deleted through the API.
"""

from __future__ import annotations

import json

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from curation.models import Manual, ManualDocument
from manualqa.api import (
    JobRowSerializer,
    JobViewSet,
    ModelPermissionsWithView,
    query_params,
    request_body,
    service_errors,
)
from manualqa.lib.gguf_export import QUANTS
from training import evaluation, exports, jobs, services
from training.models import (
    DatasetSnapshot,
    EvaluationItem,
    EvaluationRun,
    SnapshotPair,
    TrainingJob,
)


class SnapshotPermissions(ModelPermissionsWithView):
    """View to read, add to create; any other method is refused with 405 for everyone."""

    perms_map = {
        method: perms
        for method, perms in ModelPermissionsWithView.perms_map.items()
        if method in ("GET", "HEAD", "OPTIONS", "POST")
    }


class DatasetSnapshotSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DatasetSnapshot
        fields = [
            "id",
            "manual",
            "name",
            "version",
            "description",
            *DatasetSnapshot.RECIPE,
            "filters",
            "content_hash",
            "pair_count",
            "train_count",
            "eval_count",
            "test_count",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class DatasetSnapshotCreateSerializer(serializers.Serializer):
    # Format and fractions are checked by ``snapshot_create``, whose errors name the field.
    manual = serializers.PrimaryKeyRelatedField(queryset=Manual.objects.all())
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    prompt_format = serializers.CharField(
        required=False, default=DatasetSnapshot.PromptFormat.CHAT_TEMPLATE
    )
    system_prompt = serializers.CharField(required=False, allow_blank=True, default="")
    train_fraction = serializers.FloatField(required=False, default=0.8)
    eval_fraction = serializers.FloatField(required=False, default=0.1)
    test_fraction = serializers.FloatField(required=False, default=0.1)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1, default=42)
    document_ids = serializers.PrimaryKeyRelatedField(
        queryset=ManualDocument.objects.all(), many=True, required=False, default=list
    )
    exclude_flagged = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict) -> dict:
        strangers = [d.pk for d in attrs["document_ids"] if d.manual_id != attrs["manual"].pk]
        if strangers:
            raise serializers.ValidationError(
                {"document_ids": [f"Documents {strangers} are not part of this manual."]}
            )
        return attrs


class SnapshotPairSerializer(serializers.ModelSerializer):
    class Meta:
        model = SnapshotPair
        fields = ["id", "qa_pair", "question", "answer", "source_name", "section", "split"]
        read_only_fields = fields


class SnapshotPairFilterSerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=SnapshotPair.Split.choices, required=False)


class SnapshotExportQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=services.EXPORT_FORMATS,
        required=False,
        help_text="Record format; the snapshot's own prompt format when left out",
    )
    split = serializers.ChoiceField(choices=SnapshotPair.Split.choices, default="train")


class SnapshotDiffQuerySerializer(serializers.Serializer):
    against = serializers.IntegerField(min_value=1, help_text="The snapshot to compare with")


class DiffEntrySerializer(serializers.Serializer):
    qa_pair = serializers.IntegerField()
    question = serializers.CharField()


class DiffEditSerializer(DiffEntrySerializer):
    previous_question = serializers.CharField()
    answer_changed = serializers.BooleanField()


class SnapshotDiffSerializer(serializers.Serializer):
    snapshot = serializers.IntegerField()
    against = serializers.IntegerField()
    added = DiffEntrySerializer(many=True)
    removed = DiffEntrySerializer(many=True)
    edited = DiffEditSerializer(many=True)


class DatasetSnapshotViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Dataset snapshots: list, read, create, their frozen pairs, JSONL export and diffs."""

    queryset = DatasetSnapshot.objects.select_related("manual", "created_by")
    serializer_class = DatasetSnapshotSerializer
    permission_classes = [permissions.IsAuthenticated, SnapshotPermissions]

    def perform_content_negotiation(self, request: Request, force: bool = False):
        # The export's ``?format=`` names a record format, not one of DRF's renderers.
        return super().perform_content_negotiation(request, force=force or self.action == "export")

    @extend_schema(request=DatasetSnapshotCreateSerializer, responses=DatasetSnapshotSerializer)
    def create(self, request: Request) -> Response:
        data = request_body(DatasetSnapshotCreateSerializer, request)
        with service_errors():
            snapshot = services.snapshot_create_from(
                data,
                user=request.user,
                document_ids=[document.pk for document in data["document_ids"]],
            )
        return Response(DatasetSnapshotSerializer(snapshot).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[SnapshotPairFilterSerializer], responses=SnapshotPairSerializer(many=True)
    )
    @action(detail=True, methods=["get"])
    def pairs(self, request: Request, pk=None) -> Response:
        snapshot = self.get_object()
        query = query_params(SnapshotPairFilterSerializer, request)
        pairs = snapshot.pairs.order_by("id")
        if query.get("split"):
            pairs = pairs.filter(split=query["split"])
        page = self.paginate_queryset(pairs)
        return self.get_paginated_response(SnapshotPairSerializer(page, many=True).data)

    @extend_schema(
        parameters=[SnapshotExportQuerySerializer],
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk=None) -> StreamingHttpResponse:
        """One split as JSON Lines, a training record per line, streamed as it is read."""
        snapshot = self.get_object()
        query = query_params(SnapshotExportQuerySerializer, request)
        fmt = query.get("format") or snapshot.prompt_format
        split = query["split"]
        records = services.snapshot_records(snapshot, split=split, fmt=fmt)
        response = StreamingHttpResponse(
            (json.dumps(record, ensure_ascii=False) + "\n" for record in records),
            content_type="application/x-ndjson",
        )
        filename = f"snapshot-{snapshot.pk}-v{snapshot.version}-{split}-{fmt}.jsonl"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @extend_schema(parameters=[SnapshotDiffQuerySerializer], responses=SnapshotDiffSerializer)
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, pk=None) -> Response:
        """What changed from ``against`` to this snapshot: pairs added, removed and edited."""
        snapshot = self.get_object()
        against_id = query_params(SnapshotDiffQuerySerializer, request)["against"]
        against = self.get_queryset().filter(pk=against_id).first()
        if against is None:
            raise serializers.ValidationError({"against": [f"No snapshot {against_id}."]})
        diff = services.snapshot_diff(old=against, new=snapshot)
        body = {
            "snapshot": snapshot.pk,
            "against": against.pk,
            "added": [{"qa_pair": p.qa_pair_id, "question": p.question} for p in diff.added],
            "removed": [{"qa_pair": p.qa_pair_id, "question": p.question} for p in diff.removed],
            "edited": [
                {
                    "qa_pair": new.qa_pair_id,
                    "question": new.question,
                    "previous_question": old.question,
                    "answer_changed": old.answer != new.answer,
                }
                for old, new in diff.edited
            ],
        }
        return Response(SnapshotDiffSerializer(body).data)


class TrainingJobTrackingSerializer(serializers.Serializer):
    """Where a job's run is logged (``jobs.training_job_tracking``)."""

    report_to = serializers.ListField(
        child=serializers.CharField(), help_text="The trackers: tensorboard, wandb, mlflow."
    )
    tensorboard_dir = serializers.CharField(
        help_text='The TensorBoard event files, for "tensorboard --logdir"; empty without it.'
    )
    run_name = serializers.CharField(help_text="The run's name in W&B and MLflow.")


class TrainingJobSerializer(JobRowSerializer):
    tracking = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "name",
            "snapshot",
            "base_model",
            "preset",
            "method",
            "hyperparameters",
            "tracking",
            "status",
            "progress_percent",
            "step",
            "total_steps",
            "epoch",
            "eta_s",
            "metrics",
            "final_train_loss",
            "eval_loss",
            "tokens_per_s",
            "samples",
            "merged_dir",
            "registered_endpoint",
            "device",
            "message",
            "cancel_requested",
            "created_by",
            *TrainingJob.TIMES,
        ]
        read_only_fields = fields

    @extend_schema_field(TrainingJobTrackingSerializer)
    def get_tracking(self, job: TrainingJob) -> dict:
        return jobs.training_job_tracking(job)


class TrainingJobCreateSerializer(serializers.Serializer):
    snapshot = serializers.PrimaryKeyRelatedField(queryset=DatasetSnapshot.objects.all())
    preset = serializers.CharField(default="cpu_quick")
    name = serializers.CharField(required=False, allow_blank=True, default="")
    base_model = serializers.CharField(required=False, allow_blank=True, default="")
    hyperparameters = serializers.DictField(required=False, default=dict)


class TrainingJobPermissions(ModelPermissionsWithView):
    """Reads need ``view_trainingjob``; a launch needs ``launch_trainingjob``, which the Trainer
    group holds (``add_trainingjob`` is nobody's: jobs are only made by launching one)."""

    perms_map = {
        **ModelPermissionsWithView.perms_map,
        "POST": ["%(app_label)s.launch_%(model_name)s"],
    }


class ModelExportRequestSerializer(serializers.Serializer):
    quant = serializers.ChoiceField(choices=QUANTS, default="q8_0")


class TrainingJobViewSet(JobViewSet):
    """Training jobs: read them, launch one (Trainer role), cancel or resume it."""

    queryset = TrainingJob.objects.select_related("snapshot", "created_by")
    serializer_class = TrainingJobSerializer
    permission_classes = [permissions.IsAuthenticated, TrainingJobPermissions]

    @extend_schema(request=TrainingJobCreateSerializer, responses=TrainingJobSerializer)
    def create(self, request: Request) -> Response:
        data = request_body(TrainingJobCreateSerializer, request)
        with service_errors():
            job = jobs.training_job_create(
                snapshot=data["snapshot"],
                user=request.user,
                name=data["name"],
                base_model=data["base_model"],
                preset=data["preset"],
                overrides=data["hyperparameters"],
            )
        return self.created(job)

    @extend_schema(request=None, responses=TrainingJobSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def cancel(self, request: Request, pk=None) -> Response:
        return self.steer(jobs.training_job_cancel)

    @extend_schema(request=None, responses=TrainingJobSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def resume(self, request: Request, pk=None) -> Response:
        return self.steer(jobs.training_job_resume)

    @extend_schema(
        request=ModelExportRequestSerializer,
        responses={202: ModelExportRequestSerializer},
        description="Export the job's merged model to GGUF in a worker (the job's log tells "
        "how it ended), with an Ollama Modelfile, and register it as a local endpoint.",
    )
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def export(self, request: Request, pk=None) -> Response:
        data = request_body(ModelExportRequestSerializer, request)
        with service_errors():
            exports.model_export_queue(
                job=self.get_object(), quant=data["quant"], user=request.user
            )
        return Response(data, status=status.HTTP_202_ACCEPTED)


class EvaluationRunPermissions(permissions.BasePermission):
    """Reads for whoever may view training jobs (the Trainer group) or evaluation runs; the
    one write (making a run a baseline) is the service's to refuse (the Trainer role)."""

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        may_read = user.has_perm("training.view_trainingjob") or user.has_perm(
            "training.view_evaluationrun"
        )
        if request.method in permissions.SAFE_METHODS:
            return may_read
        return may_read and getattr(view, "action", None) == "baseline"


class EvaluationRunSerializer(JobRowSerializer):
    class Meta:
        model = EvaluationRun
        fields = [
            "id",
            "name",
            "status",
            "question_source",
            "snapshot",
            "question_set_version",
            "questions_name",
            "assistants",
            "manual",
            "retrieval_only",
            "training_job",
            "judge_endpoint",
            "judge_model",
            "judge_prompt",
            "judge_prompt_tokens",
            "judge_completion_tokens",
            "judge_cost",
            "done",
            "total",
            "progress_percent",
            "summary",
            "judge_check",
            "message",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class EvaluationGateQuery(serializers.Serializer):
    baseline = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="The run to compare with; without it, each assistant's own baseline",
    )


class EvaluationItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvaluationItem
        fields = [
            "id",
            "position",
            "subject",
            "assistant",
            "question_id",
            "question",
            "reference",
            "kind",
            "sources",
            "must_include",
            "answer",
            "retrieved_sources",
            "cited_sources",
            "metrics",
            "judge",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "refused",
            "error",
        ]
        read_only_fields = fields


class EvaluationRunViewSet(JobViewSet):
    """Evaluation runs, read only: their summary (``{assistant: {metric: value}}``) and
    answers (``items/``). Runs are launched from the evaluation pages or ``manage.py evaluate``."""

    queryset = EvaluationRun.objects.select_related("created_by").prefetch_related("assistants")
    serializer_class = EvaluationRunSerializer
    permission_classes = [permissions.IsAuthenticated, EvaluationRunPermissions]

    @extend_schema(responses=EvaluationItemSerializer(many=True))
    @action(detail=True, methods=["get"])
    def items(self, request: Request, pk=None) -> Response:
        run = self.get_object()
        page = self.paginate_queryset(run.items.order_by("position", "id"))
        return self.get_paginated_response(EvaluationItemSerializer(page, many=True).data)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def statistics(self, request: Request, pk=None) -> Response:
        """The summary with 95% intervals (``{metric}_ci_low``/``_ci_high``), the summary per
        category (``summary_by_kind``), every pair of assistants compared question by question
        (difference, interval, p-value, verdict), and the judge's agreement with people."""
        return Response(evaluation.evaluation_run_statistics(self.get_object()))

    @extend_schema(parameters=[EvaluationGateQuery], responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def gate(self, request: Request, pk=None) -> Response:
        """The regression gate: this run against ``?baseline=RUN`` (or each assistant's
        baseline) on the same questions. ``passed`` is false, and ``regressions`` name the
        metrics, when a headline metric is significantly worse; 400 when the runs share no
        assistant or question."""
        run = self.get_object()
        query = query_params(EvaluationGateQuery, request)
        baseline = None
        if "baseline" in query:
            baseline = EvaluationRun.objects.filter(pk=query["baseline"]).first()
            if baseline is None:
                raise serializers.ValidationError(
                    {"baseline": [f"No evaluation run #{query['baseline']}."]}
                )
        try:
            gates = evaluation.evaluation_gates(run, baseline)
        except evaluation.GateError as exc:
            raise serializers.ValidationError({"baseline": [str(exc)]}) from None
        return Response(
            {
                "passed": all(gate.passed for gate in gates),
                "regressions": [r for gate in gates for r in gate.regressions],
                "gates": [gate.as_dict() for gate in gates],
            }
        )

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def baseline(self, request: Request, pk=None) -> Response:
        """Make this run the baseline of the assistants it evaluated (Trainer role)."""
        run = self.get_object()
        with service_errors():
            baselines = evaluation.evaluation_baseline_set(run=run, user=request.user)
        return Response({"run": run.pk, "assistants": [b.assistant_id for b in baselines]})
