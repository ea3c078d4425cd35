import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import PersonalAPIKey
from accounts.services import MAX_PERSONAL_API_KEYS_PER_USER, personal_api_key_create
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

KEY_FIELDS = {
    "id",
    "label",
    "value",
    "mask_value",
    "created_at",
    "last_used_at",
    "user_id",
    "scopes",
    "scoped_teams",
    "scoped_organizations",
    "last_rolled_at",
}


@pytest.fixture
def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_create_returns_the_secret_once(session, user):
    response = session.post(
        "/api/personal_api_keys/",
        {"label": "ci", "scopes": ["experiment:read"], "scoped_teams": [], "scoped_organizations": []},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == KEY_FIELDS
    assert body["value"].startswith("phx_")
    assert body["mask_value"] == f"phx_...{body['value'][-4:]}"
    assert body["user_id"] == user.id

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['value']}")
    assert client.get("/api/personal_api_keys/@current/").json()["value"] is None


def test_scopes_are_validated(session):
    response = session.post("/api/personal_api_keys/", {"label": "x", "scopes": ["invalid"]}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "type": "validation_error",
        "code": "invalid_input",
        "detail": "Invalid scope: invalid",
        "attr": "scopes",
    }
    response = session.post(
        "/api/personal_api_keys/", {"label": "x", "scopes": ["insight:invalid"]}, format="json"
    )
    assert response.status_code == 400
    assert session.post("/api/personal_api_keys/", {"label": "x", "scopes": ["*"]}, format="json").json()[
        "scopes"
    ] == ["*"]


def test_label_and_scopes_are_required(session):
    blank = session.post("/api/personal_api_keys/", {"label": "", "scopes": ["*"]}, format="json").json()
    assert (blank["code"], blank["attr"]) == ("blank", "label")
    missing = session.post("/api/personal_api_keys/", {"label": "x"}, format="json").json()
    assert (missing["code"], missing["attr"]) == ("required", "scopes")


def test_eleventh_key_is_refused(session, user):
    for index in range(10):
        personal_api_key_create(user=user, label=f"k{index}", scopes=["*"])
    response = session.post("/api/personal_api_keys/", {"label": "one more", "scopes": ["*"]}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "type": "validation_error",
        "code": "invalid_input",
        "detail": "You can only have 10 personal API keys. Remove an existing key before creating a new one.",
        "attr": None,
    }


def test_scoping_must_be_to_my_projects_and_organizations(session, project, other_project):
    ok = session.post(
        "/api/personal_api_keys/",
        {"label": "x", "scopes": ["*"], "scoped_organizations": [str(project.organization_id)]},
        format="json",
    )
    assert ok.status_code == 201
    foreign_org = session.post(
        "/api/personal_api_keys/",
        {"label": "x", "scopes": ["*"], "scoped_organizations": [str(other_project.organization_id)]},
        format="json",
    )
    assert foreign_org.json()["detail"] == (
        "You must be a member of all organizations that you are scoping the key to."
    )
    bad_uuid = session.post(
        "/api/personal_api_keys/",
        {"label": "x", "scopes": ["*"], "scoped_organizations": ["nope"]},
        format="json",
    )
    assert bad_uuid.json()["detail"] == "Invalid organization UUID"
    foreign_team = session.post(
        "/api/personal_api_keys/",
        {"label": "x", "scopes": ["*"], "scoped_teams": [other_project.id]},
        format="json",
    )
    assert (
        foreign_team.json()["detail"] == "You must be a member of all teams that you are scoping the key to."
    )


def test_list_is_a_plain_array_of_my_keys(session, user):
    personal_api_key_create(user=user, label="legacy", scopes=[])
    stranger = UserFactory()
    personal_api_key_create(user=stranger, label="theirs", scopes=["*"])
    response = session.get("/api/personal_api_keys/")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [(item["label"], item["scopes"], item["value"]) for item in body] == [("legacy", ["*"], None)]


def test_update_roll_and_delete(session, user):
    issued = personal_api_key_create(user=user, label="old", scopes=["experiment:read"])
    url = f"/api/personal_api_keys/{issued.key.id}/"
    updated = session.patch(url, {"label": "new", "scopes": ["experiment:write"]}, format="json").json()
    assert (updated["label"], updated["scopes"]) == ("new", ["experiment:write"])

    rolled = session.post(f"{url}roll/").json()
    assert rolled["id"] == issued.key.id
    assert rolled["value"].startswith("phx_") and rolled["value"] != issued.secret
    assert rolled["last_rolled_at"] is not None
    old_client = APIClient()
    old_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert old_client.get("/api/users/@me/").status_code == 401

    assert session.delete(url).status_code == 204
    assert not PersonalAPIKey.objects.filter(pk=issued.key.id).exists()


def test_someone_elses_key_is_404(session):
    stranger_key = personal_api_key_create(user=UserFactory(), label="theirs", scopes=["*"]).key
    assert session.get(f"/api/personal_api_keys/{stranger_key.id}/").status_code == 404


def test_with_key_authentication_a_key_can_only_read_itself(api, user):
    sibling = personal_api_key_create(user=user, label="sibling", scopes=["*"]).key
    assert api.get("/api/personal_api_keys/@current/").json()["id"] == api.key.id
    assert api.get(f"/api/personal_api_keys/{api.key.id}/").status_code == 200
    unsupported = "This action does not support Personal API Key access"
    for response in [
        api.get("/api/personal_api_keys/"),
        api.get(f"/api/personal_api_keys/{sibling.id}/"),
        api.post("/api/personal_api_keys/", {"label": "x", "scopes": ["*"]}, format="json"),
        api.patch("/api/personal_api_keys/@current/", {"label": "x"}, format="json"),
        api.delete("/api/personal_api_keys/@current/"),
    ]:
        assert response.status_code == 403
        assert response.json()["detail"] == unsupported


def test_organization_scoping_of_another_members_project(session, user):
    shared = ProjectFactory()
    MembershipFactory(organization=shared.organization, user=user)
    response = session.post(
        "/api/personal_api_keys/", {"label": "x", "scopes": ["*"], "scoped_teams": [shared.id]}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["scoped_teams"] == [shared.id]


def test_delete_under_strict_handling_refuses_a_body_and_keeps_the_key(session, user):
    issued = personal_api_key_create(user=user, label="kept", scopes=["*"])
    url = f"/api/personal_api_keys/{issued.key.id}/"
    response = session.delete(url, [1, 2], format="json", HTTP_PREFER="handling=strict")
    assert response.status_code == 400
    assert PersonalAPIKey.objects.filter(pk=issued.key.pk).exists()
    assert session.delete(url, {}, format="json", HTTP_PREFER="handling=strict").status_code == 204


def test_unknown_fields_are_ignored_and_named(session):
    response = session.post(
        "/api/personal_api_keys/", {"label": "x", "scopes": ["*"], "preset": "mcp"}, format="json"
    )
    assert response.status_code == 201
    assert response["Ignored-Fields"] == "preset"


def test_delete_ignores_a_body_by_default(session, user):
    issued = personal_api_key_create(user=user, label="gone", scopes=["*"])
    response = session.delete(f"/api/personal_api_keys/{issued.key.id}/", [1, 2], format="json")
    assert response.status_code == 204
    assert response["Ignored-Fields"] == "(body)"
    assert not PersonalAPIKey.objects.filter(pk=issued.key.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_parallel_creations_respect_the_limit(user):
    """20 simultaneous creations from separate connections: the user row lock lets exactly 10 in."""
    parallel = 20
    clients = []
    for _ in range(parallel):
        client = APIClient()
        client.force_login(user)
        clients.append(client)
    barrier = threading.Barrier(parallel)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def create(client: APIClient) -> None:
        try:
            barrier.wait(timeout=30)
            response = client.post(
                "/api/personal_api_keys/", {"label": "race", "scopes": ["*"]}, format="json"
            )
            with lock:
                statuses.append(response.status_code)
        except BaseException as error:  # surfaced in the main thread below
            with lock:
                errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(statuses) == [201] * MAX_PERSONAL_API_KEYS_PER_USER + [400] * (
        parallel - MAX_PERSONAL_API_KEYS_PER_USER
    )
    assert PersonalAPIKey.objects.filter(user=user).count() == MAX_PERSONAL_API_KEYS_PER_USER
