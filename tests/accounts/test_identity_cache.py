"""The per-process identity cache: every change to what a key may do reaches the very next request,
though the process already holds the key's identity from the request before."""

import pytest
from rest_framework.test import APIClient

from accounts.identity import key_with_access
from accounts.models import OrganizationMembership, PersonalAPIKey
from accounts.services import personal_api_key_digest, personal_api_key_roll
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def project_status(api) -> int:
    return api.get(f"/api/projects/{api.project.id}/experiments/").status_code


def test_a_deleted_key_is_refused_on_its_next_request(api):
    assert project_status(api) == 200
    PersonalAPIKey.objects.get(pk=api.key.pk).delete()
    assert project_status(api) == 401
    assert api.get("/api/users/@me/").status_code == 401


def test_a_rolled_key_refuses_its_old_secret_and_accepts_the_new_one(api):
    assert project_status(api) == 200
    issued = personal_api_key_roll(key=PersonalAPIKey.objects.get(pk=api.key.pk))
    assert project_status(api) == 401
    fresh = APIClient(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert fresh.get(f"/api/projects/{api.project.id}/experiments/").status_code == 200


def test_a_deactivated_user_is_refused_on_the_next_request(api):
    assert project_status(api) == 200
    assert api.get("/api/users/@me/").status_code == 200
    api.user.is_active = False
    api.user.save()
    assert project_status(api) == 401
    assert api.get("/api/users/@me/").status_code == 401


def test_a_removed_membership_hides_the_project_on_the_next_request(api):
    assert project_status(api) == 200
    OrganizationMembership.objects.get(user=api.user, organization=api.project.organization).delete()
    assert project_status(api) == 404


def test_narrowed_scopes_apply_on_the_next_request(api):
    assert project_status(api) == 200
    key = PersonalAPIKey.objects.get(pk=api.key.pk)
    key.scopes = ["feature_flag:read"]
    key.save()
    assert project_status(api) == 403


def test_a_lowered_membership_level_reaches_the_next_request(api):
    assert api.get(f"/api/projects/{api.project.id}/").status_code == 200
    membership = OrganizationMembership.objects.get(user=api.user, organization=api.project.organization)
    assert key_with_access(personal_api_key_digest(api.secret), api.project.id)[
        1
    ].project.membership_level == (membership.level)
    membership.level = OrganizationMembership.Level.MEMBER
    membership.save()
    access = key_with_access(personal_api_key_digest(api.secret), api.project.id)[1]
    assert access.project.membership_level == OrganizationMembership.Level.MEMBER


def test_me_follows_renames_and_new_memberships(api):
    assert api.get("/api/users/@me/").json()["organization"]["name"] == api.project.organization.name
    organization = api.project.organization
    organization.name = "Renamed"
    organization.save()
    project = api.project
    project.name = "Renamed project"
    project.save()
    other = OrganizationFactory(name="Joined later")
    MembershipFactory(user=api.user, organization=other)
    body = api.get("/api/users/@me/").json()
    assert body["organization"]["name"] == "Renamed"
    assert body["team"]["name"] == "Renamed project"
    assert "Joined later" in [item["name"] for item in body["organizations"]]


def test_a_deleted_project_is_not_found_on_the_next_request(api):
    doomed = ProjectFactory(organization=api.project.organization)
    url = f"/api/projects/{doomed.id}/experiments/"
    assert api.get(url).status_code == 200
    doomed.delete()
    assert api.get(url).status_code == 404


def test_a_known_identity_costs_one_small_query(api, django_assert_num_queries):
    digest = personal_api_key_digest(api.secret)
    assert key_with_access(digest, api.project.id) is not None
    with django_assert_num_queries(1):
        key, access = key_with_access(digest, api.project.id)
    assert key.pk == api.key.pk and access.project.id == api.project.id


def test_a_view_changing_its_copy_leaves_the_cached_identity_alone(api):
    digest = personal_api_key_digest(api.secret)
    key, access = key_with_access(digest, api.project.id)
    key.scopes = []
    key.user.is_active = False
    access.project.name = "changed in memory"
    again, again_access = key_with_access(digest, api.project.id)
    assert again.scopes == ["*"] and again.user.is_active
    assert again_access.project.name == api.project.name
