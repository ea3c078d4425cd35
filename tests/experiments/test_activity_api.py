"""Activity entries written by experiment writes, and the endpoints that read them (cases 132–135)."""

import pytest

from activity.models import ActivityLog
from tests.experiments.helpers import create_experiment, mean_metric
from tests.factories import ExperimentSavedMetricFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_api(make_api, project):
    """A client for another member of the same organization."""
    member = UserFactory(current_project=project)
    MembershipFactory(organization=project.organization, user=member)
    return make_api(for_user=member)


def experiment_entries(experiment_id: int, **filters):
    return ActivityLog.objects.filter(scope="Experiment", item_id=str(experiment_id), **filters).order_by(
        "created_at", "id"
    )


def patch(api, experiment_id: int, body: dict):
    response = api.patch(api.url(f"experiments/{experiment_id}/"), body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_entries_are_attributed_to_the_acting_user(api, second_api):
    """Case 132."""
    experiment = create_experiment(api, name="Original")
    patch(second_api, experiment["id"], {"name": "Renamed", "description": "new"})

    created = experiment_entries(experiment["id"], activity="created").get()
    assert created.user == api.user
    assert created.is_system is False
    assert created.project == api.project
    assert created.organization_id == api.project.organization_id
    updated = experiment_entries(experiment["id"], activity="updated").get()
    assert updated.user == second_api.user
    assert updated.detail["name"] == "Renamed"
    assert updated.detail["changes"] == [
        {"type": "Experiment", "action": "created", "field": "description", "before": "", "after": "new"},
        {
            "type": "Experiment",
            "action": "changed",
            "field": "name",
            "before": "Original",
            "after": "Renamed",
        },
    ]


def test_deleted_and_restored(api, second_api):
    experiment = create_experiment(api)
    patch(api, experiment["id"], {"deleted": True})
    patch(second_api, experiment["id"], {"deleted": False})
    deleted = experiment_entries(experiment["id"], activity="deleted").get()
    assert deleted.user == api.user
    assert deleted.detail["changes"] == [
        {"type": "Experiment", "action": "changed", "field": "deleted", "before": False, "after": True}
    ]
    restored = experiment_entries(experiment["id"], activity="restored").get()
    assert restored.user == second_api.user
    assert restored.detail["changes"][0]["after"] is False


def test_no_entry_for_a_no_op_update(api):
    experiment = create_experiment(api, description="d", metrics=[mean_metric(uuid="m1")])
    count = ActivityLog.objects.count()
    read = api.get(api.url(f"experiments/{experiment['id']}/")).json()
    patch(
        api,
        experiment["id"],
        {"description": "d", "metrics": read["metrics"], "parameters": read["parameters"]},
    )
    assert ActivityLog.objects.count() == count


def test_saved_metric_link_entries(api):
    """Case 133: link, metadata change and unlink are each one entry; ordering follow-ups are not logged."""
    saved = ExperimentSavedMetricFactory(project=api.project, name="Conversion")
    experiment = create_experiment(api, saved_metrics_ids=[{"id": saved.id, "metadata": {"type": "primary"}}])
    links = experiment_entries(experiment["id"], detail__type="saved_metric_config")
    assert [(e.activity, e.detail["name"]) for e in links] == [("created", "Conversion")]
    assert links[0].detail["changes"] == [
        {
            "type": "Experiment",
            "action": "created",
            "field": "metadata",
            "before": None,
            "after": {"type": "primary"},
        }
    ]

    patch(api, experiment["id"], {"saved_metrics_ids": [{"id": saved.id, "metadata": {"type": "secondary"}}]})
    updated = experiment_entries(
        experiment["id"], detail__type="saved_metric_config", activity="updated"
    ).get()
    assert updated.detail["changes"] == [
        {
            "type": "Experiment",
            "action": "changed",
            "field": "metadata",
            "before": {"type": "primary"},
            "after": {"type": "secondary"},
        }
    ]

    patch(api, experiment["id"], {"saved_metrics_ids": []})
    deleted = experiment_entries(
        experiment["id"], detail__type="saved_metric_config", activity="deleted"
    ).get()
    assert deleted.detail["changes"][0]["before"] == {"type": "secondary"}
    assert not experiment_entries(experiment["id"], activity="updated", detail__type=None).exists()


def test_explicit_reorder_is_logged(api):
    """Case 134."""
    experiment = create_experiment(api, metrics=[mean_metric(uuid="m1"), mean_metric("b", uuid="m2")])
    patch(api, experiment["id"], {"primary_metrics_ordered_uuids": ["m2", "m1"]})
    entry = experiment_entries(experiment["id"], activity="updated").get()
    assert entry.detail["changes"] == [
        {
            "type": "Experiment",
            "action": "changed",
            "field": "primary_metrics_ordered_uuids",
            "before": ["m1", "m2"],
            "after": ["m2", "m1"],
        }
    ]


def test_metric_addition_logs_metrics_but_not_the_ordering(api):
    experiment = create_experiment(api, metrics=[mean_metric(uuid="m1")])
    patch(api, experiment["id"], {"metrics": [mean_metric(uuid="m1"), mean_metric("b", uuid="m2")]})
    entry = experiment_entries(experiment["id"], activity="updated").get()
    assert [change["field"] for change in entry.detail["changes"]] == ["metrics"]


def test_running_time_recommendations_are_not_logged(api):
    """Case 135."""
    experiment = create_experiment(
        api, running_time_calculation={"minimum_detectable_effect": 5, "recommended_sample_size": 100}
    )
    patch(
        api,
        experiment["id"],
        {
            "running_time_calculation": {
                "minimum_detectable_effect": 5,
                "recommended_sample_size": 1500,
                "recommended_running_time": 14,
            }
        },
    )
    assert not experiment_entries(experiment["id"], activity="updated").exists()

    patch(api, experiment["id"], {"running_time_calculation": {"minimum_detectable_effect": 7}})
    entry = experiment_entries(experiment["id"], activity="updated").get()
    assert entry.detail["changes"] == [
        {
            "type": "Experiment",
            "action": "changed",
            "field": "running_time_calculation",
            "before": {"minimum_detectable_effect": 5},
            "after": {"minimum_detectable_effect": 7},
        }
    ]


def test_web_experiment_parameters_are_not_logged(api):
    experiment = create_experiment(api, type="web")
    patch(api, experiment["id"], {"parameters": {"recommended_sample_size": 5}})
    assert not experiment_entries(experiment["id"], activity="updated").exists()


def test_draft_flag_change_is_logged_on_the_experiment_and_the_flag(api):
    experiment = create_experiment(api)
    patch(api, experiment["id"], {"parameters": {"rollout_percentage": 40}})
    entry = experiment_entries(experiment["id"], activity="updated").get()
    assert [(c["type"], c["field"]) for c in entry.detail["changes"]] == [("FeatureFlag", "filters")]
    flag_entry = ActivityLog.objects.get(
        scope="FeatureFlag", item_id=str(experiment["feature_flag"]["id"]), activity="updated"
    )
    assert flag_entry.detail["changes"][0]["before"]["groups"][0]["rollout_percentage"] == 100
    assert flag_entry.detail["changes"][0]["after"]["groups"][0]["rollout_percentage"] == 40


# --- /experiments/{id}/activity/ -------------------------------------------------------------


def test_experiment_activity_endpoint(api, second_api):
    saved = ExperimentSavedMetricFactory(project=api.project)
    experiment = create_experiment(api, saved_metrics_ids=[{"id": saved.id, "metadata": {"type": "primary"}}])
    other = create_experiment(api, name="Other")
    patch(second_api, experiment["id"], {"name": "Renamed"})
    api.post(api.url(f"experiments/{experiment['id']}/launch/"))

    response = api.get(api.url(f"experiments/{experiment['id']}/activity/"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "next", "previous", "total_count"}
    assert body["total_count"] == 4
    assert [item["activity"] for item in body["results"]] == ["launched", "updated", "created", "created"]
    assert {item["item_id"] for item in body["results"]} == {str(experiment["id"])}
    assert body["results"][1]["user"]["id"] == second_api.user.id
    assert body["results"][0]["scope"] == "Experiment"
    assert str(other["id"]) not in {item["item_id"] for item in body["results"]}

    page = api.get(api.url(f"experiments/{experiment['id']}/activity/?limit=3")).json()
    assert len(page["results"]) == 3
    assert page["previous"] is None
    assert "page=2" in page["next"]
    second = api.get(api.url(f"experiments/{experiment['id']}/activity/?limit=3&page=2")).json()
    assert [item["activity"] for item in second["results"]] == ["created"]
    assert second["next"] is None


def test_experiment_activity_excludes_a_saved_metric_with_the_same_id(api):
    experiment = create_experiment(api)
    saved = ExperimentSavedMetricFactory(project=api.project, id=experiment["id"])
    api.patch(api.url(f"experiment_saved_metrics/{saved.id}/"), {"name": "Renamed"}, format="json")
    assert ActivityLog.objects.filter(item_id=str(experiment["id"]), detail__type="shared_metric").exists()
    body = api.get(api.url(f"experiments/{experiment['id']}/activity/")).json()
    assert [item["activity"] for item in body["results"]] == ["created"]
    assert body["results"][0]["detail"]["type"] is None


# --- /activity_log/ --------------------------------------------------------------------------


def test_activity_log_filters(api, second_api):
    experiment = create_experiment(api)
    patch(second_api, experiment["id"], {"name": "By B"})
    flag_id = experiment["feature_flag"]["id"]

    def results(query: str) -> list[dict]:
        response = api.get(api.url(f"activity_log/{query}"))
        assert response.status_code == 200, response.json()
        return response.json()["results"]

    everything = results("")
    assert [(item["scope"], item["activity"]) for item in everything] == [
        ("Experiment", "updated"),
        ("Experiment", "created"),
        ("FeatureFlag", "created"),
    ]
    assert [item["scope"] for item in results("?scope=FeatureFlag")] == ["FeatureFlag"]
    assert len(results("?scopes=FeatureFlag,Experiment")) == 3
    assert [
        (item["scope"], item["item_id"]) for item in results(f"?scope=FeatureFlag&item_id={flag_id}")
    ] == [("FeatureFlag", str(flag_id))]
    assert {item["item_id"] for item in results(f"?item_id={experiment['id']}")} == {str(experiment["id"])}
    assert results("?item_id=999999") == []
    by_b = results(f"?user={second_api.user.id}")
    assert [(item["activity"], item["user"]["email"]) for item in by_b] == [
        ("updated", second_api.user.email)
    ]
    assert len(results(f"?user={api.user.uuid}")) == 2
    assert results("?user=not-a-user") == []


def test_activity_log_pagination_shapes(api):
    create_experiment(api)
    cursor_page = api.get(api.url("activity_log/")).json()
    assert set(cursor_page) == {"next", "previous", "results"}
    numbered = api.get(api.url("activity_log/?page=1&page_size=1")).json()
    assert numbered["count"] == 2
    assert len(numbered["results"]) == 1


def test_activity_log_is_scoped_to_the_project(api, other_project, make_api):
    create_experiment(api)
    other_owner = other_project.organization.memberships.get().user
    outsider = make_api(for_user=other_owner, for_project=other_project)
    assert outsider.get(outsider.url("activity_log/")).json()["results"] == []
    assert outsider.get(api.url("activity_log/")).status_code == 404


def test_activity_log_needs_its_scope(make_api, project):
    assert (
        make_api(scopes=["activity_log:read"]).get(f"/api/projects/{project.id}/activity_log/").status_code
        == 200
    )
    response = make_api(scopes=["experiment:read"]).get(f"/api/projects/{project.id}/activity_log/")
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'activity_log:read'"


def test_activity_log_pages_render_in_the_browsable_api(api):
    for index in range(3):
        create_experiment(api, name=f"Browsed {index}", feature_flag_key=f"browsed-{index}")
    for query in ("", "?page_size=1", "?page=2&page_size=1", "?format=api"):
        response = api.get(api.url(f"activity_log/{query}"), HTTP_ACCEPT="text/html")
        assert response.status_code == 200, (query, response.content[:300])
        assert response["Content-Type"].startswith("text/html")
        assert "browsed" in response.content.decode().lower(), query
    paged = api.get(api.url("activity_log/?page=2&page_size=1"), HTTP_ACCEPT="text/html").content.decode()
    assert 'class="pagination"' in paged
