"""The per-project definitions cache: a committed flag change is never answered from a stale entry."""

import json

import pytest
from django.db import transaction
from django.test import Client

from accounts.models import FlagDefinitionsVersion
from flags.definitions import flag_definitions_changed
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


def test_a_saved_flag_is_answered_fresh(project, django_capture_on_commit_callbacks):
    flag = FeatureFlagFactory(project=project, key="exp-flag")
    assert variant(project) == "test"
    with django_capture_on_commit_callbacks(execute=True):
        flag.filters = {
            **flag.filters,
            "multivariate": {"variants": [{"key": "only", "rollout_percentage": 100}]},
        }
        flag.save()
    assert variant(project) == "only"
    with django_capture_on_commit_callbacks(execute=True):
        flag.delete()
    assert variant(project) is None


def test_the_version_moves_only_when_the_write_commits(project, django_capture_on_commit_callbacks):
    flag = FeatureFlagFactory(project=project, key="exp-flag")
    with django_capture_on_commit_callbacks() as callbacks:
        flag.active = False
        flag.save()
        assert version(project) == 0  # nothing visible before the commit
    for callback in callbacks:
        callback()
    assert version(project) == 1

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        CohortFactory(project=project)
    assert version(project) == 2


def test_bulk_updates_announce_themselves(project, django_capture_on_commit_callbacks):
    FeatureFlagFactory(project=project, key="exp-flag")
    assert variant(project) == "test"
    FeatureFlag.objects.filter(project=project).update(active=False)
    assert variant(project) == "test"  # no signal: stale until announced
    with django_capture_on_commit_callbacks(execute=True):
        flag_definitions_changed(project.id)
    assert variant(project) is None


def test_other_projects_are_unaffected(project, other_project, django_capture_on_commit_callbacks):
    FeatureFlagFactory(project=project, key="exp-flag")
    with django_capture_on_commit_callbacks(execute=True):
        FeatureFlagFactory(project=other_project, key="exp-flag")
    assert version(project) == 0
    assert version(other_project) == 1
