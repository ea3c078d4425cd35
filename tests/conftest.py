"""Shared fixtures: a project with an owner, and API clients authenticated with real personal API keys."""

import os
import tempfile
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.db import connection
from procrastinate.schema import SchemaManager
from rest_framework.test import APIClient

from accounts.identity import forget_process_identities
from accounts.models import OrganizationMembership, PersonalAPIKey, Project, User
from accounts.services import personal_api_key_create
from events.clickhouse import EVENTS_TABLE, clickhouse_client, schema_migrate
from flags.definitions import forget_process_definitions
from tests.factories import MembershipFactory, ProjectFactory, UserFactory


@dataclass
class KeyedClient:
    """An APIClient sending `Authorization: Bearer <secret>` for one key."""

    client: APIClient
    key: PersonalAPIKey
    secret: str
    user: User
    project: Project

    def __getattr__(self, name):
        return getattr(self.client, name)

    def url(self, path: str) -> str:
        """`/api/projects/<this project>/<path>`."""
        return f"/api/projects/{self.project.id}/{path.lstrip('/')}"


def keyed_client(
    user: User,
    project: Project,
    scopes: list[str] | None = None,
    scoped_teams: list[int] | None = None,
    scoped_organizations: list[str] | None = None,
) -> KeyedClient:
    issued = personal_api_key_create(
        user=user,
        label="test key",
        scopes=["*"] if scopes is None else scopes,
        scoped_teams=scoped_teams,
        scoped_organizations=scoped_organizations,
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    return KeyedClient(client=client, key=issued.key, secret=issued.secret, user=user, project=project)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database plus the task queue's tables: procrastinate's migrations are SQL, which
    `--no-migrations` skips, so its schema is applied as its migrations would."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(SchemaManager.get_schema())


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def commits_its_writes(request: pytest.FixtureRequest) -> bool:
    """Whether the test's writes are committed (a transactional database), not rolled back."""
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return True
    return bool({"transactional_db", "live_server"} & set(request.fixturenames))


@pytest.fixture(autouse=True)
def identity_lease_only_where_writes_commit(request, settings):
    """An identity write waits out the identity lease after its commit (accounts/identity_versions.py);
    in a test whose writes are rolled back instead, nothing ever commits, so those tests run as a
    server with IDENTITY_LEASE_SECONDS=0 would. Tests whose writes commit keep the configured lease."""
    if not commits_its_writes(request):
        settings.IDENTITY_LEASE_SECONDS = 0


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    forget_process_definitions()
    forget_process_identities()
    yield
    cache.clear()
    forget_process_definitions()
    forget_process_identities()


@pytest.fixture
def project(db) -> Project:
    return ProjectFactory()


@pytest.fixture
def user(project) -> User:
    owner = UserFactory(current_project=project)
    MembershipFactory(organization=project.organization, user=owner, level=OrganizationMembership.Level.OWNER)
    return owner


@pytest.fixture
def api(user, project) -> KeyedClient:
    """A client for `project` with an all-scopes key of its owner."""
    return keyed_client(user, project)


@pytest.fixture
def make_api(user, project):
    """Build a client with chosen scopes or scoping: make_api(scopes=[...], scoped_teams=[...])."""

    def build(for_user: User | None = None, for_project: Project | None = None, **kwargs) -> KeyedClient:
        return keyed_client(for_user or user, for_project or project, **kwargs)

    return build


@pytest.fixture
def other_project(db) -> Project:
    """A project in another organization, with its own owner."""
    other = ProjectFactory()
    owner = UserFactory(current_project=other)
    MembershipFactory(organization=other.organization, user=owner, level=OrganizationMembership.Level.OWNER)
    return other


@pytest.fixture(scope="session")
def clickhouse_store():
    """The ClickHouse test store, schema applied: the server at CLICKHOUSE_URL when that is set
    (point it at a throw-away database: tests empty its events table), else chDB in a temporary
    directory. Returns (url, client)."""
    url = (
        os.environ.get("CLICKHOUSE_URL") or f"chdb://{tempfile.mkdtemp(prefix='experiments-api-test-chdb-')}"
    )
    client = clickhouse_client(url)
    schema_migrate(client)
    return url, client


@pytest.fixture
def clickhouse_backend(settings, clickhouse_store):
    """EVENTS_BACKEND=clickhouse on an empty events table; yields the client."""
    url, client = clickhouse_store
    client.command(f"TRUNCATE TABLE {EVENTS_TABLE}")
    settings.EVENTS_BACKEND = "clickhouse"
    settings.CLICKHOUSE_URL = url
    return client


# Results tests that read no events (pure statistics) or test PostgreSQL-only machinery (the
# incremental rollups, which ClickHouse does not use) run once.
SINGLE_BACKEND_RESULTS_MODULES = ("test_statistics", "test_rollups")


def pytest_generate_tests(metafunc):
    """The results tests run on both event stores: PostgreSQL, and ClickHouse (chDB, or the server
    at CLICKHOUSE_URL) fed through the outbox and its drain."""
    path = metafunc.definition.path
    if (
        path.parent.name == "results"
        and not path.name.startswith(SINGLE_BACKEND_RESULTS_MODULES)
        and "events_backend" in metafunc.fixturenames
    ):
        metafunc.parametrize("events_backend", ["postgres", "clickhouse"], indirect=True)


@pytest.fixture(autouse=True)
def events_backend(request) -> str:
    backend = getattr(request, "param", "postgres")
    if backend == "clickhouse":
        request.getfixturevalue("clickhouse_backend")
    return backend
