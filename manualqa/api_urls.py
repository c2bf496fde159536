"""The REST API under /api/, with its OpenAPI schema and docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from chat.api import (
    AssistantListView,
    ChatAskView,
    ConversationDetailView,
    ConversationListView,
    FeedbackView,
    PreferenceView,
)
from curation.api import (
    ChunkViewSet,
    DocumentViewSet,
    GenerationRunViewSet,
    ManualViewSet,
    QAPairViewSet,
)
from training.api import DatasetSnapshotViewSet, EvaluationRunViewSet, TrainingJobViewSet
from training.retrieval_api import ReembedRunViewSet, RetrievalJobViewSet, RetrievalModelViewSet

router = DefaultRouter()
router.register("manuals", ManualViewSet, basename="manual")
router.register("documents", DocumentViewSet, basename="document")
router.register("chunks", ChunkViewSet, basename="chunk")
router.register("qa-pairs", QAPairViewSet, basename="qa-pair")
router.register("generation-runs", GenerationRunViewSet, basename="generation-run")
router.register("snapshots", DatasetSnapshotViewSet, basename="snapshot")
router.register("training-jobs", TrainingJobViewSet, basename="training-job")
router.register("evaluation-runs", EvaluationRunViewSet, basename="evaluation-run")
router.register("retrieval-jobs", RetrievalJobViewSet, basename="retrieval-job")
router.register("retrieval-models", RetrievalModelViewSet, basename="retrieval-model")
router.register("reembed-runs", ReembedRunViewSet, basename="reembed-run")

urlpatterns = [
    path("", include(router.urls)),
    path("chat/", ChatAskView.as_view(), name="chat-ask"),
    path("chat/assistants/", AssistantListView.as_view(), name="chat-assistants"),
    path("chat/conversations/", ConversationListView.as_view(), name="chat-conversations"),
    path(
        "chat/conversations/<int:pk>/",
        ConversationDetailView.as_view(),
        name="chat-conversation",
    ),
    path("chat/feedback/", FeedbackView.as_view(), name="chat-feedback"),
    path("chat/preferences/", PreferenceView.as_view(), name="chat-preferences"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script (L4).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
