"""REST API for the curation app (DRF). Views parse input and call services or selectors."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from curation import services
from curation.models import GenerationRun, LLMEndpoint, Manual, ManualDocument


class ModelPermissionsWithView(permissions.DjangoModelPermissions):
    """Django model permissions, with ``view`` required for reads too."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


def django_errors(exc: DjangoValidationError) -> ValidationError:
    """A service's ValidationError as DRF's, keeping field names for the 400 body."""
    if hasattr(exc, "error_dict"):
        return ValidationError(
            {
                field: [m for e in errors for m in e.messages]
                for field, errors in exc.error_dict.items()
            }
        )
    return ValidationError({"non_field_errors": exc.messages})


class GenerationRunSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)

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
            "chunks_total",
            "chunks_done",
            "chunks_failed",
            "pairs_created",
            "pairs_scored",
            "llm_calls",
            "tokens_in",
            "tokens_out",
            "estimated_cost",
            "message",
            "cancel_requested",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
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


class GenerationRunViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Generation runs: list, read, create, and the cancel / resume / retry-failed actions."""

    queryset = GenerationRun.objects.select_related("manual", "endpoint").prefetch_related(
        "documents"
    )
    serializer_class = GenerationRunSerializer
    permission_classes = [permissions.IsAuthenticated, ModelPermissionsWithView]

    def create(self, request: Request) -> Response:
        payload = GenerationRunCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            run = services.generation_run_create(
                manual=data["manual"],
                endpoint=data["endpoint"],
                documents=data.get("documents") or [],
                questions_per_chunk=data["questions_per_chunk"],
                prompts=data.get("prompts"),
                user=request.user,
            )
        except DjangoValidationError as exc:
            raise django_errors(exc) from None
        return Response(GenerationRunSerializer(run).data, status=status.HTTP_201_CREATED)

    def _transition(self, request: Request, service) -> Response:
        if not request.user.has_perm("curation.change_generationrun"):
            return Response(
                {"detail": "You may not change generation runs."},
                status=status.HTTP_403_FORBIDDEN,
            )
        try:
            run = service(run=self.get_object())
        except DjangoValidationError as exc:
            raise django_errors(exc) from None
        return Response(GenerationRunSerializer(run).data)

    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def cancel(self, request: Request, pk=None) -> Response:
        return self._transition(request, services.generation_run_cancel)

    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def resume(self, request: Request, pk=None) -> Response:
        return self._transition(request, services.generation_run_resume)

    @action(
        detail=True,
        methods=["post"],
        url_path="retry-failed",
        permission_classes=[permissions.IsAuthenticated],
    )
    def retry_failed(self, request: Request, pk=None) -> Response:
        return self._transition(request, services.generation_run_retry_failed)
