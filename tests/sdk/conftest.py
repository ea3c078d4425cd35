"""A harness that points PostHog's real Python SDK at this server, started by pytest-django's `live_server`.

`sdk` gives a project with credentials and builds clients against the live server:

- `sdk.remote()`: project token only, so every read is `POST /flags`;
- `sdk.local()`: also a secret key, so reads are evaluated from `/flags/definitions`; call
  `sdk.refresh()` (the SDK's `load_feature_flags()`) after changing flags instead of waiting a poll.

Every client is shut down after the test, and the test fails if the SDK logged a warning or an error.
Lifecycle tests (launch, pause, ship through the experiments API) can change flags between reads and
call `sdk.refresh()` plus `sdk.assert_parity(...)`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.servers import basehttp
from posthog import Posthog
from posthog.request import reset_sessions

from accounts.models import OrganizationMembership, Project
from accounts.services import personal_api_key_create, project_secret_api_key_rotate
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

# Fail fast: no retries, and far longer timeouts than a local request needs.
FAST_OPTIONS: dict[str, Any] = {
    "feature_flags_request_timeout_seconds": 10,
    "feature_flags_request_max_retries": 0,
    "max_retries": 0,
    "timeout": 10,
    "poll_interval": 3600,
}


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, min_level: int = logging.DEBUG) -> list[str]:
        return [record.getMessage() for record in self.records if record.levelno >= min_level]


@dataclass
class SDKHarness:
    host: str
    project: Project
    personal_api_key: str
    project_secret_key: str
    log: RecordingHandler
    clients: list[Posthog] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)

    def client(self, token: str | None = None, **options: Any) -> Posthog:
        """A client of the live server for the project (or `token`), with the fast-failing options."""
        merged = {**FAST_OPTIONS, "host": self.host, "on_error": self._on_error, **options}
        client = Posthog(token or self.project.api_token, **merged)
        self.clients.append(client)
        return client

    def remote(self, **options: Any) -> Posthog:
        """A client without a secret key: every flag read asks `/flags`."""
        return self.client(send=False, **options)

    def local(self, secret: str | None = None, **options: Any) -> Posthog:
        """A local-evaluation client with its definitions already loaded."""
        client = self.client(send=False, secret_key=secret or self.project_secret_key, **options)
        client.load_feature_flags()
        return client

    def refresh(self) -> None:
        """Make every local client fetch the definitions now (honouring the ETag), as a poll would."""
        for client in self.clients:
            if client.secret_key:
                client.load_feature_flags()

    def _on_error(self, error: Exception, batch: Any) -> None:
        self.errors.append((error, batch))

    def assert_parity(
        self, remote: Posthog, local: Posthog, distinct_ids: list[str], **call_options: Any
    ) -> dict[str, dict[str, Any]]:
        """Remote and local `get_all_flags_and_payloads` agree for every id; returns the remote values."""
        values = {}
        for distinct_id in distinct_ids:
            options = call_options.get("per_id", lambda _did: {})(distinct_id)
            from_server = remote.get_all_flags_and_payloads(distinct_id, **options)
            from_definitions = local.get_all_flags_and_payloads(
                distinct_id, only_evaluate_locally=True, **options
            )
            assert from_server == from_definitions, distinct_id
            values[distinct_id] = from_server["featureFlags"]
        return values

    def close(self) -> None:
        for client in self.clients:
            client.shutdown()
        # The SDK pools connections process-wide; closing them lets the test server's handler
        # threads finish now instead of dying mid-read when the interpreter exits.
        reset_sessions()


@pytest.fixture
def sdk(live_server, transactional_db, monkeypatch) -> Iterator[SDKHarness]:
    # Django's test server writes a response's headers and body separately; on a kept-alive
    # connection Nagle's algorithm then stalls each response ~40 ms behind the client's delayed ACK.
    monkeypatch.setattr(basehttp.WSGIRequestHandler, "disable_nagle_algorithm", True)
    project = ProjectFactory()
    owner = UserFactory(current_project=project)
    MembershipFactory(organization=project.organization, user=owner, level=OrganizationMembership.Level.OWNER)
    personal = personal_api_key_create(user=owner, label="sdk", scopes=["feature_flag:read"]).secret
    secret = project_secret_api_key_rotate(project=project).secret

    handler = RecordingHandler()
    sdk_logger = logging.getLogger("posthog")
    previous_level = sdk_logger.level
    sdk_logger.addHandler(handler)
    sdk_logger.setLevel(logging.DEBUG)
    harness = SDKHarness(live_server.url, project, personal, secret, handler)
    try:
        yield harness
    finally:
        harness.close()
        sdk_logger.removeHandler(handler)
        sdk_logger.setLevel(previous_level)
    assert handler.messages(logging.WARNING) == []
    assert harness.errors == []
