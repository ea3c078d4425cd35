import pytest

from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_limit_offset_pagination_shape(api):
    for _ in range(4):
        ProjectFactory(organization=api.project.organization)
    first = api.get("/api/projects/?limit=2").json()
    assert first["count"] == 5
    assert len(first["results"]) == 2
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/projects/?limit=2&offset=2"

    last = api.get("/api/projects/?limit=2&offset=4").json()
    assert len(last["results"]) == 1
    assert last["next"] is None
    assert last["previous"] == "http://testserver/api/projects/?limit=2&offset=2"


def test_default_page_is_100_and_limit_is_capped_at_1000(api):
    from experiments_api.pagination import LimitOffsetPagination

    assert LimitOffsetPagination.default_limit == 100
    assert LimitOffsetPagination.max_limit == 1000
    response = api.get("/api/projects/?limit=5000")
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_a_large_list_is_counted_once_per_data_version_and_shared_by_its_pages(
    api, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr("experiments_api.pagination.EXACT_COUNT_LIMIT", 3)
    monkeypatch.setattr("experiments_api.response_cache.process_response_cache.get", lambda key: None)
    for index in range(5):
        api.post(
            api.url("experiments/"), {"name": f"E{index}", "feature_flag_key": f"e-{index}"}, format="json"
        )

    first_page = api.get(api.url("experiments/?limit=2"))
    assert first_page.json()["count"] == 5
    with django_assert_num_queries(4):  # identity, capped count, page, its links: no full count
        second_page = api.get(api.url("experiments/?limit=2&offset=2"))
    assert second_page.json()["count"] == 5
    assert api.get(api.url("experiments/?limit=2&search=E1")).json()["count"] == 1

    api.post(api.url("experiments/"), {"name": "E5", "feature_flag_key": "e-5"}, format="json")
    assert api.get(api.url("experiments/?limit=2&offset=2")).json()["count"] == 6
