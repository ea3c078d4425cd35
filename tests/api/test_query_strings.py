"""Query strings refused before any view runs, also by views that never read them: a NUL character
in a name or value (raw or `%00`), and more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS."""

import pytest
from django.test import Client

from experiments_api.middleware import NUL_IN_QUERY

BAD_REQUEST = {"type": "invalid_request", "code": "bad_request", "detail": "Bad request.", "attr": None}


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.mark.parametrize("query", ["probe=a%00b", "pro%00be=1", "probe=1&probe=%00"])
def test_a_nul_in_the_query_is_refused(client, query):
    response = client.get(f"/_liveness?{query}")
    assert response.status_code == 400
    assert response.json()["detail"] == NUL_IN_QUERY


def test_too_many_query_fields_are_refused(client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = [f"field{index}=1" for index in range(11)]
    refused = client.get("/_liveness?" + "&".join(fields))
    assert refused.status_code == 400
    assert refused.json() == BAD_REQUEST
    assert client.get("/_liveness?" + "&".join(fields[:10])).status_code == 200


def test_a_query_with_encoded_characters_but_no_nul_is_served(client):
    assert client.get("/_liveness?probe=%41%2500+b&other=%C3%BC").status_code == 200
