"""The real URLconf plus a probe ViewSet, to test the API conventions (scopes, errors) in isolation."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.scoping import ProjectScopedGenericViewSet
from experiments_api.routing import ApiRouter
from experiments_api.urls import urlpatterns as real_urlpatterns


class NestedItemSerializer(serializers.Serializer):
    key = serializers.CharField()


class ProbeInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=5)
    items = NestedItemSerializer(many=True, required=False)

    def validate(self, attrs):
        if attrs.get("name") == "whole":
            raise serializers.ValidationError("The whole payload is wrong.")
        return attrs


class ProbeViewSet(ProjectScopedGenericViewSet):
    scope_object = "feature_flag"

    def list(self, request, project_id=None):
        return Response({"project": self.project.id})

    def create(self, request, project_id=None):
        serializer = ProbeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data, status=201)

    @action(detail=False, methods=["get"], required_scopes=["activity_log:read"])
    def activity(self, request, project_id=None):
        return Response({"ok": True})

    @action(detail=False, methods=["post"])
    def unsupported(self, request, project_id=None):
        return Response({"ok": True})

    @action(detail=False, methods=["get"], required_scopes=["feature_flag:read"])
    def boom(self, request, project_id=None):
        raise RuntimeError("unexpected failure in a view")


probe_router = ApiRouter()
probe_router.register_project_resource("probe", ProbeViewSet, basename="probe")

urlpatterns = [path("api/", include(probe_router.urls)), *real_urlpatterns]
