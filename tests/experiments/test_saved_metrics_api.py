"""/experiment_saved_metrics/: CRUD with hard delete, query validation, scopes, tenant isolation."""

import uuid

import pytest

from activity.models import ActivityLog
from experiments.models import ExperimentSavedMetric, ExperimentToSavedMetric
from tests.experiments.helpers import NOT_FOUND, create_experiment, mean_metric, validation_error
from tests.factories import ExperimentSavedMetricFactory

pytestmark = pytest.mark.django_db


def url(api, suffix: str = "") -> str:
    return api.url(f"experiment_saved_metrics/{suffix}")


def test_create(api):
    response = api.post(
        url(api),
        {"name": "Revenue", "description": "per user", "query": mean_metric("purchase")},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "description",
        "query",
        "metadata",
        "created_by",
        "created_at",
        "updated_at",
        "tags",
    }
    assert body["name"] == "Revenue"
    assert body["created_by"]["id"] == api.user.id
    uuid.UUID(body["query"]["uuid"])
    assert body["tags"] == []
    saved = ExperimentSavedMetric.objects.get(pk=body["id"])
    assert saved.project == api.project
    assert saved.query == body["query"]
    entry = ActivityLog.objects.get(scope="Experiment", item_id=str(saved.id))
    assert (entry.activity, entry.user, entry.detail["type"]) == ("created", api.user, "shared_metric")


def test_create_keeps_a_given_uuid(api):
    body = api.post(url(api), {"name": "M", "query": mean_metric(uuid="my-uuid")}, format="json").json()
    assert body["query"]["uuid"] == "my-uuid"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"query": mean_metric()}, validation_error("This field is required.", "name", "required")),
        ({"name": "M"}, validation_error("This field is required.", "query", "required")),
        ({"name": "M", "query": "a string"}, validation_error("query must be an object", "query")),
        (
            {"name": "M", "query": {"kind": "TrendsQuery"}},
            validation_error("Invalid metric at index 0: metric kind must be 'ExperimentMetric'", "query"),
        ),
        (
            {"name": "M", "query": mean_metric(), "metadata": []},
            validation_error("metadata must be an object", "metadata"),
        ),
    ],
)
def test_create_validation(api, body, expected):
    response = api.post(url(api), body, format="json")
    assert response.status_code == 400
    assert response.json() == expected
    assert not ExperimentSavedMetric.objects.exists()


def test_list_and_retrieve(api, other_project):
    first = ExperimentSavedMetricFactory(project=api.project, name="First")
    ExperimentSavedMetricFactory(project=api.project, name="Second")
    foreign = ExperimentSavedMetricFactory(project=other_project)
    body = api.get(url(api)).json()
    assert body["count"] == 2
    assert [item["name"] for item in body["results"]] == ["Second", "First"]
    assert api.get(url(api, f"{first.id}/")).json()["name"] == "First"
    assert api.get(url(api, f"{foreign.id}/")).json() == NOT_FOUND


def test_update_keeps_the_uuid_and_logs_the_change(api):
    saved = ExperimentSavedMetricFactory(project=api.project, name="Old")
    old_uuid = saved.query["uuid"]
    response = api.patch(
        url(api, f"{saved.id}/"), {"name": "New", "query": mean_metric("signup")}, format="json"
    )
    assert response.status_code == 200, response.json()
    saved.refresh_from_db()
    assert saved.name == "New"
    assert saved.query["uuid"] == old_uuid
    assert saved.query["source"]["event"] == "signup"
    entry = ActivityLog.objects.get(scope="Experiment", item_id=str(saved.id), activity="updated")
    assert {change["field"] for change in entry.detail["changes"]} == {"name", "query"}


def test_update_validates_the_query(api):
    saved = ExperimentSavedMetricFactory(project=api.project)
    before = saved.query
    response = api.patch(url(api, f"{saved.id}/"), {"query": [1]}, format="json")
    assert response.json() == validation_error("query must be an object", "query")
    saved.refresh_from_db()
    assert saved.query == before


def test_delete_is_a_hard_delete_and_unlinks(api):
    saved = ExperimentSavedMetricFactory(project=api.project, name="Gone")
    experiment = create_experiment(
        api, saved_metrics_ids=[{"id": saved.id, "metadata": {"type": "secondary"}}]
    )
    response = api.delete(url(api, f"{saved.id}/"))
    assert response.status_code == 204
    assert not ExperimentSavedMetric.objects.filter(pk=saved.id).exists()
    assert not ExperimentToSavedMetric.objects.exists()
    unlink = ActivityLog.objects.get(scope="Experiment", item_id=str(experiment["id"]), activity="deleted")
    assert unlink.detail["type"] == "saved_metric_config"
    assert unlink.detail["name"] == "Gone"
    assert unlink.detail["changes"][0]["before"] == {"type": "secondary"}


def test_other_projects_saved_metric_cannot_be_changed(api, other_project):
    foreign = ExperimentSavedMetricFactory(project=other_project, name="Theirs")
    assert api.patch(url(api, f"{foreign.id}/"), {"name": "x"}, format="json").status_code == 404
    assert api.delete(url(api, f"{foreign.id}/")).status_code == 404
    foreign.refresh_from_db()
    assert foreign.name == "Theirs"


def test_scopes(make_api, project):
    saved = ExperimentSavedMetricFactory(project=project)
    reader = make_api(scopes=["experiment:read"])
    assert reader.get(url(reader)).status_code == 200
    assert reader.get(url(reader, f"{saved.id}/")).status_code == 200
    response = reader.post(url(reader), {"name": "M", "query": mean_metric()}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'experiment:write'"
    assert reader.delete(url(reader, f"{saved.id}/")).status_code == 403
    assert ExperimentSavedMetric.objects.filter(pk=saved.id).exists()
    assert make_api(scopes=["feature_flag:write"]).get(url(reader)).status_code == 403
    writer = make_api(scopes=["experiment:write"])
    assert writer.post(url(writer), {"name": "M", "query": mean_metric()}, format="json").status_code == 201
