"""/feature_flags/: list, create, retrieve, update, soft delete, experiment_set, versions, optimistic
concurrency, scopes, tenant isolation and activity."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from activity.models import ActivityLog
from experiments.models import Experiment
from flags.models import FeatureFlag
from flags.validation import FLAG_KEY_INVALID, FLAG_KEY_TAKEN
from flags.views import FLAG_CANNOT_BE_CREATED_DELETED
from tests.experiments.helpers import NOT_FOUND, create_experiment, validation_error
from tests.factories import (
    ExperimentFactory,
    FeatureFlagFactory,
    MembershipFactory,
    UserFactory,
    multivariate_filters,
)

pytestmark = pytest.mark.django_db

BOOLEAN_50 = {"groups": [{"properties": [], "rollout_percentage": 50}]}


def url(api, suffix: str = "") -> str:
    return api.url(f"feature_flags/{suffix}")


def create(api, **body) -> dict:
    body.setdefault("filters", BOOLEAN_50)
    response = api.post(url(api), body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def patch(api, flag_id: int, body: dict):
    return api.patch(url(api, f"{flag_id}/"), body, format="json")


# --- create ----------------------------------------------------------------------------------


def test_create(api):
    body = create(api, key="beta-feature", name="Beta feature")
    assert set(body) == {
        "id",
        "name",
        "key",
        "filters",
        "deleted",
        "active",
        "created_by",
        "created_at",
        "updated_at",
        "version",
        "last_modified_by",
        "ensure_experience_continuity",
        "experiment_set",
        "is_simple_flag",
        "rollout_percentage",
        "can_edit",
        "user_access_level",
        "is_remote_configuration",
        "has_encrypted_payloads",
        "status",
        "evaluation_runtime",
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
    }
    assert body["key"] == "beta-feature"
    assert body["active"] is True
    assert body["deleted"] is False
    assert body["version"] == 1
    assert body["filters"] == BOOLEAN_50
    assert body["is_simple_flag"] is True
    assert body["rollout_percentage"] == 50
    assert body["experiment_set"] == []
    assert body["status"] == "ACTIVE"
    assert body["created_by"]["id"] == api.user.id
    flag = FeatureFlag.objects.get(pk=body["id"])
    assert (flag.project, flag.key, flag.created_by, flag.creation_context) == (
        api.project,
        "beta-feature",
        api.user,
        "feature_flags",
    )
    entry = ActivityLog.objects.get(scope="FeatureFlag", item_id=str(flag.id))
    assert (entry.activity, entry.user, entry.detail["name"]) == ("created", api.user, "beta-feature")


def test_create_with_default_filters(api):
    response = api.post(url(api), {"key": "no-filters"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["filters"] == {"groups": [{"properties": [], "rollout_percentage": 0}]}
    assert FeatureFlag.objects.get(key="no-filters").filters == {
        "groups": [{"properties": [], "rollout_percentage": 0}]
    }


def test_create_multivariate(api):
    filters = {**multivariate_filters([("control", 34), ("a", 33), ("b", 33)]), "payloads": {"a": {"x": 1}}}
    body = create(api, key="mv", filters=filters)
    assert body["is_simple_flag"] is False
    assert body["rollout_percentage"] is None
    assert body["filters"]["payloads"] == {"a": '{"x": 1}'}
    assert FeatureFlag.objects.get(key="mv").variant_keys == ["control", "a", "b"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"key": "bad key"}, validation_error(FLAG_KEY_INVALID, "key", "invalid_key")),
        ({"key": "bad:key"}, validation_error(FLAG_KEY_INVALID, "key", "invalid_key")),
        ({"key": ""}, validation_error("This field may not be blank.", "key", "blank")),
        ({}, validation_error("This field is required.", "key", "required")),
        (
            {"key": "k" * 401},
            validation_error("Ensure this field has no more than 400 characters.", "key", "max_length"),
        ),
        (
            {"key": "ok", "filters": "x"},
            validation_error('Expected a dictionary of items but got type "str".', "filters", "not_a_dict"),
        ),
        ({"key": "ok", "active": "maybe"}, validation_error("Must be a valid boolean.", "active", "invalid")),
        ({"key": "ok", "deleted": True}, validation_error(FLAG_CANNOT_BE_CREATED_DELETED, "deleted")),
    ],
)
def test_create_validation(api, body, expected):
    if expected["code"] == "invalid":
        expected = {**expected, "code": "invalid_input"}
    response = api.post(url(api), body, format="json")
    assert response.status_code == 400
    assert response.json() == expected
    assert not FeatureFlag.objects.exists()


def test_duplicate_key(api):
    FeatureFlagFactory(project=api.project, key="taken")
    response = api.post(url(api), {"key": "taken", "filters": BOOLEAN_50}, format="json")
    assert response.status_code == 400
    assert response.json() == validation_error(FLAG_KEY_TAKEN, "key", "unique")
    assert FeatureFlag.objects.filter(key="taken").count() == 1


def test_same_key_in_another_project_is_fine(api, other_project):
    FeatureFlagFactory(project=other_project, key="shared-key")
    create(api, key="shared-key")


def test_create_over_a_soft_deleted_key_replaces_the_old_row(api):
    old = FeatureFlagFactory(project=api.project, key="reused", deleted=True)
    body = create(api, key="reused")
    assert body["id"] != old.id
    assert not FeatureFlag.objects.filter(pk=old.id).exists()


def test_create_over_a_deleted_key_still_used_by_an_experiment(api):
    old = FeatureFlagFactory(project=api.project, key="held", deleted=True)
    ExperimentFactory(project=api.project, feature_flag=old, deleted=True)
    response = api.post(url(api), {"key": "held", "filters": BOOLEAN_50}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Feature flag with this key already exists and is used in an experiment. "
        "Please delete the experiment before deleting the flag."
    )
    assert FeatureFlag.objects.filter(key="held").count() == 1


# --- list and retrieve -----------------------------------------------------------------------


def test_list(api, other_project):
    FeatureFlagFactory(project=api.project, key="alpha", name="First")
    FeatureFlagFactory(project=api.project, key="beta", name="Search me", active=False)
    FeatureFlagFactory(project=api.project, key="deleted-one", deleted=True)
    FeatureFlagFactory(project=other_project, key="foreign")

    def keys(query: str = "") -> list[str]:
        response = api.get(url(api, query))
        assert response.status_code == 200
        return [item["key"] for item in response.json()["results"]]

    assert keys() == ["beta", "alpha"]
    assert keys("?search=ALP") == ["alpha"]
    assert keys("?search=search") == ["beta"]
    assert keys("?active=true") == ["alpha"]
    assert keys("?active=false") == ["beta"]
    assert keys("?active=whatever") == ["beta", "alpha"]
    page = api.get(url(api, "?limit=1&offset=1")).json()
    assert page["count"] == 2
    assert [item["key"] for item in page["results"]] == ["alpha"]
    assert page["next"] is None and page["previous"] is not None


def test_retrieve(api, other_project):
    flag = FeatureFlagFactory(project=api.project)
    assert api.get(url(api, f"{flag.id}/")).json()["key"] == flag.key
    deleted = FeatureFlagFactory(project=api.project, deleted=True)
    body = api.get(url(api, f"{deleted.id}/")).json()
    assert (body["deleted"], body["status"]) == (True, "DELETED")
    foreign = FeatureFlagFactory(project=other_project)
    assert api.get(url(api, f"{foreign.id}/")).json() == NOT_FOUND
    assert api.get(url(api, "999999/")).status_code == 404


def test_experiment_set(api):
    flag = FeatureFlagFactory(project=api.project)
    first = ExperimentFactory(project=api.project, feature_flag=flag)
    second = ExperimentFactory(project=api.project, feature_flag=flag)
    ExperimentFactory(project=api.project, feature_flag=flag, deleted=True)
    assert api.get(url(api, f"{flag.id}/")).json()["experiment_set"] == [first.id, second.id]
    listed = api.get(url(api)).json()["results"]
    assert listed[0]["experiment_set"] == [first.id, second.id]


def test_list_query_count_does_not_grow_with_rows(api, django_assert_max_num_queries):
    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(url(api)).status_code == 200
        return len(captured.captured_queries)

    def make(n: int) -> None:
        for _ in range(n):
            flag = FeatureFlagFactory(
                project=api.project, created_by=UserFactory(), last_modified_by=UserFactory()
            )
            ExperimentFactory(project=api.project, feature_flag=flag)

    api.get(url(api))  # the key's first use also records last_used_at
    make(5)
    with_5 = count()
    make(45)
    with_50 = count()
    assert api.get(url(api)).json()["count"] == 50
    assert with_5 == with_50
    # key, project, count, page, experiment_set
    with django_assert_max_num_queries(5):
        api.get(url(api))


# --- update ----------------------------------------------------------------------------------


def test_patch_bumps_version_and_logs(api):
    flag = create(api, key="editable", name="Before")
    response = patch(
        api,
        flag["id"],
        {"name": "After", "filters": {"groups": [{"properties": [], "rollout_percentage": 75}]}},
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["version"] == 2
    assert body["name"] == "After"
    assert body["last_modified_by"]["id"] == api.user.id
    stored = FeatureFlag.objects.get(pk=flag["id"])
    assert (stored.version, stored.filters["groups"][0]["rollout_percentage"]) == (2, 75)
    entry = ActivityLog.objects.get(scope="FeatureFlag", item_id=str(flag["id"]), activity="updated")
    assert {change["field"]: (change["before"], change["after"]) for change in entry.detail["changes"]} == {
        "name": ("Before", "After"),
        "filters": (BOOLEAN_50, {"groups": [{"properties": [], "rollout_percentage": 75}]}),
    }


def test_no_op_patch_keeps_the_version_and_logs_nothing(api):
    flag = create(api, key="same", name="Same")
    count = ActivityLog.objects.count()
    response = patch(api, flag["id"], {"name": "Same", "filters": BOOLEAN_50, "active": True})
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert ActivityLog.objects.count() == count


def test_patch_filters_without_groups_keeps_the_release_conditions(api):
    flag = create(api, key="keep-groups", filters={**multivariate_filters(rollout=30)})
    response = patch(
        api,
        flag["id"],
        {"filters": {"multivariate": multivariate_filters([("control", 10), ("test", 90)])["multivariate"]}},
    )
    assert response.status_code == 200, response.json()
    stored = FeatureFlag.objects.get(pk=flag["id"])
    assert stored.filters["groups"] == [{"properties": [], "rollout_percentage": 30}]
    assert [v["rollout_percentage"] for v in stored.variants] == [10, 90]


def test_patch_key(api):
    FeatureFlagFactory(project=api.project, key="other")
    flag = create(api, key="mine")
    response = patch(api, flag["id"], {"key": "other"})
    assert response.status_code == 400
    assert response.json() == validation_error(FLAG_KEY_TAKEN, "key", "unique")
    assert FeatureFlag.objects.get(pk=flag["id"]).key == "mine"
    response = patch(api, flag["id"], {"key": "renamed"})
    assert response.status_code == 200
    assert FeatureFlag.objects.get(pk=flag["id"]).key == "renamed"


def test_put(api):
    flag = create(api, key="put-me", name="x")
    response = api.put(
        url(api, f"{flag['id']}/"), {"key": "put-me", "name": "y", "filters": BOOLEAN_50}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "y"
    response = api.put(url(api, f"{flag['id']}/"), {"name": "z"}, format="json")
    assert response.json() == validation_error("This field is required.", "key", "required")


def test_read_only_fields_may_be_echoed(api):
    flag = create(api, key="echo")
    read = api.get(url(api, f"{flag['id']}/")).json()
    response = patch(api, flag["id"], read)
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 1


def test_editing_an_experiments_flag_is_visible_on_the_experiment(api):
    experiment = create_experiment(api)
    flag_id = experiment["feature_flag"]["id"]
    new = multivariate_filters([("control", 20), ("test", 80)], rollout=60)
    assert patch(api, flag_id, {"filters": new, "active": True}).status_code == 200
    body = api.get(api.url(f"experiments/{experiment['id']}/")).json()
    assert [v["split_percent"] for v in body["parameters"]["feature_flag_variants"]] == [20, 80]
    assert body["parameters"]["rollout_percentage"] == 60
    assert body["status"] == "draft"
    assert body["feature_flag"]["active"] is True


# --- optimistic concurrency ------------------------------------------------------------------


@pytest.fixture
def second_api(make_api, project):
    member = UserFactory(current_project=project, email="second@example.com")
    MembershipFactory(organization=project.organization, user=member)
    return make_api(for_user=member)


def test_conflicting_concurrent_edit_is_409(api, second_api):
    flag = create(api, key="contended", name="Original")
    original = api.get(url(api, f"{flag['id']}/")).json()
    assert (
        patch(
            second_api, flag["id"], {"filters": {"groups": [{"properties": [], "rollout_percentage": 10}]}}
        ).status_code
        == 200
    )

    response = patch(
        api,
        flag["id"],
        {
            "filters": {"groups": [{"properties": [], "rollout_percentage": 90}]},
            "version": original["version"],
            "original_flag": original,
        },
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "conflict"
    assert body["detail"] == (
        "The feature flag was updated by second@example.com since you started editing it. Please refresh and try again."
    )
    stored = FeatureFlag.objects.get(pk=flag["id"])
    assert (stored.version, stored.filters["groups"][0]["rollout_percentage"]) == (2, 10)


def test_stale_edit_of_another_field_is_merged(api, second_api):
    flag = create(api, key="merge-me", name="Original")
    original = api.get(url(api, f"{flag['id']}/")).json()
    patch(second_api, flag["id"], {"filters": {"groups": [{"properties": [], "rollout_percentage": 10}]}})
    response = patch(
        api, flag["id"], {"name": "Mine", "version": original["version"], "original_flag": original}
    )
    assert response.status_code == 200, response.json()
    stored = FeatureFlag.objects.get(pk=flag["id"])
    assert (stored.name, stored.filters["groups"][0]["rollout_percentage"], stored.version) == ("Mine", 10, 3)


def test_current_version_is_not_a_conflict(api):
    flag = create(api, key="fresh")
    original = api.get(url(api, f"{flag['id']}/")).json()
    response = patch(
        api, flag["id"], {"name": "x", "version": original["version"], "original_flag": original}
    )
    assert response.status_code == 200
    assert response.json()["version"] == 2


# --- delete and soft delete ------------------------------------------------------------------


def test_delete_is_405_with_an_empty_body(api):
    flag = create(api, key="keep")
    response = api.delete(url(api, f"{flag['id']}/"))
    assert response.status_code == 405
    assert response.content == b""
    assert FeatureFlag.objects.filter(pk=flag["id"], deleted=False).exists()


def test_soft_delete_and_restore(api):
    flag = create(api, key="soft")
    response = patch(api, flag["id"], {"deleted": True})
    assert response.status_code == 200
    assert response.json()["deleted"] is True
    stored = FeatureFlag.objects.get(pk=flag["id"])
    assert (stored.deleted, stored.key, stored.version) == (True, "soft", 2)
    assert api.get(url(api)).json()["count"] == 0
    assert (
        ActivityLog.objects.filter(scope="FeatureFlag", item_id=str(flag["id"]), activity="deleted").count()
        == 1
    )

    response = patch(api, flag["id"], {"deleted": False})
    assert response.status_code == 200
    assert FeatureFlag.objects.get(pk=flag["id"]).deleted is False
    assert (
        ActivityLog.objects.filter(scope="FeatureFlag", item_id=str(flag["id"]), activity="restored").count()
        == 1
    )


def test_restore_is_refused_when_the_key_was_reused(api):
    flag = create(api, key="reborn")
    patch(api, flag["id"], {"deleted": True})
    FeatureFlagFactory(project=api.project, key="reborn")
    response = patch(api, flag["id"], {"deleted": False})
    assert response.status_code == 400
    assert response.json()["detail"] == FLAG_KEY_TAKEN
    assert FeatureFlag.objects.get(pk=flag["id"]).deleted is True


@pytest.mark.parametrize("experiment_state", ["draft", "running", "stopped"])
def test_soft_delete_is_refused_while_a_live_experiment_uses_the_flag(api, experiment_state):
    dates = {
        "draft": {},
        "running": {"start_date": "2024-01-01T00:00:00Z"},
        "stopped": {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-02-01T00:00:00Z"},
    }[experiment_state]
    experiment = create_experiment(api, **dates)
    other = create_experiment(api, feature_flag_key=experiment["feature_flag_key"])
    flag_id = experiment["feature_flag"]["id"]
    version = FeatureFlag.objects.get(pk=flag_id).version
    response = patch(api, flag_id, {"deleted": True})
    assert response.status_code == 400
    assert response.json() == validation_error(
        f"Cannot delete a feature flag that is linked to active experiment(s) with ID(s): "
        f"{experiment['id']}, {other['id']}. Please delete the experiment(s) before deleting the flag."
    )
    stored = FeatureFlag.objects.get(pk=flag_id)
    assert (stored.deleted, stored.version) == (False, version)


def test_soft_delete_renames_a_flag_only_deleted_experiments_use(api):
    experiment = create_experiment(api, feature_flag_key="tombstone")
    flag_id = experiment["feature_flag"]["id"]
    assert (
        api.patch(api.url(f"experiments/{experiment['id']}/"), {"deleted": True}, format="json").status_code
        == 200
    )

    response = patch(api, flag_id, {"deleted": True})
    assert response.status_code == 200, response.json()
    stored = FeatureFlag.objects.get(pk=flag_id)
    assert (stored.deleted, stored.key) == (True, f"tombstone:deleted:{flag_id}")
    assert response.json()["key"] == f"tombstone:deleted:{flag_id}"

    # The key is free again, and the deleted experiment still shows its original key.
    new_flag = create(api, key="tombstone")
    assert new_flag["id"] != flag_id
    assert FeatureFlag.objects.filter(pk=flag_id).exists()
    response = api.patch(api.url(f"experiments/{experiment['id']}/"), {"deleted": False}, format="json")
    assert response.status_code == 400  # restore needs the flag restored first


def test_soft_delete_is_refused_while_another_flag_depends_on_it(api):
    base = create(api, key="base")
    dependant = create(
        api,
        key="dependant",
        filters={
            "groups": [
                {
                    "properties": [
                        {
                            "key": str(base["id"]),
                            "type": "flag",
                            "value": "true",
                            "operator": "flag_evaluates_to",
                        }
                    ],
                    "rollout_percentage": 100,
                }
            ]
        },
    )
    response = patch(api, base["id"], {"deleted": True})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"Cannot delete this feature flag because other flags depend on it: dependant (ID: {dependant['id']}). "
        "Please update or delete the dependent flags first."
    )
    response = patch(api, base["id"], {"active": False})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        "Cannot disable this feature flag because other flags depend on it"
    )
    assert FeatureFlag.objects.get(pk=base["id"]).active is True


# --- scopes, tenancy, activity endpoint ------------------------------------------------------


def test_scopes(make_api, project):
    flag = FeatureFlagFactory(project=project)
    reader = make_api(scopes=["feature_flag:read"])
    assert reader.get(url(reader)).status_code == 200
    assert reader.get(url(reader, f"{flag.id}/")).status_code == 200
    for response in (
        reader.post(url(reader), {"key": "new", "filters": BOOLEAN_50}, format="json"),
        reader.patch(url(reader, f"{flag.id}/"), {"name": "x"}, format="json"),
    ):
        assert response.status_code == 403
        assert response.json()["detail"] == "API key missing required scope 'feature_flag:write'"
    experiment_writer = make_api(scopes=["experiment:write"])
    response = experiment_writer.get(url(experiment_writer))
    assert response.json()["detail"] == "API key missing required scope 'feature_flag:read'"
    writer = make_api(scopes=["feature_flag:write"])
    assert writer.patch(url(writer, f"{flag.id}/"), {"name": "x"}, format="json").status_code == 200
    assert FeatureFlag.objects.get(pk=flag.id).name == "x"
    assert not FeatureFlag.objects.filter(key="new").exists()


def test_other_projects_flags_cannot_be_changed(api, other_project):
    foreign = FeatureFlagFactory(project=other_project, name="Theirs")
    assert patch(api, foreign.id, {"name": "Mine"}).status_code == 404
    assert patch(api, foreign.id, {"deleted": True}).status_code == 404
    foreign.refresh_from_db()
    assert (foreign.name, foreign.deleted) == ("Theirs", False)


def test_flag_activity_endpoint(make_api, api):
    flag = create(api, key="audited")
    patch(api, flag["id"], {"name": "renamed"})
    response = api.get(url(api, f"{flag['id']}/activity/"))
    assert response.status_code == 200
    assert [item["activity"] for item in response.json()["results"]] == ["updated", "created"]
    assert response.json()["total_count"] == 2
    flags_only = make_api(scopes=["feature_flag:write"])
    response = flags_only.get(url(flags_only, f"{flag['id']}/activity/"))
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'activity_log:read'"
    both = make_api(scopes=["feature_flag:read", "activity_log:read"])
    assert both.get(url(both, f"{flag['id']}/activity/")).status_code == 200


def test_a_filters_patch_without_groups_changes_only_what_it_sends(api):
    from tests.factories import FeatureFlagFactory, multivariate_filters

    flag = FeatureFlagFactory(
        project=api.project, filters=multivariate_filters([("control", 50), ("test", 50)], rollout=40)
    )
    response = api.patch(
        api.url(f"feature_flags/{flag.id}/"),
        {"filters": {"payloads": {"test": {"color": "blue"}}}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    filters = response.json()["filters"]
    assert filters["payloads"] == {"test": '{"color": "blue"}'}
    assert filters["groups"] == [{"properties": [], "rollout_percentage": 40}]
    assert [variant["key"] for variant in filters["multivariate"]["variants"]] == ["control", "test"]


def test_restoring_a_renamed_flag_gives_its_key_back(api):
    experiment = ExperimentFactory(project=api.project)
    flag = experiment.feature_flag
    original_key = flag.key
    Experiment.objects.filter(pk=experiment.pk).update(deleted=True)
    deleted = api.patch(api.url(f"feature_flags/{flag.id}/"), {"deleted": True}, format="json").json()
    assert deleted["key"] == f"{original_key}:deleted:{flag.id}"
    restored = api.patch(api.url(f"feature_flags/{flag.id}/"), {"deleted": False}, format="json")
    assert restored.status_code == 200
    assert restored.json()["key"] == original_key


@pytest.mark.parametrize("operator", ["nonsense", ["exact"], 5])
def test_unknown_property_operators_are_refused(api, operator):
    response = api.post(
        api.url("feature_flags/"),
        {
            "key": "op-flag",
            "filters": {
                "groups": [
                    {"properties": [{"key": "plan", "value": "pro", "type": "person", "operator": operator}]}
                ]
            },
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Filters are not valid (unknown property operator")
