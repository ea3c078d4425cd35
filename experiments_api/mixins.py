"""ViewSet conventions shared by every app."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response


class ForbidDestroyModel:
    """PostHog's soft-delete convention: DELETE answers 405 with an empty body; deletion is
    `PATCH {"deleted": true}`."""

    @extend_schema(
        description='Hard delete of this model is not allowed. Use a patch API call to set "deleted" to true',
        responses={405: OpenApiResponse(description="No response body")},
    )
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
