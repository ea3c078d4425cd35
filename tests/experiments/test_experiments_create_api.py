"""POST /experiments/: flag resolution, defaults, and every create-time validation (cases 21–58)."""

import re
import uuid
from decimal import Decimal

import pytest
import yaml

from activity.models import ActivityLog
from experiments.models import Experiment, ExperimentToSavedMetric
from experiments.serializers import ExperimentSerializer
from experiments.validation import (
    FLAG_WITHOUT_CONTROL,
    TOO_FEW_VARIANTS,
    TOO_MANY_VARIANTS,
    VARIANT_WITHOUT_PERCENTAGE,
)
from flags.models import FeatureFlag
from flags.validation import FLAG_KEY_INVALID, VARIANTS_MUST_SUM_TO_100
from tests.api.posthog_document import DOCUMENT_PATH
from tests.experiments.helpers import create_experiment, mean_metric, validation_error, variants
from tests.factories import (
    ExperimentHoldoutFactory,
    ExperimentSavedMetricFactory,
    FeatureFlagFactory,
    multivariate_filters,
)

pytestmark = pytest.mark.django_db

HEX64 = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_FLAG_VARIANTS = [
    {"key": "control", "name": "Control Group", "rollout_percentage": 50},
    {"key": "test", "name": "Test Variant", "rollout_percentage": 50},
]


def post(api, body: dict):
    return api.post(api.url("experiments/"), body, format="json")


def nothing_created() -> bool:
    return not Experiment.objects.exists() and not FeatureFlag.objects.exists()


# --- flag creation ---------------------------------------------------------------------------


def test_create_running_with_new_flag(api):
    """Case 21 and 23: a new flag with the default control/test split, active because started."""
    response = post(
        api,
        {
            "name": "Test Experiment",
            "description": "",
            "start_date": "2021-12-01T10:23",
            "end_date": None,
            "feature_flag_key": "a-b-tests",
            "parameters": None,
            "filters": {"events": [{"order": 0, "id": "$pageview"}]},
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "Test Experiment"
    assert body["feature_flag_key"] == "a-b-tests"
    assert body["stats_config"] == {"method": "bayesian"}
    assert body["status"] == "running"
    assert body["start_date"] == "2021-12-01T10:23:00Z"
    assert body["end_date"] is None
    assert body["exposure_criteria"] == {"filterTestAccounts": True}
    assert body["type"] == "product"
    assert body["description"] == ""
    assert body["metrics"] == [] and body["metrics_secondary"] == []
    assert body["created_by"]["id"] == api.user.id

    flag = FeatureFlag.objects.get(project=api.project, key="a-b-tests")
    assert body["feature_flag"]["id"] == flag.id
    assert flag.active is True
    assert flag.name == "Feature Flag for Experiment Test Experiment"
    assert flag.creation_context == "experiments"
    assert flag.created_by == api.user
    assert flag.filters["multivariate"]["variants"] == DEFAULT_FLAG_VARIANTS
    assert flag.filters["groups"] == [{"properties": [], "rollout_percentage": 100}]
    assert flag.filters["aggregation_group_type_index"] is None
    assert flag.filters["holdout"] is None

    experiment = Experiment.objects.get(pk=body["id"])
    assert experiment.project == api.project
    assert experiment.feature_flag == flag
    assert experiment.created_by == api.user
    assert experiment.status == "running"
    # The flag configuration lives on the flag only.
    assert experiment.parameters is None
    assert body["parameters"]["feature_flag_variants"] == [
        {**variant, "split_percent": variant["rollout_percentage"]} for variant in DEFAULT_FLAG_VARIANTS
    ]


def test_create_draft_makes_inactive_flag(api):
    """Case 22."""
    body = create_experiment(api, feature_flag_key="draft-flag")
    assert body["status"] == "draft"
    assert body["start_date"] is None
    assert body["feature_flag"]["active"] is False
    assert FeatureFlag.objects.get(key="draft-flag").active is False
    assert Experiment.objects.get(pk=body["id"]).status == "draft"


def test_create_draft_with_three_custom_variants(api):
    """Case 24: the flag keeps the variant keys in order and stays inactive."""
    body = create_experiment(
        api,
        feature_flag_key="three",
        parameters={"feature_flag_variants": variants(("control", 34), ("test_1", 33), ("test_2", 33))},
    )
    flag = FeatureFlag.objects.get(key="three")
    assert flag.active is False
    assert flag.filters["multivariate"]["variants"] == [
        {"key": "control", "rollout_percentage": 34},
        {"key": "test_1", "rollout_percentage": 33},
        {"key": "test_2", "rollout_percentage": 33},
    ]
    assert [variant["key"] for variant in body["parameters"]["feature_flag_variants"]] == [
        "control",
        "test_1",
        "test_2",
    ]
    assert [variant["split_percent"] for variant in body["parameters"]["feature_flag_variants"]] == [
        34,
        33,
        33,
    ]


def test_rollout_percentage_variants_are_accepted_as_deprecated_input(api):
    body = create_experiment(
        api,
        feature_flag_key="rollout-form",
        parameters={
            "feature_flag_variants": variants(("control", 70), ("test", 30), percent_key="rollout_percentage")
        },
    )
    assert FeatureFlag.objects.get(key="rollout-form").variants == [
        {"key": "control", "rollout_percentage": 70},
        {"key": "test", "rollout_percentage": 30},
    ]
    assert body["parameters"]["feature_flag_variants"] == [
        {"key": "control", "rollout_percentage": 70, "split_percent": 70},
        {"key": "test", "rollout_percentage": 30, "split_percent": 30},
    ]


def test_split_percent_wins_over_rollout_percentage(api):
    create_experiment(
        api,
        feature_flag_key="both-forms",
        parameters={
            "feature_flag_variants": [
                {"key": "control", "split_percent": 60, "rollout_percentage": 10},
                {"key": "test", "split_percent": 40, "rollout_percentage": 90},
            ]
        },
    )
    assert [v["rollout_percentage"] for v in FeatureFlag.objects.get(key="both-forms").variants] == [60, 40]


@pytest.mark.parametrize(("parameters", "rollout"), [({"rollout_percentage": 50}, 50), ({}, 100)])
def test_rollout_percentage(api, parameters, rollout):
    """Case 25."""
    body = create_experiment(api, feature_flag_key="rollout", parameters=parameters)
    flag = FeatureFlag.objects.get(key="rollout")
    assert flag.filters["groups"] == [{"properties": [], "rollout_percentage": rollout}]
    assert body["parameters"]["rollout_percentage"] == rollout


@pytest.mark.parametrize(
    ("team_default", "given", "expected"),
    [(False, None, False), (True, None, True), (True, False, False), (False, True, True)],
)
def test_ensure_experience_continuity(api, team_default, given, expected):
    """Case 26: the input wins; the project default applies otherwise (an explicit false too)."""
    api.project.flags_persistence_default = team_default
    api.project.save()
    parameters = {} if given is None else {"ensure_experience_continuity": given}
    body = create_experiment(api, feature_flag_key="continuity", parameters=parameters)
    assert FeatureFlag.objects.get(key="continuity").ensure_experience_continuity is expected
    assert body["feature_flag"]["ensure_experience_continuity"] is expected
    assert body["parameters"]["ensure_experience_continuity"] is expected
    assert "ensure_experience_continuity" not in (Experiment.objects.get(pk=body["id"]).parameters or {})


def test_web_experiment_variants(api):
    """Case 27."""
    body = create_experiment(api, type="web")
    assert body["type"] == "web"
    assert Experiment.objects.get(pk=body["id"]).variants == {
        "control": {"rollout_percentage": 50},
        "test": {"rollout_percentage": 50},
    }


def test_payloads_are_written_to_the_new_flag(api):
    body = create_experiment(
        api,
        feature_flag_key="payloads",
        parameters={"feature_flag_payloads": {"control": '{"color": "blue"}', "test": '{"color": "red"}'}},
    )
    flag = FeatureFlag.objects.get(key="payloads")
    assert flag.filters["payloads"] == {"control": '{"color": "blue"}', "test": '{"color": "red"}'}
    assert body["parameters"]["feature_flag_payloads"] == flag.filters["payloads"]


def test_aggregation_group_type_index(api):
    """Case 45: only the flag-config input sets the flag's aggregation; experiment filters never do."""
    create_experiment(api, feature_flag_key="agg", parameters={"aggregation_group_type_index": 0})
    assert FeatureFlag.objects.get(key="agg").filters["aggregation_group_type_index"] == 0

    body = create_experiment(api, feature_flag_key="agg-filters", filters={"aggregation_group_type_index": 1})
    assert FeatureFlag.objects.get(key="agg-filters").filters["aggregation_group_type_index"] is None
    assert body["filters"] == {"aggregation_group_type_index": 1}
    assert "aggregation_group_type_index" not in body["parameters"]


def test_holdout_is_written_into_the_new_flag(api):
    holdout = ExperimentHoldoutFactory(
        project=api.project, filters=[{"properties": [], "rollout_percentage": 20}]
    )
    body = create_experiment(api, feature_flag_key="held", holdout_id=holdout.id)
    assert body["holdout_id"] == holdout.id
    assert body["holdout"]["id"] == holdout.id
    assert FeatureFlag.objects.get(key="held").filters["holdout"] == {
        "id": holdout.id,
        "exclusion_percentage": 20,
    }


@pytest.mark.parametrize(
    "keys",
    [["Control", "test"], ["CONTROL", "test"], ["cOnTrOl", "test"]],
)
def test_control_key_is_normalized(api, keys):
    """Case 43."""
    body = create_experiment(
        api,
        feature_flag_key="ctl",
        parameters={"feature_flag_variants": variants((keys[0], 50), (keys[1], 50))},
    )
    assert [variant["key"] for variant in body["parameters"]["feature_flag_variants"]] == ["control", "test"]
    assert FeatureFlag.objects.get(key="ctl").variant_keys == ["control", "test"]


def test_control_and_capitalized_control_never_collapse(api):
    """Case 44: either both keys survive exactly, or 400 — never two `control` variants."""
    response = post(
        api,
        {
            "name": "Two controls",
            "feature_flag_key": "two-controls",
            "parameters": {"feature_flag_variants": variants(("control", 50), ("Control", 50))},
        },
    )
    assert response.status_code == 201, response.json()
    assert FeatureFlag.objects.get(key="two-controls").variant_keys == ["control", "Control"]


# --- reusing an existing flag ----------------------------------------------------------------


def test_existing_flag_is_reused_as_is_and_can_be_shared(api):
    """Case 40."""
    filters = multivariate_filters(rollout=35)
    filters["groups"].append(
        {"properties": [{"key": "email", "value": "x", "type": "person"}], "rollout_percentage": 5}
    )
    flag = FeatureFlagFactory(project=api.project, key="shared", filters=filters, active=True, version=3)

    first = create_experiment(api, name="First", feature_flag_key="shared")
    second = create_experiment(api, name="Second", feature_flag_key="shared")

    assert first["feature_flag"]["id"] == flag.id == second["feature_flag"]["id"]
    assert first["status"] == "draft"
    flag.refresh_from_db()
    assert flag.filters == filters
    assert flag.active is True
    assert flag.version == 3
    assert FeatureFlag.objects.count() == 1
    assert sorted(flag.experiment_set.values_list("id", flat=True)) == sorted([first["id"], second["id"]])


def test_existing_flag_with_echoed_config_is_fine(api):
    FeatureFlagFactory(project=api.project, key="echo")
    body = create_experiment(
        api,
        feature_flag_key="echo",
        parameters={"feature_flag_variants": variants(("control", 50), ("test", 50))},
    )
    assert body["feature_flag_key"] == "echo"


def test_existing_flag_with_different_config_is_refused(api):
    flag = FeatureFlagFactory(project=api.project, key="taken")
    response = post(
        api,
        {
            "name": "Exp",
            "feature_flag_key": "taken",
            "parameters": {"feature_flag_variants": variants(("control", 20), ("test", 80))},
        },
    )
    assert response.status_code == 400
    assert response.json()["attr"] == "parameters"
    assert "already exists" in response.json()["detail"]
    assert not Experiment.objects.exists()
    flag.refresh_from_db()
    assert flag.variants == multivariate_filters()["multivariate"]["variants"]


def test_existing_flag_holdout_is_not_touched(api):
    holdout = ExperimentHoldoutFactory(project=api.project)
    flag = FeatureFlagFactory(project=api.project, key="no-holdout")
    body = create_experiment(api, feature_flag_key="no-holdout", holdout_id=holdout.id)
    assert body["holdout_id"] == holdout.id
    flag.refresh_from_db()
    assert flag.filters["holdout"] is None


def test_existing_flag_with_one_variant_is_refused(api):
    """Case 39."""
    FeatureFlagFactory(project=api.project, key="single", filters=multivariate_filters([("control", 100)]))
    response = post(api, {"name": "Exp", "feature_flag_key": "single"})
    assert response.status_code == 400
    assert response.json() == validation_error(TOO_FEW_VARIANTS)
    assert not Experiment.objects.exists()


def test_existing_boolean_flag_is_refused(api):
    FeatureFlagFactory(
        project=api.project,
        key="boolean",
        filters={"groups": [{"properties": [], "rollout_percentage": 100}]},
    )
    response = post(api, {"name": "Exp", "feature_flag_key": "boolean"})
    assert response.json() == validation_error(TOO_FEW_VARIANTS)


def test_existing_flag_without_control_is_refused(api):
    """Case 41 [PREV]."""
    FeatureFlagFactory(
        project=api.project, key="baseline", filters=multivariate_filters([("baseline", 50), ("test", 50)])
    )
    response = post(api, {"name": "Exp", "feature_flag_key": "baseline"})
    assert response.status_code == 400
    assert response.json() == validation_error(FLAG_WITHOUT_CONTROL)
    assert not Experiment.objects.exists()


def test_soft_deleted_flag_with_the_key_is_not_reused(api):
    old = FeatureFlagFactory(project=api.project, key="recycled", deleted=True)
    body = create_experiment(api, feature_flag_key="recycled")
    assert body["feature_flag"]["id"] != old.id
    assert FeatureFlag.objects.filter(key="recycled", deleted=False).count() == 1


def test_other_projects_flag_with_the_key_is_not_reused(api, other_project):
    foreign = FeatureFlagFactory(project=other_project, key="same-key")
    body = create_experiment(api, feature_flag_key="same-key")
    assert body["feature_flag"]["id"] != foreign.id
    assert FeatureFlag.objects.get(pk=body["feature_flag"]["id"]).project == api.project


# --- defaults --------------------------------------------------------------------------------


def test_minimal_create(api):
    """Cases 29 and 30: no parameters at all, filters {} and no start date."""
    body = create_experiment(api, filters={}, start_date=None)
    assert body["filters"] == {}
    assert body["status"] == "draft"
    assert body["holdout"] is None and body["holdout_id"] is None
    assert body["saved_metrics"] == []
    assert body["conclusion"] is None
    assert body["archived"] is False and body["deleted"] is False


def readable_fields(serializer_class) -> set[str]:
    return {name for name, field in serializer_class().fields.items() if not field.write_only}


def test_response_has_every_field_of_the_full_serializer(api):
    body = create_experiment(api)
    assert set(body) == readable_fields(ExperimentSerializer)
    document = yaml.safe_load(DOCUMENT_PATH.read_text())["components"]["schemas"]["Experiment"]
    assert {name for name, schema in document["properties"].items() if not schema.get("writeOnly")} <= set(
        body
    )
    assert set(body["feature_flag"]) == {
        "id",
        "team_id",
        "name",
        "key",
        "filters",
        "deleted",
        "active",
        "ensure_experience_continuity",
        "has_encrypted_payloads",
        "version",
        "evaluation_runtime",
        "bucketing_identifier",
        "evaluation_tags",
        "evaluation_contexts",
    }
    assert body["feature_flag"]["team_id"] == api.project.id
    assert body["is_legacy"] is False
    assert body["user_access_level"] == "manager"


@pytest.mark.parametrize(
    ("team_default", "given", "expected"), [(True, None, True), (True, False, False), (False, None, False)]
)
def test_only_count_matured_users_default(api, team_default, given, expected):
    """Case 46."""
    api.project.default_only_count_matured_users = team_default
    api.project.save()
    extra = {} if given is None else {"only_count_matured_users": given}
    body = create_experiment(api, **extra)
    assert body["only_count_matured_users"] is expected
    assert Experiment.objects.get(pk=body["id"]).only_count_matured_users is expected


def test_default_confidence_level(api):
    """Case 47."""
    api.project.default_experiment_confidence_level = Decimal("0.90")
    api.project.save()
    body = create_experiment(api)
    assert body["stats_config"]["bayesian"]["ci_level"] == pytest.approx(0.90)
    assert body["stats_config"]["frequentist"]["alpha"] == pytest.approx(0.10)
    assert body["stats_config"]["method"] == "bayesian"


def test_default_confidence_level_does_not_override_given_values(api):
    api.project.default_experiment_confidence_level = Decimal("0.90")
    api.project.save()
    body = create_experiment(api, stats_config={"method": "frequentist", "bayesian": {"ci_level": 0.8}})
    assert body["stats_config"]["method"] == "frequentist"
    assert body["stats_config"]["bayesian"] == {"ci_level": 0.8}
    assert body["stats_config"]["frequentist"]["alpha"] == pytest.approx(0.10)


@pytest.mark.parametrize(
    ("stats_config", "expected_method"),
    [
        (None, "frequentist"),
        ({"method": "bayesian"}, "bayesian"),
        ({"bayesian": {"ci_level": 0.9}}, "frequentist"),
    ],
)
def test_default_stats_method(api, stats_config, expected_method):
    """Case 48."""
    api.project.default_experiment_stats_method = "frequentist"
    api.project.save()
    extra = {} if stats_config is None else {"stats_config": stats_config}
    body = create_experiment(api, **extra)
    assert body["stats_config"]["method"] == expected_method
    if stats_config and "bayesian" in stats_config:
        assert body["stats_config"]["bayesian"] == {"ci_level": 0.9}


@pytest.mark.parametrize("method", ["", "garbage", 42])
def test_invalid_stats_method(api, method):
    """Case 49."""
    response = post(api, {"name": "Exp", "feature_flag_key": "stats", "stats_config": {"method": method}})
    assert response.status_code == 400
    assert response.json() == validation_error(
        f"Invalid stats method: '{method}'. Must be one of: bayesian, frequentist"
    )
    assert nothing_created()


@pytest.mark.parametrize("method", ["bayesian", "frequentist"])
def test_valid_stats_method(api, method):
    assert create_experiment(api, stats_config={"method": method})["stats_config"] == {"method": method}


def test_invalid_baseline_variant_key(api):
    response = post(
        api, {"name": "Exp", "feature_flag_key": "baseline", "stats_config": {"baseline_variant_key": "nope"}}
    )
    assert response.status_code == 400
    assert response.json() == validation_error(
        "Invalid baseline_variant_key: 'nope'. Must be one of: control, test"
    )
    assert nothing_created()


def test_create_in_folder_is_accepted(api):
    """Case 50: accepted for compatibility (this server keeps no folders)."""
    body = create_experiment(api, _create_in_folder="Special Folder/Experiments")
    assert "_create_in_folder" not in body


def test_allow_unknown_events_is_accepted_and_events_are_not_checked(api):
    """Cases 36 and 38: event names are not checked against the events received, so any is accepted."""
    body = create_experiment(api, metrics=[mean_metric("$pagevew")], allow_unknown_events=False)
    assert body["metrics"][0]["source"]["event"] == "$pagevew"
    body = create_experiment(api, metrics=[mean_metric("never_seen")], allow_unknown_events=True)
    assert "allow_unknown_events" not in body


def test_action_ids_are_not_checked(api):
    """Case 37 is out of scope: there is no actions store, so an ActionsNode id is not looked up."""
    metric = {
        "kind": "ExperimentMetric",
        "metric_type": "mean",
        "source": {"kind": "ActionsNode", "id": 999999},
    }
    body = create_experiment(api, metrics=[metric])
    assert body["metrics"][0]["source"]["id"] == 999999


# --- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [("2024-02-10T00:00:00Z", "2024-02-10T00:00:00Z"), ("2024-02-11T00:00:00Z", "2024-02-10T00:00:00Z")],
)
def test_end_date_must_be_after_start_date(api, start, end):
    """Case 31."""
    response = post(api, {"name": "Exp", "feature_flag_key": "dates", "start_date": start, "end_date": end})
    assert response.status_code == 400
    assert response.json() == validation_error("End date must be after start date")
    assert nothing_created()


def test_valid_date_range(api):
    body = create_experiment(api, start_date="2024-02-10T00:00:00Z", end_date="2024-02-11T00:00:00Z")
    assert body["start_date"] == "2024-02-10T00:00:00Z"
    assert body["end_date"] == "2024-02-11T00:00:00Z"
    assert body["status"] == "stopped"


def test_only_one_date(api):
    """Case 32."""
    body = create_experiment(api, start_date="2024-02-10T00:00:00Z")
    assert body["end_date"] is None and body["status"] == "running"
    body = create_experiment(api, end_date="2024-02-11T00:00:00Z")
    assert body["start_date"] is None and body["status"] == "draft"


# --- field validation ------------------------------------------------------------------------


def test_name_may_not_be_null(api):
    """Case 28."""
    response = post(api, {"name": None, "feature_flag_key": "k"})
    assert response.status_code == 400
    assert response.json() == validation_error("This field may not be null.", "name", "null")
    assert nothing_created()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"feature_flag_key": "k"}, validation_error("This field is required.", "name", "required")),
        ({"name": "x"}, validation_error("This field is required.", "feature_flag_key", "required")),
        (
            {"name": "x" * 401, "feature_flag_key": "k"},
            validation_error("Ensure this field has no more than 400 characters.", "name", "max_length"),
        ),
        (
            {"name": "x", "feature_flag_key": "k", "description": "d" * 3001},
            validation_error(
                "Ensure this field has no more than 3000 characters.", "description", "max_length"
            ),
        ),
        (
            {"name": "x", "feature_flag_key": "bad key!"},
            validation_error(FLAG_KEY_INVALID, "feature_flag_key", "invalid_key"),
        ),
        (
            {"name": "x", "feature_flag_key": ""},
            validation_error("This field may not be blank.", "feature_flag_key", "blank"),
        ),
        (
            {"name": "x", "feature_flag_key": "k", "type": "mobile"},
            validation_error('"mobile" is not a valid choice.', "type", "invalid_choice"),
        ),
        (
            {"name": "x", "feature_flag_key": "k", "conclusion": "amazing"},
            validation_error('"amazing" is not a valid choice.', "conclusion", "invalid_choice"),
        ),
        (
            {"name": "x", "feature_flag_key": "k", "holdout_id": 123456},
            validation_error('Invalid pk "123456" - object does not exist.', "holdout_id", "does_not_exist"),
        ),
    ],
)
def test_field_errors(api, body, expected):
    response = post(api, body)
    assert response.status_code == 400
    assert response.json() == expected
    assert nothing_created()


def test_description_may_be_null_or_blank(api):
    assert create_experiment(api, description=None)["description"] == ""
    assert create_experiment(api, description="")["description"] == ""


def test_read_only_fields_may_be_echoed(api):
    body = create_experiment(api, status="running", id=123, created_by=None, saved_metrics=[], is_legacy=True)
    assert body["status"] == "draft"
    assert body["id"] != 123


# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature_flag_variants", "detail"),
    [
        (["control", "test"], "Feature flag variant at index 0 must be an object"),
        ([{"key": "control", "split_percent": 50}, 7], "Feature flag variant at index 1 must be an object"),
        (
            [{"split_percent": 50}, {"key": "test", "split_percent": 50}],
            "Feature flag variant at index 0 must have a 'key' field",
        ),
        (
            [{"key": "control", "split_percent": 50}, {"split_percent": 50}],
            "Feature flag variant at index 1 must have a 'key' field",
        ),
        ([{"key": "control"}, {"key": "test", "split_percent": 100}], VARIANT_WITHOUT_PERCENTAGE),
        ([{"key": "control", "split_percent": 100}], TOO_FEW_VARIANTS),
        (
            [{"key": "control", "split_percent": 5}]
            + [{"key": f"test_{i}", "split_percent": 5} for i in range(20)],
            TOO_MANY_VARIANTS,
        ),
        (
            variants(("", 50), ("control", 50)),
            "Invalid variant definitions: variant keys must be non-empty strings.",
        ),
        (
            [{"key": {"a": 1}, "split_percent": 50}, {"key": "control", "split_percent": 50}],
            "Invalid variant definitions: variant keys must be non-empty strings.",
        ),
        (
            [{"key": ["a"], "split_percent": 50}, {"key": "control", "split_percent": 50}],
            "Invalid variant definitions: variant keys must be non-empty strings.",
        ),
        (
            variants(("baseline", 50), ("test", 50)),
            "Feature flag variants must contain a variant with key 'control' (lowercase, exactly). "
            "Got keys: ['baseline', 'test']. Rename the baseline variant's 'key' to 'control'.",
        ),
    ],
)
def test_parameter_variant_errors(api, feature_flag_variants, detail):
    response = post(
        api,
        {
            "name": "Exp",
            "feature_flag_key": "params",
            "parameters": {"feature_flag_variants": feature_flag_variants},
        },
    )
    assert response.status_code == 400
    assert response.json() == validation_error(detail, "parameters")
    assert nothing_created()


def test_twenty_variants_are_allowed(api):
    twenty = [{"key": "control", "split_percent": 5}] + [
        {"key": f"test_{i}", "split_percent": 5} for i in range(19)
    ]
    create_experiment(api, feature_flag_key="twenty", parameters={"feature_flag_variants": twenty})
    assert len(FeatureFlag.objects.get(key="twenty").variants) == 20


def test_variant_split_must_sum_to_100(api):
    response = post(
        api,
        {
            "name": "Exp",
            "feature_flag_key": "sum",
            "parameters": {"feature_flag_variants": variants(("control", 50), ("test", 40))},
        },
    )
    assert response.status_code == 400
    assert response.json()["detail"] == VARIANTS_MUST_SUM_TO_100
    assert response.json()["type"] == "validation_error"
    assert nothing_created()


def test_duplicate_variant_keys_are_refused(api):
    response = post(
        api,
        {
            "name": "Exp",
            "feature_flag_key": "dupes",
            "parameters": {"feature_flag_variants": variants(("control", 50), ("control", 50))},
        },
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid variant definitions: Variant keys must be unique."
    assert nothing_created()


def test_parameters_must_be_an_object(api):
    response = post(api, {"name": "Exp", "feature_flag_key": "p", "parameters": ["not", "an", "object"]})
    assert response.status_code == 400
    assert response.json() == validation_error("parameters must be an object", "parameters")
    assert nothing_created()


def test_non_flag_parameters_are_stored(api):
    body = create_experiment(
        api,
        parameters={
            "recommended_sample_size": 1500,
            "custom_exposure_filter": {"events": []},
            "rollout_percentage": 40,
        },
    )
    experiment = Experiment.objects.get(pk=body["id"])
    assert experiment.parameters == {
        "recommended_sample_size": 1500,
        "custom_exposure_filter": {"events": []},
    }
    assert body["parameters"]["recommended_sample_size"] == 1500
    assert body["parameters"]["rollout_percentage"] == 40


# --- metrics ---------------------------------------------------------------------------------


def test_metric_uuids_and_fingerprints_are_assigned(api):
    """Cases 51 and 52."""
    shared = str(uuid.uuid4())
    sent = [
        mean_metric("a", uuid=shared),
        mean_metric("b", uuid=shared),
        mean_metric("c"),
        mean_metric("d", uuid=""),
    ]
    body = create_experiment(api, metrics=sent, metrics_secondary=[mean_metric("e", uuid=shared)])
    uuids = [metric["uuid"] for metric in body["metrics"]]
    secondary_uuids = [metric["uuid"] for metric in body["metrics_secondary"]]
    assert uuids[0] == shared
    assert len(set(uuids + secondary_uuids)) == 5
    for value in uuids + secondary_uuids:
        uuid.UUID(value)
    assert body["primary_metrics_ordered_uuids"] == uuids
    assert body["secondary_metrics_ordered_uuids"] == secondary_uuids
    for metric in body["metrics"] + body["metrics_secondary"]:
        assert HEX64.match(metric["fingerprint"])
    assert [metric["source"]["event"] for metric in body["metrics"]] == ["a", "b", "c", "d"]
    stored = Experiment.objects.get(pk=body["id"])
    assert stored.metrics == body["metrics"]
    assert stored.primary_metrics_ordered_uuids == uuids


def test_metric_uuid_colliding_with_saved_metric_is_regenerated(api):
    saved = ExperimentSavedMetricFactory(project=api.project)
    saved_uuid = saved.query["uuid"]
    body = create_experiment(
        api,
        metrics=[mean_metric(uuid=saved_uuid)],
        saved_metrics_ids=[{"id": saved.id, "metadata": {"type": "primary"}}],
    )
    assert body["metrics"][0]["uuid"] != saved_uuid
    assert body["primary_metrics_ordered_uuids"] == [body["metrics"][0]["uuid"], saved_uuid]


def test_fingerprint_depends_on_start_date_stats_method_and_exposure(api):
    base = create_experiment(api, metrics=[mean_metric()])["metrics"][0]["fingerprint"]
    assert create_experiment(api, metrics=[mean_metric()])["metrics"][0]["fingerprint"] == base
    assert (
        create_experiment(api, metrics=[mean_metric()], start_date="2024-01-01T00:00:00Z")["metrics"][0][
            "fingerprint"
        ]
        != base
    )
    assert (
        create_experiment(api, metrics=[mean_metric()], stats_config={"method": "frequentist"})["metrics"][0][
            "fingerprint"
        ]
        != base
    )
    assert (
        create_experiment(api, metrics=[mean_metric()], exposure_criteria={"filterTestAccounts": False})[
            "metrics"
        ][0]["fingerprint"]
        != base
    )


METRIC_INDEX_0 = "Invalid metric at index 0: "


@pytest.mark.parametrize("field", ["metrics", "metrics_secondary"])
@pytest.mark.parametrize(
    ("metrics", "detail"),
    [
        ({"kind": "ExperimentMetric"}, "Metrics must be a list"),
        (["not a dict"], METRIC_INDEX_0 + "must be a dict"),
        (
            [{"kind": "ExperimentTrendsQuery", "count_query": {}}],
            METRIC_INDEX_0 + "legacy metric kind 'ExperimentTrendsQuery' is no longer supported for new "
            "experiments. Use 'ExperimentMetric' instead.",
        ),
        (
            [{"kind": "ExperimentFunnelsQuery", "funnels_query": {}}],
            METRIC_INDEX_0 + "legacy metric kind 'ExperimentFunnelsQuery' is no longer supported for new "
            "experiments. Use 'ExperimentMetric' instead.",
        ),
        ([{"kind": "ExperimentEventMetric"}], METRIC_INDEX_0 + "metric kind must be 'ExperimentMetric'"),
        (
            [{"kind": "ExperimentMetric", "metric_type": "funnel", "series": []}],
            METRIC_INDEX_0
            + "funnel metrics require at least one step. The experiment exposure event is added as "
            "the initial step automatically.",
        ),
        (
            [mean_metric(threshold=5, source={"kind": "EventsNode", "event": "e", "math": "avg"})],
            METRIC_INDEX_0 + "a threshold is only supported for sum or count (total) math types.",
        ),
        ([mean_metric(threshold=0)], METRIC_INDEX_0 + "threshold must be a positive number."),
        (
            [mean_metric(threshold=5, lower_bound_percentile=0.05)],
            METRIC_INDEX_0 + "a threshold cannot be combined with outlier handling (winsorization).",
        ),
    ],
)
def test_metric_errors(api, field, metrics, detail):
    """Cases 34 and 35 and the §5 metric messages; errors name the field."""
    response = post(api, {"name": "Exp", "feature_flag_key": "m", field: metrics})
    assert response.status_code == 400
    assert response.json() == validation_error(detail, field)
    assert nothing_created()


@pytest.mark.parametrize(
    "metric",
    [
        mean_metric(source={"kind": "EventsNode", "event": "e", "properties": {"key": "value"}}),
        {"kind": "ExperimentMetric", "metric_type": "mean"},
        {"kind": "ExperimentMetric", "metric_type": "median", "source": {"kind": "EventsNode", "event": "e"}},
        {
            "kind": "ExperimentMetric",
            "metric_type": "ratio",
            "numerator": {"kind": "EventsNode", "event": "e"},
        },
        {"kind": "ExperimentMetric", "metric_type": "retention", "start_event": {"kind": "EventsNode"}},
        {"kind": "ExperimentMetric", "metric_type": "mean", "source": {"kind": "PersonsNode"}},
        {"kind": "ExperimentMetric", "metric_type": ["mean"]},
        {"kind": "ExperimentMetric", "metric_type": {"a": 1}},
        {"kind": "ExperimentMetric", "metric_type": "mean", "source": {"kind": ["EventsNode"]}},
    ],
)
def test_metric_schema_errors_name_the_field(api, metric):
    """Case 34: a schema failure is a 400 on `metrics` listing `{loc, type, msg}` entries."""
    response = post(api, {"name": "Exp", "feature_flag_key": "m", "metrics": [metric]})
    assert response.status_code == 400
    body = response.json()
    assert body["attr"] == "metrics"
    assert body["detail"].startswith(METRIC_INDEX_0 + "[{'loc': ")
    assert nothing_created()


def test_events_node_with_id_gets_the_actions_node_hint(api):
    metric = mean_metric(source={"kind": "EventsNode", "event": "e", "id": 12})
    response = post(api, {"name": "Exp", "feature_flag_key": "m", "metrics": [metric]})
    assert response.status_code == 400
    assert "ActionsNode" in response.json()["detail"]
    assert "'extra_forbidden'" in response.json()["detail"]


def test_metric_schema_errors_are_capped(api):
    metric = {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": [{"kind": "EventsNode", "event": 1, "math": 2, "math_property": 3} for _ in range(10)],
    }
    response = post(api, {"name": "Exp", "feature_flag_key": "m", "metrics": [metric]})
    detail = response.json()["detail"]
    assert detail.count("'loc'") == 15
    assert "'truncated': '...15 more'" in detail


@pytest.mark.parametrize(
    "metric",
    [
        mean_metric(
            source={
                "kind": "EventsNode",
                "event": "e",
                "properties": [{"key": "k", "value": "v", "type": "event"}],
            }
        ),
        {
            "kind": "ExperimentMetric",
            "metric_type": "funnel",
            "series": [{"kind": "EventsNode", "event": "e"}],
        },
        {
            "kind": "ExperimentMetric",
            "metric_type": "ratio",
            "numerator": {"kind": "EventsNode", "event": "a"},
            "denominator": {"kind": "ActionsNode", "id": 3},
        },
        {
            "kind": "ExperimentMetric",
            "metric_type": "retention",
            "start_event": {"kind": "EventsNode", "event": "a"},
            "completion_event": {"kind": "EventsNode", "event": "b"},
            "retention_window_start": 0,
            "retention_window_end": 7,
            "retention_window_unit": "day",
            "start_handling": "first_seen",
        },
        mean_metric(threshold=10, source={"kind": "EventsNode", "event": "e", "math": "sum"}),
    ],
)
def test_valid_metric_shapes(api, metric):
    body = create_experiment(api, metrics=[metric])
    assert len(body["metrics"]) == 1


# --- running_time_calculation, excluded_variants, exposure_criteria --------------------------


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ({"not_a_real_key": 1}, "running_time_calculation got unknown keys: ['not_a_real_key']"),
        ({"minimum_detectable_effect": "twenty"}, "minimum_detectable_effect must be a number"),
        ({"recommended_running_time": True}, "recommended_running_time must be a number"),
        ({"recommended_sample_size": "1"}, "recommended_sample_size must be a number"),
        ({"exposure_estimate_config": "manual"}, "exposure_estimate_config must be an object"),
        ([1], "running_time_calculation must be an object"),
    ],
)
def test_running_time_calculation_errors(api, value, detail):
    """Case 53."""
    response = post(api, {"name": "Exp", "feature_flag_key": "r", "running_time_calculation": value})
    assert response.status_code == 400
    assert response.json() == validation_error(detail, "running_time_calculation")
    assert nothing_created()


def test_running_time_calculation_is_stored(api):
    value = {"minimum_detectable_effect": 10, "recommended_running_time": 7.5, "exposure_estimate_config": {}}
    body = create_experiment(api, running_time_calculation=value)
    assert body["running_time_calculation"] == value
    assert Experiment.objects.get(pk=body["id"]).running_time_calculation == value


@pytest.mark.parametrize("value", ["test-2", [123], {"a": 1}])
def test_excluded_variants_must_be_a_list_of_strings(api, value):
    """Case 54."""
    response = post(api, {"name": "Exp", "feature_flag_key": "e", "excluded_variants": value})
    assert response.status_code == 400
    assert response.json() == validation_error(
        "excluded_variants must be a list of strings", "excluded_variants"
    )
    assert nothing_created()


THREE_VARIANTS = {"feature_flag_variants": variants(("control", 34), ("test-1", 33), ("test-2", 33))}


def test_excluded_variants_are_stored_in_their_own_column(api):
    """Case 55."""
    body = create_experiment(api, parameters=THREE_VARIANTS, excluded_variants=["test-2"])
    assert body["excluded_variants"] == ["test-2"]
    experiment = Experiment.objects.get(pk=body["id"])
    assert experiment.excluded_variants == ["test-2"]
    assert "excluded_variants" not in (experiment.parameters or {})
    assert len(experiment.feature_flag.variants) == 3


@pytest.mark.parametrize(
    ("excluded", "detail"),
    [
        (["holdout-1"], "cannot exclude holdout pseudo-variants: ['holdout-1']"),
        (["control"], "baseline variant cannot be excluded ('control')"),
        (["nope"], "unknown variants for this experiment: ['nope']"),
        (["test-1", "test-2"], "at least one test variant must remain in analysis"),
    ],
)
def test_excluded_variant_keys_are_checked_against_the_variants(api, excluded, detail):
    response = post(
        api,
        {"name": "Exp", "feature_flag_key": "e", "parameters": THREE_VARIANTS, "excluded_variants": excluded},
    )
    assert response.status_code == 400
    assert response.json() == validation_error(detail)
    assert nothing_created()


@pytest.mark.parametrize(
    ("value", "detail_start"),
    [
        ("yes", "exposure_criteria must be an object, got str."),
        ([], "exposure_criteria must be an object, got list."),
        (
            {"filterTestAccounts": "yes"},
            "exposure_criteria.filterTestAccounts must be a boolean, got str: 'yes'.",
        ),
        ({"exposure_config": []}, "exposure_criteria.exposure_config must be an object, got list."),
        (
            {"exposure_config": {"kind": "PersonsNode"}},
            "exposure_criteria.exposure_config.kind must be one of "
            "['ExperimentEventExposureConfig', 'ActionsNode'], got 'PersonsNode'.",
        ),
        (
            {"exposure_config": {"kind": "ExperimentEventExposureConfig", "event": "", "properties": [1]}},
            "Invalid exposure_criteria.exposure_config (kind='ExperimentEventExposureConfig'): [",
        ),
        (
            {"exposure_config": {"kind": "ActionsNode"}},
            "Invalid exposure_criteria.exposure_config (kind='ActionsNode'): [",
        ),
    ],
)
def test_exposure_criteria_errors(api, value, detail_start):
    response = post(api, {"name": "Exp", "feature_flag_key": "x", "exposure_criteria": value})
    assert response.status_code == 400
    body = response.json()
    assert body["attr"] == "exposure_criteria"
    assert body["detail"].startswith(detail_start), body["detail"]
    assert nothing_created()


def test_exposure_criteria_echo_is_truncated(api):
    response = post(
        api, {"name": "Exp", "feature_flag_key": "x", "exposure_criteria": {"filterTestAccounts": "y" * 200}}
    )
    assert response.json()["detail"] == (
        f"exposure_criteria.filterTestAccounts must be a boolean, got str: '{'y' * 79}...(truncated)."
    )


def test_exposure_criteria_default_filter_test_accounts_is_added(api):
    config = {"kind": "ExperimentEventExposureConfig", "event": "$pageview", "properties": []}
    body = create_experiment(api, exposure_criteria={"exposure_config": config})
    assert body["exposure_criteria"] == {"exposure_config": config, "filterTestAccounts": True}
    body = create_experiment(api, exposure_criteria={"filterTestAccounts": False})
    assert body["exposure_criteria"] == {"filterTestAccounts": False}


# --- saved metrics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_value", "expected"),
    [
        (
            lambda saved: [{"id": saved.id, "metadata": {"xxx": "secondary"}}],
            validation_error("Metadata must have a type key", "saved_metrics_ids"),
        ),
        (
            lambda saved: [{"saved_metric": saved.id}],
            validation_error("Saved metric must have an id", "saved_metrics_ids"),
        ),
        (
            lambda saved: [{"id": 12345678}],
            validation_error("Saved metric does not exist or does not belong to this project"),
        ),
        (
            lambda saved: {"id": saved.id},
            validation_error(
                'Expected a list of items but got type "dict".', "saved_metrics_ids", "not_a_list"
            ),
        ),
        (lambda saved: [[saved.id]], validation_error("Saved metric must be an object", "saved_metrics_ids")),
        (
            lambda saved: [{"id": saved.id, "metadata": "secondary"}],
            validation_error("Metadata must be an object", "saved_metrics_ids"),
        ),
    ],
)
def test_saved_metrics_ids_errors(api, make_value, expected):
    """Case 56."""
    saved = ExperimentSavedMetricFactory(project=api.project)
    response = post(api, {"name": "Exp", "feature_flag_key": "s", "saved_metrics_ids": make_value(saved)})
    assert response.status_code == 400
    assert response.json() == expected
    assert nothing_created()


def test_other_projects_holdout_is_refused(api, other_project):
    """Case 33."""
    foreign = ExperimentHoldoutFactory(project=other_project)
    response = post(api, {"name": "Exp", "feature_flag_key": "h", "holdout_id": foreign.id})
    assert response.status_code == 400
    assert response.json() == validation_error(
        f'Invalid pk "{foreign.id}" - object does not exist.', "holdout_id", "does_not_exist"
    )
    assert "does not exist" in response.json()["detail"]
    assert nothing_created()


def test_other_projects_saved_metric_is_refused(api, other_project):
    """Case 57."""
    foreign = ExperimentSavedMetricFactory(project=other_project)
    response = post(api, {"name": "Exp", "feature_flag_key": "s", "saved_metrics_ids": [{"id": foreign.id}]})
    assert response.status_code == 400
    assert response.json() == validation_error(
        "Saved metric does not exist or does not belong to this project"
    )
    assert nothing_created()


def test_saved_metric_links(api):
    """Case 58."""
    primary = ExperimentSavedMetricFactory(project=api.project)
    secondary = ExperimentSavedMetricFactory(project=api.project)
    body = create_experiment(
        api,
        saved_metrics_ids=[
            {"id": primary.id, "metadata": {"type": "primary"}},
            {"id": secondary.id, "metadata": {"type": "secondary"}},
        ],
    )
    links = ExperimentToSavedMetric.objects.filter(experiment_id=body["id"]).order_by("id")
    assert [(link.saved_metric_id, link.metadata) for link in links] == [
        (primary.id, {"type": "primary"}),
        (secondary.id, {"type": "secondary"}),
    ]
    assert [(item["saved_metric"], item["metadata"], item["name"]) for item in body["saved_metrics"]] == [
        (primary.id, {"type": "primary"}, primary.name),
        (secondary.id, {"type": "secondary"}, secondary.name),
    ]
    assert body["saved_metrics"][0]["query"] == primary.query
    assert body["primary_metrics_ordered_uuids"] == [primary.query["uuid"]]
    assert body["secondary_metrics_ordered_uuids"] == [secondary.query["uuid"]]


def test_failed_create_leaves_no_flag_or_activity(api):
    """The flag is created in the experiment's transaction: a later failure rolls it back."""
    response = post(
        api,
        {
            "name": "Exp",
            "feature_flag_key": "rollback",
            "metrics": [mean_metric(uuid="m1")],
            "primary_metrics_ordered_uuids": None,
            "saved_metrics_ids": [{"id": 999999}],
        },
    )
    assert response.status_code == 400
    assert nothing_created()
    assert not ActivityLog.objects.exists()


def test_create_records_activity_for_experiment_and_flag(api):
    body = create_experiment(api, name="Logged", feature_flag_key="logged")
    entry = ActivityLog.objects.get(scope="Experiment", item_id=str(body["id"]))
    assert entry.activity == "created"
    assert entry.user == api.user
    assert entry.detail["name"] == "Logged"
    flag_entry = ActivityLog.objects.get(scope="FeatureFlag", item_id=str(body["feature_flag"]["id"]))
    assert flag_entry.activity == "created"
    assert flag_entry.user == api.user


def test_create_requires_experiment_write_scope(make_api):
    read_only = make_api(scopes=["experiment:read"])
    response = read_only.post(
        read_only.url("experiments/"), {"name": "x", "feature_flag_key": "k"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'experiment:write'"
    assert nothing_created()
    flag_writer = make_api(scopes=["feature_flag:write"])
    assert (
        flag_writer.post(
            flag_writer.url("experiments/"), {"name": "x", "feature_flag_key": "k"}, format="json"
        ).status_code
        == 403
    )
    writer = make_api(scopes=["experiment:write"])
    assert (
        writer.post(
            writer.url("experiments/"), {"name": "x", "feature_flag_key": "k"}, format="json"
        ).status_code
        == 201
    )
