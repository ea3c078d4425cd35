"""ViewSet conventions shared by every app."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from experiments_api.serializers import EmptyBodySerializer, validated_body


class ForbidDestroyModel:
    """PostHog's soft-delete convention: DELETE answers 405 with an empty body; deletion is
    `PATCH {"deleted": true}`."""

    @extend_schema(
        description='Hard delete of this model is not allowed. Use a patch API call to set "deleted" to true',
        responses={405: OpenApiResponse(description="No response body")},
    )
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)


class BodylessActionsMixin:
    """Actions that take no request body (`launch/`, DELETE, …) still refuse one that is not empty:
    a list, text, or a field meant for another action is a mistake the client should hear about
    (400, or 415 for a media type that is not JSON), not something silently ignored. No body, an
    empty body and `{}` are all fine."""

    bodyless_actions: frozenset[str] = frozenset({"destroy"})
    action: str | None
    request: Request

    def get_object(self) -> Any:
        # Checked once the object is found, so a missing one is a 404 whatever the body, and
        # before the action changes anything.
        found = super().get_object()
        if self.action in self.bodyless_actions:
            validated_body(self.request, EmptyBodySerializer)
        return found

    def get_serializer_class(self) -> type[BaseSerializer]:
        # The browsable API offers an empty form for these actions, not the resource's fields.
        if self.action in self.bodyless_actions and self.action != "destroy":
            return EmptyBodySerializer
        return super().get_serializer_class()
