"""PATCH/PUT/DELETE /experiments/{id}/: allowed keys, flag sync for drafts and running experiments,
validation, soft delete and restore (cases 59–86)."""

from datetime import UTC, datetime

import pytest

from activity.models import ActivityLog
from experiments.models import Experiment, ExperimentToSavedMetric
from experiments.updates import (
    CANT_UPDATE_HOLDOUT,
    CANT_UPDATE_VARIANTS,
    RESTORE_WITH_DELETED_FLAG,
    RUNNING_FLAG_CONFIG_NEEDS_OPT_IN,
)
from experiments.validation import GLOBAL_FILTER_PROPERTIES, ORDERING_BUG_SUFFIX
from flags.models import FeatureFlag
from tests.experiments.helpers import (
    NOT_FOUND,
    create_experiment,
    db_state,
    flag_for,
    mean_metric,
    validation_error,
    variants,
)
from tests.factories import (
    CohortFactory,
    ExperimentFactory,
    ExperimentHoldoutFactory,
    ExperimentSavedMetricFactory,
    multivariate_filters,
)

pytestmark = pytest.mark.django_db

STARTED = datetime(2024, 1, 1, tzinfo=UTC)
THREE = variants(("control", 34), ("test-1", 33), ("test-2", 33))


def patch(api, experiment_id: int, body: dict):
    return api.patch(api.url(f"experiments/{experiment_id}/"), body, format="json")


def running_experiment(api, **body) -> dict:
    return create_experiment(api, start_date="2024-01-01T00:00:00Z", **body)


def test_running_experiment_description_and_end_date(api):
    """Case 59."""
    experiment = running_experiment(api)
    response = patch(api, experiment["id"], {"description": "Bazinga", "end_date": "2024-12-10T00:00"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["description"] == "Bazinga"
    assert body["end_date"] == "2024-12-10T00:00:00Z"
    assert body["status"] == "stopped"
    stored = Experiment.objects.get(pk=experiment["id"])
    assert stored.description == "Bazinga"
    assert stored.end_date == datetime(2024, 12, 10, tzinfo=UTC)
    assert stored.status == "stopped"
    # Ending by PATCH leaves the flag as it was.
    assert flag_for(experiment["id"]).active is True


def test_flag_key_cannot_change(api):
    """Case 60."""
    experiment = create_experiment(api, feature_flag_key="original")
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"feature_flag_key": "new_key"})
    assert response.status_code == 400
    assert response.json() == validation_error("Can't update keys: get_feature_flag_key on Experiment")
    assert db_state(experiment["id"]) == before


def test_same_flag_key_is_accepted(api):
    experiment = create_experiment(api, feature_flag_key="original")
    response = patch(api, experiment["id"], {"feature_flag_key": "original", "name": "Renamed"})
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"


@pytest.mark.parametrize(
    ("body", "keys"),
    [
        ({"type": "web"}, "type"),
        ({"type": "web", "feature_flag_key": "other"}, "get_feature_flag_key, type"),
    ],
)
def test_not_updatable_keys(api, body, keys):
    experiment = create_experiment(api, feature_flag_key="original")
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], body)
    assert response.status_code == 400
    assert response.json() == validation_error(f"Can't update keys: {keys} on Experiment")
    assert db_state(experiment["id"]) == before


def test_unknown_field_is_ignored_and_named(api):
    experiment = create_experiment(api)
    response = patch(api, experiment["id"], {"name": "x", "no_such_field": 1})
    assert response.status_code == 200
    assert response["Ignored-Fields"] == "no_such_field"
    assert Experiment.objects.get(pk=experiment["id"]).name == "x"


def test_unknown_field_is_refused_under_strict_handling(api):
    experiment = create_experiment(api)
    response = api.patch(
        api.url(f"experiments/{experiment['id']}/"),
        {"name": "x", "no_such_field": 1},
        format="json",
        HTTP_PREFER="handling=strict",
    )
    assert response.status_code == 400
    assert response.json() == validation_error("Unknown field.", "no_such_field", "unknown_field")
    assert Experiment.objects.get(pk=experiment["id"]).name == "An experiment"


def test_global_filter_properties_are_refused(api):
    """Case 61."""
    cohort = CohortFactory(project=api.project)
    experiment = create_experiment(api)
    before = db_state(experiment["id"])
    response = patch(
        api,
        experiment["id"],
        {"filters": {"properties": [{"key": "id", "value": cohort.id, "type": "cohort"}]}},
    )
    assert response.status_code == 400
    assert response.json() == validation_error(GLOBAL_FILTER_PROPERTIES)
    assert db_state(experiment["id"]) == before


def test_start_date_launches_a_draft(api):
    """Cases 62 and 113."""
    experiment = create_experiment(api)
    response = patch(api, experiment["id"], {"description": "new", "filters": {"events": []}})
    assert response.status_code == 200
    assert flag_for(experiment["id"]).active is False
    assert response.json()["status"] == "draft"

    response = patch(api, experiment["id"], {"start_date": "2024-03-01T00:00:00Z"})
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert response.json()["feature_flag"]["active"] is True
    assert flag_for(experiment["id"]).active is True
    assert Experiment.objects.get(pk=experiment["id"]).status == "running"


def test_start_date_on_a_draft_runs_the_flag_guards(api):
    experiment = ExperimentFactory(
        project=api.project, feature_flag__filters=multivariate_filters([("a", 50), ("b", 50)])
    )
    before = db_state(experiment.id)
    response = patch(api, experiment.id, {"start_date": "2024-03-01T00:00:00Z"})
    assert response.json() == validation_error("Feature flag must have a variant with key 'control'")
    assert db_state(experiment.id) == before


def test_start_date_on_a_draft_with_a_deleted_flag_is_refused(api):
    """Case 91 for the PATCH path."""
    experiment = ExperimentFactory(project=api.project)
    FeatureFlag.objects.filter(pk=experiment.feature_flag_id).update(deleted=True)
    before = db_state(experiment.id)
    response = patch(api, experiment.id, {"start_date": "2024-03-01T00:00:00Z"})
    assert response.status_code == 400
    assert response.json() == validation_error(
        "Experiment cannot be launched because its feature flag has been deleted."
    )
    assert db_state(experiment.id) == before


@pytest.mark.parametrize(
    ("start", "end"),
    [("2024-02-15T00:00:00Z", "2024-02-14T00:00:00Z"), ("2024-02-15T00:00:00Z", "2024-02-15T00:00:00Z")],
)
def test_end_before_start_is_refused(api, start, end):
    """Case 63."""
    experiment = create_experiment(api)
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"start_date": start, "end_date": end})
    assert response.status_code == 400
    assert response.json() == validation_error("End date must be after start date")
    assert db_state(experiment["id"]) == before


# --- draft flag sync -------------------------------------------------------------------------


def test_draft_variant_change_keeps_payloads(api):
    """Case 64."""
    experiment = create_experiment(
        api, parameters={"feature_flag_payloads": {"control": '"a"', "test": '"b"'}}
    )
    response = patch(
        api,
        experiment["id"],
        {
            "parameters": {
                "feature_flag_variants": THREE[:1]
                + [
                    {"key": "test", "split_percent": 33},
                    {"key": "test-2", "split_percent": 33},
                ]
            }
        },
    )
    assert response.status_code == 200, response.json()
    flag = flag_for(experiment["id"])
    assert flag.filters["payloads"] == {"control": '"a"', "test": '"b"'}
    assert flag.variant_keys == ["control", "test", "test-2"]
    assert response.json()["parameters"]["feature_flag_payloads"] == {"control": '"a"', "test": '"b"'}


def test_draft_rollout_is_kept_unless_sent(api):
    """Case 65."""
    experiment = create_experiment(api, parameters={"rollout_percentage": 80})
    response = patch(
        api,
        experiment["id"],
        {"parameters": {"feature_flag_variants": variants(("control", 60), ("test", 40))}},
    )
    assert response.status_code == 200
    flag = flag_for(experiment["id"])
    assert flag.filters["groups"][0]["rollout_percentage"] == 80
    assert [v["rollout_percentage"] for v in flag.variants] == [60, 40]

    response = patch(api, experiment["id"], {"parameters": {"rollout_percentage": 30}})
    assert response.status_code == 200
    flag = flag_for(experiment["id"])
    assert flag.filters["groups"][0]["rollout_percentage"] == 30
    # A PATCH of parameters without variants keeps the flag's variants (no reset to 50/50).
    assert [v["rollout_percentage"] for v in flag.variants] == [60, 40]
    assert response.json()["parameters"]["rollout_percentage"] == 30


def test_draft_three_to_four_variants(api):
    """Case 66."""
    experiment = create_experiment(api, parameters={"feature_flag_variants": THREE})
    four = variants(("control", 25), ("test-1", 25), ("test-2", 25), ("test-3", 25))
    response = patch(api, experiment["id"], {"parameters": {"feature_flag_variants": four}})
    assert response.status_code == 200
    flag = flag_for(experiment["id"])
    assert flag.variant_keys == ["control", "test-1", "test-2", "test-3"]
    assert flag.active is False
    assert [v["split_percent"] for v in response.json()["parameters"]["feature_flag_variants"]] == [25] * 4


def test_draft_parameters_without_flag_config_do_not_touch_the_flag(api):
    experiment = create_experiment(api, parameters={"feature_flag_variants": THREE, "rollout_percentage": 70})
    flag_before = flag_for(experiment["id"])
    response = patch(api, experiment["id"], {"parameters": {"recommended_sample_size": 10}})
    assert response.status_code == 200
    flag = flag_for(experiment["id"])
    assert flag.filters == flag_before.filters
    assert flag.version == flag_before.version
    assert Experiment.objects.get(pk=experiment["id"]).parameters == {"recommended_sample_size": 10}


def test_draft_invalid_variant_split_changes_nothing(api):
    experiment = create_experiment(api)
    before = db_state(experiment["id"])
    response = patch(
        api,
        experiment["id"],
        {"parameters": {"feature_flag_variants": variants(("control", 50), ("test", 60))}},
    )
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == "Invalid variant definitions: Variant rollout percentages must sum to 100."
    )
    assert db_state(experiment["id"]) == before


def test_variant_change_with_invalid_baseline_changes_nothing(api):
    """Validation of the rest of the payload finishes before the flag is written."""
    experiment = create_experiment(api)
    before = db_state(experiment["id"])
    response = patch(
        api,
        experiment["id"],
        {
            "parameters": {"feature_flag_variants": variants(("control", 30), ("test", 70))},
            "stats_config": {"baseline_variant_key": "missing"},
        },
    )
    assert response.status_code == 400
    assert response.json() == validation_error(
        "Invalid baseline_variant_key: 'missing'. Must be one of: control, test"
    )
    assert db_state(experiment["id"]) == before


def test_variants_that_drop_the_stored_baseline_are_refused(api):
    experiment = create_experiment(
        api, parameters={"feature_flag_variants": THREE}, stats_config={"baseline_variant_key": "test-2"}
    )
    before = db_state(experiment["id"])
    response = patch(
        api,
        experiment["id"],
        {"parameters": {"feature_flag_variants": variants(("control", 50), ("test-1", 50))}},
    )
    assert response.status_code == 400
    assert response.json() == validation_error(
        "Invalid baseline_variant_key: 'test-2'. Must be one of: control, test-1"
    )
    assert db_state(experiment["id"]) == before


# --- running flag sync -----------------------------------------------------------------------


def test_running_variant_changes(api):
    """Case 67."""
    experiment = running_experiment(api, parameters={"feature_flag_variants": THREE})
    before = db_state(experiment["id"])
    for sent in (
        variants(("control", 50), ("test-1", 50)),
        variants(("control", 34), ("test-a", 33), ("test-b", 33)),
        variants(("control", 25), ("test-1", 25), ("test-2", 25), ("test-3", 25)),
    ):
        response = patch(
            api,
            experiment["id"],
            {"parameters": {"feature_flag_variants": sent}, "update_feature_flag_params": True},
        )
        assert response.status_code == 400, sent
        assert response.json() == validation_error(CANT_UPDATE_VARIANTS)
        assert db_state(experiment["id"]) == before

    # A key that is not a string is refused before it reaches the flag.
    malformed = [{"key": {"a": 1}, "split_percent": 34}, *variants(("test-1", 33), ("test-2", 33))]
    response = patch(
        api,
        experiment["id"],
        {"parameters": {"feature_flag_variants": malformed}, "update_feature_flag_params": True},
    )
    assert response.json() == validation_error(
        "Invalid variant definitions: variant keys must be non-empty strings.", "parameters"
    )
    assert db_state(experiment["id"]) == before

    # Same count and every key known, but repeated: the flag's own validation refuses it.
    repeated = variants(("control", 34), ("test-1", 33), ("test-1", 33))
    response = patch(
        api,
        experiment["id"],
        {"parameters": {"feature_flag_variants": repeated}, "update_feature_flag_params": True},
    )
    assert response.json() == validation_error("Invalid variant definitions: Variant keys must be unique.")
    assert db_state(experiment["id"]) == before

    response = patch(
        api,
        experiment["id"],
        {
            "parameters": {
                "feature_flag_variants": variants(("control", 35), ("test-1", 33), ("test-2", 32))
            },
            "update_feature_flag_params": True,
        },
    )
    assert response.status_code == 200, response.json()
    flag = flag_for(experiment["id"])
    assert [(v["key"], v["rollout_percentage"]) for v in flag.variants] == [
        ("control", 35),
        ("test-1", 33),
        ("test-2", 32),
    ]
    assert flag.active is True
    assert [v["split_percent"] for v in response.json()["parameters"]["feature_flag_variants"]] == [
        35,
        33,
        32,
    ]


def test_running_non_flag_parameters(api):
    """Case 68."""
    experiment = running_experiment(api)
    response = patch(api, experiment["id"], {"parameters": {"recommended_sample_size": 1500}})
    assert response.status_code == 200
    assert response.json()["parameters"]["recommended_sample_size"] == 1500
    assert Experiment.objects.get(pk=experiment["id"]).parameters == {"recommended_sample_size": 1500}


@pytest.mark.parametrize(
    "parameters",
    [
        {"feature_flag_variants": variants(("control", 70), ("test", 30))},
        {"rollout_percentage": 40},
        {"aggregation_group_type_index": 1},
        {"feature_flag_payloads": {"test": '"x"'}},
        {"ensure_experience_continuity": True},
    ],
)
def test_running_flag_config_change_needs_the_opt_in(api, parameters):
    """Case 69 as SPEC decides: a genuine change without update_feature_flag_params is a 400."""
    experiment = running_experiment(api)
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"parameters": parameters})
    assert response.status_code == 400
    assert response.json() == validation_error(RUNNING_FLAG_CONFIG_NEEDS_OPT_IN, "parameters")
    assert "update_feature_flag_params" in response.json()["detail"]
    assert db_state(experiment["id"]) == before

    response = patch(api, experiment["id"], {"parameters": parameters, "update_feature_flag_params": True})
    assert response.status_code == 200, response.json()
    projected = response.json()["parameters"]
    for key, value in parameters.items():
        if key == "feature_flag_variants":
            assert [(v["key"], v["split_percent"]) for v in projected[key]] == [("control", 70), ("test", 30)]
        else:
            assert projected[key] == value


def test_running_echo_of_the_current_flag_config_is_fine(api):
    experiment = running_experiment(api, parameters={"rollout_percentage": 60})
    flag_before = flag_for(experiment["id"])
    echoed = dict(experiment["parameters"])
    echoed["recommended_sample_size"] = 5
    response = patch(api, experiment["id"], {"parameters": echoed})
    assert response.status_code == 200, response.json()
    flag = flag_for(experiment["id"])
    assert (flag.filters, flag.version) == (flag_before.filters, flag_before.version)
    assert Experiment.objects.get(pk=experiment["id"]).parameters == {"recommended_sample_size": 5}


@pytest.mark.parametrize(
    "groups",
    [
        "one_cohort",
        "cohort_and_country",
    ],
)
def test_running_split_change_keeps_release_conditions(api, groups):
    """Case 70."""
    cohort = CohortFactory(project=api.project)
    condition_groups = [
        {"properties": [{"key": "id", "value": cohort.id, "type": "cohort"}], "rollout_percentage": 57}
    ]
    if groups == "cohort_and_country":
        condition_groups.append(
            {
                "properties": [{"key": "country", "value": ["US"], "type": "person", "operator": "exact"}],
                "rollout_percentage": 100,
            }
        )
    experiment = ExperimentFactory(
        project=api.project,
        start_date=STARTED,
        feature_flag__project=api.project,
        feature_flag__active=True,
        feature_flag__filters={**multivariate_filters(), "groups": condition_groups},
    )
    response = patch(
        api,
        experiment.id,
        {
            "parameters": {"feature_flag_variants": variants(("control", 70), ("test", 30))},
            "update_feature_flag_params": True,
        },
    )
    assert response.status_code == 200, response.json()
    flag = flag_for(experiment.id)
    assert flag.filters["groups"] == condition_groups
    assert [v["rollout_percentage"] for v in flag.variants] == [70, 30]


def test_name_change_leaves_an_externally_edited_flag_exactly_as_it_is(api):
    """Case 71: the flag was edited via the flags API; the experiment's parameters project it."""
    experiment = create_experiment(api)
    flag_id = experiment["feature_flag"]["id"]
    edited = {
        "groups": [
            {"properties": [], "rollout_percentage": 100},
            {"properties": [], "rollout_percentage": 40},
        ],
        "multivariate": {
            "variants": [
                {"key": "control", "rollout_percentage": 10},
                {"key": "test", "rollout_percentage": 90},
            ]
        },
        "aggregation_group_type_index": 1,
    }
    response = api.patch(api.url(f"feature_flags/{flag_id}/"), {"filters": edited}, format="json")
    assert response.status_code == 200, response.json()
    filters_after_edit = FeatureFlag.objects.get(pk=flag_id).filters

    response = patch(api, experiment["id"], {"name": "Renamed"})
    assert response.status_code == 200
    assert FeatureFlag.objects.get(pk=flag_id).filters == filters_after_edit

    body = api.get(api.url(f"experiments/{experiment['id']}/")).json()
    assert body["parameters"]["feature_flag_variants"] == [
        {"key": "control", "rollout_percentage": 10, "split_percent": 10},
        {"key": "test", "rollout_percentage": 90, "split_percent": 90},
    ]
    assert body["parameters"]["aggregation_group_type_index"] == 1
    assert body["parameters"]["rollout_percentage"] == 100


# --- holdouts --------------------------------------------------------------------------------


def test_draft_holdout_changes_follow_to_the_flag(api):
    """Case 72."""
    first = ExperimentHoldoutFactory(
        project=api.project, filters=[{"properties": [], "rollout_percentage": 20}]
    )
    second = ExperimentHoldoutFactory(
        project=api.project, filters=[{"properties": [], "rollout_percentage": 5}]
    )
    experiment = create_experiment(api, holdout_id=first.id)
    assert flag_for(experiment["id"]).filters["holdout"] == {"id": first.id, "exclusion_percentage": 20}

    response = patch(api, experiment["id"], {"holdout_id": second.id})
    assert response.status_code == 200
    assert response.json()["holdout"]["id"] == second.id
    assert Experiment.objects.get(pk=experiment["id"]).holdout == second
    assert flag_for(experiment["id"]).filters["holdout"] == {"id": second.id, "exclusion_percentage": 5}

    response = patch(
        api,
        experiment["id"],
        {"parameters": {"feature_flag_variants": variants(("control", 40), ("test", 60))}},
    )
    assert response.status_code == 200
    assert flag_for(experiment["id"]).filters["holdout"] == {"id": second.id, "exclusion_percentage": 5}

    response = patch(api, experiment["id"], {"holdout_id": None})
    assert response.status_code == 200
    assert response.json()["holdout"] is None
    assert flag_for(experiment["id"]).filters["holdout"] is None

    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"holdout_id": 123456})
    assert response.status_code == 400
    assert response.json() == validation_error(
        'Invalid pk "123456" - object does not exist.', "holdout_id", "does_not_exist"
    )
    assert db_state(experiment["id"]) == before


def test_running_holdout_cannot_change(api):
    """Case 73."""
    first = ExperimentHoldoutFactory(project=api.project)
    second = ExperimentHoldoutFactory(project=api.project)
    experiment = running_experiment(api, holdout_id=second.id)
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"holdout_id": first.id})
    assert response.status_code == 400
    assert response.json() == validation_error(CANT_UPDATE_HOLDOUT)
    assert db_state(experiment["id"]) == before

    response = patch(api, experiment["id"], {"holdout_id": second.id, "description": "same holdout"})
    assert response.status_code == 200


def test_other_projects_holdout_is_refused(api, other_project):
    """Case 33 for update: as PostHog, the id is simply not found."""
    foreign = ExperimentHoldoutFactory(project=other_project)
    experiment = create_experiment(api)
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"holdout_id": foreign.id})
    assert response.status_code == 400
    assert response.json() == validation_error(
        f'Invalid pk "{foreign.id}" - object does not exist.', "holdout_id", "does_not_exist"
    )
    assert db_state(experiment["id"]) == before


# --- saved metrics ---------------------------------------------------------------------------


def test_saved_metric_links_are_synced(api):
    """Case 74."""
    first = ExperimentSavedMetricFactory(project=api.project)
    second = ExperimentSavedMetricFactory(project=api.project)
    experiment = create_experiment(api, saved_metrics_ids=[{"id": first.id, "metadata": {"type": "primary"}}])
    first_link_id = ExperimentToSavedMetric.objects.get(experiment_id=experiment["id"]).id

    response = patch(
        api,
        experiment["id"],
        {
            "saved_metrics_ids": [
                {"id": first.id, "metadata": {"type": "secondary"}},
                {"id": second.id, "metadata": {"type": "tertiary"}},
            ]
        },
    )
    assert response.status_code == 200, response.json()
    links = ExperimentToSavedMetric.objects.filter(experiment_id=experiment["id"]).order_by("id")
    assert [(link.saved_metric_id, link.metadata) for link in links] == [
        (first.id, {"type": "secondary"}),
        (second.id, {"type": "tertiary"}),
    ]
    # Synced in place: the existing link was updated, not recreated.
    assert links[0].id == first_link_id
    assert [item["metadata"] for item in response.json()["saved_metrics"]] == [
        {"type": "secondary"},
        {"type": "tertiary"},
    ]

    assert patch(api, experiment["id"], {"name": "Name only"}).status_code == 200
    assert ExperimentToSavedMetric.objects.filter(experiment_id=experiment["id"]).count() == 2

    for cleared in ([], None):
        patch(
            api, experiment["id"], {"saved_metrics_ids": [{"id": first.id, "metadata": {"type": "primary"}}]}
        )
        response = patch(api, experiment["id"], {"saved_metrics_ids": cleared})
        assert response.status_code == 200
        assert response.json()["saved_metrics"] == []
        assert not ExperimentToSavedMetric.objects.filter(experiment_id=experiment["id"]).exists()


def test_deleting_a_saved_metric_removes_its_link(api):
    saved = ExperimentSavedMetricFactory(project=api.project)
    experiment = create_experiment(api, saved_metrics_ids=[{"id": saved.id, "metadata": {"type": "primary"}}])
    response = api.delete(api.url(f"experiment_saved_metrics/{saved.id}/"))
    assert response.status_code == 204
    assert not ExperimentToSavedMetric.objects.filter(experiment_id=experiment["id"]).exists()
    assert api.get(api.url(f"experiments/{experiment['id']}/")).json()["saved_metrics"] == []


def test_other_projects_saved_metric_is_refused_on_update(api, other_project):
    """Case 57 for update."""
    foreign = ExperimentSavedMetricFactory(project=other_project)
    experiment = create_experiment(api)
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"saved_metrics_ids": [{"id": foreign.id}]})
    assert response.status_code == 400
    assert response.json() == validation_error(
        "Saved metric does not exist or does not belong to this project"
    )
    assert db_state(experiment["id"]) == before


# --- metrics, exposure, excluded variants, running time --------------------------------------


def test_metric_with_dict_properties_is_refused(api):
    """Case 75."""
    experiment = create_experiment(api)
    before = db_state(experiment["id"])
    metric = mean_metric(source={"kind": "EventsNode", "event": "e", "properties": {"a": 1}})
    response = patch(api, experiment["id"], {"metrics": [metric]})
    assert response.status_code == 400
    assert response.json()["attr"] == "metrics"
    assert db_state(experiment["id"]) == before


def test_metric_with_unknown_event_is_accepted(api):
    """Case 76 is out of scope: event names are not checked against the events received."""
    experiment = create_experiment(api, metrics=[mean_metric("$pageview")])
    response = patch(api, experiment["id"], {"metrics": [mean_metric("totally_fake_event")]})
    assert response.status_code == 200
    assert response.json()["metrics"][0]["source"]["event"] == "totally_fake_event"


def test_exposure_criteria(api):
    """Case 77."""
    experiment = create_experiment(api)
    value = {
        "filterTestAccounts": True,
        "exposure_config": {
            "kind": "ExperimentEventExposureConfig",
            "event": "$pageview",
            "properties": [{"key": "$browser", "value": ["Chrome"], "operator": "exact", "type": "event"}],
        },
    }
    response = patch(api, experiment["id"], {"exposure_criteria": value})
    assert response.status_code == 200
    assert Experiment.objects.get(pk=experiment["id"]).exposure_criteria == value

    before = db_state(experiment["id"])
    bad = {"exposure_config": {"kind": "ExperimentEventExposureConfig", "event": "", "properties": [1]}}
    response = patch(api, experiment["id"], {"exposure_criteria": bad})
    assert response.status_code == 400
    assert response.json()["attr"] == "exposure_criteria"
    assert db_state(experiment["id"]) == before

    actions = {"exposure_config": {"kind": "ActionsNode", "id": 7}}
    response = patch(api, experiment["id"], {"exposure_criteria": actions})
    assert response.status_code == 200
    assert Experiment.objects.get(pk=experiment["id"]).exposure_criteria == actions


@pytest.mark.parametrize(
    ("excluded", "detail"),
    [
        (["does-not-exist"], "unknown variants for this experiment: ['does-not-exist']"),
        (["control"], "baseline variant cannot be excluded ('control')"),
        (["test-1", "test-2"], "at least one test variant must remain in analysis"),
        (["holdout-3"], "cannot exclude holdout pseudo-variants: ['holdout-3']"),
    ],
)
def test_excluded_variants_are_checked_against_the_flag(api, excluded, detail):
    """Case 78."""
    experiment = create_experiment(api, parameters={"feature_flag_variants": THREE})
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"excluded_variants": excluded})
    assert response.status_code == 400
    assert response.json() == validation_error(detail)
    assert db_state(experiment["id"]) == before


def test_excluded_variants_are_stored_and_the_flag_untouched(api):
    experiment = create_experiment(api, parameters={"feature_flag_variants": THREE})
    flag_before = flag_for(experiment["id"])
    response = patch(api, experiment["id"], {"excluded_variants": ["test-2"]})
    assert response.status_code == 200
    assert response.json()["excluded_variants"] == ["test-2"]
    assert Experiment.objects.get(pk=experiment["id"]).excluded_variants == ["test-2"]
    flag = flag_for(experiment["id"])
    assert len(flag.variants) == 3 and flag.version == flag_before.version


def test_excluded_variants_with_a_custom_baseline(api):
    experiment = create_experiment(
        api, parameters={"feature_flag_variants": THREE}, stats_config={"baseline_variant_key": "test-1"}
    )
    response = patch(api, experiment["id"], {"excluded_variants": ["test-1"]})
    assert response.json() == validation_error("baseline variant cannot be excluded ('test-1')")
    assert patch(api, experiment["id"], {"excluded_variants": ["control"]}).status_code == 200


def test_running_time_calculation_is_stored_independently(api):
    """Case 79."""
    experiment = create_experiment(api)
    flag_before = flag_for(experiment["id"])
    response = patch(
        api,
        experiment["id"],
        {"running_time_calculation": {"minimum_detectable_effect": 10, "recommended_running_time": 7}},
    )
    assert response.status_code == 200
    stored = Experiment.objects.get(pk=experiment["id"])
    assert stored.running_time_calculation == {"minimum_detectable_effect": 10, "recommended_running_time": 7}
    assert "minimum_detectable_effect" not in (stored.parameters or {})
    assert flag_for(experiment["id"]).version == flag_before.version

    response = patch(
        api,
        experiment["id"],
        {
            "parameters": {"minimum_detectable_effect": 99},
            "running_time_calculation": {"minimum_detectable_effect": 11},
        },
    )
    stored = Experiment.objects.get(pk=experiment["id"])
    assert stored.parameters == {"minimum_detectable_effect": 99}
    assert stored.running_time_calculation == {"minimum_detectable_effect": 11}


# --- metric ordering ([PREV]: kept in sync by the server, validated when sent) ---------------


def test_ordering_follows_metric_additions_and_removals(api):
    """Case 81."""
    experiment = create_experiment(api, metrics=[mean_metric(uuid="m1")])
    assert experiment["primary_metrics_ordered_uuids"] == ["m1"]
    response = patch(
        api, experiment["id"], {"metrics": [mean_metric(uuid="m1"), mean_metric("b", uuid="m2")]}
    )
    assert response.status_code == 200
    assert response.json()["primary_metrics_ordered_uuids"] == ["m1", "m2"]
    response = patch(api, experiment["id"], {"metrics": [mean_metric(uuid="m1")]})
    assert response.json()["primary_metrics_ordered_uuids"] == ["m1"]
    assert Experiment.objects.get(pk=experiment["id"]).primary_metrics_ordered_uuids == ["m1"]


def test_ordering_follows_saved_metric_links(api):
    primary = ExperimentSavedMetricFactory(project=api.project)
    secondary = ExperimentSavedMetricFactory(project=api.project)
    experiment = create_experiment(api, metrics=[mean_metric(uuid="m1")])
    response = patch(
        api,
        experiment["id"],
        {
            "saved_metrics_ids": [
                {"id": primary.id, "metadata": {"type": "primary"}},
                {"id": secondary.id, "metadata": {"type": "secondary"}},
            ]
        },
    )
    assert response.status_code == 200, response.json()
    assert response.json()["primary_metrics_ordered_uuids"] == ["m1", primary.query["uuid"]]
    assert response.json()["secondary_metrics_ordered_uuids"] == [secondary.query["uuid"]]
    response = patch(
        api, experiment["id"], {"saved_metrics_ids": [{"id": secondary.id, "metadata": {"type": "primary"}}]}
    )
    assert response.json()["primary_metrics_ordered_uuids"] == ["m1", secondary.query["uuid"]]
    assert response.json()["secondary_metrics_ordered_uuids"] == []


def test_explicit_reorder_is_kept(api):
    experiment = create_experiment(api, metrics=[mean_metric(uuid="m1"), mean_metric("b", uuid="m2")])
    response = patch(api, experiment["id"], {"primary_metrics_ordered_uuids": ["m2", "m1"]})
    assert response.status_code == 200
    assert response.json()["primary_metrics_ordered_uuids"] == ["m2", "m1"]


@pytest.mark.parametrize(
    ("ordering", "detail", "attr"),
    [
        (["m1"], f"primary_metrics_ordered_uuids is missing UUIDs: ['m2']. {ORDERING_BUG_SUFFIX}", None),
        (
            None,
            f"primary_metrics_ordered_uuids is null but primary metrics exist. {ORDERING_BUG_SUFFIX}",
            None,
        ),
        (
            ["m1", ""],
            "Metric ordering must be a list of metric UUID strings.",
            "primary_metrics_ordered_uuids",
        ),
        ("m1", "Metric ordering must be a list of metric UUID strings.", "primary_metrics_ordered_uuids"),
    ],
)
def test_inconsistent_ordering_is_refused(api, ordering, detail, attr):
    experiment = create_experiment(api, metrics=[mean_metric(uuid="m1"), mean_metric("b", uuid="m2")])
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"primary_metrics_ordered_uuids": ordering})
    assert response.status_code == 400
    assert response.json() == validation_error(detail, attr)
    assert db_state(experiment["id"]) == before


@pytest.mark.parametrize(
    "body",
    [
        {"stats_config": {"method": "frequentist"}},
        {"exposure_criteria": {"filterTestAccounts": False}},
        {"excluded_variants": ["test-2"]},
        {"only_count_matured_users": True},
    ],
)
def test_fingerprints_follow_what_changes_the_results(api, body):
    experiment = create_experiment(api, metrics=[mean_metric()], parameters={"feature_flag_variants": THREE})
    response = patch(api, experiment["id"], body)
    assert response.status_code == 200, response.json()
    fingerprint = response.json()["metrics"][0]["fingerprint"]
    assert fingerprint != experiment["metrics"][0]["fingerprint"]
    assert Experiment.objects.get(pk=experiment["id"]).metrics[0]["fingerprint"] == fingerprint


def test_name_change_keeps_fingerprints(api):
    experiment = create_experiment(api, metrics=[mean_metric()])
    response = patch(api, experiment["id"], {"name": "Renamed"})
    assert response.json()["metrics"][0]["fingerprint"] == experiment["metrics"][0]["fingerprint"]


def test_exposure_preaggregation_enabled_is_updatable(api):
    """The seed's PATCH request lists `exposure_preaggregation_enabled`."""
    experiment = create_experiment(api)
    response = patch(api, experiment["id"], {"exposure_preaggregation_enabled": True})
    assert response.status_code == 200, response.json()
    assert response.json()["exposure_preaggregation_enabled"] is True
    assert Experiment.objects.get(pk=experiment["id"]).exposure_preaggregation_enabled is True


def test_echoing_a_read_experiment_back_changes_nothing(api):
    """A client may PATCH back what it read (read-only fields included) without side effects."""
    experiment = running_experiment(api, metrics=[mean_metric()], parameters={"feature_flag_variants": THREE})
    read = api.get(api.url(f"experiments/{experiment['id']}/")).json()
    read.pop("type")  # not updatable, as PostHog
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], read)
    assert response.status_code == 200, response.json()
    after = db_state(experiment["id"])
    assert after["flag"] == before["flag"]
    assert after["activity"] == before["activity"]
    assert {k: v for k, v in after["experiment"].items() if k != "updated_at"} == {
        k: v for k, v in before["experiment"].items() if k != "updated_at"
    }


def test_put_is_a_full_update(api):
    experiment = create_experiment(api, description="old")
    response = api.put(
        api.url(f"experiments/{experiment['id']}/"),
        {"name": "Put name", "feature_flag_key": experiment["feature_flag_key"]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "Put name"
    response = api.put(api.url(f"experiments/{experiment['id']}/"), {"description": "x"}, format="json")
    assert response.status_code == 400
    assert response.json() == validation_error("This field is required.", "name", "required")


# --- delete, soft delete, restore ------------------------------------------------------------


def test_delete_is_405_with_an_empty_body(api):
    """Case 82."""
    experiment = create_experiment(api)
    response = api.delete(api.url(f"experiments/{experiment['id']}/"))
    assert response.status_code == 405
    assert response.content == b""
    assert Experiment.objects.filter(pk=experiment["id"], deleted=False).exists()


def test_soft_delete_and_restore(api):
    """Cases 83 and 84: soft delete does not touch the flag."""
    experiment = running_experiment(api)
    flag_before = flag_for(experiment["id"])
    response = patch(api, experiment["id"], {"deleted": True})
    assert response.status_code == 200
    assert response.json()["deleted"] is True
    assert Experiment.objects.get(pk=experiment["id"]).deleted is True
    flag = flag_for(experiment["id"])
    assert (flag.active, flag.deleted, flag.version) == (flag_before.active, False, flag_before.version)

    assert api.get(api.url("experiments/")).json()["count"] == 0
    response = api.get(api.url(f"experiments/{experiment['id']}/"))
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert patch(api, experiment["id"], {"name": "still deleted"}).status_code == 404
    assert api.post(api.url(f"experiments/{experiment['id']}/pause/")).status_code == 404

    response = patch(api, experiment["id"], {"deleted": False, "name": experiment["name"]})
    assert response.status_code == 200
    assert response.json()["deleted"] is False
    assert Experiment.objects.get(pk=experiment["id"]).deleted is False
    assert api.get(api.url("experiments/")).json()["count"] == 1


def test_restore_with_a_deleted_flag_is_refused(api):
    """Case 85."""
    experiment = create_experiment(api)
    assert patch(api, experiment["id"], {"deleted": True}).status_code == 200
    flag_id = experiment["feature_flag"]["id"]
    assert (
        api.patch(api.url(f"feature_flags/{flag_id}/"), {"deleted": True}, format="json").status_code == 200
    )
    before = db_state(experiment["id"])
    response = patch(api, experiment["id"], {"deleted": False, "name": "x"})
    assert response.status_code == 400
    assert response.json() == validation_error(RESTORE_WITH_DELETED_FLAG)
    assert "linked feature flag has been deleted" in response.json()["detail"]
    assert db_state(experiment["id"]) == before


LEGACY_METRIC = {"kind": "ExperimentTrendsQuery", "count_query": {"kind": "TrendsQuery", "series": []}}


@pytest.mark.parametrize(
    "body",
    [{"name": "New"}, {"description": "New"}, {"end_date": "2030-01-01T00:00:00Z"}, {"deleted": True}],
)
def test_legacy_experiment_allowed_updates(api, body):
    """Case 86."""
    experiment = ExperimentFactory(project=api.project, metrics=[LEGACY_METRIC])
    response = patch(api, experiment.id, body)
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"metrics": []}, "metrics"),
        ({"parameters": {"feature_flag_variants": variants(("control", 50), ("test", 50))}}, "parameters"),
        ({"start_date": "2024-01-01T00:00:00Z"}, "start_date"),
        ({"archived": True}, "archived"),
        ({"conclusion": "won"}, "conclusion"),
        (
            {"name": "ok", "stats_config": {"method": "bayesian"}, "conclusion": "won"},
            "conclusion, stats_config",
        ),
    ],
)
def test_legacy_experiment_refused_updates(api, body, fields):
    experiment = ExperimentFactory(project=api.project, metrics=[LEGACY_METRIC])
    before = db_state(experiment.id)
    response = patch(api, experiment.id, body)
    assert response.status_code == 400
    assert response.json() == validation_error(
        "This experiment uses legacy metric formats and can only have its name, description, or end_date "
        f"updated. Cannot update: {fields}"
    )
    assert db_state(experiment.id) == before


def test_legacy_saved_metric_link_makes_an_experiment_legacy(api):
    legacy = ExperimentSavedMetricFactory(project=api.project, query=LEGACY_METRIC)
    experiment = ExperimentFactory(project=api.project)
    ExperimentToSavedMetric.objects.create(
        experiment=experiment, saved_metric=legacy, metadata={"type": "primary"}
    )
    response = patch(api, experiment.id, {"metrics": []})
    assert response.status_code == 400
    assert "legacy metric formats" in response.json()["detail"]


def test_update_requires_experiment_write_scope(make_api, api):
    experiment = create_experiment(api)
    reader = make_api(scopes=["experiment:read"])
    response = reader.patch(reader.url(f"experiments/{experiment['id']}/"), {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'experiment:write'"
    assert Experiment.objects.get(pk=experiment["id"]).name == "An experiment"
    # DELETE is a write: the scope is checked before the 405.
    assert reader.delete(reader.url(f"experiments/{experiment['id']}/")).status_code == 403


def test_no_activity_for_a_no_op_update(api):
    experiment = create_experiment(api, description="same")
    count = ActivityLog.objects.count()
    assert (
        patch(api, experiment["id"], {"description": "same", "name": experiment["name"]}).status_code == 200
    )
    assert ActivityLog.objects.count() == count
