from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectScopedGenericViewSet
from experiments_api.mixins import BodylessActionsMixin
from results.models import QueryRun
from results.queries import query_respond, query_run_cancel, query_status
from results.serializers import QueryRequestSerializer


class QueryViewSet(
    BodylessActionsMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ProjectScopedGenericViewSet
):
    """PostHog's `/query/` for experiment results: `ExperimentQuery` (one metric) and
    `ExperimentExposureQuery` (exposures and sample ratio mismatch). Asynchronous runs are polled
    with `GET /query/{id}/` and cancelled with `DELETE /query/{id}/`."""

    scope_object = "query"
    # As PostHog: running or polling a query only needs `query:read`.
    scope_object_read_actions = ("create", "retrieve", "destroy")
    scope_object_write_actions = ()
    queryset = QueryRun.objects.all()
    serializer_class = QueryRequestSerializer

    @extend_schema(request=QueryRequestSerializer, responses={200: OpenApiTypes.OBJECT})
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = QueryRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refresh = serializer.validated_data.get("refresh")
        if refresh is None and serializer.validated_data.get("async"):
            refresh = "async"
        body = query_respond(project=self.project, query=serializer.validated_data["query"], refresh=refresh)
        return Response(body)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return Response({"query_status": query_status(self.get_object())})

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        query_run_cancel(run=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
