"""REST API for the curation app (DRF). Views parse input and call services or selectors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from curation import selectors, services
from curation.models import (
    DocumentChunk,
    GenerationRun,
    LLMEndpoint,
    Manual,
    ManualDocument,
    QAPair,
    QAPairRevision,
)
from manualqa.api import (
    JobRowSerializer,
    JobViewSet,
    ModelPermissionsWithView,
    query_params,
    request_body,
    service_errors,
)


class GenerationRunSerializer(JobRowSerializer):
    class Meta:
        model = GenerationRun
        fields = [
            "id",
            "manual",
            "endpoint",
            "documents",
            "questions_per_chunk",
            "status",
            "progress_percent",
            *GenerationRun.COUNTS,
            "estimated_cost",
            "message",
            "cancel_requested",
            *GenerationRun.TIMES,
        ]
        read_only_fields = fields


class GenerationRunCreateSerializer(serializers.Serializer):
    manual = serializers.PrimaryKeyRelatedField(queryset=Manual.objects.all())
    endpoint = serializers.PrimaryKeyRelatedField(queryset=LLMEndpoint.objects.all())
    documents = serializers.PrimaryKeyRelatedField(
        queryset=ManualDocument.objects.all(), many=True, required=False
    )
    questions_per_chunk = serializers.IntegerField(min_value=1, max_value=50, default=5)
    prompts = serializers.DictField(child=serializers.CharField(), required=False)


class GenerationRunViewSet(JobViewSet):
    """Generation runs: list, read, create, and the cancel / resume / retry-failed actions."""

    queryset = GenerationRun.objects.select_related("manual", "endpoint").prefetch_related(
        "documents"
    )
    serializer_class = GenerationRunSerializer
    row_argument = "run"

    def create(self, request: Request) -> Response:
        data = request_body(GenerationRunCreateSerializer, request)
        with service_errors():
            run = services.generation_run_create(
                manual=data["manual"],
                endpoint=data["endpoint"],
                documents=data.get("documents") or [],
                questions_per_chunk=data["questions_per_chunk"],
                prompts=data.get("prompts"),
                user=request.user,
            )
        return self.created(run)

    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def cancel(self, request: Request, pk=None) -> Response:
        return self.steer(services.generation_run_cancel)

    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def resume(self, request: Request, pk=None) -> Response:
        return self.steer(services.generation_run_resume)

    @action(
        detail=True,
        methods=["post"],
        url_path="retry-failed",
        permission_classes=[permissions.IsAuthenticated],
    )
    def retry_failed(self, request: Request, pk=None) -> Response:
        return self.steer(services.generation_run_retry_failed)


# --- Manuals, documents and chunks (read-only) ---------------------------------------------------


class ManualSerializer(serializers.ModelSerializer):
    document_count = serializers.IntegerField(read_only=True)
    chunk_count = serializers.IntegerField(read_only=True)
    embedded_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Manual
        fields = [
            "id",
            "name",
            "vehicle_make",
            "vehicle_model",
            "vehicle_year",
            "source_url",
            "document_count",
            "chunk_count",
            "embedded_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ManualViewSet(viewsets.ReadOnlyModelViewSet):
    """Manuals with their document and chunk counts."""

    serializer_class = ManualSerializer
    permission_classes = [permissions.IsAuthenticated, ModelPermissionsWithView]

    def get_queryset(self):
        return selectors.manuals_with_counts()


class DocumentSerializer(serializers.ModelSerializer):
    chunk_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = ManualDocument
        fields = [
            "id",
            "manual",
            "title",
            "source_name",
            "source_url",
            "content_hash",
            "word_count",
            "version",
            "chunk_count",
            "fetched_at",
            "updated_at",
            "created_at",
        ]
        read_only_fields = fields


class DocumentDetailSerializer(DocumentSerializer):
    class Meta(DocumentSerializer.Meta):
        fields = [*DocumentSerializer.Meta.fields, "markdown"]
        read_only_fields = fields


class DocumentFilterSerializer(serializers.Serializer):
    manual = serializers.IntegerField(required=False, min_value=1)


class DocumentViewSet(viewsets.ReadOnlyModelViewSet):
    """A manual's documents (pages); the markdown comes with a single document only."""

    permission_classes = [permissions.IsAuthenticated, ModelPermissionsWithView]

    def get_queryset(self):
        documents = selectors.documents_list()
        return documents.defer("markdown") if self.action == "list" else documents

    def get_serializer_class(self):
        return DocumentSerializer if self.action == "list" else DocumentDetailSerializer

    @extend_schema(parameters=[DocumentFilterSerializer])
    def list(self, request: Request) -> Response:
        query = query_params(DocumentFilterSerializer, request)
        documents = selectors.documents_list(manual_id=query.get("manual")).defer("markdown")
        page = self.paginate_queryset(documents)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ChunkSerializer(serializers.ModelSerializer):
    is_embedded = serializers.BooleanField(read_only=True)

    class Meta:
        model = DocumentChunk
        # Never the embedding: 384 floats per chunk are no use to an API client.
        fields = [
            "id",
            "document",
            "position",
            "heading_path",
            "text",
            "token_count",
            "is_embedded",
            "embedding_model",
            "created_at",
        ]
        read_only_fields = fields


class ChunkFilterSerializer(serializers.Serializer):
    document = serializers.IntegerField(required=False, min_value=1)


class ChunkViewSet(viewsets.ReadOnlyModelViewSet):
    """Document chunks, without their embedding vectors."""

    serializer_class = ChunkSerializer
    permission_classes = [permissions.IsAuthenticated, ModelPermissionsWithView]

    def get_queryset(self):
        return selectors.chunks_list()

    @extend_schema(parameters=[ChunkFilterSerializer])
    def list(self, request: Request) -> Response:
        query = query_params(ChunkFilterSerializer, request)
        page = self.paginate_queryset(selectors.chunks_list(document_id=query.get("document")))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


# --- QA pairs: review ----------------------------------------------------------------------------


class QAPairPermissions(permissions.BasePermission):
    """Reading QA pairs needs ``view_qapair``; any change also needs ``review_qapair``."""

    message = "Reviewing QA pairs needs the Reviewer role."

    def has_permission(self, request: Request, view) -> bool:
        if not request.user.has_perm("curation.view_qapair"):
            return False
        return request.method in permissions.SAFE_METHODS or services.user_can_review(request.user)


class QAPairSerializer(serializers.ModelSerializer):
    document_source_name = serializers.CharField(
        source="document.source_name", read_only=True, allow_null=True
    )
    chunk_heading_path = serializers.CharField(
        source="chunk.heading_path", read_only=True, allow_null=True
    )
    source_changed = serializers.BooleanField(read_only=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = QAPair
        fields = [
            "id",
            "manual",
            "document",
            "document_source_name",
            "document_version",
            "chunk",
            "chunk_heading_path",
            "source_changed",
            "question",
            "answer",
            "status",
            "origin",
            "generation_run",
            "grounding_score",
            "flags",
            "duplicate_of",
            "reviewed_by",
            "reviewed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class QAPairDetailSerializer(QAPairSerializer):
    class Meta(QAPairSerializer.Meta):
        fields = [
            *QAPairSerializer.Meta.fields,
            "original_question",
            "original_answer",
            "lexical_grounding",
            "semantic_grounding",
            "source_text",
            "scored_at",
        ]
        read_only_fields = fields


class QAPairFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=QAPair.Status.choices, required=False)
    manual = serializers.IntegerField(required=False, min_value=1)
    document = serializers.IntegerField(required=False, min_value=1)
    origin = serializers.ChoiceField(choices=QAPair.Origin.choices, required=False)
    generation_run = serializers.IntegerField(required=False, min_value=1)
    flag = serializers.CharField(required=False, help_text="Pairs carrying this flag")
    min_grounding = serializers.FloatField(required=False)
    max_grounding = serializers.FloatField(required=False)
    search = serializers.CharField(required=False, help_text="Text in the question or answer")
    ordering = serializers.ChoiceField(
        choices=selectors.QA_PAIR_ORDERINGS, required=False, default="-created_at"
    )


class QAPairEditSerializer(serializers.Serializer):
    # Blank values reach the service, whose message says which field may not be empty.
    question = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    answer = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise ValidationError({"non_field_errors": ["Give a question, an answer or both."]})
        return attrs


class QAPairRevisionSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = QAPairRevision
        fields = ["id", "action", "changes", "user", "created_at"]
        read_only_fields = fields


BULK_ACTIONS = {
    "approve": QAPair.Status.APPROVED,
    "reject": QAPair.Status.REJECTED,
    "reset": QAPair.Status.PENDING,
}


class QAPairBulkSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=10000
    )
    action = serializers.ChoiceField(choices=list(BULK_ACTIONS))


class QAPairBulkResultSerializer(serializers.Serializer):
    changed = serializers.IntegerField(help_text="Pairs whose status changed")


class QAPairViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """QA pairs: filtered lists, one pair, its history, and the review actions.

    Every change goes through the review services, which record a revision for it.
    """

    permission_classes = [permissions.IsAuthenticated, QAPairPermissions]

    def get_queryset(self):
        return selectors.qa_pairs_list()

    def get_serializer_class(self):
        return QAPairSerializer if self.action == "list" else QAPairDetailSerializer

    def _pair_response(self, pair: QAPair) -> Response:
        return Response(QAPairDetailSerializer(self.get_queryset().get(pk=pair.pk)).data)

    @extend_schema(parameters=[QAPairFilterSerializer])
    def list(self, request: Request) -> Response:
        query = query_params(QAPairFilterSerializer, request)
        pairs = selectors.qa_pairs_list(
            status=query.get("status"),
            manual_id=query.get("manual"),
            document_id=query.get("document"),
            origin=query.get("origin"),
            generation_run_id=query.get("generation_run"),
            flag=query.get("flag"),
            min_grounding=query.get("min_grounding"),
            max_grounding=query.get("max_grounding"),
            search=query.get("search", ""),
            ordering=query["ordering"],
        )
        page = self.paginate_queryset(pairs)
        return self.get_paginated_response(QAPairSerializer(page, many=True).data)

    @extend_schema(request=QAPairEditSerializer, responses=QAPairDetailSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        pair = self.get_object()
        edit = request_body(QAPairEditSerializer, request)
        with service_errors():
            pair = services.qa_pair_edit(
                pair=pair,
                reviewer=request.user,
                question=edit.get("question", pair.question),
                answer=edit.get("answer", pair.answer),
            )
        return self._pair_response(pair)

    def _set_status(self, request: Request, status_value: str) -> Response:
        with service_errors():
            pair = services.qa_pair_set_status(
                pair=self.get_object(), status=status_value, reviewer=request.user
            )
        return self._pair_response(pair)

    @extend_schema(request=None, responses=QAPairDetailSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk=None) -> Response:
        return self._set_status(request, QAPair.Status.APPROVED)

    @extend_schema(request=None, responses=QAPairDetailSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk=None) -> Response:
        return self._set_status(request, QAPair.Status.REJECTED)

    @extend_schema(request=None, responses=QAPairDetailSerializer)
    @action(detail=True, methods=["post"])
    def reset(self, request: Request, pk=None) -> Response:
        return self._set_status(request, QAPair.Status.PENDING)

    @extend_schema(request=QAPairBulkSerializer, responses=QAPairBulkResultSerializer)
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        bulk = request_body(QAPairBulkSerializer, request)
        ids = set(bulk["ids"])
        pairs = self.get_queryset().filter(id__in=ids)
        unknown = ids - set(pairs.values_list("id", flat=True))
        if unknown:
            raise ValidationError({"ids": [f"No such QA pairs: {sorted(unknown)}."]})
        with service_errors():
            changed = services.qa_pairs_bulk_set_status(
                pairs=pairs,
                status=BULK_ACTIONS[bulk["action"]],
                reviewer=request.user,
            )
        return Response({"changed": changed})

    @extend_schema(responses=QAPairRevisionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request: Request, pk=None) -> Response:
        revisions = selectors.qa_pair_history(pair=self.get_object())
        return Response(QAPairRevisionSerializer(revisions, many=True).data)
