"""The lifecycle transition table, exhaustively, through the HTTP API.

Every (status × archived) × action pair either succeeds with exactly its documented effect on the
experiment row, the flag row and the activity log — and nothing else — or is refused with 400 and
the module's message constant, changing nothing at all.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from activity.models import ActivityLog
from experiments import lifecycle
from experiments.lifecycle import (
    ALREADY_ARCHIVED,
    ALREADY_DRAFT,
    ALREADY_ENDED,
    ALREADY_LAUNCHED,
    ALREADY_PAUSED,
    MUST_END_BEFORE_ARCHIVE,
    NOT_ARCHIVED,
    NOT_LAUNCHED,
    NOT_PAUSED,
    ExperimentStatus,
    Transition,
)
from experiments.models import Experiment
from flags.models import FeatureFlag
from tests.experiments.helpers import validation_error
from tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 15, tzinfo=UTC)
NOW = object()  # "set to the time of the request"

STATES: dict[str, dict[str, Any]] = {
    "draft": {"start_date": None, "end_date": None, "active": False},
    "running": {"start_date": T0, "end_date": None, "active": True},
    "paused": {"start_date": T0, "end_date": None, "active": False},
    "stopped": {
        "start_date": T0,
        "end_date": T1,
        "active": True,
        "conclusion": "inconclusive",
        "conclusion_comment": "flat",
    },
}
BODIES: dict[str, dict[str, Any]] = {
    "end": {"conclusion": "won", "conclusion_comment": "Test variant won"},
    "ship_variant": {"variant_key": "test"},
}
# The refusals, written out independently of `lifecycle.TRANSITIONS`.
REFUSALS: dict[str, dict[str, str | None]] = {
    "launch": {
        "draft": None,
        "running": ALREADY_LAUNCHED,
        "paused": ALREADY_LAUNCHED,
        "stopped": ALREADY_LAUNCHED,
    },
    "pause": {"draft": NOT_LAUNCHED, "running": None, "paused": ALREADY_PAUSED, "stopped": ALREADY_ENDED},
    "resume": {"draft": NOT_LAUNCHED, "running": NOT_PAUSED, "paused": None, "stopped": ALREADY_ENDED},
    "end": {"draft": NOT_LAUNCHED, "running": None, "paused": None, "stopped": ALREADY_ENDED},
    "ship_variant": {"draft": NOT_LAUNCHED, "running": None, "paused": None, "stopped": None},
    "reset": {"draft": ALREADY_DRAFT, "running": None, "paused": None, "stopped": None},
    "archive": {
        "draft": MUST_END_BEFORE_ARCHIVE,
        "running": MUST_END_BEFORE_ARCHIVE,
        "paused": MUST_END_BEFORE_ARCHIVE,
        "stopped": None,
    },
    "unarchive": {"draft": None, "running": None, "paused": None, "stopped": None},
}
ACTIVITY = {
    "launch": "launched",
    "pause": "paused",
    "resume": "resumed",
    "end": "ended",
    "ship_variant": "variant_shipped",
    "reset": "reset",
    "archive": "archived",
    "unarchive": "unarchived",
}
SHIPPED_FILTERS = {
    "aggregation_group_type_index": None,
    "payloads": {},
    "multivariate": {
        "variants": [{"key": "control", "rollout_percentage": 0}, {"key": "test", "rollout_percentage": 100}]
    },
    "groups": [{"properties": [], "rollout_percentage": 100}],
}


def refusal_for(action: str, status: str, archived: bool) -> str | None:
    if action == "archive" and archived:
        return ALREADY_ARCHIVED
    if action == "unarchive" and not archived:
        return NOT_ARCHIVED
    return REFUSALS[action][status]


def effect(action: str, status: str, archived: bool) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(experiment field changes, flag field changes, resulting status) of a legal transition."""
    running_like = status in ("running", "paused")
    if action == "launch":
        return {"start_date": NOW, "status": "running"}, {"active": True}, "running"
    if action == "pause":
        return {}, {"active": False}, "paused"
    if action == "resume":
        return {}, {"active": True}, "running"
    if action == "end":
        return (
            {"end_date": NOW, "status": "stopped", **BODIES["end"]},
            {},
            "stopped",
        )
    if action == "ship_variant":
        experiment = {"end_date": NOW, "status": "stopped"} if running_like else {}
        return experiment, {"filters": SHIPPED_FILTERS}, "stopped"
    if action == "reset":
        changes = {
            "start_date": None,
            "end_date": None,
            "status": "draft",
            "conclusion": None,
            "conclusion_comment": None,
            "archived": False,
        }
        return changes, {}, "draft"
    if action == "archive":
        return {"archived": True}, {}, status
    return {"archived": False}, {}, status


def make_experiment(project, status: str, archived: bool) -> Experiment:
    state = STATES[status]
    experiment = ExperimentFactory(
        project=project,
        start_date=state["start_date"],
        end_date=state["end_date"],
        archived=archived,
        conclusion=state.get("conclusion"),
        conclusion_comment=state.get("conclusion_comment"),
        feature_flag__active=state["active"],
        feature_flag__project=project,
    )
    assert lifecycle.experiment_status(experiment) == status
    return experiment


def rows(experiment_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    experiment = Experiment.objects.get(pk=experiment_id)
    flag = FeatureFlag.objects.get(pk=experiment.feature_flag_id)
    return model_to_dict(experiment), model_to_dict(flag)


CASES = [
    pytest.param(status, archived, action, id=f"{status}{'-archived' if archived else ''}-{action}")
    for status in STATES
    for archived in (False, True)
    for action in REFUSALS
]


@pytest.mark.parametrize(("status", "archived", "action"), CASES)
def test_transition(api, status, archived, action):
    experiment = make_experiment(api.project, status, archived)
    experiment_before, flag_before = rows(experiment.id)
    activity_before = set(ActivityLog.objects.values_list("id", flat=True))

    started = timezone.now()
    response = api.post(
        api.url(f"experiments/{experiment.id}/{action}/"), BODIES.get(action, {}), format="json"
    )
    finished = timezone.now()
    experiment_after, flag_after = rows(experiment.id)
    new_entries = ActivityLog.objects.exclude(id__in=activity_before)

    message = refusal_for(action, status, archived)
    if message is not None:
        assert response.status_code == 400, response.json()
        assert response.json() == validation_error(message)
        assert experiment_after == experiment_before
        assert flag_after == flag_before
        assert not new_entries.exists()
        return

    assert response.status_code == 200, response.json()
    experiment_changes, flag_changes, resulting_status = effect(action, status, archived)

    expected_experiment = {**experiment_before, **experiment_changes}
    for field, value in experiment_changes.items():
        if value is NOW:
            assert started <= experiment_after[field] <= finished, field
            expected_experiment[field] = experiment_after[field]
    assert experiment_after == expected_experiment

    expected_flag = {**flag_before, **flag_changes}
    if flag_changes:
        expected_flag["version"] = flag_before["version"] + 1
        expected_flag["last_modified_by"] = api.user.id
    assert flag_after == expected_flag

    body = response.json()
    assert body["status"] == resulting_status
    assert body["archived"] is expected_experiment["archived"]
    assert body["feature_flag"]["active"] is expected_flag["active"]
    assert body["feature_flag"]["filters"] == expected_flag["filters"]
    assert body["conclusion"] == expected_experiment["conclusion"]

    entry = new_entries.get(scope="Experiment")
    assert entry.activity == ACTIVITY[action]
    assert entry.item_id == str(experiment.id)
    assert entry.user == api.user
    changed_fields = {change["field"] for change in entry.detail["changes"]}
    expected_fields = {field for field in experiment_changes if field != "status"}
    expected_fields = {
        field for field in expected_fields if experiment_before[field] != expected_experiment[field]
    }
    expected_fields |= set(flag_changes)
    if resulting_status != status:
        # The derived status is recorded too, so the log reads "running -> paused".
        expected_fields.add("status")
    if action == "ship_variant":
        expected_fields.add("shipped_variant")
    assert changed_fields == expected_fields
    flag_entries = list(new_entries.filter(scope="FeatureFlag"))
    if flag_changes:
        assert [(e.activity, e.item_id, e.user) for e in flag_entries] == [
            ("updated", str(experiment.feature_flag_id), api.user)
        ]
    else:
        assert flag_entries == []


def test_the_table_in_lifecycle_matches_the_written_out_table():
    """Every (transition, status) has an entry, and it says what this file says."""
    for transition in Transition:
        assert set(lifecycle.TRANSITIONS[transition]) == set(ExperimentStatus)
        for status in ExperimentStatus:
            assert lifecycle.TRANSITIONS[transition][status] == REFUSALS[transition.value][status.value]
    assert {transition.value for transition in Transition} == set(REFUSALS)
    assert {key.value: value for key, value in lifecycle.ACTIVITY_NAMES.items()} == ACTIVITY


def test_paused_is_derived_never_stored(api):
    experiment = make_experiment(api.project, "paused", False)
    assert Experiment.objects.get(pk=experiment.id).status == "running"
    assert api.get(api.url(f"experiments/{experiment.id}/")).json()["status"] == "paused"


def test_status_is_recomputed_on_save_with_update_fields(api):
    experiment = make_experiment(api.project, "running", False)
    experiment.end_date = T1 + timedelta(days=1)
    experiment.save(update_fields=["end_date"])
    assert Experiment.objects.get(pk=experiment.id).status == "stopped"
