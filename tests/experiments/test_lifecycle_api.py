"""Lifecycle actions through the API: launch, pause, resume, end, ship_variant, reset, archive,
unarchive, and the PATCH paths that change state (cases 87–113)."""

from datetime import UTC, datetime

import pytest

from activity.models import ActivityLog
from experiments.flag_config import RELEASE_TO_EVERYONE_DESCRIPTION
from experiments.lifecycle import (
    ALREADY_ARCHIVED,
    ALREADY_DRAFT,
    ALREADY_LAUNCHED,
    FLAG_DELETED_CANNOT_LAUNCH,
    MUST_END_BEFORE_ARCHIVE,
    NOT_ARCHIVED,
    NOT_LAUNCHED,
    VARIANT_NOT_FOUND,
)
from experiments.models import Experiment
from experiments.validation import FLAG_WITHOUT_CONTROL, TOO_FEW_VARIANTS
from flags.models import FeatureFlag
from tests.experiments.helpers import (
    NOT_FOUND,
    create_experiment,
    db_state,
    flag_for,
    mean_metric,
    validation_error,
)
from tests.factories import (
    ExperimentFactory,
    ExperimentHoldoutFactory,
    FeatureFlagFactory,
    multivariate_filters,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 15, tzinfo=UTC)


def act(api, experiment_id: int, action: str, body=None):
    return api.post(
        api.url(f"experiments/{experiment_id}/{action}/"), body if body is not None else {}, format="json"
    )


def running(project, **kwargs) -> Experiment:
    kwargs.setdefault("feature_flag__active", True)
    return ExperimentFactory(project=project, start_date=T0, **kwargs)


def stopped(project, **kwargs) -> Experiment:
    kwargs.setdefault("feature_flag__active", True)
    return ExperimentFactory(project=project, start_date=T0, end_date=T1, **kwargs)


# --- launch ----------------------------------------------------------------------------------


def test_launch_a_draft(api):
    """Cases 87 and 89."""
    experiment = create_experiment(api, metrics=[mean_metric()])
    fingerprint_before = experiment["metrics"][0]["fingerprint"]
    response = act(api, experiment["id"], "launch")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "running"
    assert body["start_date"] is not None
    assert body["feature_flag"]["active"] is True
    assert flag_for(experiment["id"]).active is True
    stored = Experiment.objects.get(pk=experiment["id"])
    assert stored.status == "running"
    # The start date is part of a metric's fingerprint.
    assert body["metrics"][0]["fingerprint"] != fingerprint_before
    assert stored.metrics[0]["fingerprint"] == body["metrics"][0]["fingerprint"]

    entry = ActivityLog.objects.get(scope="Experiment", item_id=str(experiment["id"]), activity="launched")
    changes = {change["field"]: change for change in entry.detail["changes"]}
    assert set(changes) == {"start_date", "active", "status"}
    assert (changes["status"]["before"], changes["status"]["after"]) == ("draft", "running")
    assert changes["start_date"]["action"] == "created"
    assert changes["start_date"]["before"] is None
    assert changes["start_date"]["after"] == stored.start_date.isoformat()
    assert changes["active"] == {
        "type": "FeatureFlag",
        "action": "changed",
        "field": "active",
        "before": False,
        "after": True,
    }


@pytest.mark.parametrize("make", [running, stopped])
def test_launch_a_launched_experiment(api, make):
    """Case 88."""
    experiment = make(api.project)
    before = db_state(experiment.id)
    response = act(api, experiment.id, "launch")
    assert response.status_code == 400
    assert response.json() == validation_error(ALREADY_LAUNCHED)
    assert db_state(experiment.id) == before


@pytest.mark.parametrize("body", [{}, None])
def test_launch_takes_no_body_or_an_empty_object(api, body):
    experiment = ExperimentFactory(project=api.project)
    response = act(api, experiment.id, "launch", body)
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "running"
    assert flag_for(experiment.id).active is True


def test_launch_without_a_body_at_all(api):
    experiment = ExperimentFactory(project=api.project)
    assert api.post(api.url(f"experiments/{experiment.id}/launch/")).status_code == 200


@pytest.mark.parametrize(
    "body, ignored",
    [([], "(body)"), ("text", "(body)"), ({"variant_key": "test", "draft": True}, "draft, variant_key")],
)
def test_launch_ignores_a_body_and_names_what_it_ignored(api, body, ignored):
    """Case 90: PostHog ignores any body here; so do we, and the header says what was ignored."""
    experiment = ExperimentFactory(project=api.project)
    response = act(api, experiment.id, "launch", body)
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "running"
    assert response["Ignored-Fields"] == ignored
    assert flag_for(experiment.id).active is True


def test_launch_ignores_a_body_that_is_not_json(api):
    experiment = ExperimentFactory(project=api.project)
    response = api.post(
        api.url(f"experiments/{experiment.id}/launch/"), "{not json", content_type="application/json"
    )
    assert response.status_code == 200
    assert response["Ignored-Fields"] == "(body)"


@pytest.mark.parametrize(
    "body, attr",
    [([], None), ("text", None), ({"variant_key": "test"}, "variant_key")],
)
def test_launch_under_strict_handling_refuses_a_body_it_would_ignore(api, body, attr):
    """With `Prefer: handling=strict` a list, a string or a field meant for another action is a
    mistake to report, and nothing changes."""
    experiment = ExperimentFactory(project=api.project)
    before = db_state(experiment.id)
    response = api.post(
        api.url(f"experiments/{experiment.id}/launch/"), body, format="json", HTTP_PREFER="handling=strict"
    )
    assert response.status_code == 400
    assert response.json()["attr"] == attr
    assert response["Preference-Applied"] == "handling=strict"
    assert db_state(experiment.id) == before


def test_launch_with_a_deleted_flag(api):
    """Case 91."""
    experiment = ExperimentFactory(project=api.project)
    FeatureFlag.objects.filter(pk=experiment.feature_flag_id).update(deleted=True)
    before = db_state(experiment.id)
    response = act(api, experiment.id, "launch")
    assert response.status_code == 400
    assert response.json() == validation_error(FLAG_DELETED_CANNOT_LAUNCH)
    assert db_state(experiment.id) == before
    assert Experiment.objects.get(pk=experiment.id).start_date is None
    assert flag_for(experiment.id).active is False


@pytest.mark.parametrize(
    ("flag_variants", "message"),
    [([("variant_a", 50), ("variant_b", 50)], FLAG_WITHOUT_CONTROL), ([("control", 100)], TOO_FEW_VARIANTS)],
)
def test_launch_needs_two_variants_and_control(api, flag_variants, message):
    """Case 92: the flag was edited after the experiment was created."""
    experiment = ExperimentFactory(
        project=api.project, feature_flag__filters=multivariate_filters(flag_variants)
    )
    before = db_state(experiment.id)
    response = act(api, experiment.id, "launch")
    assert response.status_code == 400
    assert response.json() == validation_error(message)
    assert db_state(experiment.id) == before


def test_launch_on_an_active_flag_keeps_its_release_conditions(api):
    """Case 93."""
    groups = [
        {
            "properties": [{"key": "email", "value": "@acme.com", "operator": "icontains", "type": "person"}],
            "rollout_percentage": 30,
        },
        {"properties": [], "rollout_percentage": 5},
    ]
    flag = FeatureFlagFactory(
        project=api.project, key="custom", filters={**multivariate_filters(), "groups": groups}
    )
    experiment = create_experiment(api, feature_flag_key="custom")
    response = act(api, experiment["id"], "launch")
    assert response.status_code == 200
    flag.refresh_from_db()
    assert flag.active is True
    assert flag.filters["groups"] == groups


# --- pause / resume --------------------------------------------------------------------------


def test_pause_and_resume(api):
    """Cases 94 and 95."""
    experiment = running(api.project)
    response = act(api, experiment.id, "pause")
    assert response.status_code == 200
    assert response.json()["status"] == "paused"
    assert response.json()["feature_flag"]["active"] is False
    assert flag_for(experiment.id).active is False
    assert api.get(api.url("experiments/?status=paused")).json()["count"] == 1

    response = act(api, experiment.id, "resume")
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert response.json()["feature_flag"]["active"] is True
    assert flag_for(experiment.id).active is True
    assert [e.activity for e in ActivityLog.objects.filter(scope="Experiment").order_by("created_at")] == [
        "paused",
        "resumed",
    ]


def test_pausing_a_shared_flag_pauses_every_experiment_on_it(api):
    flag = FeatureFlagFactory(project=api.project, active=True)
    first = running(api.project, feature_flag=flag)
    second = running(api.project, feature_flag=flag)
    assert act(api, first.id, "pause").status_code == 200
    assert api.get(api.url(f"experiments/{second.id}/")).json()["status"] == "paused"


# --- end -------------------------------------------------------------------------------------


def test_end_with_conclusion(api):
    """Case 98."""
    experiment = running(api.project)
    response = act(api, experiment.id, "end", {"conclusion": "won", "conclusion_comment": "Test variant won"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "stopped"
    assert body["end_date"] is not None
    assert body["conclusion"] == "won"
    assert body["conclusion_comment"] == "Test variant won"
    assert body["feature_flag"]["active"] is True
    stored = Experiment.objects.get(pk=experiment.id)
    assert (stored.conclusion, stored.conclusion_comment, stored.status) == (
        "won",
        "Test variant won",
        "stopped",
    )


def test_end_without_conclusion_clears_it(api):
    experiment = running(api.project, conclusion="lost", conclusion_comment="earlier")
    response = act(api, experiment.id, "end", {})
    assert response.status_code == 200
    assert (response.json()["conclusion"], response.json()["conclusion_comment"]) == (None, None)
    stored = Experiment.objects.get(pk=experiment.id)
    assert (stored.conclusion, stored.conclusion_comment) == (None, None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"conclusion": "amazing"},
            validation_error('"amazing" is not a valid choice.', "conclusion", "invalid_choice"),
        ),
        (
            {"conclusion_comment": "x" * 4001},
            validation_error(
                "Ensure this field has no more than 4000 characters.", "conclusion_comment", "max_length"
            ),
        ),
    ],
)
def test_end_body_validation(api, body, expected):
    """Case 99."""
    experiment = running(api.project)
    before = db_state(experiment.id)
    response = act(api, experiment.id, "end", body)
    assert response.status_code == 400
    assert response.json() == expected
    assert db_state(experiment.id) == before


def test_end_a_paused_experiment_leaves_the_flag_alone(api):
    """Case 100."""
    experiment = running(api.project, feature_flag__active=False)
    flag_before = flag_for(experiment.id)
    response = act(api, experiment.id, "end")
    assert response.status_code == 200
    assert response.json()["status"] == "stopped"
    flag = flag_for(experiment.id)
    assert (flag.active, flag.filters, flag.version) == (False, flag_before.filters, flag_before.version)


# --- ship_variant ----------------------------------------------------------------------------


def test_ship_variant_on_a_running_experiment(api):
    """Case 101."""
    experiment = running(api.project)
    groups_before = flag_for(experiment.id).filters["groups"]
    response = act(
        api,
        experiment.id,
        "ship_variant",
        {"variant_key": "test", "conclusion": "won", "conclusion_comment": "Test won"},
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "stopped"
    assert body["end_date"] is not None
    assert (body["conclusion"], body["conclusion_comment"]) == ("won", "Test won")
    flag = flag_for(experiment.id)
    assert flag.variants == [
        {"key": "control", "rollout_percentage": 0},
        {"key": "test", "rollout_percentage": 100},
    ]
    assert flag.filters["groups"] == groups_before
    assert flag.active is True
    assert body["feature_flag"]["filters"] == flag.filters

    entry = ActivityLog.objects.get(scope="Experiment", activity="variant_shipped")
    shipped = [change for change in entry.detail["changes"] if change["field"] == "shipped_variant"]
    assert shipped == [
        {
            "type": "Experiment",
            "action": "changed",
            "field": "shipped_variant",
            "before": None,
            "after": "test",
        }
    ]


def test_ship_variant_release_to_everyone(api):
    """Case 102."""
    experiment = running(api.project)
    original_groups = flag_for(experiment.id).filters["groups"]
    response = act(api, experiment.id, "ship_variant", {"variant_key": "test", "release_to_everyone": True})
    assert response.status_code == 200
    groups = flag_for(experiment.id).filters["groups"]
    assert groups[0] == {
        "properties": [],
        "rollout_percentage": 100,
        "description": RELEASE_TO_EVERYONE_DESCRIPTION,
    }
    assert "Added automatically" in groups[0]["description"]
    assert groups[1:] == original_groups


def test_ship_variant_on_a_stopped_experiment(api):
    """Case 103."""
    experiment = stopped(api.project, conclusion="inconclusive")
    response = act(api, experiment.id, "ship_variant", {"variant_key": "test", "conclusion": "won"})
    assert response.status_code == 200
    assert response.json()["conclusion"] == "won"
    stored = Experiment.objects.get(pk=experiment.id)
    assert stored.end_date == T1
    assert stored.conclusion == "won"
    assert [v["rollout_percentage"] for v in flag_for(experiment.id).variants] == [0, 100]


def test_ship_variant_without_conclusion_preserves_it(api):
    """Case 104."""
    experiment = stopped(api.project, conclusion="won", conclusion_comment="Clear winner")
    response = act(api, experiment.id, "ship_variant", {"variant_key": "control"})
    assert response.status_code == 200
    stored = Experiment.objects.get(pk=experiment.id)
    assert (stored.conclusion, stored.conclusion_comment) == ("won", "Clear winner")
    assert [v["rollout_percentage"] for v in flag_for(experiment.id).variants] == [100, 0]


def test_ship_variant_explicit_null_conclusion_clears_it(api):
    experiment = stopped(api.project, conclusion="won", conclusion_comment="Clear winner")
    response = act(api, experiment.id, "ship_variant", {"variant_key": "test", "conclusion": None})
    assert response.status_code == 200
    stored = Experiment.objects.get(pk=experiment.id)
    assert (stored.conclusion, stored.conclusion_comment) == (None, "Clear winner")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"variant_key": "nonexistent"},
            validation_error(VARIANT_NOT_FOUND.format(variant_key="nonexistent")),
        ),
        ({}, validation_error("This field is required.", "variant_key", "required")),
        ([], validation_error("Invalid data. Expected a dictionary, but got list.")),
        (
            {"variant_key": "test", "conclusion": "amazing"},
            validation_error('"amazing" is not a valid choice.', "conclusion", "invalid_choice"),
        ),
    ],
)
def test_ship_variant_refusals(api, body, expected):
    """Case 105."""
    experiment = running(api.project)
    before = db_state(experiment.id)
    response = act(api, experiment.id, "ship_variant", body)
    assert response.status_code == 400
    assert response.json() == expected
    assert db_state(experiment.id) == before


def test_ship_variant_message_for_an_unknown_key(api):
    experiment = running(api.project)
    response = act(api, experiment.id, "ship_variant", {"variant_key": "nonexistent"})
    assert response.json()["detail"] == "Variant 'nonexistent' not found on feature flag."


def test_ship_variant_on_a_draft(api):
    experiment = ExperimentFactory(project=api.project)
    before = db_state(experiment.id)
    response = act(api, experiment.id, "ship_variant", {"variant_key": "test"})
    assert response.json() == validation_error(NOT_LAUNCHED)
    assert db_state(experiment.id) == before


def test_ship_variant_preserves_payloads_aggregation_and_overrides(api):
    """Case 106."""
    group_property = {
        "key": "name",
        "value": "acme",
        "operator": "exact",
        "type": "group",
        "group_type_index": 1,
    }
    filters = {
        "groups": [
            {"properties": [], "rollout_percentage": 100},
            {"properties": [group_property], "rollout_percentage": 100, "variant": "control"},
        ],
        "multivariate": {
            "variants": [
                {"key": "control", "name": "Control", "rollout_percentage": 50},
                {"key": "test", "name": "", "rollout_percentage": 50},
            ]
        },
        "aggregation_group_type_index": 1,
        "payloads": {"control": '{"a": 1}', "test": '{"b": 2}'},
    }
    experiment = running(api.project, feature_flag__filters=filters)
    response = act(api, experiment.id, "ship_variant", {"variant_key": "test"})
    assert response.status_code == 200, response.json()
    flag = flag_for(experiment.id)
    assert flag.filters["payloads"] == filters["payloads"]
    assert flag.filters["aggregation_group_type_index"] == 1
    assert flag.filters["groups"] == filters["groups"]
    # A variant keeps its name only when it had a non-empty one.
    assert flag.variants == [
        {"key": "control", "name": "Control", "rollout_percentage": 0},
        {"key": "test", "rollout_percentage": 100},
    ]


def test_ship_variant_keeps_the_holdout(api):
    holdout = ExperimentHoldoutFactory(project=api.project)
    experiment = running(api.project)
    flag = experiment.feature_flag
    flag.filters = {**flag.filters, "holdout": {"id": holdout.id, "exclusion_percentage": 10}}
    flag.save()
    assert act(api, experiment.id, "ship_variant", {"variant_key": "test"}).status_code == 200
    assert flag_for(experiment.id).filters["holdout"] == {"id": holdout.id, "exclusion_percentage": 10}


# --- archive / unarchive ---------------------------------------------------------------------


def test_archive_and_unarchive(api):
    """Cases 107 and 109."""
    experiment = stopped(api.project)
    response = act(api, experiment.id, "archive")
    assert response.status_code == 200
    assert response.json()["archived"] is True
    assert Experiment.objects.get(pk=experiment.id).archived is True
    assert api.get(api.url("experiments/")).json()["count"] == 0
    assert api.get(api.url("experiments/?archived=true")).json()["count"] == 1

    response = act(api, experiment.id, "archive")
    assert response.json() == validation_error(ALREADY_ARCHIVED)

    response = act(api, experiment.id, "unarchive")
    assert response.status_code == 200
    assert response.json()["archived"] is False
    assert Experiment.objects.get(pk=experiment.id).archived is False
    response = act(api, experiment.id, "unarchive")
    assert response.json() == validation_error(NOT_ARCHIVED)


@pytest.mark.parametrize("make", [running, ExperimentFactory])
def test_archive_needs_an_ended_experiment(api, make):
    """Case 108."""
    experiment = make(project=api.project)
    response = act(api, experiment.id, "archive")
    assert response.status_code == 400
    assert response.json() == validation_error(MUST_END_BEFORE_ARCHIVE)
    assert "must be ended" in response.json()["detail"]


def test_archive_with_disable_feature_flag_is_refused(api):
    """Case 110 is [NEWEST]; this server refuses the option instead of ignoring it."""
    experiment = stopped(api.project)
    before = db_state(experiment.id)
    response = act(api, experiment.id, "archive", {"disable_feature_flag": True})
    assert response.status_code == 400
    assert response.json()["attr"] == "disable_feature_flag"
    assert db_state(experiment.id) == before
    assert act(api, experiment.id, "archive", {"disable_feature_flag": False}).status_code == 200
    assert flag_for(experiment.id).active is True


# --- reset -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [running, stopped])
def test_reset(api, make):
    """Case 112."""
    experiment = make(api.project, archived=True, conclusion="won", conclusion_comment="c")
    flag_before = flag_for(experiment.id)
    response = act(api, experiment.id, "reset")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "draft"
    assert (body["start_date"], body["end_date"], body["archived"]) == (None, None, False)
    assert (body["conclusion"], body["conclusion_comment"]) == (None, None)
    assert body["feature_flag"]["active"] is True
    flag = flag_for(experiment.id)
    assert (flag.active, flag.filters, flag.version) == (True, flag_before.filters, flag_before.version)
    assert Experiment.objects.get(pk=experiment.id).status == "draft"


def test_reset_a_draft(api):
    experiment = ExperimentFactory(project=api.project)
    response = act(api, experiment.id, "reset")
    assert response.json() == validation_error(ALREADY_DRAFT)
    assert "already in draft state" in response.json()["detail"]


def test_reset_restores_the_draft_fingerprints(api):
    draft = create_experiment(api, metrics=[mean_metric()])
    launched = act(api, draft["id"], "launch").json()
    reset = act(api, draft["id"], "reset").json()
    assert launched["metrics"][0]["fingerprint"] != draft["metrics"][0]["fingerprint"]
    assert reset["metrics"][0]["fingerprint"] == draft["metrics"][0]["fingerprint"]
    assert (
        Experiment.objects.get(pk=draft["id"]).metrics[0]["fingerprint"] == draft["metrics"][0]["fingerprint"]
    )


def test_reset_then_launch_again(api):
    experiment = stopped(api.project)
    assert act(api, experiment.id, "reset").status_code == 200
    response = act(api, experiment.id, "launch")
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert Experiment.objects.get(pk=experiment.id).end_date is None


# --- PATCH paths that change state (PostHog's unchecked gaps, §3) ----------------------------


def test_patch_start_date_null_on_a_running_experiment_is_a_reset(api):
    experiment = running(api.project)
    response = api.patch(api.url(f"experiments/{experiment.id}/"), {"start_date": None}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "draft"
    assert flag_for(experiment.id).active is True
    assert ActivityLog.objects.get(scope="Experiment", item_id=str(experiment.id)).activity == "reset"


def test_patch_end_date_on_a_draft_is_accepted(api):
    experiment = ExperimentFactory(project=api.project)
    response = api.patch(
        api.url(f"experiments/{experiment.id}/"), {"end_date": "2024-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "draft"


@pytest.mark.parametrize("make", [running, ExperimentFactory])
def test_patch_archived_has_no_state_check(api, make):
    experiment = make(project=api.project)
    response = api.patch(api.url(f"experiments/{experiment.id}/"), {"archived": True}, format="json")
    assert response.status_code == 200
    assert Experiment.objects.get(pk=experiment.id).archived is True


def test_patch_start_date_records_a_launch(api):
    experiment = ExperimentFactory(project=api.project)
    api.patch(api.url(f"experiments/{experiment.id}/"), {"start_date": "2024-01-01T00:00:00Z"}, format="json")
    entry = ActivityLog.objects.get(scope="Experiment", item_id=str(experiment.id))
    assert entry.activity == "launched"
    assert {change["field"] for change in entry.detail["changes"]} == {"start_date", "active"}


# --- scopes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", ["launch", "pause", "resume", "end", "ship_variant", "reset", "archive", "unarchive"]
)
def test_actions_need_experiment_write(make_api, project, action):
    experiment = running(project)
    before = db_state(experiment.id)
    reader = make_api(scopes=["experiment:read", "feature_flag:write"])
    response = act(reader, experiment.id, action)
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'experiment:write'"
    assert db_state(experiment.id) == before


def test_activity_endpoint_needs_experiment_read(make_api, project):
    experiment = running(project)
    assert (
        make_api(scopes=["experiment:read"])
        .get(f"/api/projects/{project.id}/experiments/{experiment.id}/activity/")
        .status_code
        == 200
    )
    response = make_api(scopes=["feature_flag:read"]).get(
        f"/api/projects/{project.id}/experiments/{experiment.id}/activity/"
    )
    assert response.status_code == 403


def test_actions_accept_no_trailing_slash_and_current_project(api):
    experiment = ExperimentFactory(project=api.project)
    response = api.post(f"/api/projects/@current/experiments/{experiment.id}/launch", {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "running"


def test_a_missing_experiment_is_a_404_whatever_the_body(api):
    assert act(api, 999999, "launch", []).status_code == 404
    assert act(api, 999999, "end", []).status_code == 404


@pytest.mark.parametrize("action", ["launch", "reset", "end", "archive", "ship_variant"])
def test_a_missing_experiment_is_a_404_before_a_strictly_refused_body(api, action):
    """The view does not read the experiment before its service does, except to answer 404 rather
    than the body's 400 when both are wrong."""
    response = api.post(
        api.url(f"experiments/999999/{action}/"), {"unknown": 1}, format="json", HTTP_PREFER="handling=strict"
    )
    assert response.status_code == 404, response.json()
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("action", ["launch", "reset", "end", "archive", "ship_variant"])
def test_a_strictly_refused_body_changes_nothing(api, action):
    experiment = ExperimentFactory(project=api.project, start_date=T0, end_date=T1)
    before = db_state(experiment.id)
    response = api.post(
        api.url(f"experiments/{experiment.id}/{action}/"),
        {"unknown": 1},
        format="json",
        HTTP_PREFER="handling=strict",
    )
    assert response.status_code == 400, response.json()
    assert db_state(experiment.id) == before


@pytest.mark.parametrize("experiment_id", ["abc", str(2**63), str(2**70), "-1", "0"])
def test_an_id_that_names_no_experiment_is_a_404(api, experiment_id):
    for action in ("launch", "pause", "reset", "end"):
        response = act(api, experiment_id, action)
        assert response.status_code == 404, (action, response.content)
        assert response.json() == NOT_FOUND


def test_a_deleted_experiment_cannot_change_state(api):
    experiment = ExperimentFactory(project=api.project, deleted=True)
    before = db_state(experiment.id)
    for action in ("launch", "pause", "resume", "end", "reset", "archive", "unarchive"):
        assert act(api, experiment.id, action).status_code == 404, action
    assert db_state(experiment.id) == before


def test_the_browsable_api_form_token_is_not_an_unknown_field(api):
    experiment = ExperimentFactory(project=api.project)
    response = api.post(api.url(f"experiments/{experiment.id}/launch/"), {"csrfmiddlewaretoken": "token"})
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "running"


def test_the_browsable_api_offers_an_empty_form_for_a_bodyless_action(api):
    experiment = ExperimentFactory(project=api.project)
    page = api.get(api.url(f"experiments/{experiment.id}/launch/"), HTTP_ACCEPT="text/html")
    assert page.status_code == 405  # launch is POST only; the page still renders its form
    assert "feature_flag_key" not in page.content.decode()
