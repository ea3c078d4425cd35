import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from activity.models import ActivityLog
from experiments.models import Experiment
from flags.models import FeatureFlag
from holdouts.models import ExperimentHoldout
from tests.factories import ExperimentFactory, ExperimentHoldoutFactory

pytestmark = pytest.mark.django_db


def holdout_body(rollout=20, name="Holdout group"):
    return {
        "name": name,
        "filters": [{"properties": [], "rollout_percentage": rollout, "variant": "holdout"}],
    }


def error(response):
    body = response.json()
    return response.status_code, body["detail"]


def test_list_empty(api):
    response = api.get(api.url("experiment_holdouts/"))
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_create_rewrites_variant_to_holdout_id(api):
    response = api.post(api.url("experiment_holdouts/"), holdout_body(), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["filters"][0]["variant"] == f"holdout-{body['id']}"
    assert body["created_by"]["id"] == api.user.id
    assert set(body) == {"id", "name", "description", "filters", "created_by", "created_at", "updated_at"}
    assert ExperimentHoldout.objects.get(pk=body["id"]).filters[0]["variant"] == f"holdout-{body['id']}"
    entry = ActivityLog.objects.get(scope="Experiment", item_id=str(body["id"]))
    assert entry.detail["type"] == "holdout"
    assert entry.activity == "created"


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"name": None, "filters": [{"rollout_percentage": 10}]}, "This field may not be null."),
        ({"name": "x", "filters": []}, "Filters must not be empty."),
        (
            {"name": "x", "filters": [{"rollout_percentage": 150}]},
            "Rollout percentage must be between 0 and 100.",
        ),
        (
            {"name": "x", "filters": [{"rollout_percentage": -10}]},
            "Rollout percentage must be between 0 and 100.",
        ),
        ({"name": "x", "filters": [{"properties": []}]}, "Rollout percentage must be present."),
        ({"name": "x", "filters": [{"rollout_percentage": None}]}, "Rollout percentage must be present."),
        ({"name": "x", "filters": "nope"}, "Filters must be a list of release conditions."),
        ({"name": "x", "filters": ["nope"]}, "Each filter must be an object."),
    ],
)
def test_create_validation(api, payload, detail):
    response = api.post(api.url("experiment_holdouts/"), payload, format="json")
    assert error(response) == (400, detail)
    assert not ExperimentHoldout.objects.exists()


def test_fractional_rollout_is_allowed(api):
    response = api.post(api.url("experiment_holdouts/"), holdout_body(rollout=12.5), format="json")
    assert response.status_code == 201


def test_experiment_with_holdout_writes_it_into_its_new_flag(api):
    holdout = api.post(api.url("experiment_holdouts/"), holdout_body(rollout=20), format="json").json()
    response = api.post(
        api.url("experiments/"),
        {"name": "E", "feature_flag_key": "with-holdout", "holdout_id": holdout["id"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["holdout"]["id"] == holdout["id"]
    flag = FeatureFlag.objects.get(key="with-holdout")
    assert flag.filters["holdout"] == {"id": holdout["id"], "exclusion_percentage": 20}


@pytest.mark.parametrize("launched", [False, True])
def test_updating_filters_rewrites_every_linked_flag(api, launched):
    holdout = ExperimentHoldoutFactory(project=api.project)
    experiments = []
    for _ in range(2):
        experiment = ExperimentFactory(project=api.project, holdout=holdout)
        experiment.feature_flag.filters = {
            **experiment.feature_flag.filters,
            "holdout": holdout.flag_holdout_filter(),
        }
        experiment.feature_flag.save()
        experiments.append(experiment)
        if launched:
            assert api.post(api.url(f"experiments/{experiment.id}/launch/")).status_code == 200

    response = api.patch(
        api.url(f"experiment_holdouts/{holdout.id}/"),
        {"name": "Renamed", "filters": [{"properties": [], "rollout_percentage": 30}]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["filters"][0]["variant"] == f"holdout-{holdout.id}"
    for experiment in experiments:
        flag = FeatureFlag.objects.get(pk=experiment.feature_flag_id)
        assert flag.filters["holdout"] == {"id": holdout.id, "exclusion_percentage": 30}
        assert flag.active is launched


def test_name_only_update_touches_no_flag(api):
    holdout = ExperimentHoldoutFactory(project=api.project)
    experiment = ExperimentFactory(project=api.project, holdout=holdout)
    version = experiment.feature_flag.version
    assert (
        api.patch(
            api.url(f"experiment_holdouts/{holdout.id}/"), {"name": "Renamed"}, format="json"
        ).status_code
        == 200
    )
    assert FeatureFlag.objects.get(pk=experiment.feature_flag_id).version == version


def test_patch_with_empty_filters_is_refused(api):
    holdout = ExperimentHoldoutFactory(project=api.project)
    response = api.patch(api.url(f"experiment_holdouts/{holdout.id}/"), {"filters": []}, format="json")
    assert error(response) == (400, "Filters must not be empty.")


def test_delete_clears_flag_holdout_and_detaches_experiments(api):
    holdout = ExperimentHoldoutFactory(project=api.project)
    experiment = ExperimentFactory(project=api.project, holdout=holdout)
    experiment.feature_flag.filters = {
        **experiment.feature_flag.filters,
        "holdout": holdout.flag_holdout_filter(),
    }
    experiment.feature_flag.save()

    response = api.delete(api.url(f"experiment_holdouts/{holdout.id}/"))
    assert response.status_code == 204
    assert FeatureFlag.objects.get(pk=experiment.feature_flag_id).filters["holdout"] is None
    assert Experiment.objects.get(pk=experiment.pk).holdout is None
    assert not ExperimentHoldout.objects.filter(pk=holdout.pk).exists()
    assert ActivityLog.objects.filter(
        item_id=str(holdout.id), activity="deleted", detail__type="holdout"
    ).exists()


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_holdout_writes_lock_experiments_before_their_flags(api, method):
    """As a launch does (experiment, then flag): the other order let a holdout delete and a launch of
    one of its experiments deadlock."""
    holdout = ExperimentHoldoutFactory(project=api.project)
    experiments = [ExperimentFactory(project=api.project, holdout=holdout) for _ in range(2)]
    with CaptureQueriesContext(connection) as captured:
        if method == "patch":
            response = api.patch(
                api.url(f"experiment_holdouts/{holdout.id}/"), holdout_body(rollout=30), format="json"
            )
        else:
            response = api.delete(api.url(f"experiment_holdouts/{holdout.id}/"))
    assert response.status_code in (200, 204)
    locked_tables = [
        table
        for query in captured.captured_queries
        if "FOR UPDATE" in query["sql"]
        for table in ('"experiments_experiment"', '"flags_featureflag"')
        if table in query["sql"].split(" WHERE ")[0]
    ]
    assert locked_tables.count('"flags_featureflag"') >= len(experiments)
    assert locked_tables[0] == '"experiments_experiment"'


def test_holdouts_of_another_project_are_invisible(api, other_project):
    foreign = ExperimentHoldoutFactory(project=other_project)
    assert api.get(api.url(f"experiment_holdouts/{foreign.id}/")).status_code == 404
    assert (
        api.patch(api.url(f"experiment_holdouts/{foreign.id}/"), {"name": "x"}, format="json").status_code
        == 404
    )
    assert api.delete(api.url(f"experiment_holdouts/{foreign.id}/")).status_code == 404
    assert ExperimentHoldout.objects.get(pk=foreign.pk).name != "x"
    response = api.post(
        api.url("experiments/"),
        {"name": "E", "feature_flag_key": "k", "holdout_id": foreign.id},
        format="json",
    )
    assert response.status_code == 400
    assert "does not exist" in response.json()["detail"]


def test_holdouts_use_the_experiment_scope(make_api, project):
    ExperimentHoldoutFactory(project=project)
    assert (
        make_api(scopes=["experiment:read"])
        .get(f"/api/projects/{project.id}/experiment_holdouts/")
        .status_code
        == 200
    )
    response = make_api(scopes=["experiment:read"]).post(
        f"/api/projects/{project.id}/experiment_holdouts/", holdout_body(), format="json"
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'experiment:write'"
