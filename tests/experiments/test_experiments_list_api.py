"""GET /experiments/ and /experiments/{id}/: filters, ordering, the basic representation, constant
query counts and tenant isolation (cases 1–20)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments.models import ExperimentToSavedMetric
from tests.experiments.helpers import NOT_FOUND, validation_error
from tests.factories import (
    ExperimentFactory,
    ExperimentHoldoutFactory,
    ExperimentSavedMetricFactory,
    FeatureFlagFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
T0 = datetime(2024, 1, 10, tzinfo=UTC)


def listed(api, query: str = "") -> dict:
    response = api.get(api.url(f"experiments/{query}"))
    assert response.status_code == 200, response.json()
    return response.json()


def names(body: dict) -> list[str]:
    return [item["name"] for item in body["results"]]


@pytest.fixture
def by_status(api):
    """One experiment in each status."""
    project = api.project
    return {
        "draft": ExperimentFactory(project=project, name="Draft"),
        "running": ExperimentFactory(
            project=project, name="Running", start_date=T0, feature_flag__active=True
        ),
        "paused": ExperimentFactory(
            project=project, name="Paused", start_date=T0, feature_flag__active=False
        ),
        "stopped": ExperimentFactory(
            project=project, name="Stopped", start_date=T0, end_date=T0 + DAY, feature_flag__active=True
        ),
    }


def test_empty_list(api):
    """Case 1."""
    assert listed(api) == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.parametrize(("metrics", "metrics_secondary"), [(None, None), (None, []), ([], None)])
def test_null_metric_lists_do_not_break_reads(api, metrics, metrics_secondary):
    """Case 2."""
    experiment = ExperimentFactory(project=api.project, metrics=metrics, metrics_secondary=metrics_secondary)
    assert listed(api)["count"] == 1
    response = api.get(api.url(f"experiments/{experiment.id}/"))
    assert response.status_code == 200
    assert response.json()["id"] == experiment.id


@pytest.mark.parametrize(
    ("status", "expected_name", "expected_status"),
    [
        ("draft", "Draft", "draft"),
        ("running", "Running", "running"),
        ("paused", "Paused", "paused"),
        ("stopped", "Stopped", "stopped"),
        ("complete", "Stopped", "stopped"),
        ("RUNNING", "Running", "running"),
        ("Complete", "Stopped", "stopped"),
    ],
)
def test_status_filter(api, by_status, status, expected_name, expected_status):
    """Cases 3 and 5."""
    body = listed(api, f"?status={status}")
    assert body["count"] == 1
    assert body["results"][0]["name"] == expected_name
    assert body["results"][0]["status"] == expected_status


@pytest.mark.parametrize("status", ["all", "bogus", ""])
def test_status_all_or_unknown_means_no_filter(api, by_status, status):
    """Case 4."""
    ExperimentFactory(project=api.project, name="Archived", start_date=T0, end_date=T0 + DAY, archived=True)
    ExperimentFactory(project=api.project, name="Deleted", deleted=True)
    assert sorted(names(listed(api, f"?status={status}"))) == ["Draft", "Paused", "Running", "Stopped"]


def test_list_representation(api):
    """Case 9: the basic serializer has no metric definitions. Its saved metrics are listed, as
    PostHog's document declares them on every experiment of the list (issue 11 wins over case 9)."""
    saved = ExperimentSavedMetricFactory(project=api.project)
    experiment = ExperimentFactory(project=api.project, metrics=[{"kind": "ExperimentMetric"}])
    ExperimentToSavedMetric.objects.create(experiment=experiment, saved_metric=saved)
    item = listed(api)["results"][0]
    assert set(item) == {
        "id",
        "name",
        "description",
        "start_date",
        "end_date",
        "feature_flag_key",
        "feature_flag",
        "holdout",
        "exposure_cohort",
        "parameters",
        "running_time_calculation",
        "excluded_variants",
        "archived",
        "deleted",
        "created_by",
        "created_at",
        "updated_at",
        "type",
        "conclusion",
        "conclusion_comment",
        "tags",
        "saved_metrics",
        "saved_metrics_ids",
        "status",
        "is_legacy",
        "user_access_level",
    }
    assert item["feature_flag"]["key"] == experiment.feature_flag.key
    assert item["feature_flag_key"] == experiment.feature_flag.key
    assert item["parameters"]["feature_flag_variants"][0] == {
        "key": "control",
        "rollout_percentage": 50,
        "split_percent": 50,
    }
    assert item["status"] == "draft"
    assert item["is_legacy"] is False


LEGACY = {"kind": "ExperimentFunnelsQuery", "funnels_query": {}}


@pytest.mark.parametrize("where", ["metrics", "metrics_secondary", "saved_metric"])
def test_is_legacy(api, where):
    """Case 10."""
    if where == "saved_metric":
        experiment = ExperimentFactory(project=api.project)
        saved = ExperimentSavedMetricFactory(project=api.project, query=LEGACY)
        ExperimentToSavedMetric.objects.create(experiment=experiment, saved_metric=saved)
    else:
        experiment = ExperimentFactory(project=api.project, **{where: [LEGACY]})
    ExperimentFactory(project=api.project, name="Modern")
    legacy_flags = {item["name"]: item["is_legacy"] for item in listed(api)["results"]}
    assert legacy_flags == {experiment.name: True, "Modern": False}
    assert api.get(api.url(f"experiments/{experiment.id}/")).json()["is_legacy"] is True


def test_archived_filter(api):
    """Case 11."""
    ExperimentFactory(project=api.project, name="Archived", start_date=T0, end_date=T0 + DAY, archived=True)
    ExperimentFactory(project=api.project, name="Live")
    assert names(listed(api)) == ["Live"]
    assert names(listed(api, "?archived=true")) == ["Archived"]
    assert names(listed(api, "?archived=TRUE")) == ["Archived"]
    assert names(listed(api, "?archived=false")) == ["Live"]
    assert names(listed(api, "?archived=anything")) == ["Live"]


def test_archived_experiment_stays_retrievable(api):
    experiment = ExperimentFactory(project=api.project, start_date=T0, end_date=T0 + DAY, archived=True)
    assert api.get(api.url(f"experiments/{experiment.id}/")).json()["archived"] is True


def test_created_by_filter(api):
    """Case 12."""
    users = []
    for index in range(3):
        user = UserFactory()
        MembershipFactory(organization=api.project.organization, user=user)
        ExperimentFactory(project=api.project, name=f"By {index + 1}", created_by=user)
        users.append(user)
    u1, u2, u3 = (user.id for user in users)
    assert names(listed(api, f"?created_by_id={u2}")) == ["By 2"]
    assert sorted(names(listed(api, f"?created_by_id=[{u1},{u2}]"))) == ["By 1", "By 2"]
    assert sorted(names(listed(api, f"?created_by_id={u1},{u3}"))) == ["By 1", "By 3"]
    assert listed(api, f"?created_by_id={api.user.id}")["count"] == 0
    # Unreadable values are ignored as PostHog ignores them, nesting too deep to read included.
    assert listed(api, "?created_by_id=" + "[" * 5000)["count"] == 3
    assert listed(api, f"?created_by_id={'9' * 5000}")["count"] == 3


def test_search(api):
    """Case 13."""
    ExperimentFactory(project=api.project, name="Search match")
    ExperimentFactory(project=api.project, name="Other")
    assert names(listed(api, "?search=Search")) == ["Search match"]
    assert names(listed(api, "?search=sEaRcH")) == ["Search match"]
    assert listed(api, "?search=nothing")["count"] == 0


def test_feature_flag_id_filter(api):
    shared = FeatureFlagFactory(project=api.project)
    ExperimentFactory(project=api.project, name="A", feature_flag=shared)
    ExperimentFactory(project=api.project, name="B", feature_flag=shared)
    ExperimentFactory(project=api.project, name="C")
    assert sorted(names(listed(api, f"?feature_flag_id={shared.id}"))) == ["A", "B"]
    assert listed(api, "?feature_flag_id=0")["count"] == 0


def test_feature_flag_id_must_be_an_integer(api):
    """Case 18."""
    response = api.get(api.url("experiments/?feature_flag_id=not-an-int"))
    assert response.status_code == 400
    assert response.json() == validation_error("feature_flag_id must be an integer")


def test_prompt_name_filter(api):
    ExperimentFactory(
        project=api.project, name="Prompted", parameters={"prompt_metadata": {"name": "welcome"}}
    )
    ExperimentFactory(project=api.project, name="Plain")
    assert names(listed(api, "?prompt_name=welcome")) == ["Prompted"]


def test_invalid_order(api):
    """Case 14."""
    response = api.get(api.url("experiments/?order=feature_flag__key"))
    assert response.status_code == 400
    assert response.json() == validation_error("Invalid order field: 'feature_flag__key'")


@pytest.mark.parametrize(
    "order",
    [
        f"{prefix}{field}"
        for field in (
            "created_at",
            "created_by",
            "updated_at",
            "name",
            "start_date",
            "end_date",
            "duration",
            "status",
        )
        for prefix in ("", "-")
    ],
)
def test_allowlisted_orders(api, by_status, order):
    """Case 15."""
    assert listed(api, f"?order={order}")["count"] == 4


def test_order_by_duration(api):
    """Case 16."""
    ExperimentFactory(project=api.project, name="Long", start_date=T0, end_date=T0 + 3 * DAY)
    ExperimentFactory(project=api.project, name="Short", start_date=T0, end_date=T0 + DAY)
    assert names(listed(api, "?order=duration")) == ["Short", "Long"]
    assert names(listed(api, "?order=-duration")) == ["Long", "Short"]


def test_order_by_status(api, by_status):
    """Case 17: draft < running (paused included) < stopped, by the dates."""
    ordered = names(listed(api, "?order=status"))
    assert ordered[0] == "Draft" and ordered[-1] == "Stopped"
    assert set(ordered[1:3]) == {"Running", "Paused"}
    reverse = names(listed(api, "?order=-status"))
    assert reverse[0] == "Stopped" and reverse[-1] == "Draft"


def test_order_by_name_and_created_by(api):
    alice = UserFactory(first_name="alice")
    bob = UserFactory(first_name="", email="bob@example.com")
    ExperimentFactory(project=api.project, name="b", created_by=alice)
    ExperimentFactory(project=api.project, name="a", created_by=bob)
    assert names(listed(api, "?order=name")) == ["a", "b"]
    assert names(listed(api, "?order=-name")) == ["b", "a"]
    assert names(listed(api, "?order=created_by")) == ["b", "a"]  # "alice" < "bob@example.com"


def test_default_order_is_newest_first(api):
    for index in range(3):
        ExperimentFactory(project=api.project, name=f"E{index}", created_at=T0 + index * DAY)
    assert names(listed(api)) == ["E2", "E1", "E0"]


def test_pagination(api):
    for index in range(5):
        ExperimentFactory(project=api.project, name=f"E{index}", created_at=T0 + index * DAY)
    body = listed(api, "?limit=2&offset=1")
    assert body["count"] == 5
    assert names(body) == ["E3", "E2"]
    assert body["next"].endswith(f"/api/projects/{api.project.id}/experiments/?limit=2&offset=3")
    assert body["previous"].endswith(f"/api/projects/{api.project.id}/experiments/?limit=2")


def test_soft_deleted_experiment_is_invisible(api):
    """Case 20."""
    experiment = ExperimentFactory(project=api.project, deleted=True)
    assert listed(api)["count"] == 0
    response = api.get(api.url(f"experiments/{experiment.id}/"))
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_parameters_on_read_project_the_live_flag(api):
    experiment = ExperimentFactory(
        project=api.project,
        parameters={"feature_flag_variants": [{"key": "stale", "rollout_percentage": 100}], "custom": 1},
    )
    flag = experiment.feature_flag
    flag.filters = {
        **flag.filters,
        "aggregation_group_type_index": 2,
        "payloads": {"test": '"x"'},
        "groups": [{"properties": [], "rollout_percentage": 70}],
    }
    flag.ensure_experience_continuity = True
    flag.save()
    body = api.get(api.url(f"experiments/{experiment.id}/")).json()
    assert body["parameters"] == {
        "custom": 1,
        "feature_flag_variants": [
            {"key": "control", "rollout_percentage": 50, "split_percent": 50},
            {"key": "test", "rollout_percentage": 50, "split_percent": 50},
        ],
        "rollout_percentage": 70,
        "aggregation_group_type_index": 2,
        "feature_flag_payloads": {"test": '"x"'},
        "ensure_experience_continuity": True,
    }


@pytest.mark.parametrize("stored", ["a string", ["a", "list"], None])
def test_non_dict_stored_parameters_do_not_break_reads(api, stored):
    experiment = ExperimentFactory(project=api.project, parameters=stored)
    response = api.get(api.url(f"experiments/{experiment.id}/"))
    assert response.status_code == 200
    assert response.json()["parameters"]["feature_flag_variants"][1]["key"] == "test"
    assert listed(api)["count"] == 1


def test_dates_are_rendered_in_utc_with_z(api):
    experiment = ExperimentFactory(project=api.project, start_date=datetime(2024, 2, 10, 12, 30, tzinfo=UTC))
    assert api.get(api.url(f"experiments/{experiment.id}/")).json()["start_date"] == "2024-02-10T12:30:00Z"


def test_trailing_slash_is_optional_and_current_project_is_accepted(api):
    experiment = ExperimentFactory(project=api.project)
    assert api.get(f"/api/projects/{api.project.id}/experiments").status_code == 200
    assert api.get(f"/api/projects/{api.project.id}/experiments/{experiment.id}").status_code == 200
    assert api.get(f"/api/projects/@current/experiments/{experiment.id}/").json()["id"] == experiment.id


# --- scopes and tenant isolation -------------------------------------------------------------


def test_read_scope(make_api, api):
    experiment = ExperimentFactory(project=api.project)
    reader = make_api(scopes=["experiment:read"])
    assert reader.get(reader.url("experiments/")).status_code == 200
    assert reader.get(reader.url(f"experiments/{experiment.id}/")).status_code == 200
    flag_reader = make_api(scopes=["feature_flag:read"])
    response = flag_reader.get(flag_reader.url("experiments/"))
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'experiment:read'"


def test_other_projects_experiments_are_not_found(api, other_project):
    foreign = ExperimentFactory(project=other_project, name="Foreign")
    ExperimentFactory(project=api.project, name="Mine")
    assert names(listed(api)) == ["Mine"]
    assert listed(api, f"?feature_flag_id={foreign.feature_flag_id}")["count"] == 0
    assert api.get(api.url(f"experiments/{foreign.id}/")).json() == NOT_FOUND
    assert api.patch(api.url(f"experiments/{foreign.id}/"), {"name": "x"}, format="json").status_code == 404
    for action in (
        "launch",
        "pause",
        "resume",
        "end",
        "ship_variant",
        "reset",
        "archive",
        "unarchive",
        "activity",
    ):
        method = api.get if action == "activity" else api.post
        assert method(api.url(f"experiments/{foreign.id}/{action}/")).status_code == 404, action
    foreign.refresh_from_db()
    assert foreign.name == "Foreign" and foreign.start_date is None


def test_user_access_level(api, make_api):
    member = UserFactory(current_project=api.project)
    MembershipFactory(organization=api.project.organization, user=member)
    member_api = make_api(for_user=member)
    by_owner = ExperimentFactory(project=api.project, created_by=api.user)
    by_member = ExperimentFactory(project=api.project, created_by=member)
    levels = {item["id"]: item["user_access_level"] for item in listed(member_api)["results"]}
    assert levels == {by_owner.id: "editor", by_member.id: "manager"}
    assert {item["user_access_level"] for item in listed(api)["results"]} == {"manager"}


def test_project_scoped_key_cannot_reach_another_project(api, make_api):
    second = ProjectFactory(organization=api.project.organization)
    experiment = ExperimentFactory(project=second)
    scoped = make_api(scoped_teams=[api.project.id])
    response = scoped.get(f"/api/projects/{second.id}/experiments/{experiment.id}/")
    assert response.status_code == 403
    assert (
        response.json()["detail"] == f"API key does not have access to the requested project: ID {second.id}."
    )
    assert make_api().get(f"/api/projects/{second.id}/experiments/{experiment.id}/").status_code == 200


def test_other_projects_url_is_not_found(api, other_project):
    foreign = ExperimentFactory(project=other_project)
    response = api.get(f"/api/projects/{other_project.id}/experiments/{foreign.id}/")
    assert response.status_code == 404
    assert response.json()["detail"] == "Project not found."


# --- query counts ----------------------------------------------------------------------------


def make_rich_experiments(project, count: int) -> None:
    """Experiments using every relation the list renders: creator, flag, holdout, saved metrics."""
    holdout = ExperimentHoldoutFactory(project=project, created_by=UserFactory())
    saved = ExperimentSavedMetricFactory(project=project)
    for index in range(count):
        experiment = ExperimentFactory(
            project=project,
            created_by=UserFactory(),
            holdout=holdout if index % 2 else None,
            start_date=T0 if index % 3 else None,
            feature_flag__active=bool(index % 3),
        )
        ExperimentToSavedMetric.objects.create(experiment=experiment, saved_metric=saved)


def query_count(api, url: str) -> tuple[int, int]:
    """(rows listed, queries used)."""
    with CaptureQueriesContext(connection) as captured:
        response = api.get(url)
    assert response.status_code == 200
    return response.json()["count"], len(captured.captured_queries)


@pytest.mark.parametrize(
    "query", ["", "?status=running&order=created_by", "?order=duration&search=Experiment"]
)
def test_list_query_count_does_not_grow_with_rows(api, django_assert_max_num_queries, query):
    url = api.url(f"experiments/{query}")
    api.get(url)  # the key's first use also records last_used_at
    make_rich_experiments(api.project, 5)
    rows_5, with_5 = query_count(api, url)
    make_rich_experiments(api.project, 45)
    rows_50, with_50 = query_count(api, url)
    assert 0 < rows_5 < rows_50
    assert with_5 == with_50
    # key, project, count, page, saved-metric links
    with django_assert_max_num_queries(5):
        api.get(url)


def test_detail_query_count_is_small(api, django_assert_max_num_queries):
    make_rich_experiments(api.project, 1)
    experiment_id = listed(api)["results"][0]["id"]
    with django_assert_max_num_queries(4):
        assert api.get(api.url(f"experiments/{experiment_id}/")).status_code == 200


def test_an_experiment_whose_creator_was_deleted_shows_no_creator(api):
    creator = UserFactory()
    experiment = ExperimentFactory(project=api.project, created_by=creator)
    creator.delete()
    assert api.get(api.url(f"experiments/{experiment.id}/")).json()["created_by"] is None
    assert [item["created_by"] for item in listed(api)["results"]] == [None]


def test_filter_values_are_taken_as_sent(api, by_status):
    """Surrounding spaces are part of a value, as they were before the filters were a FilterSet:
    a padded flag id or order is refused, a padded status or `archived` is not the one named."""
    ExperimentFactory(project=api.project, name="Archived", start_date=T0, end_date=T0 + DAY, archived=True)
    response = api.get(api.url("experiments/?feature_flag_id=%20"))
    assert response.status_code == 400
    assert response.json() == validation_error("feature_flag_id must be an integer")
    response = api.get(api.url("experiments/?order=%20name"))
    assert response.status_code == 400
    assert response.json() == validation_error("Invalid order field: ' name'")
    assert sorted(names(listed(api, "?status=%20running"))) == ["Draft", "Paused", "Running", "Stopped"]
    assert "Archived" not in names(listed(api, "?archived=true%20"))
