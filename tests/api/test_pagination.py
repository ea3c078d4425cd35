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
