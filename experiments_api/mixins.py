"""ViewSet conventions shared by every app."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from experiments_api.serializers import EmptyBodySerializer, body_of_bodyless_action


class ForbidDestroyModel:
    """PostHog's soft-delete convention: DELETE answers 405 with an empty body; deletion is
    `PATCH {"deleted": true}`."""

    @extend_schema(
        description='Hard delete of this model is not allowed. Use a patch API call to set "deleted" to true',
        responses={405: OpenApiResponse(description="No response body")},
    )
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)


class SoftDeletedModelViewSet(
    ForbidDestroyModel,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """A resource PostHog soft-deletes (experiments, flags): list, read, create and update; DELETE
    answers 405."""


class BodylessActionsMixin:
    """Actions that take no request body (`launch/`, DELETE, …) ignore one, as PostHog does, and
    name what they ignored in the `Ignored-Fields` header; under `Prefer: handling=strict` anything
    but no body, an empty body or `{}` is refused (400, or 415 for a media type that is not JSON)."""

    bodyless_actions: frozenset[str] = frozenset({"destroy"})
    action: str | None
    request: Request

    def get_object(self) -> Any:
        # Checked once the object is found, so a missing one is a 404 whatever the body, and
        # before the action changes anything.
        found = super().get_object()
        if self.action in self.bodyless_actions:
            body_of_bodyless_action(self.request)
        return found

    def get_serializer_class(self) -> type[BaseSerializer]:
        # The browsable API offers an empty form for these actions, not the resource's fields.
        if self.action in self.bodyless_actions and self.action != "destroy":
            return EmptyBodySerializer
        return super().get_serializer_class()
