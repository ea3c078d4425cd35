"""Hostile input against the SDK endpoints (issue 8, item 2): `/flags`, `/decide`, the event intake
(`/batch`, `/capture`, `/e`, `/i/v0/e`) and the definitions endpoints.

These answer in their own formats (PostHog's): `/flags` and `/decide` with plain-text messages,
event intake and definitions with the API's error envelope. A malformed request is a 4xx in that
format, never a 500, and stores nothing. Property values of any JSON type are data, not errors:
flags with every operator evaluate them and answer 200.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from events.models import Event
from flags.operators import PROPERTY_OPERATORS
from tests.api.world import World, changed_tables, database_fingerprint, populate
from tests.factories import FeatureFlagFactory, GroupTypeMappingFactory

pytestmark = pytest.mark.django_db

ENVELOPE_KEYS = {"type", "code", "detail", "attr"}
FLAGS_PATHS = ("/flags/?v=2", "/flags", "/decide/?v=3", "/decide/?v=4")
CAPTURE_PATHS = ("/batch/", "/capture/", "/e/", "/i/v0/e/")
DEFINITIONS_PATHS = ("/flags/definitions", "/api/feature_flag/local_evaluation/")
TEN_MB = 10 * 1024 * 1024
LONE_SURROGATE = "\ud800"
UNICODE_TEXT = "Ünïcødé 😀 𝕏𝔶𝔷 שלום مرحبا \u202eRTL\u202c e\u0301"


@dataclass(frozen=True)
class Case:
    label: str
    body: bytes
    content_type: str = "application/json"


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def common_cases() -> Iterator[Case]:
    """What is wrong with a body whatever the endpoint: its encoding or its top level."""
    yield Case("text/plain body", b"hello", content_type="text/plain")
    yield Case("malformed JSON", b'{"token": "phc_x",')
    yield Case("invalid UTF-8", b'{"token": "\xff\xfe"}')
    yield Case("empty body", b"")
    yield Case("100 000 levels of nesting", b"[" * 100_000 + b"]" * 100_000)
    yield Case("form body without data", b"nothing=here", content_type="application/x-www-form-urlencoded")
    yield Case("form body with bad base64", b"data=%%%%", content_type="application/x-www-form-urlencoded")
    yield Case("gzip header on plain JSON", b"\x1f\x8b{}")
    for label, value in [("string", "probe"), ("number", 12345), ("null", None), ("boolean", True)]:
        yield Case(f"top-level {label}", encoded(value))


def field_cases(base: dict[str, Any], wrong: dict[str, list[Any]]) -> Iterator[Case]:
    for field, values in wrong.items():
        for value in values:
            yield Case(f"{field} = {value!r:.40}", encoded({**base, field: value}))


def unstorable_cases(base: dict[str, Any], text_field: str) -> Iterator[Case]:
    for label, value in [
        ("NUL", "probe\u0000nul"),
        ("lone surrogate", f"probe{LONE_SURROGATE}"),
        ("nesting deeper than allowed", nested(65)),
    ]:
        yield Case(f"{text_field}: {label}", encoded({**base, text_field: value}))
    yield Case("NUL in a key", encoded({**base, "na\u0000me": 1}))
    yield Case("lone surrogate in a key", encoded({**base, f"x{LONE_SURROGATE}": 1}))


def flags_cases(token: str) -> Iterator[Case]:
    base = {"token": token, "distinct_id": "user-1"}
    yield from common_cases()
    yield Case("top-level list", encoded([base]))
    yield Case("top-level 10 000-element list", encoded([base] * 10_000))
    yield Case("no token", encoded({"distinct_id": "user-1"}))
    yield Case("unknown token", encoded({**base, "token": "phc_" + "x" * 43}))
    yield Case("token of 10 MB", encoded({**base, "token": "x" * TEN_MB}))
    yield from field_cases(
        base,
        {
            "token": [123, ["phc"], {"token": token}, True, None, ""],
            "distinct_id": [None, "", "   ", [], ["user-1"], {}, True, False],
            "person_properties": ["plan", 1, [], ["plan"], True],
            "groups": ["company", 1, ["company"], True],
            "group_properties": ["company", 1, [], {"company": "not an object"}, {"company": [1]}],
            "flag_keys_to_evaluate": ["flag", 1, {}, [1], [None], [["flag"]], [[]] * 10_000],
            "flag_keys": ["flag", 1, {}, [1]],
        },
    )
    yield from unstorable_cases(base, "distinct_id")


def capture_cases(token: str) -> Iterator[Case]:
    event = {"event": "$pageview", "distinct_id": "user-1", "properties": {}}
    base = {"api_key": token, "batch": [event]}
    yield from common_cases()
    yield Case("top-level empty list", encoded([]))
    yield Case("no token", encoded({"batch": [event]}))
    yield Case("unknown token", encoded({**base, "api_key": "phc_" + "x" * 43}))
    yield Case("body over the event limit", encoded({**base, "padding": "x" * (21 * 1024 * 1024)}))
    yield from field_cases(
        base,
        {
            "api_key": [123, [token], {"token": token}, True, None, ""],
            "batch": ["events", 1, {"event": "e"}, True, [[]] * 10_000, [1], [None], ["event"]],
        },
    )
    for field, values in {
        "event": [None, "", "   ", 1, [], {}, True],
        "distinct_id": [None, "", "   ", [], {}, True],
        "properties": ["props", 1, [], True],
        "uuid": ["not-a-uuid", 1, [], {}, True, "x" * TEN_MB],
    }.items():
        for value in values:
            body = {**base, "batch": [event, {**event, field: value}]}
            yield Case(f"batch[1].{field} = {value!r:.40}", encoded(body))
            yield Case(
                f"single event {field} = {value!r:.40}", encoded({"api_key": token, **event, field: value})
            )
    yield from unstorable_cases({"api_key": token, **event}, "event")


def is_envelope(content: bytes) -> bool:
    try:
        body = json.loads(content)
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == ENVELOPE_KEYS and isinstance(body["detail"], str)


def flags_answer_problem(response) -> str | None:
    """`/flags` refuses with PostHog's plain-text messages (the envelope only from the middleware)."""
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    plain = response["Content-Type"].startswith("text/plain") and response.content.strip()
    return None if plain or is_envelope(response.content) else f"body {response.content[:200]!r}"


def envelope_answer_problem(response) -> str | None:
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    return None if is_envelope(response.content) else f"body {response.content[:200]!r}"


@pytest.fixture
def world(api) -> World:
    return populate(api.project, api.user, api, marker="sdk")


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def refusals(client, path: str, cases: Iterator[Case], judge) -> list[str]:
    """Send every case; report those answered wrongly or that changed the database."""
    failures = []
    before = database_fingerprint()
    for case in cases:
        response = client.generic("POST", path, case.body, content_type=case.content_type)
        problem = judge(response)
        after = database_fingerprint()
        if after != before:
            problem = f"{problem or response.status_code}; changed {changed_tables(before, after)}"
            before = after
        if problem:
            failures.append(f"{case.label}: {problem}")
    return failures


# Every case goes to one path of each view; the other paths of a view share its code, and get the
# cases that do not depend on the fields.
@pytest.mark.parametrize("path", ["/flags/?v=2", "/decide/?v=3"])
def test_malformed_flags_requests_are_refused(world, client, path):
    failures = refusals(client, path, flags_cases(world.project.api_token), flags_answer_problem)
    assert not failures, f"{path}:\n" + "\n".join(failures)
    response = client.post(
        path, {"token": world.project.api_token, "distinct_id": "user-1"}, "application/json"
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/batch/"])
def test_malformed_event_batches_are_refused_and_store_nothing(world, client, path):
    failures = refusals(client, path, capture_cases(world.project.api_token), envelope_answer_problem)
    assert not failures, f"{path}:\n" + "\n".join(failures)
    assert not Event.objects.exists()
    event = {"event": "$pageview", "distinct_id": "user-1"}
    response = client.post(path, {"api_key": world.project.api_token, "batch": [event]}, "application/json")
    assert response.status_code == 200
    assert Event.objects.filter(project=world.project).count() == 1


@pytest.mark.parametrize(
    ("path", "judge"),
    [
        *[(path, flags_answer_problem) for path in FLAGS_PATHS],
        *[(path, envelope_answer_problem) for path in CAPTURE_PATHS],
    ],
)
def test_every_path_refuses_malformed_bodies(world, client, path, judge):
    failures = refusals(client, path, common_cases(), judge)
    assert not failures, f"{path}:\n" + "\n".join(failures)


@pytest.mark.parametrize("path", [*FLAGS_PATHS, *CAPTURE_PATHS, *DEFINITIONS_PATHS])
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_write_methods_are_405(world, client, path, method):
    before = database_fingerprint()
    response = client.generic(method, path, b"{}", content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"]
    assert database_fingerprint() == before


@pytest.mark.parametrize("path", DEFINITIONS_PATHS)
def test_definitions_refuse_post_in_the_envelope(world, client, path):
    response = client.generic("POST", path, b"{}", content_type="application/json")
    assert response.status_code == 405
    assert is_envelope(response.content)


@pytest.mark.parametrize("query", ["v=1e3", "v=99999999999999999999", "v=nan", "v=inf", "v=-1", "config=%ff"])
def test_odd_version_parameters_still_answer(world, client, query):
    body = {"token": world.project.api_token, "distinct_id": "user-1"}
    response = client.post(f"/flags/?{query}", body, "application/json")
    assert response.status_code == 200


def test_nul_in_the_query_string_is_refused(world, client):
    body = {"token": world.project.api_token, "distinct_id": "user-1"}
    response = client.post("/flags/?v=%00", body, "application/json")
    assert response.status_code == 400
    assert is_envelope(response.content)


# --- property values of every type are data ------------------------------------------------------

OPERATOR_VALUES = {
    "exact": ["pro", "enterprise"],
    "is_not": "pro",
    "is_set": "is_set",
    "is_not_set": "is_not_set",
    "icontains": "PR",
    "not_icontains": "ünï",
    "starts_with": "p",
    "not_starts_with": "😀",
    "ends_with": "o",
    "not_ends_with": "",
    "regex": "^p(r|x)o$",
    "not_regex": "[",
    "gt": 10,
    "gte": "10.5",
    "lt": 1e300,
    "lte": -5,
    "is_date_before": "-7d",
    "is_date_after": "2024-01-01T00:00:00Z",
    "semver_eq": "1.2.3",
    "semver_neq": "1.2",
    "semver_gt": "1.2.3-beta",
    "semver_gte": "0.0.1",
    "semver_lt": "2",
    "semver_lte": "10.0.0",
    "semver_tilde": "1.2.3",
    "semver_caret": "0.2.3",
    "semver_wildcard": "1.*",
}
HOSTILE_PROPERTY_VALUES = [
    None,
    True,
    0,
    -1,
    10**300,
    -(10**300),
    1e308,
    1.5e-300,
    "",
    "pro",
    UNICODE_TEXT,
    "1.2.3.4.5.6",
    "99999999999999999999999.1.1",
    "2024-13-45",
    "0000",
    "9999",
    "-99999999999d",
    "9" * 5000,
    [],
    ["pro", 1, None],
    {"nested": {"deeper": ["pro"]}},
    nested(60),
]


@pytest.fixture
def operator_flags(world) -> list[str]:
    """One flag per property operator, one aggregated by a group, one depending on another flag."""
    keys = []
    for operator in sorted(PROPERTY_OPERATORS):
        key = f"operator-{operator}"
        condition = {
            "key": "plan",
            "type": "person",
            "operator": operator,
            "value": OPERATOR_VALUES.get(operator),
        }
        FeatureFlagFactory(project=world.project, key=key, filters={"groups": [{"properties": [condition]}]})
        keys.append(key)
    GroupTypeMappingFactory(project=world.project, group_type="company", group_type_index=0)
    group_condition = {
        "key": "plan",
        "type": "group",
        "group_type_index": 0,
        "operator": "icontains",
        "value": "p",
    }
    FeatureFlagFactory(
        project=world.project,
        key="group-flag",
        filters={"aggregation_group_type_index": 0, "groups": [{"properties": [group_condition]}]},
    )
    dependency = {"key": "operator-exact", "type": "flag", "operator": "flag_evaluates_to", "value": True}
    FeatureFlagFactory(
        project=world.project, key="dependent-flag", filters={"groups": [{"properties": [dependency]}]}
    )
    return [*keys, "group-flag", "dependent-flag"]


def test_property_values_of_any_type_are_evaluated_not_refused(world, client, operator_flags):
    assert set(OPERATOR_VALUES) == set(PROPERTY_OPERATORS)
    before = database_fingerprint()
    failures = []
    for value in HOSTILE_PROPERTY_VALUES:
        body = {
            "token": world.project.api_token,
            "distinct_id": UNICODE_TEXT,
            "person_properties": {"plan": value},
            "groups": {"company": value if isinstance(value, str) else json.dumps(value)},
            "group_properties": {"company": {"plan": value}},
        }
        response = client.post("/flags/?v=2", body, "application/json")
        if response.status_code != 200 or set(response.json()["flags"]) < set(operator_flags):
            failures.append(f"{value!r:.60}: {response.status_code} {response.content[:200]!r}")
    assert not failures, "\n".join(failures)
    assert database_fingerprint() == before


@pytest.mark.parametrize("group_key", [[], {}, None, 12345, True, ["a", ["b"]], {"nested": {}}])
def test_group_keys_of_any_type_are_evaluated(world, client, operator_flags, group_key):
    body = {"token": world.project.api_token, "distinct_id": "user-1", "groups": {"company": group_key}}
    response = client.post("/flags/?v=2", body, "application/json")
    assert response.status_code in (200, 400), response.content


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        ("is_date_before", "-" + "9" * 5000 + "d"),
        ("is_date_after", "0000"),
        ("semver_gt", "9" * 5000),
        ("semver_wildcard", "9" * 5000 + ".*"),
        ("semver_caret", "1." + "9" * 5000),
        ("gt", "9" * 5000),
        ("regex", "(" * 5000),
        ("exact", [UNICODE_TEXT, None, {"a": []}]),
    ],
)
def test_filter_values_the_api_accepts_still_evaluate(world, client, operator, value):
    """A filter value no comparison can use makes the condition not match; it never breaks `/flags`
    for the whole project."""
    condition = {"key": "plan", "type": "person", "operator": operator, "value": value}
    response = world.api.post(
        world.api.url("feature_flags/"),
        {"key": "hostile-filter", "filters": {"groups": [{"properties": [condition]}]}},
        format="json",
    )
    assert response.status_code in (201, 400), response.content
    for plan in ["1.2.3", "2024-01-01", "0000", "9" * 5000, UNICODE_TEXT, 10**300]:
        body = {
            "token": world.project.api_token,
            "distinct_id": "user-1",
            "person_properties": {"plan": plan},
        }
        answer = client.post("/flags/?v=2", body, "application/json")
        assert answer.status_code == 200, (plan, answer.content)
