"""Fields PostHog's clients rely on (issue 11, item 2): tags as a real feature, saved metric links
as `saved_metrics_ids`, scoped lists on keys, cohort fields, and PostHog's empty values for what
this server has nothing behind."""

import pytest

from accounts.models import PersonalAPIKey
from activity.models import ActivityLog
from experiments.models import ExperimentSavedMetric
from flags.models import FeatureFlag
from tests.experiments.helpers import create_experiment, mean_metric
from tests.factories import CohortFactory, ExperimentSavedMetricFactory, FeatureFlagFactory

pytestmark = pytest.mark.django_db

EVERYONE = {"groups": [{"properties": [], "rollout_percentage": 100}]}


def create_flag(api, key: str, **fields) -> dict:
    response = api.post(api.url("feature_flags/"), {"key": key, "filters": EVERYONE, **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_flag_tags_are_stored_normalized_and_logged(api):
    flag = create_flag(api, "tagged", tags=["  Beta ", "beta", "Checkout"])
    assert flag["tags"] == ["beta", "checkout"]
    assert FeatureFlag.objects.get(pk=flag["id"]).tags == ["beta", "checkout"]
    response = api.patch(api.url(f"feature_flags/{flag['id']}/"), {"tags": ["gamma"]}, format="json")
    assert response.json()["tags"] == ["gamma"]
    entry = ActivityLog.objects.filter(item_id=str(flag["id"]), activity="updated").get()
    assert entry.detail["changes"][0]["field"] == "tags"


def test_flags_are_filtered_by_any_of_the_tags(api):
    create_flag(api, "one", tags=["beta"])
    create_flag(api, "two", tags=["checkout", "beta"])
    create_flag(api, "three", tags=["other"])
    create_flag(api, "four")

    def keys(tags: str) -> list[str]:
        response = api.get(api.url("feature_flags/"), {"tags": tags})
        assert response.status_code == 200, response.json()
        return sorted(flag["key"] for flag in response.json()["results"])

    assert keys('["beta"]') == ["one", "two"]
    assert keys('["Checkout", "other"]') == ["three", "two"]
    assert keys("[]") == ["four", "one", "three", "two"]
    assert keys("beta") == ["one", "two"]
    too_deep = api.get(api.url("feature_flags/"), {"tags": "[" * 5000})
    assert too_deep.status_code == 400
    assert too_deep.json()["attr"] == "tags"


@pytest.mark.parametrize("tags", ['{"a": 1}', "[1, 2]", '[["nested"]]'])
def test_a_malformed_tags_filter_is_a_400(api, tags):
    response = api.get(api.url("feature_flags/"), {"tags": tags})
    assert response.status_code == 400
    assert response.json()["attr"] == "tags"


@pytest.mark.parametrize(
    "tags", ["beta", {"a": 1}, ["x" * 256], [f"t{n}" for n in range(101)], [None], [["x"]]]
)
def test_hostile_tags_are_refused_and_change_nothing(api, tags):
    response = api.post(api.url("feature_flags/"), {"key": "bad-tags", "tags": tags}, format="json")
    assert response.status_code == 400
    assert response.json()["attr"].startswith("tags")
    assert not FeatureFlag.objects.exists()


def test_saved_metric_tags_and_filter(api):
    api.post(
        api.url("experiment_saved_metrics/"),
        {"name": "A", "query": mean_metric(), "tags": ["Money"]},
        format="json",
    )
    ExperimentSavedMetricFactory(project=api.project, name="B")
    assert ExperimentSavedMetric.objects.get(name="A").tags == ["money"]
    body = api.get(api.url("experiment_saved_metrics/"), {"tags": '["money"]'}).json()
    assert [metric["name"] for metric in body["results"]] == ["A"]
    assert api.get(api.url("experiment_saved_metrics/")).json()["count"] == 2


def test_a_flag_answers_posthogs_empty_values_for_what_this_server_has_nothing_behind(api):
    body = api.get(api.url(f"feature_flags/{FeatureFlagFactory(project=api.project).id}/")).json()
    assert {
        name: body[name]
        for name in (
            "tags",
            "evaluation_tags",
            "surveys",
            "features",
            "usage_dashboard",
            "analytics_dashboards",
            "has_enriched_analytics",
            "rollback_conditions",
            "performed_rollback",
            "last_called_at",
            "is_remote_configuration",
            "has_encrypted_payloads",
        )
    } == {
        "tags": [],
        "evaluation_tags": [],
        "surveys": {},
        "features": {},
        "usage_dashboard": None,
        "analytics_dashboards": [],
        "has_enriched_analytics": False,
        "rollback_conditions": None,
        "performed_rollback": False,
        "last_called_at": None,
        "is_remote_configuration": False,
        "has_encrypted_payloads": False,
    }
    assert body["created_at"]


def test_values_this_server_cannot_hold_are_named_or_refused(api):
    body = {"key": "remote", "filters": EVERYONE, "has_enriched_analytics": True, "analytics_dashboards": []}
    response = api.post(api.url("feature_flags/"), body, format="json")
    assert response.status_code == 201
    assert response["Ignored-Fields"] == "has_enriched_analytics"
    assert response.json()["has_enriched_analytics"] is False
    strict = api.post(
        api.url("feature_flags/"), {**body, "key": "strict"}, format="json", HTTP_PREFER="handling=strict"
    )
    assert strict.status_code == 400
    assert strict.json()["attr"] == "has_enriched_analytics"
    assert not FeatureFlag.objects.filter(key="strict").exists()


def test_folder_and_dashboard_instructions_are_accepted_silently(api):
    response = api.post(
        api.url("feature_flags/"),
        {
            "key": "k",
            "filters": EVERYONE,
            "_create_in_folder": "Unfiled",
            "_should_create_usage_dashboard": True,
        },
        format="json",
    )
    assert response.status_code == 201
    assert "Ignored-Fields" not in response


def test_saved_metrics_ids_are_null_without_links_and_the_links_otherwise(api):
    saved = ExperimentSavedMetricFactory(project=api.project)
    plain = create_experiment(api)
    linked = create_experiment(api, saved_metrics_ids=[{"id": saved.id, "metadata": {"type": "primary"}}])
    assert plain["saved_metrics_ids"] is None
    assert linked["saved_metrics_ids"] == [{"id": saved.id, "metadata": {"type": "primary"}}]
    listed = {row["id"]: row for row in api.get(api.url("experiments/")).json()["results"]}
    assert listed[plain["id"]]["saved_metrics_ids"] is None
    assert listed[linked["id"]]["saved_metrics"][0]["saved_metric"] == saved.id


def test_experiment_deleted_may_be_null(api):
    experiment = create_experiment(api, deleted=None)
    assert experiment["deleted"] is False


def test_cohorts_carry_query_and_cohort_type(api):
    cohort = CohortFactory(project=api.project)
    body = api.get(api.url(f"cohorts/{cohort.id}/")).json()
    assert body["query"] is None and body["cohort_type"] is None


@pytest.mark.parametrize("stored", [None, []])
def test_unscoped_keys_list_empty_scopes_however_they_were_made(api, stored):
    PersonalAPIKey.objects.filter(pk=api.key.pk).update(scoped_teams=stored, scoped_organizations=stored)
    body = api.get("/api/personal_api_keys/@current/").json()
    assert body["scoped_teams"] == [] and body["scoped_organizations"] == []


def test_scoped_keys_list_their_scopes(make_api, project):
    scoped = make_api(scoped_teams=[project.id])
    body = scoped.get("/api/personal_api_keys/@current/").json()
    assert body["scoped_teams"] == [project.id] and body["scoped_organizations"] == []
