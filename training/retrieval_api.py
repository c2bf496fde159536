"""REST API for retrieval jobs, the retrieval models they register, and re-embedding a manual
with one (issue 18). Views parse input and call the services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from curation.models import Manual, ReembedRun, RetrievalModel
from curation.services import embedders
from manualqa.api import (
    JobRowSerializer,
    JobViewSet,
    ModelPermissionsWithView,
    request_body,
    service_errors,
)
from training import retrieval_jobs
from training.models import DatasetSnapshot, RetrievalJob


class RetrievalJobSerializer(JobRowSerializer):
    class Meta:
        model = RetrievalJob
        fields = [
            "id",
            "name",
            "kind",
            "snapshot",
            "base_model",
            "hyperparameters",
            "status",
            "progress_percent",
            "step",
            "total_steps",
            "loss",
            "eta_s",
            "train_examples",
            "metrics",
            "registered_model",
            "output_dir",
            "message",
            "cancel_requested",
            "created_by",
            *RetrievalJob.TIMES,
        ]
        read_only_fields = fields


class RetrievalJobCreateSerializer(serializers.Serializer):
    snapshot = serializers.PrimaryKeyRelatedField(queryset=DatasetSnapshot.objects.all())
    kind = serializers.ChoiceField(choices=RetrievalJob.Kind.choices, default="retriever")
    name = serializers.CharField(required=False, allow_blank=True, default="")
    base_model = serializers.CharField(required=False, allow_blank=True, default="")
    hyperparameters = serializers.DictField(required=False, default=dict)


class RetrievalJobViewSet(JobViewSet):
    """Retrieval jobs: read them, launch one (Trainer role), cancel it."""

    queryset = RetrievalJob.objects.select_related("snapshot", "created_by")
    serializer_class = RetrievalJobSerializer

    @extend_schema(request=RetrievalJobCreateSerializer, responses=RetrievalJobSerializer)
    def create(self, request: Request) -> Response:
        data = request_body(RetrievalJobCreateSerializer, request)
        with service_errors():
            job = retrieval_jobs.retrieval_job_create(user=request.user, **data)
        return self.created(job)

    @extend_schema(request=None, responses=RetrievalJobSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def cancel(self, request: Request, pk=None) -> Response:
        return self.steer(retrieval_jobs.retrieval_job_cancel)


class RetrievalModelSerializer(serializers.ModelSerializer):
    manuals = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = RetrievalModel
        fields = [
            "id",
            "name",
            "kind",
            "path",
            "base_model",
            "dimensions",
            "decline_below",
            "metrics",
            "manuals",
            "created_at",
        ]
        read_only_fields = fields


class RetrievalModelViewSet(viewsets.ReadOnlyModelViewSet):
    """The embedders and rerankers retrieval jobs registered; ``manuals``: those using it."""

    queryset = RetrievalModel.objects.prefetch_related("manuals")
    serializer_class = RetrievalModelSerializer
    permission_classes = [permissions.IsAuthenticated, ModelPermissionsWithView]


class ReembedRunSerializer(JobRowSerializer):
    class Meta:
        model = ReembedRun
        fields = [
            "id",
            "manual",
            "embedder",
            "previous_embedder",
            "status",
            "progress_percent",
            "done",
            "total",
            "message",
            "cancel_requested",
            "created_by",
            *ReembedRun.TIMES,
        ]
        read_only_fields = fields


class ReembedRunCreateSerializer(serializers.Serializer):
    manual = serializers.PrimaryKeyRelatedField(queryset=Manual.objects.all())
    embedder = serializers.PrimaryKeyRelatedField(
        queryset=RetrievalModel.objects.all(),
        allow_null=True,
        help_text="A retrieval model of kind embedder; null: back to the configured default.",
    )


class ReembedRunViewSet(JobViewSet):
    """Re-embed a manual with an embedder (or back to the default): the new vectors are built
    beside the old ones, then switched in one transaction. Switching back to a model used
    before re-embeds nothing (its vectors were kept)."""

    queryset = ReembedRun.objects.select_related("manual", "embedder", "created_by")
    serializer_class = ReembedRunSerializer
    row_argument = "run"

    @extend_schema(request=ReembedRunCreateSerializer, responses=ReembedRunSerializer)
    def create(self, request: Request) -> Response:
        data = request_body(ReembedRunCreateSerializer, request)
        with service_errors():
            run = embedders.reembed_run_create(user=request.user, **data)
        return self.created(run)

    @extend_schema(request=None, responses=ReembedRunSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def cancel(self, request: Request, pk=None) -> Response:
        return self.steer(embedders.reembed_run_cancel)
