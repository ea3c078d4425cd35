from datetime import timedelta

import pytest
from django.utils import timezone

from experiments.models import Experiment, ExperimentMetricResult, ExperimentTimeseriesRecalculation
from flags.models import Cohort
from tests.factories import CohortFactory, ExperimentFactory, FeatureFlagFactory, multivariate_filters

pytestmark = pytest.mark.django_db


def launched(api, **kwargs) -> Experiment:
    experiment = ExperimentFactory(project=api.project, **kwargs)
    experiment.feature_flag.key = "a-b-test"
    experiment.feature_flag.save()
    return experiment


def test_exposure_cohort_default_definition(api):
    experiment = launched(api, name="Test Experiment", start_date="2024-01-01T10:23:00Z")
    response = api.post(api.url(f"experiments/{experiment.id}/create_exposure_cohort_for_experiment/"))
    assert response.status_code == 201
    cohort = response.json()["cohort"]
    assert cohort["name"] == 'Users exposed to experiment "Test Experiment"'
    assert cohort["experiment_set"] == [experiment.id]
    assert cohort["is_static"] is False and cohort["is_calculating"] is True
    assert cohort["filters"] == {
        "properties": {
            "type": "OR",
            "values": [
                {
                    "type": "OR",
                    "values": [
                        {
                            "type": "behavioral",
                            "value": "performed_event",
                            "key": "$feature_flag_called",
                            "negation": False,
                            "event_type": "events",
                            "event_filters": [
                                {
                                    "key": "$feature_flag",
                                    "value": ["a-b-test"],
                                    "operator": "exact",
                                    "type": "event",
                                }
                            ],
                            "explicit_datetime": "2024-01-01T10:23:00+00:00",
                        }
                    ],
                }
            ],
        }
    }
    assert Experiment.objects.get(pk=experiment.pk).exposure_cohort_id == cohort["id"]
    assert api.get(api.url(f"cohorts/{cohort['id']}/")).json()["experiment_set"] == [experiment.id]


def test_exposure_cohort_with_custom_event_filter_keeps_event_and_hogql_properties(api):
    experiment = launched(
        api,
        start_date="2024-01-01T10:23:00Z",
        parameters={
            "custom_exposure_filter": {
                "events": [
                    {
                        "id": "custom_exposure_event",
                        "type": "events",
                        "properties": [
                            {"key": "bonk", "value": "bonk", "type": "event"},
                            {"key": "id", "value": 1, "type": "cohort"},
                            {"key": "properties.$current_url ILIKE '%x%'", "type": "hogql"},
                            {"key": "$pageview", "value": "x", "type": "person"},
                        ],
                    }
                ]
            }
        },
    )
    cohort = api.post(api.url(f"experiments/{experiment.id}/create_exposure_cohort_for_experiment/")).json()[
        "cohort"
    ]
    condition = cohort["filters"]["properties"]["values"][0]["values"][0]
    assert condition["key"] == "custom_exposure_event"
    assert condition["event_type"] == "events"
    assert [prop["type"] for prop in condition["event_filters"]] == ["event", "hogql"]


def test_exposure_cohort_of_a_longest_name_shortens_it_to_fit(api):
    experiment = launched(api, name="n" * 400, start_date="2024-01-01T10:23:00Z")
    response = api.post(api.url(f"experiments/{experiment.id}/create_exposure_cohort_for_experiment/"))
    assert response.status_code == 201
    name = response.json()["cohort"]["name"]
    assert len(name) == 400
    assert name == 'Users exposed to experiment "' + "n" * 370 + '"'


def test_exposure_cohort_with_an_action(api):
    experiment = launched(
        api,
        start_date="2024-01-01T10:23:00Z",
        parameters={"custom_exposure_filter": {"actions": [{"id": "7", "type": "actions"}]}},
    )
    condition = api.post(
        api.url(f"experiments/{experiment.id}/create_exposure_cohort_for_experiment/")
    ).json()["cohort"]["filters"]["properties"]["values"][0]["values"][0]
    assert (condition["key"], condition["event_type"]) == (7, "actions")


def test_exposure_cohort_errors(api):
    bad_action = launched(
        api,
        start_date="2024-01-01T10:23:00Z",
        parameters={"custom_exposure_filter": {"actions": [{"id": "oogabooga", "type": "actions"}]}},
    )
    response = api.post(api.url(f"experiments/{bad_action.id}/create_exposure_cohort_for_experiment/"))
    assert (response.status_code, response.json()["detail"]) == (400, "Invalid action ID")

    draft = ExperimentFactory(project=api.project)
    response = api.post(api.url(f"experiments/{draft.id}/create_exposure_cohort_for_experiment/"))
    assert (response.status_code, response.json()["detail"]) == (400, "Experiment does not have a start date")

    running = ExperimentFactory(project=api.project, start_date="2024-01-01T00:00:00Z")
    assert (
        api.post(api.url(f"experiments/{running.id}/create_exposure_cohort_for_experiment/")).status_code
        == 201
    )
    response = api.post(api.url(f"experiments/{running.id}/create_exposure_cohort_for_experiment/"))
    assert (response.status_code, response.json()["detail"]) == (
        400,
        "Experiment already has an exposure cohort",
    )
    assert Cohort.objects.count() == 1


def test_cohorts_of_another_project_are_invisible(api, other_project):
    foreign = CohortFactory(project=other_project)
    assert api.get(api.url(f"cohorts/{foreign.id}/")).status_code == 404
    assert api.get(api.url("cohorts/")).json()["count"] == 0


def test_recalculate_timeseries_is_idempotent_while_active(api):
    experiment = ExperimentFactory(project=api.project, start_date=timezone.now() - timedelta(days=2))
    ExperimentMetricResult.objects.create(
        experiment=experiment,
        metric_uuid="m1",
        fingerprint="fp1",
        query_to=timezone.now(),
        status="completed",
    )
    body = {"metric": {"uuid": "m1", "kind": "ExperimentMetric"}, "fingerprint": "fp1"}
    first = api.post(api.url(f"experiments/{experiment.id}/recalculate_timeseries/"), body, format="json")
    assert first.status_code == 201
    assert set(first.json()) == {"id", "experiment_id", "metric_uuid", "fingerprint", "status", "created_at"}
    assert first.json()["status"] == "pending"
    assert not ExperimentMetricResult.objects.filter(metric_uuid="m1").exists()
    second = api.post(api.url(f"experiments/{experiment.id}/recalculate_timeseries/"), body, format="json")
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert ExperimentTimeseriesRecalculation.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "detail"),
    [({"fingerprint": "fp"}, "metric is required"), ({"metric": {"uuid": "m"}}, "fingerprint is required")],
)
def test_recalculate_timeseries_requires_metric_and_fingerprint(api, body, detail):
    experiment = ExperimentFactory(project=api.project, start_date=timezone.now())
    response = api.post(api.url(f"experiments/{experiment.id}/recalculate_timeseries/"), body, format="json")
    assert (response.status_code, response.json()["detail"]) == (400, detail)


def test_recalculate_timeseries_refuses_drafts(api):
    draft = ExperimentFactory(project=api.project)
    response = api.post(
        api.url(f"experiments/{draft.id}/recalculate_timeseries/"),
        {"metric": {"uuid": "m"}, "fingerprint": "f"},
        format="json",
    )
    assert response.json()["detail"] == "Cannot recalculate timeseries for experiment that hasn't started"


def test_timeseries_results_pending_and_completed(api):
    start = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)
    experiment = ExperimentFactory(project=api.project, start_date=start, end_date=start + timedelta(days=2))
    url = api.url(f"experiments/{experiment.id}/timeseries_results/?metric_uuid=m1&fingerprint=fp1")
    pending = api.get(url).json()
    assert pending["status"] == "pending"
    assert len(pending["timeseries"]) == 3
    assert set(pending["timeseries"].values()) == {None}
    assert "Method: bayesian" in pending["formatted_results"]
    assert "Variants: control (baseline), test" in pending["formatted_results"]

    for offset in range(3):
        day_end = (start + timedelta(days=offset + 1)).replace(hour=0)
        ExperimentMetricResult.objects.create(
            experiment=experiment,
            metric_uuid="m1",
            fingerprint="fp1",
            query_to=day_end,
            status="completed",
            completed_at=timezone.now(),
            result={"variants": [], "step_sessions": [1, 2]},
        )
    completed = api.get(url).json()
    assert completed["status"] == "completed"
    assert completed["computed_at"] is not None
    assert all(value == {"variants": []} for value in completed["timeseries"].values())


def test_timeseries_results_errors(api):
    draft = ExperimentFactory(project=api.project)
    assert (
        api.get(api.url(f"experiments/{draft.id}/timeseries_results/?metric_uuid=m&fingerprint=f")).json()[
            "detail"
        ]
        == "Experiment has not been started yet"
    )
    running = ExperimentFactory(project=api.project, start_date=timezone.now())
    assert (
        api.get(api.url(f"experiments/{running.id}/timeseries_results/?fingerprint=f")).json()["detail"]
        == "metric_uuid query parameter is required"
    )
    assert (
        api.get(api.url(f"experiments/{running.id}/timeseries_results/?metric_uuid=m")).json()["detail"]
        == "fingerprint query parameter is required"
    )


def test_stats(api):
    assert api.get(api.url("experiments/stats/")).json() == {
        "launched_last_30d": 0,
        "launched_previous_30d": 0,
        "percent_change": 0.0,
        "active_experiments": 0,
        "completed_last_30d": 0,
    }
    now = timezone.now()
    ExperimentFactory(project=api.project, start_date=now - timedelta(days=3))
    ExperimentFactory(
        project=api.project, start_date=now - timedelta(days=10), end_date=now - timedelta(days=1)
    )
    for days in (35, 40, 45):
        ExperimentFactory(
            project=api.project, start_date=now - timedelta(days=days), end_date=now - timedelta(days=34)
        )
    stats = api.get(api.url("experiments/stats/")).json()
    assert stats == {
        "launched_last_30d": 2,
        "launched_previous_30d": 3,
        "percent_change": -33.3,
        "active_experiments": 1,
        "completed_last_30d": 1,
    }


def test_eligible_feature_flags(api, make_api):
    first = FeatureFlagFactory(
        project=api.project, key="a-search", filters=multivariate_filters([("control", 50), ("test", 50)])
    )
    FeatureFlagFactory(
        project=api.project, key="b-search", filters=multivariate_filters([("test", 50), ("control", 50)])
    )
    FeatureFlagFactory(project=api.project, key="c-search", filters=multivariate_filters([("control", 100)]))
    second = FeatureFlagFactory(project=api.project, key="d-search", filters=multivariate_filters())
    FeatureFlagFactory(
        project=api.project, key="e", filters={"groups": [{"properties": [], "rollout_percentage": 100}]}
    )

    response = api.get(api.url("experiments/eligible_feature_flags/?order=key"))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [flag["key"] for flag in body["results"]] == [first.key, second.key]

    page = api.get(
        api.url("experiments/eligible_feature_flags/?order=key&search=search&limit=1&offset=1")
    ).json()
    assert page["count"] == 2
    assert [flag["key"] for flag in page["results"]] == [second.key]

    assert (
        api.get(api.url("experiments/eligible_feature_flags/?has_evaluation_contexts=true")).json()["count"]
        == 0
    )
    assert (
        api.get(api.url("experiments/eligible_feature_flags/?has_evaluation_contexts=false")).json()["count"]
        == 2
    )
    bad_order = api.get(api.url("experiments/eligible_feature_flags/?order=team__organization__name"))
    assert (bad_order.status_code, bad_order.json()["detail"]) == (
        400,
        "Invalid order field: 'team__organization__name'",
    )
    bad_limit = api.get(api.url("experiments/eligible_feature_flags/?limit=abc"))
    assert (bad_limit.status_code, bad_limit.json()["detail"]) == (400, "Invalid limit or offset")

    flag_reader = make_api(scopes=["feature_flag:read"])
    assert flag_reader.get(api.url("experiments/eligible_feature_flags/")).status_code == 200
    experiment_only = make_api(scopes=["experiment:read"])
    assert experiment_only.get(api.url("experiments/eligible_feature_flags/")).json()["detail"] == (
        "API key missing required scope 'feature_flag:read'"
    )
