import re

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.test import Client

from activity.models import ActivityLog
from experiments.lifecycle import ALREADY_LAUNCHED
from experiments.models import Experiment
from experiments_api.admin import JSON_TOO_DEEP, SELECTION_NOT_IDS, ModelAdmin
from flags.models import Cohort
from tests.factories import ExperimentFactory, FeatureFlagFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize(
    "path",
    [
        "experiments/experiment",
        "experiments/experimentsavedmetric",
        "flags/featureflag",
        "flags/cohort",
        "holdouts/experimentholdout",
        "activity/activitylog",
    ],
)
def test_changelists_render_with_search_and_filters(admin_client, path):
    ExperimentFactory()
    assert admin_client.get(f"/admin/{path}/").status_code == 200
    assert admin_client.get(f"/admin/{path}/?q=experiment").status_code == 200


def test_launch_action_goes_through_the_lifecycle(admin_client):
    draft = ExperimentFactory(name="Draft one")
    running = ExperimentFactory(name="Running one", start_date="2024-01-01T00:00:00Z")
    response = admin_client.post(
        "/admin/experiments/experiment/",
        {"action": "launch", "_selected_action": [draft.pk, running.pk]},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert f"Running one (#{running.pk}): {ALREADY_LAUNCHED}" in shown
    assert any("1 experiment(s) done" in message for message in shown)

    draft = Experiment.objects.select_related("feature_flag").get(pk=draft.pk)
    assert draft.start_date is not None
    assert draft.feature_flag.active is True
    assert ActivityLog.objects.filter(item_id=str(draft.pk), activity="launched").exists()
    assert not ActivityLog.objects.filter(item_id=str(running.pk), activity="launched").exists()


@pytest.mark.parametrize(
    ("action", "start", "end", "expected_status"),
    [
        ("pause", "2024-01-01T00:00:00Z", None, "running"),
        ("end", "2024-01-01T00:00:00Z", None, "stopped"),
        ("reset", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "draft"),
        ("archive", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "stopped"),
    ],
)
def test_other_actions(admin_client, action, start, end, expected_status):
    experiment = ExperimentFactory(start_date=start, end_date=end)
    experiment.feature_flag.active = True
    experiment.feature_flag.save()
    admin_client.post(
        "/admin/experiments/experiment/", {"action": action, "_selected_action": [experiment.pk]}
    )
    experiment = Experiment.objects.select_related("feature_flag").get(pk=experiment.pk)
    assert experiment.status == expected_status
    if action == "pause":
        assert experiment.feature_flag.active is False
    if action == "archive":
        assert experiment.archived is True


def test_the_list_shows_and_filters_paused_experiments(admin_client):
    running = ExperimentFactory(name="Still running", start_date="2024-01-01T00:00:00Z")
    paused = ExperimentFactory(name="Taking a break", start_date="2024-01-01T00:00:00Z")
    paused.feature_flag.active = False
    paused.feature_flag.save()
    running.feature_flag.active = True
    running.feature_flag.save()

    listed = admin_client.get("/admin/experiments/experiment/").content.decode()
    assert '<td class="field-derived_status">Paused</td>' in listed
    assert '<td class="field-derived_status">Running</td>' in listed

    filtered = admin_client.get("/admin/experiments/experiment/?status=paused").content.decode()
    assert "Taking a break" in filtered
    assert "Still running" not in filtered


def test_unarchive_action_goes_through_the_lifecycle(admin_client):
    archived = ExperimentFactory(
        name="Archived one", start_date="2024-01-01T00:00:00Z", end_date="2024-02-01T00:00:00Z", archived=True
    )
    admin_client.post(
        "/admin/experiments/experiment/", {"action": "unarchive", "_selected_action": [archived.pk]}
    )
    archived.refresh_from_db()
    assert archived.archived is False


def test_ship_variant_asks_which_variant_then_ships_it_through_the_lifecycle(admin_client):
    running = ExperimentFactory(name="Ready to ship", start_date="2024-01-01T00:00:00Z")
    selected = {"action": "ship_variant", "_selected_action": [running.pk]}

    question = admin_client.post("/admin/experiments/experiment/", selected)
    assert question.status_code == 200
    page = question.content.decode()
    assert 'name="variant_key"' in page
    for key in running.feature_flag.variant_keys:
        assert f'value="{key}"' in page
    running.refresh_from_db()
    assert running.end_date is None

    unknown = admin_client.post(
        "/admin/experiments/experiment/", {**selected, "apply": "1", "variant_key": "nonexistent"}
    )
    assert unknown.status_code == 200 and b"Select a valid choice" in unknown.content
    running.refresh_from_db()
    assert running.end_date is None

    shipped_key = running.feature_flag.variant_keys[-1]
    response = admin_client.post(
        "/admin/experiments/experiment/",
        {**selected, "apply": "1", "variant_key": shipped_key, "conclusion": "won"},
        follow=True,
    )
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("1 experiment(s) done" in message for message in shown)
    running = Experiment.objects.select_related("feature_flag").get(pk=running.pk)
    assert running.end_date is not None
    assert running.conclusion == "won"
    rollout = {
        variant["key"]: variant["rollout_percentage"]
        for variant in running.feature_flag.filters["multivariate"]["variants"]
    }
    assert rollout[shipped_key] == 100
    assert sum(rollout.values()) == 100
    assert ActivityLog.objects.filter(item_id=str(running.pk), activity="variant_shipped").exists()


def test_ship_variant_needs_exactly_one_experiment(admin_client):
    first, second = ExperimentFactory(), ExperimentFactory()
    response = admin_client.post(
        "/admin/experiments/experiment/",
        {"action": "ship_variant", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert "Select exactly one experiment to ship a variant of." in shown


def test_ship_variant_offers_only_variant_keys_that_are_text(admin_client):
    """A flag edited by hand may hold variant keys that are not text (a list among the choices read
    as a group of choices and failed the page): only text keys are offered."""
    flag = FeatureFlagFactory(
        filters={
            "groups": [],
            "multivariate": {
                "variants": [
                    {"key": "control", "rollout_percentage": 50},
                    {"key": 5, "rollout_percentage": 25},
                    {"key": ["x"], "rollout_percentage": 25},
                ]
            },
        }
    )
    running = ExperimentFactory(feature_flag=flag, project=flag.project, start_date="2024-01-01T00:00:00Z")
    selected = {"action": "ship_variant", "_selected_action": [running.pk]}

    question = admin_client.post("/admin/experiments/experiment/", selected)

    assert question.status_code == 200
    assert re.findall(r'<option value="([^"]*)"', question.content.decode().split('name="variant_key"')[1])[
        :2
    ] == ["control", ""]
    refused = admin_client.post(
        "/admin/experiments/experiment/", {**selected, "apply": "1", "variant_key": "5"}
    )
    assert refused.status_code == 200 and b"Select a valid choice" in refused.content
    running.refresh_from_db()
    assert running.end_date is None


@pytest.mark.parametrize("action", ["ship_variant", "unarchive", "archive"])
@pytest.mark.parametrize("forged", ["x", "²", "9" * 5000])
def test_selections_that_are_not_ids_are_refused_with_a_message(admin_client, action, forged):
    archived = ExperimentFactory(
        start_date="2024-01-01T00:00:00Z", end_date="2024-02-01T00:00:00Z", archived=True
    )
    before = ActivityLog.objects.count()

    response = admin_client.post(
        "/admin/experiments/experiment/", {"action": action, "_selected_action": [archived.pk, forged]}
    )

    assert response.status_code == 302
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert shown == [SELECTION_NOT_IDS]
    archived.refresh_from_db()
    assert archived.archived is True
    assert ActivityLog.objects.count() == before


def test_every_admin_checks_its_selections(admin_client):
    unchecked = [
        type(model_admin).__name__
        for model_admin in admin.site._registry.values()
        if not isinstance(model_admin, ModelAdmin)
    ]
    assert not unchecked
    policy_list = admin_client.post(
        "/admin/approvals/approvalpolicy/", {"action": "delete_selected", "_selected_action": ["not-a-uuid"]}
    )
    assert policy_list.status_code == 302
    assert [str(message) for message in get_messages(policy_list.wsgi_request)] == [SELECTION_NOT_IDS]


def test_json_nested_too_deep_to_read_is_refused_by_admin_forms(admin_client):
    """`json.loads` raises RecursionError on such input, which Django's JSON form field lets through."""
    project = ExperimentFactory().project
    response = admin_client.post(
        "/admin/flags/cohort/add/",
        {"project": project.id, "name": "Deep", "filters": "[" * 5000, "groups": "[]"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["filters"] == [JSON_TOO_DEEP]
    assert not Cohort.objects.filter(name="Deep").exists()
