"""What every app's REST API shares: permissions, service errors as DRF's, query parameters."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import permissions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

__all__ = ["ModelPermissionsWithView", "django_errors", "query_params"]


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


def query_params(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    """The request's query parameters, validated by ``serializer_class`` (400 names the field)."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data
