import pytest
from rest_framework.test import APIClient

from accounts.identity import forget_process_identities
from tests.conftest import keyed_client
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def test_project_retrieve(api):
    response = api.get(f"/api/projects/{api.project.id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == api.project.id
    assert body["organization"] == str(api.project.organization_id)
    assert body["api_token"].startswith("phc_")


def test_project_list_shows_only_projects_of_my_organizations(api, other_project):
    mine = ProjectFactory(organization=api.project.organization)
    ids = [item["id"] for item in api.get("/api/projects/").json()["results"]]
    assert ids == [api.project.id, mine.id]


def test_project_of_another_organization_is_404(api, other_project):
    response = api.get(f"/api/projects/{other_project.id}/")
    assert response.status_code == 404
    assert response.json()["detail"] == "Project not found."


def test_project_read_needs_project_scope(make_api, project):
    response = make_api(scopes=["feature_flag:read"]).get(f"/api/projects/{project.id}/")
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'project:read'"


def test_current_project(api):
    assert api.get("/api/projects/@current/").json()["id"] == api.project.id


def test_me(api):
    other = ProjectFactory()
    MembershipFactory(organization=other.organization, user=api.user, level=8)
    response = api.get("/api/users/@me/")
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == api.user.email
    assert body["uuid"] == str(api.user.uuid)
    assert body["team"]["id"] == api.project.id
    assert body["organization"]["id"] == str(api.project.organization_id)
    assert sorted(org["membership_level"] for org in body["organizations"]) == [8, 15]


def test_me_costs_three_queries_however_many_organizations_and_one_once_known(api, django_assert_num_queries):
    for level in (1, 8):
        other = ProjectFactory()
        MembershipFactory(organization=other.organization, user=api.user, level=level)
    api.get("/api/users/@me/")  # first use writes last_used_at; measure steady state
    forget_process_identities()  # as a freshly started worker
    with django_assert_num_queries(3):  # the key with its user, the user with its project, memberships
        response = api.get("/api/users/@me/")
    assert len(response.json()["organizations"]) == 3
    assert response.json()["team"]["id"] == api.project.id
    with django_assert_num_queries(1):  # the user's identity version
        again = api.get("/api/users/@me/")
    assert again.content == response.content


def test_me_with_a_signed_in_session(user, project):
    client = APIClient()
    client.force_login(user)
    body = client.get("/api/users/@me/").json()
    assert body["team"]["id"] == project.id
    assert [org["id"] for org in body["organizations"]] == [str(project.organization_id)]


def test_me_needs_the_user_read_scope(make_api):
    assert make_api(scopes=["experiment:read"]).get("/api/users/@me").status_code == 403
    assert make_api(scopes=["user:read"]).get("/api/users/@me").status_code == 200


def test_other_user_ids_are_not_addressable(api):
    assert api.get(f"/api/users/{api.user.id}/").status_code == 404


def test_a_key_scoped_to_one_project_does_not_reveal_another_through_me(user, project):
    """The user's current project is B; a key scoped to project A must not show B's name or token."""
    project_b = ProjectFactory(name="Secret project B")
    MembershipFactory(organization=project_b.organization, user=user, level=15)
    user.current_project = project_b
    user.save(update_fields=["current_project"])
    scoped = keyed_client(user, project, scopes=["user:read"], scoped_teams=[project.id])

    response = scoped.get("/api/users/@me/")

    assert response.status_code == 200
    body = response.json()
    assert body["team"] is None
    assert body["organization"] is None
    assert [org["id"] for org in body["organizations"]] == [str(project.organization_id)]
    assert project_b.api_token not in response.content.decode()
    assert "Secret project B" not in response.content.decode()


def test_a_key_scoped_to_an_organization_lists_only_that_organization(user, project):
    other = ProjectFactory(name="Other organization's project")
    MembershipFactory(organization=other.organization, user=user, level=15)
    scoped = keyed_client(
        user, project, scopes=["user:read"], scoped_organizations=[str(project.organization_id)]
    )

    body = scoped.get("/api/users/@me/").json()

    assert body["team"]["id"] == project.id
    assert [org["id"] for org in body["organizations"]] == [str(project.organization_id)]


def test_a_key_scoped_to_the_current_project_still_sees_it(user, project):
    scoped = keyed_client(user, project, scopes=["user:read"], scoped_teams=[project.id])
    body = scoped.get("/api/users/@me/").json()
    assert body["team"]["id"] == project.id
    assert body["organization"]["id"] == str(project.organization_id)


def test_me_answers_alike_with_and_without_drf_dispatch(api):
    fast = api.get("/api/users/@me/")
    through_drf = api.get("/api/users/@me/?format=json")  # a query string takes the DRF view
    assert fast.status_code == through_drf.status_code == 200
    assert fast.content == through_drf.content
    for header in ("Content-Type", "Vary", "Allow"):
        assert fast[header] == through_drf[header]


def test_me_without_the_user_read_scope_is_refused(make_api):
    narrow = make_api(scopes=["feature_flag:read"])
    response = narrow.get("/api/users/@me/")
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'user:read'"


def test_me_is_rate_limited_like_every_key_request(api, settings):
    settings.RATE_LIMIT_ENABLED = True
    settings.THROTTLE_BURST_RATE = "2/minute"
    assert [api.get("/api/users/@me/").status_code for _ in range(2)] == [200, 200]
    refused = api.get("/api/users/@me/")
    assert refused.status_code == 429
    assert refused.json()["type"] == "throttled_error"
    assert 0 < int(refused["Retry-After"]) <= 60
    assert api.get("/api/users/@me/?format=json").status_code == 429
