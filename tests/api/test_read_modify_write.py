"""Read-modify-write round trips (issue 11, item 5): GET an object, then PUT or PATCH the whole of
it back, as PostHog's clients do when they edit one field. Nothing is refused, nothing is ignored,
and nothing changes but the edited field."""

import pytest

from experiments.models import Experiment, ExperimentSavedMetric, ExperimentToSavedMetric
from flags.models import FeatureFlag
from holdouts.models import ExperimentHoldout
from tests.experiments.helpers import create_experiment, mean_metric
from tests.factories import ExperimentHoldoutFactory, ExperimentSavedMetricFactory

pytestmark = pytest.mark.django_db

WITHOUT_TIMESTAMPS = ("updated_at", "version")


def same_apart_from(before: dict, after: dict, *fields: str) -> None:
    ignored = {*fields, *WITHOUT_TIMESTAMPS}
    assert {k: v for k, v in after.items() if k not in ignored} == {
        k: v for k, v in before.items() if k not in ignored
    }


def round_trip(api, path: str, edit: dict, method: str) -> tuple[dict, dict]:
    before = api.get(path).json()
    response = getattr(api, method)(path, {**before, **edit}, format="json")
    assert response.status_code == 200, response.json()
    assert "Ignored-Fields" not in response, response["Ignored-Fields"]
    return before, response.json()


@pytest.mark.parametrize("method", ["put", "patch"])
def test_an_experiment_with_metrics_saved_metrics_and_a_holdout(api, method):
    holdout = ExperimentHoldoutFactory(project=api.project)
    saved = ExperimentSavedMetricFactory(project=api.project)
    experiment = create_experiment(
        api,
        metrics=[mean_metric()],
        holdout_id=holdout.id,
        saved_metrics_ids=[{"id": saved.id, "metadata": {"type": "secondary"}}],
    )
    path = api.url(f"experiments/{experiment['id']}/")
    before, after = round_trip(api, path, {"description": "Edited"}, method)
    assert after["description"] == "Edited"
    assert after["saved_metrics_ids"] == [{"id": saved.id, "metadata": {"type": "secondary"}}]
    same_apart_from(before, after, "description", "saved_metrics")
    assert ExperimentToSavedMetric.objects.filter(experiment_id=experiment["id"]).count() == 1
    assert Experiment.objects.get(pk=experiment["id"]).holdout_id == holdout.id


def test_a_running_experiment(api):
    experiment = create_experiment(api, metrics=[mean_metric()])
    api.post(api.url(f"experiments/{experiment['id']}/launch/"))
    path = api.url(f"experiments/{experiment['id']}/")
    before, after = round_trip(api, path, {"name": "Renamed while running"}, "put")
    same_apart_from(before, after, "name")
    assert Experiment.objects.get(pk=experiment["id"]).name == "Renamed while running"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_flag_with_tags(api, method):
    created = api.post(
        api.url("feature_flags/"),
        {
            "key": "round-trip",
            "tags": ["Beta", "checkout"],
            "filters": {
                "groups": [{"properties": [], "rollout_percentage": 30}],
                "multivariate": {
                    "variants": [
                        {"key": "a", "rollout_percentage": 50},
                        {"key": "b", "rollout_percentage": 50},
                    ]
                },
            },
        },
        format="json",
    ).json()
    path = api.url(f"feature_flags/{created['id']}/")
    before, after = round_trip(api, path, {"name": "Edited"}, method)
    assert after["tags"] == ["beta", "checkout"]
    same_apart_from(before, after, "name")
    assert FeatureFlag.objects.get(pk=created["id"]).name == "Edited"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_holdout(api, method):
    holdout = api.post(
        api.url("experiment_holdouts/"),
        {"name": "Hold", "filters": [{"properties": [], "rollout_percentage": 10}]},
        format="json",
    ).json()
    path = api.url(f"experiment_holdouts/{holdout['id']}/")
    before, after = round_trip(api, path, {"description": "Edited"}, method)
    same_apart_from(before, after, "description")
    assert ExperimentHoldout.objects.get(pk=holdout["id"]).description == "Edited"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_saved_metric_with_tags(api, method):
    created = api.post(
        api.url("experiment_saved_metrics/"),
        {"name": "Revenue", "query": mean_metric(), "tags": ["money"]},
        format="json",
    ).json()
    path = api.url(f"experiment_saved_metrics/{created['id']}/")
    before, after = round_trip(api, path, {"name": "Revenue per user"}, method)
    assert after["tags"] == ["money"]
    same_apart_from(before, after, "name")
    assert ExperimentSavedMetric.objects.get(pk=created["id"]).name == "Revenue per user"
