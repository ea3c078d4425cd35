from datetime import timedelta
from unittest import mock

import pytest
from rest_framework.test import APIClient

from accounts.models import PersonalAPIKey
from accounts.services import personal_api_key_digest

pytestmark = pytest.mark.django_db

NOT_AUTHENTICATED = {
    "type": "authentication_error",
    "code": "not_authenticated",
    "detail": "Authentication credentials were not provided.",
    "attr": None,
}


def invalid_key_body(source: str) -> dict:
    return {
        "type": "authentication_error",
        "code": "authentication_failed",
        "detail": f"Personal API key found in request {source} is invalid.",
        "attr": None,
    }


def test_no_credentials_is_401_not_authenticated(project):
    response = APIClient().get(f"/api/projects/{project.id}/")
    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED
    assert response["WWW-Authenticate"] == "Bearer"


def test_valid_key_authenticates(api):
    response = api.get(f"/api/projects/{api.project.id}/")
    assert response.status_code == 200
    assert response.json()["id"] == api.project.id


def test_unknown_key_in_header_is_401_naming_the_header(project):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer phx_thisisnotarealkey")
    response = client.get(f"/api/projects/{project.id}/")
    assert response.status_code == 401
    assert response.json() == invalid_key_body("Authorization header")


def test_unknown_key_in_query_string_is_401_naming_the_query_string(project):
    response = APIClient().get(f"/api/projects/{project.id}/?personal_api_key=phx_nope")
    assert response.status_code == 401
    assert response.json() == invalid_key_body("query string")


def test_key_in_query_string_authenticates(api):
    response = APIClient().get(f"/api/projects/{api.project.id}/?personal_api_key={api.secret}")
    assert response.status_code == 200


def test_key_in_body_authenticates(api, make_api):
    # POST /roll with a key is refused (keys only read themselves), which proves the body key was
    # recognised: without it the answer would be 401, not 403.
    response = APIClient().post(
        f"/api/personal_api_keys/{api.key.id}/roll/", {"personal_api_key": api.secret}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "This action does not support Personal API Key access"


def test_key_in_body_is_not_refused_as_an_unknown_field(api):
    response = APIClient().post(
        api.url("feature_flags/"),
        {"personal_api_key": api.secret, "key": "from-body-key", "filters": {"groups": [{"properties": []}]}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["key"] == "from-body-key"


def test_unknown_key_in_body_is_401_naming_the_body(project):
    response = APIClient().post("/api/personal_api_keys/", {"personal_api_key": "phx_nope"}, format="json")
    assert response.status_code == 401
    assert response.json() == invalid_key_body("body")


def test_bearer_with_extra_spaces_is_accepted_and_digest_unchanged(api):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer   {api.secret}   ")
    response = client.get(f"/api/projects/{api.project.id}/")
    assert response.status_code == 200
    api.key.refresh_from_db()
    assert api.key.secure_value == personal_api_key_digest(api.secret)


def test_inactive_user_key_is_401(api):
    api.user.is_active = False
    api.user.save()
    response = api.get(f"/api/projects/{api.project.id}/")
    assert response.status_code == 401
    assert response.json() == invalid_key_body("Authorization header")


def test_secret_is_never_stored(api):
    stored = PersonalAPIKey.objects.get(pk=api.key.pk)
    assert api.secret not in str(stored.__dict__)
    assert stored.secure_value == personal_api_key_digest(api.secret)
    assert len(stored.secure_value) == 64
    assert stored.mask_value == f"phx_...{api.secret[-4:]}"
    assert api.secret.startswith("phx_") and len(api.secret) == 47


def test_last_used_at_is_set_on_first_use_and_written_at_most_hourly(api):
    assert api.key.last_used_at is None
    api.get(f"/api/projects/{api.project.id}/")
    api.key.refresh_from_db()
    first_use = api.key.last_used_at
    assert first_use is not None

    api.get(f"/api/projects/{api.project.id}/")
    api.key.refresh_from_db()
    assert api.key.last_used_at == first_use

    # Two hours later (the clock moves, not the row: a worker may hold the key's identity).
    later = first_use + timedelta(hours=2)
    with mock.patch("accounts.authentication.timezone.now", return_value=later):
        api.get(f"/api/projects/{api.project.id}/")
        api.key.refresh_from_db()
        assert api.key.last_used_at == later
        api.get(f"/api/projects/{api.project.id}/")
    api.key.refresh_from_db()
    assert api.key.last_used_at == later


def test_verifying_a_key_costs_one_query(api, django_assert_num_queries):
    api.get("/api/users/@me/")  # first use writes last_used_at; measure steady state
    from accounts.authentication import PersonalAPIKeyAuthentication

    with django_assert_num_queries(1):
        assert PersonalAPIKeyAuthentication.lookup(api.secret) is not None


def test_session_authentication_works_for_the_browsable_api(user, project):
    client = APIClient()
    client.force_login(user)
    response = client.get(f"/api/projects/{project.id}/")
    assert response.status_code == 200
