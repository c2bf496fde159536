"""The REST API under /api/, with its OpenAPI schema and docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from curation.api import (
    ChunkViewSet,
    DocumentViewSet,
    GenerationRunViewSet,
    ManualViewSet,
    QAPairViewSet,
)
from training.api import DatasetSnapshotViewSet, TrainingJobViewSet

router = DefaultRouter()
router.register("manuals", ManualViewSet, basename="manual")
router.register("documents", DocumentViewSet, basename="document")
router.register("chunks", ChunkViewSet, basename="chunk")
router.register("qa-pairs", QAPairViewSet, basename="qa-pair")
router.register("generation-runs", GenerationRunViewSet, basename="generation-run")
router.register("snapshots", DatasetSnapshotViewSet, basename="snapshot")
router.register("training-jobs", TrainingJobViewSet, basename="training-job")

urlpatterns = [
    path("", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
