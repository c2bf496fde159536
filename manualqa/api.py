"""What every app's REST API shares: permissions, service errors as DRF's, query parameters,
and the viewset of a job's rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

__all__ = [
    "JobRowSerializer",
    "JobViewSet",
    "ModelPermissionsWithView",
    "django_errors",
    "query_params",
    "request_body",
    "service_errors",
]


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


@contextmanager
def service_errors() -> Iterator[None]:
    """Around a service call: its ValidationError leaves as DRF's (a 400 naming the fields)."""
    try:
        yield
    except DjangoValidationError as exc:
        raise django_errors(exc) from None


def query_params(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    """The request's query parameters, validated by ``serializer_class`` (400 names the field)."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


def request_body(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    """The request's body, validated by ``serializer_class`` (400 names the field)."""
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data


# A job row as the API shows it: its progress in percent and who launched it (a username; a
# subclass lists ``created_by`` in its fields where its row records one). A comment, not a
# docstring: drf-spectacular would publish a docstring as every subclass's schema description.
class JobRowSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A job's rows (generation, training, retrieval, re-embed, evaluation): listed and read;
    :meth:`created` answers a launch, :meth:`steer` runs a cancel/resume-style service, which
    takes the row as ``row_argument`` and the user, and answers with the row it returns."""

    permission_classes = [permissions.IsAuthenticated, ModelPermissionsWithView]
    row_argument = "job"

    def created(self, row: Any) -> Response:
        return Response(self.get_serializer(row).data, status=status.HTTP_201_CREATED)

    def steer(self, service: Callable[..., Any]) -> Response:
        with service_errors():
            row = service(**{self.row_argument: self.get_object()}, user=self.request.user)
        return Response(self.get_serializer(row).data)
