"""Routes PostHog's clients call: every project route under `/api/environments/{id}/` too, and the
project-scoped local-evaluation definitions of PostHog's document."""

import pytest

from experiments.models import Experiment
from tests.api.world import api_routes
from tests.experiments.helpers import mean_metric
from tests.factories import ExperimentFactory, FeatureFlagFactory

pytestmark = pytest.mark.django_db


def test_experiments_answer_under_the_environments_prefix(api):
    base = f"/api/environments/{api.project.id}"
    created = api.post(
        f"{base}/experiments/",
        {"name": "E", "feature_flag_key": "env-flag", "metrics": [mean_metric()]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    experiment_id = created.json()["id"]
    assert Experiment.objects.get(pk=experiment_id).project_id == api.project.id
    launched = api.post(f"{base}/experiments/{experiment_id}/launch/")
    assert launched.status_code == 200 and launched.json()["status"] == "running"
    listed = api.get(f"{base}/experiments/?limit=1")
    assert listed.json()["count"] == 1
    assert api.get(f"/api/environments/@current/experiments/{experiment_id}").status_code == 200


def test_every_project_route_has_an_environments_alias():
    from experiments_api.urls import router

    patterns = [url.pattern.regex.pattern for url in router.urls]
    project_routes = [pattern for pattern in patterns if pattern.startswith("^projects/(?P<project_id>")]
    assert len(project_routes) > 20
    for pattern in project_routes:
        assert pattern.replace("^projects/", "^environments/", 1) in patterns


def test_the_environments_prefix_keeps_projects_apart(api, other_project):
    foreign = ExperimentFactory(project=other_project)
    lists = [
        route for route in api_routes() if route.project_scoped and route.method == "GET" and not route.detail
    ]
    assert len(lists) > 8
    for route in lists:
        path = route.path(other_project.id).replace("/api/projects/", "/api/environments/", 1)
        assert api.get(path).status_code in (403, 404), path
    assert api.get(f"/api/environments/{api.project.id}/experiments/{foreign.id}/").status_code == 404


def test_the_schema_documents_each_operation_once(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert not [path for path in schema["paths"] if path.startswith("/api/environments/")]
    assert "/api/projects/{project_id}/feature_flags/local_evaluation/" in schema["paths"]


def test_project_local_evaluation_serves_the_sdk_definitions(api):
    FeatureFlagFactory(project=api.project, key="alpha")
    path = api.url("feature_flags/local_evaluation/")
    response = api.get(path)
    assert response.status_code == 200
    legacy = api.get("/api/feature_flag/local_evaluation/", {"token": api.project.api_token})
    assert response.content == legacy.content
    assert [flag["key"] for flag in response.json()["flags"]] == ["alpha"]
    again = api.get(path, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert api.get(f"/api/environments/{api.project.id}/feature_flags/local_evaluation").status_code == 200


def test_project_local_evaluation_needs_the_flag_read_scope(make_api, other_project):
    assert (
        make_api(scopes=["experiment:read"])
        .get("/api/projects/@current/feature_flags/local_evaluation/")
        .status_code
        == 403
    )
    assert (
        make_api(scopes=["feature_flag:read"])
        .get("/api/projects/@current/feature_flags/local_evaluation/")
        .status_code
        == 200
    )
    response = make_api(scopes=["feature_flag:read"]).get(
        f"/api/projects/{other_project.id}/feature_flags/local_evaluation/"
    )
    assert response.status_code in (403, 404)
