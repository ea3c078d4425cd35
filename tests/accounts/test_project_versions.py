"""`atomic_moving_versions_once`: a write of several rows of a project moves its counters once, at
the end of its transaction, and not at all when it fails."""

import pytest

from accounts.models import FlagDefinitionsVersion
from accounts.versions import atomic_moving_versions_once, project_data_changed
from flags.models import FeatureFlag
from tests.factories import ExperimentSavedMetricFactory, FeatureFlagFactory

pytestmark = pytest.mark.django_db


def counters(project) -> tuple[int, int]:
    """The project's flag definitions version and data version."""
    row = FlagDefinitionsVersion.objects.filter(project=project).first()
    return (row.version, row.data_version) if row is not None else (0, 0)


def test_several_rows_move_each_counter_once_when_the_block_ends(project):
    FeatureFlagFactory(project=project)
    version, data_version = counters(project)
    with atomic_moving_versions_once():
        flag = FeatureFlagFactory(project=project)
        flag.active = False
        flag.save()
        ExperimentSavedMetricFactory(project=project)
        project_data_changed(project.id)
        assert counters(project) == (version, data_version)
    assert counters(project) == (version + 1, data_version + 1)


def test_rows_sdks_do_not_receive_leave_the_definitions_version(project):
    FeatureFlagFactory(project=project)
    version, data_version = counters(project)
    with atomic_moving_versions_once():
        ExperimentSavedMetricFactory(project=project)
        ExperimentSavedMetricFactory(project=project)
    assert counters(project) == (version, data_version + 1)


def test_a_block_that_raises_writes_and_moves_nothing(project):
    FeatureFlagFactory(project=project)
    before = counters(project)
    with pytest.raises(RuntimeError), atomic_moving_versions_once():
        FeatureFlagFactory(project=project, key="rolled-back")
        raise RuntimeError("the write fails")
    assert counters(project) == before
    assert not FeatureFlag.objects.filter(key="rolled-back").exists()


def test_a_nested_block_moves_the_counters_with_the_outer_one(project):
    FeatureFlagFactory(project=project)
    version, data_version = counters(project)
    with atomic_moving_versions_once():
        with atomic_moving_versions_once():
            FeatureFlagFactory(project=project)
        assert counters(project) == (version, data_version)
        FeatureFlagFactory(project=project)
    assert counters(project) == (version + 1, data_version + 1)


def test_each_project_moves_once(project, other_project):
    FeatureFlagFactory(project=project)
    FeatureFlagFactory(project=other_project)
    before, other_before = counters(project), counters(other_project)
    with atomic_moving_versions_once():
        FeatureFlagFactory(project=other_project)
        FeatureFlagFactory(project=project)
        FeatureFlagFactory(project=other_project)
    assert counters(project) == (before[0] + 1, before[1] + 1)
    assert counters(other_project) == (other_before[0] + 1, other_before[1] + 1)


def test_a_project_without_counters_gets_them(project):
    assert counters(project) == (0, 0)
    with atomic_moving_versions_once():
        FeatureFlagFactory(project=project)
    assert counters(project) == (1, 1)
