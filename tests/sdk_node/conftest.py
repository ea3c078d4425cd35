"""A harness that runs PostHog's real Node SDK (`posthog-node`, pinned in `package-lock.json`) against
this server, started by pytest-django's `live_server`.

The SDK runs in one Node.js process per test module (`driver.mjs`), installed with `npm ci` on the
first run. The test talks to it one JSON line per SDK call, so API calls (launch, pause, ship) can
happen between SDK reads. `node` builds clients for the project of the Python SDK harness (`sdk`
from `tests/sdk/conftest.py`, whose keys, and Python clients to compare with, it reuses):

- `node.remote()`: project token only, so every read is `POST /flags`;
- `node.local()`: also a secret key; its definitions are loaded from `/flags/definitions` before it
  is returned, and automatic polling is off: call `node.refresh()` after changing flags.

Every Node client is shut down (flushing its events) after the test, and the test fails if the SDK
logged a warning or an error, or emitted an `error` event.
"""

from __future__ import annotations

import itertools
import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from accounts.models import Project
from tests.factories import CohortFactory, FeatureFlagFactory
from tests.npm import npm_ci
from tests.sdk.conftest import sdk  # noqa: F401 (the project, its keys and the Python SDK clients)
from tests.sdk.test_posthog_python import FLAG_SHAPES, call_options, flag_shapes  # noqa: F401

NODE_DIR = Path(__file__).parent
ANSWER_TIMEOUT_SECONDS = 60

# Fail fast: no retries, far longer timeouts than a local request needs, no background polling.
FAST_OPTIONS: dict[str, Any] = {
    "fetchRetryCount": 0,
    "requestTimeout": 10_000,
    "featureFlagsRequestTimeoutMs": 10_000,
    "featureFlagsPollingInterval": None,
}


def is_deprecation_notice(message: str) -> bool:
    """5.x deprecates the single-flag getters in favour of evaluateFlags() and says so once per process.
    They still work and are what most integrations call, so they are tested and the notice is expected."""
    return message.startswith("[PostHog] `") and " is deprecated " in message


class Undefined:
    """JavaScript's `undefined`: a getter's "no result", which the SDK distinguishes from `null`."""

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False  # falsy, as in JavaScript


UNDEFINED = Undefined()


UNDEFINED_MARKER = {"$undefined": True}


def _decode(value: dict) -> Any:
    return UNDEFINED if value == UNDEFINED_MARKER else value


def _encode(value: Any) -> Any:
    if value is UNDEFINED:
        return UNDEFINED_MARKER
    raise TypeError(f"{value!r} cannot be sent to Node")


class NodeError(AssertionError):
    """An SDK call threw in Node; the message is Node's rendering of the error."""


class NodeProcess:
    """`node driver.mjs`, answering one JSON line per request line."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("node") or "node", str(NODE_DIR / "driver.mjs")],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.answers: queue.Queue[str] = queue.Queue()
        self.ids = itertools.count(1)
        threading.Thread(target=self._read_answers, daemon=True).start()

    def _read_answers(self) -> None:
        for line in self.process.stdout:
            self.answers.put(line)

    def request(self, op: str, **fields: Any) -> Any:
        request_id = next(self.ids)
        self.process.stdin.write(json.dumps({"id": request_id, "op": op, **fields}, default=_encode) + "\n")
        self.process.stdin.flush()
        try:
            line = self.answers.get(timeout=ANSWER_TIMEOUT_SECONDS)
        except queue.Empty:
            raise AssertionError(
                f"posthog-node did not answer {op} within {ANSWER_TIMEOUT_SECONDS}s"
            ) from None
        answer = json.loads(line, object_hook=_decode)
        assert answer["id"] == request_id, answer
        if not answer["ok"]:
            raise NodeError(answer["error"])
        return answer["result"]

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            stderr = self.process.stderr.read()
            self.process.stderr.close()
            self.process.stdout.close()
        assert self.process.returncode == 0, stderr


@pytest.fixture(scope="module")
def node_process() -> Iterator[NodeProcess]:
    npm_ci(NODE_DIR)
    process = NodeProcess()
    yield process
    process.close()


@dataclass
class NodeClient:
    """One `new PostHog(...)` in the Node process; `definitions` are the flag keys a local client loaded."""

    process: NodeProcess
    name: str
    definitions: list[str] | None

    def call(self, method: str, *args: Any) -> Any:
        """`await client[method](...args)`."""
        return self.process.request("call", client=self.name, method=method, args=list(args))

    def calls(self, method: str, args_list: list[list[Any]]) -> list[Any]:
        """The same method awaited once per argument list, in order, in one round trip."""
        return self.process.request("calls", client=self.name, method=method, argsList=args_list)

    def snapshot(self, distinct_id: str, keys: list[str], **options: Any) -> dict[str, Any]:
        """`evaluateFlags(distinct_id, options)`: its `keys`, and `getFlag`/`getFlagPayload` per key."""
        return self.process.request(
            "snapshot", client=self.name, distinctId=distinct_id, options=options, keys=keys
        )


@dataclass
class NodeSDK:
    process: NodeProcess
    host: str
    project: Project
    personal_api_key: str
    project_secret_key: str
    clients: list[NodeClient] = field(default_factory=list)
    logged: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def client(self, token: str | None = None, **options: Any) -> NodeClient:
        """A client of the live server for the project (or `token`), with the fast-failing options."""
        name = f"client-{len(self.clients) + 1}"
        definitions = self.process.request(
            "client",
            name=name,
            host=self.host,
            token=token or self.project.api_token,
            options={**FAST_OPTIONS, **options},
        )
        client = NodeClient(self.process, name, definitions)
        self.clients.append(client)
        return client

    def remote(self, **options: Any) -> NodeClient:
        """A client without a secret key: every flag read asks `/flags`."""
        return self.client(**options)

    def local(self, secret: str | None = None, **options: Any) -> NodeClient:
        """A local-evaluation client with its definitions already loaded."""
        return self.client(secretKey=secret or self.project_secret_key, **options)

    def refresh(self) -> None:
        """Make every local client fetch the definitions now (honouring the ETag), as a poll would."""
        for client in self.clients:
            if client.definitions is not None:
                client.call("reloadFeatureFlags")

    def collect_logs(self) -> None:
        """Move what the SDK logged, and its `error` events, from the Node process into `logged`/`errors`."""
        reported = self.process.request("problems")
        self.logged.extend((entry["level"], entry["message"]) for entry in reported["logged"])
        self.errors.extend(error["message"] for error in reported["errors"])

    def messages(self, *levels: str) -> list[str]:
        """What the SDK logged at these console levels (`debug` only from clients with `debug()` on)."""
        self.collect_logs()
        return [message for level, message in self.logged if level in levels]

    def problems(self) -> dict[str, list[str]]:
        """What the SDK logged as warnings or errors, and its `error` events."""
        warnings = [
            message for message in self.messages("warn", "error") if not is_deprecation_notice(message)
        ]
        return {"logged": warnings, "errors": self.errors}

    def forget_problems(self) -> None:
        """After a test has asserted on problems it caused on purpose."""
        self.collect_logs()
        self.logged.clear()
        self.errors.clear()

    def close(self) -> None:
        for client in self.clients:
            self.process.request("shutdown", client=client.name)
        self.clients.clear()


@pytest.fixture
def node(sdk, node_process) -> Iterator[NodeSDK]:  # noqa: F811 (the re-exported fixture)
    harness = NodeSDK(node_process, sdk.host, sdk.project, sdk.personal_api_key, sdk.project_secret_key)
    node_process.request("problems")
    try:
        yield harness
    finally:
        harness.close()
    assert harness.problems() == {"logged": [], "errors": []}


PLAN_GATED = {
    "filters": {
        "groups": [
            {
                "properties": [
                    {"key": "plan", "operator": "exact", "value": ["pro", "enterprise"], "type": "person"}
                ],
                "rollout_percentage": 100,
            }
        ],
        "payloads": {"true": '{"seats": 10}'},
    }
}
PLANS = ("pro", "Enterprise", "free")
BIG_COMPANIES = {
    "filters": {
        "aggregation_group_type_index": 0,
        "groups": [
            {
                "properties": [
                    {"key": "size", "operator": "gt", "value": "10", "type": "group", "group_type_index": 0}
                ],
                "rollout_percentage": 100,
            }
        ],
    }
}
KEYS = [*FLAG_SHAPES, "plan-gated", "pro-cohort", "big-companies"]


@pytest.fixture
def flags(sdk, flag_shapes):  # noqa: F811 (the re-exported fixture)
    """The Python SDK tests' flag shapes (boolean, multivariate, payloads, holdouts, a variant override,
    group-aggregated, paused, shipped) plus flags targeted by a person property, by a cohort (the
    factory's: plan is pro) and by a group property."""
    cohort = CohortFactory(project=sdk.project)
    in_cohort = {"key": "id", "type": "cohort", "operator": "in", "value": cohort.id}
    return {
        **flag_shapes,
        "plan-gated": FeatureFlagFactory(project=sdk.project, key="plan-gated", **PLAN_GATED),
        "big-companies": FeatureFlagFactory(project=sdk.project, key="big-companies", **BIG_COMPANIES),
        "pro-cohort": FeatureFlagFactory(
            project=sdk.project,
            key="pro-cohort",
            filters={"groups": [{"properties": [in_cohort], "rollout_percentage": 100}]},
        ),
    }


def python_options(distinct_id: str) -> dict:
    """posthog-python's keyword arguments: a company and its size for the group flags, an email and a plan."""
    options = call_options(distinct_id)
    number = int(distinct_id.rsplit("_", 1)[1])
    return {
        **options,
        "person_properties": {**options["person_properties"], "plan": PLANS[number % 3]},
        "group_properties": {"company": {"size": number % 23}},
    }


def node_options(distinct_id: str, **extra) -> dict:
    """The same person and groups as posthog-node's options object."""
    options = python_options(distinct_id)
    return {
        "personProperties": options["person_properties"],
        "groups": options["groups"],
        "groupProperties": options["group_properties"],
        **extra,
    }
