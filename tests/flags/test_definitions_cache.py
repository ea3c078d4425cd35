"""The per-project definitions caches: a committed flag change is never answered from a stale entry,
and the version moves in the same transaction as the change."""

import json

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import FlagDefinitionsVersion
from flags.definitions import CACHE_KEY_FORMAT, flag_definitions_changed, forget_process_definitions
from flags.models import FeatureFlag
from tests.factories import CohortFactory, FeatureFlagFactory

pytestmark = pytest.mark.django_db


def variant(project, distinct_id="user_1"):
    body = json.dumps({"api_key": project.api_token, "distinct_id": distinct_id})
    flags = Client().post("/flags/?v=2", body, content_type="application/json").json()["flags"]
    return flags["exp-flag"]["variant"] if "exp-flag" in flags else None


def version(project) -> int:
    row = FlagDefinitionsVersion.objects.filter(project=project).first()
    return row.version if row else 0


def test_a_saved_flag_is_answered_fresh(project):
    flag = FeatureFlagFactory(project=project, key="exp-flag")
    assert variant(project) == "test"
    flag.filters = {
        **flag.filters,
        "multivariate": {"variants": [{"key": "only", "rollout_percentage": 100}]},
    }
    flag.save()
    assert variant(project) == "only"
    flag.delete()
    assert variant(project) is None


def test_the_version_moves_with_the_write_and_rolls_back_with_it(project):
    flag = FeatureFlagFactory(project=project, key="exp-flag")
    assert version(project) == 1

    with transaction.atomic():
        flag.active = False
        flag.save()
        assert version(project) == 2
        transaction.set_rollback(True)
    assert version(project) == 1

    with transaction.atomic():
        CohortFactory(project=project)
    assert version(project) == 2


def test_a_failing_version_bump_rolls_the_flag_change_back(api):
    flag = FeatureFlagFactory(project=api.project, key="exp-flag", active=True)
    frozen_at = version(api.project)
    table = FlagDefinitionsVersion._meta.db_table
    with connection.cursor() as cursor:
        # Any failure of the bump (here: a trigger refusing it) must abort the whole write.
        cursor.execute(
            "CREATE FUNCTION pg_temp.refuse_bump() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'bump refused by the test'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER refuse_bump BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse_bump()"
        )
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api.secret}")

    response = client.patch(api.url(f"feature_flags/{flag.id}/"), {"active": False}, format="json")

    assert response.status_code >= 500
    flag.refresh_from_db()
    assert flag.active is True
    assert flag.version == 1
    assert version(api.project) == frozen_at


def test_bulk_updates_announce_themselves(project):
    FeatureFlagFactory(project=project, key="exp-flag")
    assert variant(project) == "test"
    FeatureFlag.objects.filter(project=project).update(active=False)
    assert variant(project) == "test"  # no signal: stale until announced
    flag_definitions_changed(project.id)
    assert variant(project) is None


def test_other_projects_are_unaffected(project, other_project):
    FeatureFlagFactory(project=project, key="exp-flag")
    FeatureFlagFactory(project=other_project, key="exp-flag")
    assert version(project) == 1
    assert version(other_project) == 1


def test_a_process_that_sees_a_new_version_rebuilds_from_the_shared_body(project, django_assert_num_queries):
    FeatureFlagFactory(project=project, key="exp-flag")
    assert variant(project) == "test"
    assert cache.get(CACHE_KEY_FORMAT.format(project_id=project.id, version=version(project))) is not None
    forget_process_definitions()  # as another worker would be
    with django_assert_num_queries(1):  # the token and version; the body comes from the shared cache
        assert variant(project) == "test"
    with django_assert_num_queries(1):  # and then from the process itself
        assert variant(project) == "test"


def test_the_shared_cache_is_not_trusted_for_another_version(project):
    flag = FeatureFlagFactory(project=project, key="exp-flag")
    assert variant(project) == "test"
    cache.delete(CACHE_KEY_FORMAT.format(project_id=project.id, version=version(project)))
    flag.active = False
    flag.save()
    forget_process_definitions()
    assert variant(project) is None
