"""The project secret API key (`phs_…`): shown once, stored as a digest, rotatable in admin and CLI."""

import re
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import Project
from accounts.services import personal_api_key_digest, project_secret_api_key_matches
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
SECRET = re.compile(r"phs_[0-9A-Za-z]{43}")


def accepted(project: Project, secret: str) -> bool:
    project.refresh_from_db()
    return project_secret_api_key_matches(
        secret=secret,
        digest=project.secret_api_token_digest,
        backup_digest=project.secret_api_token_backup_digest,
    )


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_admin_rotation_shows_the_secret_once_and_keeps_the_previous_as_backup(admin_client, project):
    def rotate() -> str:
        response = admin_client.post(
            "/admin/accounts/project/",
            {"action": "rotate_secret_api_keys", "_selected_action": [project.pk]},
            follow=True,
        )
        shown = " ".join(str(message) for message in get_messages(response.wsgi_request))
        return SECRET.search(shown).group(0)

    first = rotate()
    project.refresh_from_db()
    assert project.secret_api_token_digest == personal_api_key_digest(first)
    assert project.secret_api_token_mask == f"{first[:4]}...{first[-4:]}"
    page = admin_client.get(f"/admin/accounts/project/{project.pk}/change/").content.decode()
    assert first not in page
    assert project.secret_api_token_mask in page

    second = rotate()
    assert accepted(project, first) and accepted(project, second)
    admin_client.post(
        "/admin/accounts/project/",
        {"action": "revoke_backup_secret_api_keys", "_selected_action": [project.pk]},
    )
    assert not accepted(project, first)
    assert accepted(project, second)


def test_command_prints_the_secret_last(project):
    out = StringIO()
    call_command("rotate_project_secret_key", "--project-id", str(project.id), stdout=out)
    first = out.getvalue().strip().splitlines()[-1]
    assert SECRET.fullmatch(first) and accepted(project, first)

    out = StringIO()
    call_command(
        "rotate_project_secret_key", "--project-id", str(project.id), "--revoke-previous", stdout=out
    )
    second = out.getvalue().strip().splitlines()[-1]
    assert accepted(project, second) and not accepted(project, first)

    with pytest.raises(CommandError, match="No project"):
        call_command("rotate_project_secret_key", "--project-id", "999999")


def test_personal_keys_are_not_project_secrets(project):
    assert not project_secret_api_key_matches(secret="phx_abc", digest="", backup_digest="")


def test_events_and_group_types_in_admin(admin_client):
    for model in ["event", "grouptypemapping"]:
        assert admin_client.get(f"/admin/events/{model}/").status_code == 200
    assert admin_client.get("/admin/events/event/add/").status_code == 403
