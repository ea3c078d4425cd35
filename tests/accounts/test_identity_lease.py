"""The identity lease: a call naming no project (`@me`) trusts an identity this process confirmed
less than IDENTITY_LEASE_SECONDS ago without any statement, and every write that moves an identity
version waits the lease out after its commit, before it answers, so the next request is refused.

The lease's clock is a stand-in that moves only when a test moves it or an identity write sleeps:
nothing here is timed, and a write that did not wait would leave the lease standing."""

from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import OrganizationMembership, PersonalAPIKey
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

ME = "/api/users/@me/"
LEASE = 0.05


class LeaseClock:
    """`monotonic()` as the identity lease reads it."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Wait:
    seconds: float
    after_commit: bool


@pytest.fixture
def clock(monkeypatch, settings) -> LeaseClock:
    settings.IDENTITY_LEASE_SECONDS = LEASE
    stand_in = LeaseClock()
    monkeypatch.setattr("accounts.identity.monotonic", stand_in)
    return stand_in


@pytest.fixture
def waits(monkeypatch, clock) -> list[Wait]:
    """Every wait of an identity write, in order; waiting moves the lease's clock as sleeping would."""
    recorded = []

    def sleep(seconds: float) -> None:
        recorded.append(Wait(seconds, connection.get_autocommit() and not connection.in_atomic_block))
        clock.now += seconds

    monkeypatch.setattr("accounts.identity_versions.sleep", sleep)
    return recorded


def statements(call) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return len(captured), result


@pytest.mark.django_db
def test_me_within_the_lease_makes_no_statement_and_reads_the_version_after_it(api, clock):
    first = api.get(ME)  # reads the identity (and records the key's first use)
    assert first.status_code == 200

    count, within = statements(lambda: api.get(ME))
    assert count == 0
    assert within.status_code == 200 and within.content == first.content

    clock.now += LEASE * 0.99
    assert statements(lambda: api.get(ME))[0] == 0

    clock.now += LEASE * 0.02  # the lease has run out: the version is read again, and renews it
    count, after = statements(lambda: api.get(ME))
    assert count == 1
    assert after.status_code == 200 and after.content == first.content
    assert statements(lambda: api.get(ME))[0] == 0


@pytest.mark.django_db
def test_calls_naming_a_project_read_the_versions_within_the_lease(api, clock):
    url = api.url("experiments/")
    assert api.get(ME).status_code == 200
    assert api.get(url).status_code == 200
    count, again = statements(lambda: api.get(url))
    assert count == 1
    assert again.status_code == 200


@pytest.mark.django_db
def test_a_lease_of_zero_reads_the_version_on_every_call(api, clock, settings):
    settings.IDENTITY_LEASE_SECONDS = 0
    first = api.get(ME)
    for _ in range(2):  # the clock stands still: any lease at all would be in force
        count, again = statements(lambda: api.get(ME))
        assert count == 1
        assert again.content == first.content


@pytest.mark.django_db(transaction=True)
def test_an_identity_write_under_a_lease_of_zero_does_not_wait(waits, api, settings):
    settings.IDENTITY_LEASE_SECONDS = 0
    waits.clear()
    api.user.first_name = "Renamed"
    api.user.save()
    assert waits == []


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)  # saves the user's last login: an identity write of its own
    return client


def one_wait_after_commit(waits: list[Wait]) -> bool:
    return len(waits) == 1 and waits[0].seconds >= LEASE * 1.1 and waits[0].after_commit


@pytest.mark.django_db(transaction=True)
def test_rolling_a_key_through_the_api_waits_out_the_lease_after_commit(waits, api):
    session = session_client(api.user)
    assert api.get(ME).status_code == 200  # this process now holds a lease on the key's identity
    waits.clear()

    rolled = session.post(f"/api/personal_api_keys/{api.key.id}/roll/")

    assert rolled.status_code == 200
    assert one_wait_after_commit(waits)
    assert api.get(ME).status_code == 401
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {rolled.json()['value']}").get(ME).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_deleting_a_key_through_the_api_waits_out_the_lease_after_commit(waits, api):
    session = session_client(api.user)
    assert api.get(ME).status_code == 200
    waits.clear()

    assert session.delete(f"/api/personal_api_keys/{api.key.id}/").status_code == 204

    assert one_wait_after_commit(waits)
    assert not PersonalAPIKey.objects.filter(pk=api.key.pk).exists()
    assert api.get(ME).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_deactivating_a_user_with_an_orm_save_waits_out_the_lease_after_commit(waits, api):
    assert api.get(ME).status_code == 200
    waits.clear()

    api.user.is_active = False
    api.user.save()

    assert one_wait_after_commit(waits)
    assert api.get(ME).status_code == 401


class AdminForm(HTMLParser):
    """The fields an admin change page's form submits as it stands (as a browser would send them)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.fields: dict[str, list[str]] = {}
        self._select: str | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "button", "file"):
            checkable = attributes.get("type") in ("checkbox", "radio")
            if checkable and "checked" not in attributes:
                return
            self.fields.setdefault(name, []).append(attributes.get("value") or ("on" if checkable else ""))
        elif tag == "select" and name:
            self._select = name
            self.fields.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in attributes:
            self.fields[self._select].append(attributes.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.django_db(transaction=True)
def test_deactivating_a_user_in_the_admin_waits_out_the_lease_after_commit(waits, admin_client, make_api):
    target = make_api(for_user=UserFactory())
    change_page = f"/admin/accounts/user/{target.user.pk}/change/"
    form = AdminForm(admin_client.get(change_page).content.decode())
    assert form.fields.pop("is_active") == ["on"]
    assert target.get(ME).status_code == 200
    waits.clear()

    response = admin_client.post(change_page, form.fields)

    assert response.status_code == 302, response.content.decode()
    assert one_wait_after_commit(waits)
    assert target.get(ME).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_changing_a_membership_in_the_admin_waits_out_the_lease_after_commit(waits, api):
    membership = OrganizationMembership.objects.get(user=api.user, organization=api.project.organization)
    admin = Client()
    admin.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert [item["membership_level"] for item in api.get(ME).json()["organizations"]] == [
        OrganizationMembership.Level.OWNER
    ]
    waits.clear()

    change_page = f"/admin/accounts/organizationmembership/{membership.pk}/change/"
    form = AdminForm(admin.get(change_page).content.decode())
    form.fields["level"] = [str(OrganizationMembership.Level.MEMBER)]

    response = admin.post(change_page, form.fields)

    assert response.status_code == 302, response.content.decode()
    assert one_wait_after_commit(waits)
    assert [item["membership_level"] for item in api.get(ME).json()["organizations"]] == [
        OrganizationMembership.Level.MEMBER
    ]


@pytest.mark.django_db(transaction=True)
def test_a_transaction_moving_many_identities_waits_once(waits, api, make_api):
    organization = OrganizationFactory()
    members = [make_api(for_user=UserFactory()) for _ in range(2)]
    for member in members:
        MembershipFactory(organization=organization, user=member.user)
    ProjectFactory(organization=organization)
    assert [member.get(ME).status_code for member in members] == [200, 200]
    waits.clear()

    with transaction.atomic():
        organization.name = "Renamed"
        organization.save()
        for member in members:
            member.user.is_active = False
            member.user.save()

    assert one_wait_after_commit(waits)
    assert [member.get(ME).status_code for member in members] == [401, 401]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_identity_write_does_not_wait(waits, api):
    waits.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        api.user.is_active = False
        api.user.save()
        raise RuntimeError("the write is abandoned")
    assert waits == []
