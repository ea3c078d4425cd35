"""The scope matrix, on a probe ViewSet whose scope object is `feature_flag`."""

import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, ProjectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.probe_urls")]


def denied(detail: str) -> dict:
    return {"type": "authentication_error", "code": "permission_denied", "detail": detail, "attr": None}


@pytest.mark.parametrize(
    ("scopes", "method", "expected_status"),
    [
        (["feature_flag:read"], "get", 200),
        (["feature_flag:write"], "get", 200),
        (["*"], "get", 200),
        (["experiment:read"], "get", 403),
        (["feature_flag:read"], "post", 403),
        (["feature_flag:write"], "post", 201),
        (["*"], "post", 201),
        (["experiment:write"], "post", 403),
    ],
)
def test_read_and_write_scopes(make_api, project, scopes, method, expected_status):
    client = make_api(scopes=scopes)
    url = f"/api/projects/{project.id}/probe/"
    response = client.get(url) if method == "get" else client.post(url, {"name": "ok"}, format="json")
    assert response.status_code == expected_status, response.json()
    if expected_status == 403:
        required = "feature_flag:read" if method == "get" else "feature_flag:write"
        assert response.json() == denied(f"API key missing required scope '{required}'")


def test_action_declared_scope_is_required(make_api, project):
    url = f"/api/projects/{project.id}/probe/activity/"
    assert make_api(scopes=["feature_flag:write"]).get(url).json() == denied(
        "API key missing required scope 'activity_log:read'"
    )
    assert make_api(scopes=["activity_log:read"]).get(url).status_code == 200


def test_action_without_declared_scope_refuses_keys_even_with_star(make_api, user, project):
    url = f"/api/projects/{project.id}/probe/unsupported/"
    response = make_api(scopes=["*"]).post(url)
    assert response.status_code == 403
    assert response.json() == denied("This action does not support Personal API Key access")

    session = APIClient()
    session.force_login(user)
    assert session.post(url).status_code == 200


def test_legacy_key_with_empty_scopes_has_full_access(make_api, project):
    client = make_api(scopes=[])
    assert client.post(f"/api/projects/{project.id}/probe/", {"name": "ok"}, format="json").status_code == 201


def test_project_scoped_key(make_api, user, project):
    second = ProjectFactory(organization=project.organization)
    client = make_api(scoped_teams=[project.id])
    assert client.get(f"/api/projects/{project.id}/probe/").status_code == 200

    response = client.get(f"/api/projects/{second.id}/probe/")
    assert response.status_code == 403
    assert response.json() == denied(
        f"API key does not have access to the requested project: ID {second.id}."
    )

    response = client.get("/api/projects/")
    assert response.status_code == 403
    assert response.json() == denied(
        "API keys with scoped projects are only supported on project-based endpoints."
    )

    assert client.get("/api/users/@me/").status_code == 200


def test_organization_scoped_key(make_api, user, project):
    other_organization_project = ProjectFactory()
    MembershipFactory(organization=other_organization_project.organization, user=user)
    client = make_api(scoped_organizations=[str(project.organization_id)])

    assert client.get(f"/api/projects/{project.id}/probe/").status_code == 200
    response = client.get(f"/api/projects/{other_organization_project.id}/probe/")
    assert response.status_code == 403
    assert response.json() == denied(
        f"API key does not have access to the requested organization: ID {other_organization_project.organization_id}."
    )
    listed = client.get("/api/projects/").json()["results"]
    assert [item["id"] for item in listed] == [project.id]
    assert client.get("/api/users/@me/").status_code == 200


def test_another_organizations_project_is_404(api, other_project):
    response = api.get(f"/api/projects/{other_project.id}/probe/")
    assert response.status_code == 404
    assert response.json() == {
        "type": "invalid_request",
        "code": "not_found",
        "detail": "Project not found.",
        "attr": None,
    }


@pytest.mark.parametrize("project_id", ["abc", "0", "-1", "99999999999999999999999", "1.5"])
def test_malformed_or_unknown_project_ids_are_404(api, project_id):
    response = api.get(f"/api/projects/{project_id}/probe/")
    assert response.status_code == 404
    assert response.json()["detail"] == "Project not found."


def test_current_project_alias(api):
    response = api.get("/api/projects/@current/probe/")
    assert response.status_code == 200
    assert response.json() == {"project": api.project.id}


def test_current_project_alias_without_current_project_is_404(api):
    api.user.current_project = None
    api.user.save()
    response = api.get("/api/projects/@current/probe/")
    assert response.status_code == 404
    assert response.json()["detail"] == "Project not found."


def test_current_project_alias_without_credentials_is_401(db):
    assert APIClient().get("/api/projects/@current/probe/").status_code == 401


def test_trailing_slash_is_optional(api):
    assert api.get(f"/api/projects/{api.project.id}/probe").status_code == 200
    assert api.get(f"/api/projects/{api.project.id}/probe/").status_code == 200
