from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import Organization, OrganizationMembership, PersonalAPIKey, Project, User

pytestmark = pytest.mark.django_db


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_personal_api_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_creates_everything_and_prints_the_key_last():
    lines = run("--email", "ops@example.com", "--organization-name", "Acme", "--project-name", "Web")
    secret = lines[-1]
    assert secret.startswith("phx_") and len(secret) == 47

    user = User.objects.get(email="ops@example.com")
    project = Project.objects.get(name="Web", organization__name="Acme")
    membership = OrganizationMembership.objects.get(user=user, organization=project.organization)
    assert membership.level == OrganizationMembership.Level.OWNER
    assert user.current_project == project
    assert PersonalAPIKey.objects.get(user=user).scopes == ["*"]

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get(f"/api/projects/{project.id}/").status_code == 200


def test_reuses_existing_organization_and_project_and_joins_as_member():
    run("--email", "owner@example.com", "--organization-name", "Acme", "--project-name", "Web")
    lines = run(
        "--email",
        "dev@example.com",
        "--organization-name",
        "Acme",
        "--project-name",
        "Web",
        "--scopes",
        "experiment:read,experiment:write",
        "--label",
        "dev",
    )
    assert Organization.objects.filter(name="Acme").count() == 1
    assert Project.objects.filter(name="Web").count() == 1
    dev = User.objects.get(email="dev@example.com")
    assert OrganizationMembership.objects.get(user=dev).level == OrganizationMembership.Level.MEMBER
    key = PersonalAPIKey.objects.get(user=dev)
    assert key.scopes == ["experiment:read", "experiment:write"]
    assert key.label == "dev"
    assert lines[-1].startswith("phx_")


def test_level_option():
    run("--email", "owner@example.com", "--organization-name", "Acme")
    run("--email", "admin@example.com", "--organization-name", "Acme", "--level", "admin")
    assert OrganizationMembership.objects.get(user__email="admin@example.com").level == 8


def test_invalid_scope_is_refused():
    with pytest.raises(CommandError, match="Invalid scope: nope"):
        run("--email", "x@example.com", "--scopes", "nope")
    assert not User.objects.exists()


def test_demo_credentials_replaces_its_key():
    out = StringIO()
    call_command("demo_credentials", stdout=out)
    call_command("demo_credentials", stdout=out)
    assert PersonalAPIKey.objects.filter(user__email="demo@example.com").count() == 1
    assert 'curl -H "Authorization: Bearer phx_' in out.getvalue()
