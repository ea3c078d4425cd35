"""Cached list and retrieve answers: validated by the project's data version, so never stale after a
committed write and never another caller's; served with an ETag that `If-None-Match` turns into 304."""

import pytest
from rest_framework.test import APIClient

from accounts.models import OrganizationMembership
from experiments.models import Experiment
from experiments_api.response_cache import process_response_cache
from tests.conftest import keyed_client
from tests.experiments.helpers import create_experiment
from tests.factories import (
    ExperimentSavedMetricFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_response_cache():
    process_response_cache.clear()
    yield
    process_response_cache.clear()


def test_an_unchanged_answer_is_304_to_a_client_holding_its_etag(api):
    experiment = create_experiment(api, name="First")
    first = api.get(api.url(f"experiments/{experiment['id']}/"))
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag.startswith('W/"')

    again = api.get(api.url(f"experiments/{experiment['id']}/"), HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag

    listed = api.get(api.url("experiments/"))
    assert api.get(api.url("experiments/"), HTTP_IF_NONE_MATCH=listed["ETag"]).status_code == 304


def test_a_committed_write_is_never_followed_by_a_stale_read(api):
    experiment = create_experiment(api, name="Before")
    url = api.url(f"experiments/{experiment['id']}/")
    before = api.get(url)
    assert api.get(api.url("experiments/")).json()["results"][0]["name"] == "Before"

    assert api.patch(url, {"name": "After"}, format="json").status_code == 200

    after = api.get(url, HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200
    assert after.json()["name"] == "After"
    assert after["ETag"] != before["ETag"]
    assert api.get(api.url("experiments/")).json()["results"][0]["name"] == "After"
    flag_id = experiment["feature_flag"]["id"]
    assert api.get(api.url(f"feature_flags/{flag_id}/")).json()["experiment_set"] == [experiment["id"]]


def test_changes_outside_the_experiment_row_reach_its_cached_answer(api):
    saved_metric = ExperimentSavedMetricFactory(project=api.project, name="Revenue")
    experiment = create_experiment(api, saved_metrics_ids=[{"id": saved_metric.id}])
    url = api.url(f"experiments/{experiment['id']}/")
    assert api.get(url).json()["saved_metrics"][0]["name"] == "Revenue"

    saved_metric.name = "Revenue per user"
    saved_metric.save()
    assert api.get(url).json()["saved_metrics"][0]["name"] == "Revenue per user"

    api.user.first_name = "Renamed"
    api.user.save()
    assert api.get(url).json()["created_by"]["first_name"] == "Renamed"

    Experiment.objects.filter(pk=experiment["id"]).delete()
    assert api.get(url).status_code == 404


def test_a_cached_answer_is_only_served_to_its_own_caller(api):
    experiment = create_experiment(api, name="Mine")
    url = api.url(f"experiments/{experiment['id']}/")
    assert api.get(url).json()["user_access_level"] == "manager"

    colleague = UserFactory(current_project=api.project)
    MembershipFactory(
        organization=api.project.organization, user=colleague, level=OrganizationMembership.Level.MEMBER
    )
    assert keyed_client(colleague, api.project).get(url).json()["user_access_level"] == "editor"

    stranger = UserFactory()
    elsewhere = ProjectFactory()
    MembershipFactory(organization=elsewhere.organization, user=stranger)
    assert keyed_client(stranger, elsewhere).get(url).status_code == 404
    assert keyed_client(api.user, api.project, scopes=["feature_flag:read"]).get(url).status_code == 403
    assert APIClient().get(url).status_code == 401


def test_a_deleted_key_is_refused_at_once_even_with_a_cached_answer(api, make_api):
    experiment = create_experiment(api)
    other = make_api()
    url = api.url(f"experiments/{experiment['id']}/")
    assert other.get(url).status_code == 200
    other.key.delete()
    assert other.get(url).status_code == 401


def test_a_membership_change_reaches_the_cached_answer(api):
    colleague = UserFactory(current_project=api.project)
    membership = MembershipFactory(
        organization=api.project.organization, user=colleague, level=OrganizationMembership.Level.MEMBER
    )
    client = keyed_client(colleague, api.project)
    url = api.url(f"experiments/{create_experiment(api)['id']}/")
    assert client.get(url).json()["user_access_level"] == "editor"

    membership.level = OrganizationMembership.Level.ADMIN
    membership.save()
    assert client.get(url).json()["user_access_level"] == "manager"

    membership.delete()
    assert client.get(url).status_code == 404


def test_pagination_links_follow_the_host_each_caller_used(api, settings):
    settings.ALLOWED_HOSTS = ["testserver", "experiments.example.com"]
    for index in range(3):
        create_experiment(api, name=f"E{index}", feature_flag_key=f"e-{index}")
    url = api.url("experiments/?limit=1")
    assert api.get(url).json()["next"].startswith("http://testserver/")
    assert (
        api.get(url, HTTP_HOST="experiments.example.com")
        .json()["next"]
        .startswith("http://experiments.example.com/")
    )
