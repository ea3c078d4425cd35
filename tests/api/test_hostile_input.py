"""Hostile input against every write endpoint of the management API (issue 8, item 2).

For each POST/PUT/PATCH/DELETE route under `/api/projects/{id}/` (read from the router), a world of
seeded objects is built once and a request that succeeds there is known (`TARGETS`). Then every
hostile variant of that request is sent: non-JSON and malformed bodies, JSON of the wrong type at
the top level, a wrong type for every writable field of the route's serializer, 10 MB strings,
10 000-element arrays, deep nesting, NaN, NUL bytes and lone surrogates, hostile path ids and
hostile ids inside the body. Each must be answered 4xx in the error envelope (or one of the
documented other shapes) and leave every row of the database as it was. Unknown fields, and bodies
sent to actions that take none, are ignored by default (as PostHog does) and refused under
`Prefer: handling=strict`; a second pass checks those refusals. Finally the well-formed request is
sent and must succeed, which shows the refusals were about the hostile part.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework import serializers
from rest_framework.test import APIClient

from experiments_api.mixins import ForbidDestroyModel
from tests.api.world import (
    FLAG_FILTERS,
    TARGETS,
    Route,
    Target,
    World,
    api_routes,
    changed_tables,
    database_fingerprint,
    json_field_shape,
    populate,
    project_write_routes,
    request_fields,
    request_serializer,
    wrong_type_values,
)

pytestmark = pytest.mark.django_db

ENVELOPE_KEYS = {"type", "code", "detail", "attr"}
ENVELOPE_TYPES = {"validation_error", "authentication_error", "invalid_request", "throttled_error"}
HOSTILE_PATH_IDS = ("-1", "0", "99999999999999999999", "9223372036854775808", "9" * 5000, "²", "1e3", "%00")
TEN_MB = 10 * 1024 * 1024
DEEPER_THAN_ALLOWED = 65
LONE_SURROGATE = "\ud800"
UNICODE_TEXT = "Ünïcødé 😀 𝕏𝔶𝔷 שלום مرحبا \u202eRTL\u202c e\u0301 ✓"


@pytest.fixture(autouse=True)
def no_throttling(settings):
    settings.RATE_LIMIT_ENABLED = False


@pytest.fixture
def world(api) -> World:
    # A server error must show up as a 500 answer to judge, not as an exception in the test.
    api.client.raise_request_exception = False
    return populate(api.project, api.user, api, marker="hostile")


# Ids that reference another object from inside a body, where they go and the real id they mimic.
BodyIdSetter = Callable[[dict[str, Any], Any], None]


def set_path(*keys: Any) -> BodyIdSetter:
    def setter(body: dict[str, Any], value: Any) -> None:
        node = body
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return setter


def with_holdout_reference(body: dict[str, Any], world: World) -> dict[str, Any]:
    return {
        **body,
        "filters": {**FLAG_FILTERS, "holdout": {"id": world.holdout.id, "exclusion_percentage": 10}},
    }


def with_cohort_condition(body: dict[str, Any], world: World) -> dict[str, Any]:
    condition = {"key": "id", "type": "cohort", "value": world.cohort.id}
    return {**body, "filters": {"groups": [{"properties": [condition], "rollout_percentage": 50}]}}


@dataclass(frozen=True)
class BodyId:
    name: str
    real_id: Callable[[World], Any]
    prepare: Callable[[dict[str, Any], World], dict[str, Any]]
    setter: BodyIdSetter


BODY_IDS: dict[str, list[BodyId]] = {
    "experiment": [
        BodyId("holdout_id", lambda w: w.holdout.id, lambda b, w: {**b}, set_path("holdout_id")),
        BodyId(
            "saved_metrics_ids[].id",
            lambda w: w.saved_metric.id,
            lambda b, w: {**b, "saved_metrics_ids": [{"id": None, "metadata": {"type": "primary"}}]},
            set_path("saved_metrics_ids", 0, "id"),
        ),
    ],
    "approval_policy": [
        BodyId(
            "approver_config.users[]",
            lambda w: w.owner.id,
            lambda b, w: {**b, "approver_config": {"quorum": 1, "users": [None]}},
            set_path("approver_config", "users", 0),
        ),
    ],
    "feature_flag": [
        BodyId(
            "filters.holdout.id",
            lambda w: w.holdout.id,
            with_holdout_reference,
            set_path("filters", "holdout", "id"),
        ),
        BodyId(
            "filters cohort id",
            lambda w: w.cohort.id,
            with_cohort_condition,
            set_path("filters", "groups", 0, "properties", 0, "value"),
        ),
    ],
}
COPY_TARGET = BodyId("target_team_id", lambda w: w.sibling.id, lambda b, w: {**b}, set_path("target_team_id"))
BODY_ID_ACTIONS = ("create", "update", "partial_update")


def body_ids_for(route: Route) -> list[BodyId]:
    if route.action == "copy_to_project":
        return [COPY_TARGET]
    return BODY_IDS.get(route.basename, []) if route.action in BODY_ID_ACTIONS else []


def hostile_body_ids(real_id: int) -> list[Any]:
    """Ids a client could send instead of `real_id`: out of range, not integers, or almost it."""
    return [-1, 0, 2**63, 99999999999999999999, -99999999999999999999, "1e3", real_id + 0.5, "%00", True]


# --- cases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    body: bytes | None
    content_type: str = "application/json"
    path: str | None = None


def encoded(value: Any) -> bytes:
    """JSON as a client could send it: NaN, Infinity and lone surrogates (as escapes) included."""
    return json.dumps(value).encode()


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"nested": value}
    return value


def wrapped_in_shape(shape: tuple[type, ...], leaf: Any) -> Any:
    """A value of the right JSON shape carrying `leaf` inside it."""
    return {"probe": leaf} if dict in shape else [leaf]


def accepts_lists(field: serializers.Field) -> bool:
    if isinstance(field, serializers.ListField):
        return True
    return isinstance(field, serializers.JSONField) and list in (json_field_shape(field) or ())


def field_cases(route: Route, world: World, base: dict[str, Any]) -> Iterator[Case]:
    """Per writable field: a value of every type it must refuse, and for fields that take a list,
    10 000 elements of the wrong kind."""
    for name, field in request_fields(route, world.project).items():
        for value in wrong_type_values(field):
            yield Case(f"{name}: wrong type {value!r:.40}", encoded({**base, name: value}))
        if accepts_lists(field):
            yield Case(f"{name}: 10 000-element array", encoded({**base, name: [[]] * 10_000}))


def unstorable_value_cases(route: Route, world: World, base: dict[str, Any]) -> Iterator[Case]:
    """Values JSON can spell but nothing may hold: NaN, Infinity, NUL, lone surrogates, nesting
    deeper than allowed. They are refused while the body is parsed, before any field sees them,
    so they are sent in one string field and inside one JSON field of each route."""
    fields = request_fields(route, world.project)
    text = next((name for name, field in fields.items() if isinstance(field, serializers.CharField)), "name")
    json_fields = [
        (name, field) for name, field in fields.items() if isinstance(field, serializers.JSONField)
    ]
    for label, value in [
        ("NaN", float("nan")),
        ("Infinity", float("-inf")),
        ("NUL", "probe\u0000nul"),
        ("lone surrogate", f"probe{LONE_SURROGATE}"),
        ("nesting deeper than allowed", nested(DEEPER_THAN_ALLOWED)),
    ]:
        yield Case(f"{text}: {label}", encoded({**base, text: value}))
        for name, field in json_fields[:1]:
            inside = wrapped_in_shape(json_field_shape(field) or (dict,), value)
            yield Case(f"{name}: {label} inside", encoded({**base, name: inside}))


def body_cases(route: Route, world: World, target: Target) -> Iterator[Case]:
    base = target.body if target.body is not None else {}
    yield Case("text/plain body", b"name=probe", content_type="text/plain")
    yield Case("malformed JSON", b'{"name": "probe",')
    yield Case("two JSON documents", b"{} {}")
    yield Case("invalid UTF-8", b'{"name": "\xff\xfe"}')
    yield Case("raw NUL byte in a string", b'{"name": "a\x00b"}')
    for label, value in [
        ("list", [base]),
        ("empty list", []),
        ("string", "probe"),
        ("number", 12345),
        ("null", None),
        ("boolean", True),
        ("10 000-element list", [base] * 10_000),
    ]:
        yield Case(f"top-level {label}", encoded(value))
    yield Case(UNKNOWN_FIELD_CASE, encoded({**base, "hostile_unknown_field": 1}))
    yield Case("NUL in a key", encoded({**base, "na\u0000me": "probe"}))
    yield Case("lone surrogate in a key", encoded({**base, f"name{LONE_SURROGATE}": "probe"}))
    yield Case("NaN in an unknown field", encoded({**base, "hostile_nan": float("nan")}))
    yield Case("100 000 levels of nesting", b"[" * 100_000 + b"]" * 100_000)
    yield Case("10 MB string", encoded({**base, "name": "x" * TEN_MB}))
    yield from unstorable_value_cases(route, world, base)
    yield from field_cases(route, world, base)


def path_cases(route: Route, world: World, target: Target) -> Iterator[Case]:
    body = encoded(target.body) if target.body is not None else None
    for hostile in HOSTILE_PATH_IDS:
        yield Case(f"project id {hostile}", body, path=route.path(hostile, target.pk))
        if route.detail:
            yield Case(f"object id {hostile}", body, path=route.path(world.project.id, hostile))


def body_id_cases(route: Route, world: World, target: Target) -> Iterator[Case]:
    for body_id in body_ids_for(route):
        for hostile in hostile_body_ids(body_id.real_id(world)):
            body = json.loads(json.dumps(body_id.prepare(dict(target.body or {}), world)))
            body_id.setter(body, hostile)
            yield Case(f"{body_id.name} = {hostile!r}", encoded(body))


UNKNOWN_FIELD_CASE = "unknown field"


def hostile_cases(route: Route, world: World, target: Target, *, strict: bool) -> Iterator[Case]:
    """Under strict handling, what only strict handling refuses: unknown keys, and any body of a
    body-less action. By default (lenient, as PostHog) those are ignored, so everything else: hostile
    values of known fields, bodies no route can read, hostile ids."""
    if strict:
        if target.body is None:
            yield from body_cases(route, world, target)
        else:
            yield Case(UNKNOWN_FIELD_CASE, encoded({**target.body, "hostile_unknown_field": 1}))
        return
    if target.body is not None:
        yield from (case for case in body_cases(route, world, target) if case.label != UNKNOWN_FIELD_CASE)
    yield from path_cases(route, world, target)
    yield from body_id_cases(route, world, target)


# --- judging answers ---------------------------------------------------------------------------


def parsed(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def answer_problem(route: Route, status: int, content: bytes) -> str | None:
    """Why this answer to a hostile request is wrong, or None when it is a proper refusal."""
    if not 400 <= status < 500:
        return f"status {status}"
    body = parsed(content)
    if isinstance(body, dict) and set(body) == ENVELOPE_KEYS:
        return (
            None if body["type"] in ENVELOPE_TYPES and isinstance(body["detail"], str) else f"envelope {body}"
        )
    if status == 405 and route.action == "destroy" and issubclass(route.viewset, ForbidDestroyModel):
        return None if content == b"" else "405 with a body"
    if (
        route.basename == "change_request"
        and status == 400
        and isinstance(body, dict)
        and set(body) == {"error"}
    ):
        return None
    return f"not the error envelope: {content[:200]!r}"


def send(world: World, route: Route, path: str, body: bytes | None, content_type: str, strict: bool = False):
    headers = {"HTTP_PREFER": "handling=strict"} if strict else {}
    if body is None:
        return world.api.generic(route.method, path, **headers)
    return world.api.generic(route.method, path, body, content_type=content_type, **headers)


WRITE_ROUTES = project_write_routes()


@pytest.mark.parametrize("handling", ["lenient", "strict"])
@pytest.mark.parametrize("route", WRITE_ROUTES, ids=[route.id for route in WRITE_ROUTES])
def test_hostile_requests_are_refused_and_change_nothing(world, route, handling):
    strict = handling == "strict"
    target = TARGETS[(route.basename, route.action)](world)
    path = route.path(world.project.id, target.pk)
    before = database_fingerprint()
    failures = []
    for case in hostile_cases(route, world, target, strict=strict):
        response = send(world, route, case.path or path, case.body, case.content_type, strict)
        problem = answer_problem(route, response.status_code, response.content)
        after = database_fingerprint()
        if after != before:
            problem = f"{problem or response.status_code}; changed {changed_tables(before, after)}"
            before = after
        if problem:
            failures.append(f"{case.label}: {problem}")
    assert not failures, f"{route.id}: {len(failures)} hostile requests misanswered:\n" + "\n".join(failures)

    # The well-formed request succeeds, so the refusals above were about the hostile part. By
    # default it may carry an unknown field: ignored, and named in the response.
    body = target.body
    if not strict:
        body = {**(body or {}), "hostile_unknown_field": 1}
    response = send(
        world, route, path, encoded(body) if body is not None else None, "application/json", strict
    )
    expected = 405 if route.action == "destroy" and issubclass(route.viewset, ForbidDestroyModel) else None
    if expected is not None:
        assert response.status_code == expected
    else:
        assert 200 <= response.status_code < 300, response.content
        if not strict:
            assert "hostile_unknown_field" in response["Ignored-Fields"].split(", ")


OUTSIDE_PROJECTS = [route for route in api_routes() if not route.project_scoped and route.detail]


@pytest.mark.parametrize("route", OUTSIDE_PROJECTS, ids=[route.id for route in OUTSIDE_PROJECTS])
def test_hostile_ids_in_paths_outside_projects_are_refused(world, route):
    """`/api/projects/{id}/`, `/api/users/{id}/` and `/api/personal_api_keys/{id}/…`, with a key and
    with a session (the only way to manage keys)."""
    session = APIClient(raise_request_exception=False)
    session.force_login(world.owner)
    before = database_fingerprint()
    failures = []
    for name, client in (("key", world.api.client), ("session", session)):
        for hostile in HOSTILE_PATH_IDS:
            response = client.generic(
                route.method, route.path(pk=hostile), b"{}", content_type="application/json"
            )
            if problem := answer_problem(route, response.status_code, response.content):
                failures.append(f"{name}, id {hostile}: {problem}")
    assert not failures, "\n".join(failures)
    assert database_fingerprint() == before


def test_every_write_route_has_a_target():
    missing = [route.id for route in WRITE_ROUTES if (route.basename, route.action) not in TARGETS]
    assert not missing, f"Describe what these routes act on in TARGETS: {missing}"


# Routes the schema documents without a request body. They succeed with none and ignore any body,
# as PostHog does (its case 90); under `Prefer: handling=strict` they refuse any body but `{}`, so
# the strict matrix sends them the same hostile bodies as the rest. A new body-less route must be
# added here knowingly.
ROUTES_WITHOUT_A_BODY = {
    "POST experiment.launch",
    "POST experiment.pause",
    "POST experiment.resume",
    "POST experiment.reset",
    "POST experiment.unarchive",
    "POST experiment.create_exposure_cohort_for_experiment",
    "DELETE experiment.destroy",
    "DELETE saved_metric.destroy",
    "DELETE experiment_holdout.destroy",
    "DELETE feature_flag.destroy",
    "DELETE approval_policy.destroy",
    "DELETE query.destroy",
}


def test_only_the_known_routes_take_no_body(world):
    without_body = {route.id for route in WRITE_ROUTES if request_serializer(route, world.project) is None}
    assert without_body == ROUTES_WITHOUT_A_BODY
    for route in WRITE_ROUTES:
        target = TARGETS[(route.basename, route.action)](world)
        assert (target.body is None) == (route.id in ROUTES_WITHOUT_A_BODY), route.id


def test_the_matrix_covers_the_known_write_endpoints():
    ids = {route.id for route in WRITE_ROUTES}
    assert {
        "POST experiment.launch",
        "PATCH feature_flag.partial_update",
        "POST change_request.approve",
    } <= ids
    assert len(ids) >= 35


def test_every_writable_field_has_wrong_type_values(world):
    for route in WRITE_ROUTES:
        for name, field in request_fields(route, world.project).items():
            assert wrong_type_values(field), f"{route.id} {name}"


# --- unicode is data, not an attack ----------------------------------------------------------


def string_fields(route: Route, world: World) -> list[str]:
    return [
        name
        for name, field in request_fields(route, world.project).items()
        if isinstance(field, serializers.CharField) and not isinstance(field, serializers.ChoiceField)
    ]


UNICODE_ROUTES = [
    route
    for route in WRITE_ROUTES
    if route.action in ("create", "partial_update") and route.basename != "approval_policy"
]


@pytest.mark.parametrize("route", UNICODE_ROUTES, ids=[route.id for route in UNICODE_ROUTES])
def test_astral_and_rtl_text_is_accepted_wherever_plain_text_is(world, route):
    """Each string field answers astral and right-to-left text as it answers plain ASCII text:
    accepted and given back unchanged, or refused for the same reason (a flag key's character
    set, a field that cannot change after creation)."""
    target = TARGETS[(route.basename, route.action)](world)
    fields = string_fields(route, world)
    assert fields
    sent = 0

    def send_text(name: str, text: str):
        nonlocal sent
        sent += 1
        body = {**(target.body or {}), name: text}
        for key_field in ("feature_flag_key", "key"):
            if route.action == "create" and key_field in body and key_field != name:
                body[key_field] = f"{body[key_field]}-{sent}"
        path = route.path(world.project.id, target.pk)
        return send(world, route, path, encoded(body), "application/json")

    for name in fields:
        plain = send_text(name, "Plain text")
        fancy = send_text(name, UNICODE_TEXT)
        assert fancy.status_code == plain.status_code, (name, plain.content, fancy.content)
        if fancy.status_code >= 400:
            assert fancy.json()["code"] == plain.json()["code"]
        elif name in fancy.json():
            assert fancy.json()[name] == UNICODE_TEXT
