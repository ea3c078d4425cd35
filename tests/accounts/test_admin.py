import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts.models import PersonalAPIKey
from accounts.services import personal_api_key_digest
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_every_accounts_model_has_an_admin_changelist(admin_client):
    for model in ["organization", "project", "user", "organizationmembership", "personalapikey"]:
        assert admin_client.get(f"/admin/accounts/{model}/").status_code == 200
        assert admin_client.get(f"/admin/accounts/{model}/?q=x").status_code == 200


def test_creating_a_key_in_admin_shows_the_secret_once(admin_client, user):
    response = admin_client.post(
        "/admin/accounts/personalapikey/add/",
        {"user": user.pk, "label": "from admin", "scopes": "experiment:read, experiment:write"},
        follow=True,
    )
    assert response.status_code == 200
    shown = " ".join(str(message) for message in get_messages(response.wsgi_request))
    secret = re.search(r"phx_[0-9A-Za-z]{43}", shown)
    assert secret, shown
    key = PersonalAPIKey.objects.get(label="from admin")
    assert key.scopes == ["experiment:read", "experiment:write"]
    assert key.secure_value == personal_api_key_digest(secret.group(0))

    change_page = admin_client.get(f"/admin/accounts/personalapikey/{key.pk}/change/")
    assert secret.group(0) not in change_page.content.decode()


def test_admin_rejects_invalid_scopes(admin_client, user):
    response = admin_client.post(
        "/admin/accounts/personalapikey/add/", {"user": user.pk, "label": "bad", "scopes": "nope:read"}
    )
    assert response.status_code == 200
    assert "Invalid scope: nope:read" in response.content.decode()
    assert not PersonalAPIKey.objects.filter(label="bad").exists()
