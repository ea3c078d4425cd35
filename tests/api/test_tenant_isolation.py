"""Tenant isolation (issue 8, item 3).

Two organizations, A and B, each with a project holding experiments (draft, running, paused,
stopped, archived), flags, a holdout, a saved metric, a cohort, an approval policy and a pending
change request; B also has an organization-wide policy. A caller from A — A's owner through an
unscoped, a project-scoped and an organization-scoped key or a session, and a member of both
organizations through keys scoped to A — then addresses B on every route and method the API router
serves (read from the router, so a new endpoint is covered without being listed here):

- through B's project id, with B's object ids and a body that would succeed on B;
- through A's project id with B's object ids in the path;
- through A's project and objects with B's ids in the body (holdout, saved metrics, target project,
  flag key, approvers, cohort and holdout references in flag filters).

Every answer is 400, 403 or 404 (405 for the DELETE that is never allowed), shows none of B's names,
keys, tokens or ids, and leaves B's rows exactly as they were. The SDK endpoints are checked the same
way: A's token never evaluates or defines B's flags, and A's events land in A.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import OrganizationMembership, User
from accounts.services import project_secret_api_key_rotate
from approvals.models import ApprovalPolicy, ChangeRequest
from events.models import Event, GroupTypeMapping
from experiments.models import Experiment
from experiments_api.mixins import ForbidDestroyModel
from flags.models import FeatureFlag
from tests.api.world import (
    TARGETS,
    Route,
    World,
    api_routes,
    changed_tables,
    database_fingerprint,
    new_tenant,
    tenant_rows,
)
from tests.conftest import keyed_client
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

REFUSALS = {400, 403, 404}


@dataclass
class Tenants:
    a: World
    b: World
    dual: User  # a member of both organizations
    b_organization_policy: ApprovalPolicy

    def b_secrets(self) -> list[str]:
        """Text that would only appear in an answer that leaked B: names, keys, tokens, ids."""
        b = self.b
        names = [experiment.name for experiment in b.experiments()]
        names += [experiment.feature_flag.key for experiment in b.experiments()]
        names += [experiment.feature_flag.name for experiment in b.experiments()]
        names += [b.flag.key, b.flag.name, b.holdout.name, b.saved_metric.name, b.cohort.name]
        names += [b.project.name, b.project.organization.name, b.sibling.name, b.owner.email]
        return [
            *names,
            b.project.api_token,
            str(b.project.organization_id),
            str(b.change_request.id),
            str(b.policy.id),
            str(self.b_organization_policy.id),
            b.api.key.id,
        ]


@pytest.fixture
def tenants(db, settings) -> Tenants:
    settings.RATE_LIMIT_ENABLED = False
    a = new_tenant("alpha-3e1d")
    b = new_tenant("bravo-9c4f")
    b_organization_policy = ApprovalPolicy.objects.create(
        organization=b.project.organization,
        project=None,
        action_key="experiment.archive",
        approver_config={"quorum": 1, "users": [b.owner.id]},
        enabled=False,
    )
    dual = UserFactory(current_project=a.project, first_name="Dual")
    for world in (a, b):
        MembershipFactory(
            organization=world.project.organization, user=dual, level=OrganizationMembership.Level.ADMIN
        )
    # The member of both may approve B's change request: only the key's scope stands in the way.
    snapshot = {**b.change_request.policy_snapshot, "users": [b.owner.id, dual.id]}
    ChangeRequest.objects.filter(pk=b.change_request.pk).update(policy_snapshot=snapshot)
    return Tenants(a=a, b=b, dual=dual, b_organization_policy=b_organization_policy)


# --- who calls -----------------------------------------------------------------------------------
# A's owner is no member of B, so no key of theirs can even find B's project; the member of both is
# where a key's project or organization scope is all that stands between A and B.

CALLERS: dict[str, Callable[[Tenants], APIClient]] = {
    "A owner, unscoped key": lambda t: t.a.api.client,
    "A owner, key scoped to A's project": lambda t: (
        keyed_client(t.a.owner, t.a.project, scoped_teams=[t.a.project.id]).client
    ),
    "A owner, key scoped to A's organization": lambda t: (
        keyed_client(t.a.owner, t.a.project, scoped_organizations=[str(t.a.project.organization_id)]).client
    ),
    "member of A and B, key scoped to A's project": lambda t: (
        keyed_client(t.dual, t.a.project, scoped_teams=[t.a.project.id]).client
    ),
    "member of A and B, key scoped to A's organization": lambda t: (
        keyed_client(t.dual, t.a.project, scoped_organizations=[str(t.a.project.organization_id)]).client
    ),
    "A owner, signed-in session": lambda t: session_client(t.a.owner),
}


def session_client(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def caller(tenants: Tenants, name: str) -> APIClient:
    client = CALLERS[name](tenants)
    client.raise_request_exception = False
    # The first use of a key records it (once an hour); do it now, so B's snapshot stays still.
    assert client.get(f"/api/projects/{tenants.a.project.id}/").status_code == 200
    return client


# --- requests ------------------------------------------------------------------------------------

# B's object on each route that reads or writes one object (write routes take theirs, in the state
# where the write would succeed, from TARGETS).
READ_OBJECTS: dict[str, Callable[[World], Any]] = {
    "project": lambda w: w.project.id,
    "user": lambda w: "@me",
    "personal_api_key": lambda w: w.api.key.id,
    "experiment": lambda w: w.running.id,
    "saved_metric": lambda w: w.saved_metric.id,
    "experiment_holdout": lambda w: w.holdout.id,
    "feature_flag": lambda w: w.flag.id,
    "cohort": lambda w: w.cohort.id,
    "change_request": lambda w: w.change_request.id,
    "approval_policy": lambda w: w.policy.id,
    "query": lambda w: w.query_run.id,
}
QUERY = {"timeseries_results": "?metric_uuid=00000000-0000-4000-8000-000000000001&fingerprint=f"}


@dataclass(frozen=True)
class Attempt:
    label: str
    method: str
    path: str
    body: dict[str, Any] | None
    route: Route | None = None

    def send(self, client: APIClient):
        if self.body is None:
            return client.generic(self.method, self.path)
        return client.generic(self.method, self.path, json.dumps(self.body), content_type="application/json")


def b_object_and_body(route: Route, b: World) -> tuple[Any, dict[str, Any] | None]:
    target = TARGETS.get((route.basename, route.action))
    if target is not None:
        found = target(b)
        return found.pk, found.body
    if route.basename == "personal_api_key" and route.method != "GET":
        return b.api.key.id, {"label": "taken over"} if route.method in ("PUT", "PATCH") else None
    return (READ_OBJECTS[route.basename](b) if route.detail else None), None


def attempts_on_b(tenants: Tenants) -> list[Attempt]:
    """Every route and method, aimed at B: through B's project, and through A's project with B's
    object in the path."""
    a, b = tenants.a, tenants.b
    attempts = []
    for route in api_routes():
        if route.basename == "user" or (route.basename == "personal_api_key" and route.action == "create"):
            continue  # only `@me` / the caller's own new key: nothing of B's to address
        pk, body = b_object_and_body(route, b)
        query = QUERY.get(route.action, "")
        paths = []
        if route.project_scoped:
            paths.append((f"{route.id} via B's project", route.path(b.project.id, pk)))
            if route.detail:
                paths.append((f"{route.id} via A's project", route.path(a.project.id, pk)))
        elif route.detail:
            paths.append((f"{route.id} on B's object", route.path(pk=pk)))
        if route.basename == "approval_policy" and route.detail:
            # B's organization-wide policy applies to every project of B, and to none of A.
            org_wide = tenants.b_organization_policy.id
            paths.append(
                (f"{route.id} of B's organization via A's project", route.path(a.project.id, org_wide))
            )
        attempts += [Attempt(label, route.method, path + query, body, route) for label, path in paths]
    return attempts


def refusal_allowed(attempt: Attempt, status: int) -> bool:
    """400, 403 or 404; or 405 from the DELETE PostHog never allows (it looks nothing up)."""
    if status in REFUSALS:
        return True
    route = attempt.route
    return (
        status == 405
        and route is not None
        and route.action == "destroy"
        and issubclass(route.viewset, ForbidDestroyModel)
    )


def leaks(tenants: Tenants, attempt_text: str, content: bytes) -> list[str]:
    """B's secrets in an answer, other than those the request itself carried. PostHog's refusal of
    an organization-scoped key names the organization; only a member of it can get that far."""
    text = content.decode("utf-8", errors="replace")
    text = text.replace(
        f"API key does not have access to the requested organization: ID {tenants.b.project.organization_id}.",
        "",
    )
    return [secret for secret in tenants.b_secrets() if secret in text and secret not in attempt_text]


def list_attempts(tenants: Tenants) -> list[Attempt]:
    """A's own lists, filtered by B's ids and names where a list takes such filters."""
    a, b = tenants.a, tenants.b
    query = (
        f"?search={b.marker}&feature_flag_id={b.running.feature_flag_id}&item_id={b.running.id}"
        f"&resource_id={b.change_request.resource_id}&created_by_id={b.owner.id}&user={b.owner.id}"
    )
    return [
        Attempt(f"{route.id} of A", "GET", route.path(a.project.id) + query, None)
        for route in api_routes()
        if route.method == "GET" and not route.detail and route.basename != "user"
    ]


@pytest.mark.parametrize("who", CALLERS)
def test_a_caller_from_a_never_reaches_b(tenants, who):
    client = caller(tenants, who)
    b_before = tenant_rows(tenants.b.project.organization)
    failures = []
    for attempt in attempts_on_b(tenants):
        before = database_fingerprint()
        response = attempt.send(client)
        problems = []
        if not refusal_allowed(attempt, response.status_code):
            problems.append(f"status {response.status_code}")
        if found := leaks(tenants, attempt.path + json.dumps(attempt.body), response.content):
            problems.append(f"shows B's {found}")
        after = database_fingerprint()
        if after != before:
            problems.append(f"changed {changed_tables(before, after)}")
        if problems:
            failures.append(f"{attempt.label}: {'; '.join(problems)}")
    for attempt in list_attempts(tenants):
        response = attempt.send(client)
        if response.status_code == 200 and (found := leaks(tenants, attempt.path, response.content)):
            failures.append(f"{attempt.label}: shows B's {found}")
    assert not failures, f"{who}:\n" + "\n".join(failures)
    assert tenant_rows(tenants.b.project.organization) == b_before


# --- B's ids inside A's requests -----------------------------------------------------------------


def body_id_attempts(tenants: Tenants) -> list[tuple[Attempt, set[int]]]:
    """Requests on A's own objects whose body names one of B's; each with the statuses it may get."""
    a, b = tenants.a, tenants.b
    experiments = f"/api/projects/{a.project.id}/experiments/"
    flags = f"/api/projects/{a.project.id}/feature_flags/"
    policies = f"/api/projects/{a.project.id}/approval_policies/"
    saved_metric = [{"id": b.saved_metric.id, "metadata": {"type": "primary"}}]
    b_cohort = {"key": "id", "type": "cohort", "value": b.cohort.id}
    b_holdout = {"id": b.holdout.id, "exclusion_percentage": 10}
    b_approver = {"quorum": 1, "users": [b.owner.id]}
    new = {"name": "Alpha probe", "feature_flag_key": "alpha-probe"}
    new_key = {"label": "alpha key", "scopes": ["*"]}
    return [
        (
            Attempt("create with B's holdout_id", "POST", experiments, {**new, "holdout_id": b.holdout.id}),
            {400},
        ),
        (
            Attempt(
                "patch with B's holdout_id",
                "PATCH",
                f"{experiments}{a.draft.id}/",
                {"holdout_id": b.holdout.id},
            ),
            {400},
        ),
        (
            Attempt(
                "create with B's saved metric",
                "POST",
                experiments,
                {**new, "saved_metrics_ids": saved_metric},
            ),
            {400},
        ),
        (
            Attempt(
                "patch with B's saved metric",
                "PATCH",
                f"{experiments}{a.draft.id}/",
                {"saved_metrics_ids": saved_metric},
            ),
            {400},
        ),
        (
            Attempt(
                "copy to B's project",
                "POST",
                f"{experiments}{a.draft.id}/copy_to_project/",
                {"target_team_id": b.project.id},
            ),
            {403, 404},
        ),
        (
            Attempt(
                "policy with B's owner as approver",
                "POST",
                policies,
                {"action_key": "experiment.pause", "approver_config": b_approver},
            ),
            {400},
        ),
        (
            Attempt(
                "policy edited to B's owner",
                "PATCH",
                f"{policies}{a.policy.id}/",
                {"approver_config": b_approver},
            ),
            {400},
        ),
        (
            Attempt(
                "flag on B's cohort",
                "POST",
                flags,
                {"key": "alpha-cohort", "filters": {"groups": [{"properties": [b_cohort]}]}},
            ),
            {400},
        ),
        (
            Attempt(
                "flag edited to B's cohort",
                "PATCH",
                f"{flags}{a.flag.id}/",
                {"filters": {"groups": [{"properties": [b_cohort]}]}},
            ),
            {400},
        ),
        (
            Attempt(
                "flag with B's holdout",
                "POST",
                flags,
                {"key": "alpha-holdout", "filters": {"groups": [{"properties": []}], "holdout": b_holdout}},
            ),
            {400},
        ),
        (
            Attempt(
                "flag edited to B's holdout",
                "PATCH",
                f"{flags}{a.flag.id}/",
                {"filters": {"holdout": b_holdout}},
            ),
            {400},
        ),
        # Keys are managed from a session only (a key gets 403); a session may not scope one to B.
        (
            Attempt(
                "key scoped to B's project",
                "POST",
                "/api/personal_api_keys/",
                {**new_key, "scoped_teams": [b.project.id]},
            ),
            {400, 403},
        ),
        (
            Attempt(
                "key scoped to B's organization",
                "POST",
                "/api/personal_api_keys/",
                {**new_key, "scoped_organizations": [str(b.project.organization_id)]},
            ),
            {400, 403},
        ),
    ]


@pytest.mark.parametrize("who", CALLERS)
def test_b_ids_in_a_bodies_are_refused(tenants, who):
    client = caller(tenants, who)
    b_before = tenant_rows(tenants.b.project.organization)
    failures = []
    for attempt, allowed in body_id_attempts(tenants):
        before = database_fingerprint()
        response = attempt.send(client)
        problems = []
        if response.status_code not in allowed:
            problems.append(f"status {response.status_code} {response.content[:200]!r}")
        if found := leaks(tenants, attempt.path + json.dumps(attempt.body), response.content):
            problems.append(f"shows B's {found}")
        if (after := database_fingerprint()) != before:
            problems.append(f"changed {changed_tables(before, after)}")
        if problems:
            failures.append(f"{attempt.label}: {'; '.join(problems)}")
    assert not failures, f"{who}:\n" + "\n".join(failures)
    assert tenant_rows(tenants.b.project.organization) == b_before


@pytest.mark.parametrize("who", CALLERS)
def test_b_flag_keys_give_a_its_own_new_flag(tenants, who):
    """Flag keys are unique per project, not globally: B's key used in A makes a new flag in A and
    never links, copies or shows B's flag."""
    client = caller(tenants, who)
    a, b = tenants.a, tenants.b
    b_before = tenant_rows(b.project.organization)
    b_flags = {experiment.feature_flag_id for experiment in b.experiments()} | {b.flag.id}
    experiments = f"/api/projects/{a.project.id}/experiments/"
    responses = [
        client.post(experiments, {"name": "Alpha on B's key", "feature_flag_key": b.flag.key}, format="json"),
        client.post(
            f"{experiments}{a.draft.id}/duplicate/",
            {"feature_flag_key": b.running.feature_flag.key},
            format="json",
        ),
    ]
    for response in responses:
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["feature_flag"]["id"] not in b_flags
        assert body["feature_flag"]["team_id"] == a.project.id
        experiment = Experiment.objects.select_related("feature_flag").get(pk=body["id"])
        assert experiment.project_id == experiment.feature_flag.project_id == a.project.id
        assert not leaks(tenants, "", response.content.replace(experiment.feature_flag.key.encode(), b""))
    assert tenant_rows(b.project.organization) == b_before


# --- SDK endpoints -------------------------------------------------------------------------------


def all_flag_keys(world: World) -> list[str]:
    return list(FeatureFlag.objects.filter(project=world.project).values_list("key", flat=True))


@pytest.mark.parametrize("path", ["/flags/?v=2", "/flags/?v=1&config=true", "/decide/?v=2", "/decide/?v=4"])
def test_a_token_never_evaluates_b_flags(tenants, path):
    a, b = tenants.a, tenants.b
    body = {"token": a.project.api_token, "distinct_id": "user-1", "flag_keys_to_evaluate": all_flag_keys(b)}
    response = APIClient().post(path, body, format="json")
    assert response.status_code == 200
    assert not leaks(tenants, json.dumps(body), response.content)
    for key in all_flag_keys(b):
        assert key not in response.content.decode()
    everything = APIClient().post(
        path, {"token": a.project.api_token, "distinct_id": "user-1"}, format="json"
    )
    assert not leaks(tenants, "", everything.content)


def test_definitions_of_b_are_refused_to_every_secret_of_a(tenants):
    a, b = tenants.a, tenants.b
    secrets = {
        "A owner's key": a.api.secret,
        "A's project secret key": project_secret_api_key_rotate(project=a.project).secret,
        "A owner's key scoped to A": keyed_client(a.owner, a.project, scoped_teams=[a.project.id]).secret,
        "dual member's key scoped to A": keyed_client(
            tenants.dual, a.project, scoped_teams=[a.project.id]
        ).secret,
        "dual member's key scoped to A's organization": keyed_client(
            tenants.dual, a.project, scoped_organizations=[str(a.project.organization_id)]
        ).secret,
    }
    for label, secret in secrets.items():
        for path in ("/flags/definitions", "/api/feature_flag/local_evaluation/"):
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
            own = client.get(f"{path}?token={a.project.api_token}&send_cohorts")
            assert own.status_code == 200, (label, path)
            refused = client.get(f"{path}?token={b.project.api_token}&send_cohorts")
            assert refused.status_code == 401, (label, path, refused.content)
            assert not leaks(tenants, b.project.api_token, refused.content)
            assert b.flag.key not in refused.content.decode()


def test_events_sent_with_a_token_land_in_a_only(tenants):
    a, b = tenants.a, tenants.b
    event = {
        "event": "$feature_flag_called",
        "distinct_id": "user-1",
        "properties": {"token": b.project.api_token, "$groups": {"bravo_company": "b-1"}},
    }
    for path, body in [
        (
            "/batch/",
            {"api_key": a.project.api_token, "batch": [event, {**event, "api_key": b.project.api_token}]},
        ),
        ("/capture/", {"token": a.project.api_token, **event}),
        ("/e/", [{**event, "properties": {**event["properties"], "token": a.project.api_token}}, event]),
        ("/i/v0/e/", {"$token": a.project.api_token, "batch": [event]}),
    ]:
        response = APIClient().post(path, body, format="json")
        assert response.status_code == 200, (path, response.content)
    assert Event.objects.filter(project=a.project).count() == 6
    assert not Event.objects.filter(project=b.project).exists()
    assert not GroupTypeMapping.objects.filter(project=b.project).exists()
