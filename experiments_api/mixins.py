"""ViewSet conventions shared by every app."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

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

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if self.action in self.bodyless_actions:
            validated_body(request, EmptyBodySerializer)
