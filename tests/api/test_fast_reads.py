"""Cached lists and retrieves answered before DRF's dispatch (accounts/fast_reads.py): the same
answer DRF gives, after the same checks, for one small query."""

from unittest import mock

import pytest
from django.core.cache import cache
from rest_framework.views import APIView

from accounts.models import OrganizationMembership
from experiments_api.response_cache import process_response_cache
from tests.experiments.helpers import create_experiment

pytestmark = pytest.mark.django_db

COMPARED_HEADERS = ("Content-Type", "ETag", "Cache-Control", "Allow", "Vary")


@pytest.fixture(autouse=True)
def empty_response_cache():
    process_response_cache.clear()
    yield
    process_response_cache.clear()


@pytest.fixture
def urls(api):
    experiment = create_experiment(api, name="Cached")
    return [
        api.url(f"experiments/{experiment['id']}/"),
        api.url("experiments/?limit=10"),
        api.url(f"feature_flags/{experiment['feature_flag']['id']}/"),
        f"/api/environments/{api.project.id}/experiments/",
    ]


def test_a_cached_answer_is_the_one_drf_built(api, urls, django_assert_num_queries):
    for url in urls:
        built = api.get(url)  # by DRF, and cached
        assert built.status_code == 200
        with (
            django_assert_num_queries(1),  # the identity and data versions
            mock.patch.object(APIView, "dispatch", side_effect=AssertionError("answered by DRF")),
        ):
            cached = api.get(url)
        assert cached.status_code == 200
        assert cached.content == built.content
        for header in COMPARED_HEADERS:
            assert cached[header] == built[header], (url, header)


def test_a_client_holding_the_etag_gets_304_with_the_view_headers(api, urls):
    built = api.get(urls[0])
    again = api.get(urls[0], HTTP_IF_NONE_MATCH=built["ETag"])
    assert again.status_code == 304
    assert again["ETag"] == built["ETag"] and again["Allow"] == built["Allow"]


def test_another_key_of_the_same_user_is_checked_for_its_own_scopes(api, urls, make_api):
    for url in urls:
        assert api.get(url).status_code == 200
    narrow = make_api(scopes=["feature_flag:read"])
    assert narrow.get(urls[0]).status_code == 403
    assert narrow.get(urls[1]).status_code == 403
    assert narrow.get(urls[2]).status_code == 200


def test_a_key_scoped_to_another_project_is_refused_the_cached_answer(api, urls, make_api, other_project):
    assert api.get(urls[0]).status_code == 200
    elsewhere = make_api(scoped_teams=[other_project.id])
    refused = elsewhere.get(urls[0])
    assert refused.status_code == 403
    assert (
        refused.json()["detail"]
        == f"API key does not have access to the requested project: ID {api.project.id}."
    )


def test_a_removed_membership_is_not_found_though_the_answer_is_cached(api, urls):
    assert api.get(urls[0]).status_code == 200
    OrganizationMembership.objects.filter(user=api.user).delete()
    assert api.get(urls[0]).status_code == 404


def test_cached_answers_count_against_the_rate_limit(api, urls, settings):
    settings.RATE_LIMIT_ENABLED = True
    settings.THROTTLE_BURST_RATE = "2/minute"
    cache.clear()  # the counters start empty: creating the experiment counted
    assert [api.get(urls[0]).status_code for _ in range(2)] == [200, 200]
    refused = api.get(urls[0])
    assert refused.status_code == 429
    assert refused.json()["type"] == "throttled_error"
    assert refused["Allow"] and 0 < int(refused["Retry-After"]) <= 60


def test_the_browsable_api_is_still_built_by_drf(api, urls):
    assert api.get(urls[0]).status_code == 200
    page = api.get(urls[0], HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
