"""`regex` / `not_regex` conditions run in linear time (RE2) and keep PostHog's semantics."""

import json
import threading

import pytest
from django.db import connections
from django.test import Client

from flags.models import FeatureFlag
from flags.operators import match_property
from flags.validation import REGEX_NOT_SUPPORTED
from tests.factories import FeatureFlagFactory

CATASTROPHIC = "^(a+)+$"
# Python's backtracking `re` needs about 2^n steps for this value; n = 30 held a worker for ~35 s.
HOSTILE_VALUE = "a" * 100_000 + "!"
# How long a request may take before the test calls it stalled: a backtracking engine needs ages
# for HOSTILE_VALUE, a linear one milliseconds, so the bound is far from either.
STALLED_AFTER_SECONDS = 20


def finishes(work, *args):
    """Run `work` in a daemon thread; its result, or a failure if it is still running after the bound."""
    outcome = {}

    def run():
        try:
            outcome["result"] = work(*args)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(STALLED_AFTER_SECONDS)
    assert not thread.is_alive(), "evaluation stalled: the regex engine backtracks"
    return outcome["result"]


@pytest.mark.parametrize(
    ("operator", "pattern", "value", "matches"),
    [
        ("regex", "^u.a$", "usa", True),
        ("regex", "s", "usa", True),  # a search, not anchored at the start
        ("regex", "(?i)^USA$", "usa", True),
        ("regex", r"^\d+$", 42, True),  # non-strings are matched as their JSON text
        ("regex", "^true$", True, True),
        ("not_regex", "^u", "usa", False),
        ("not_regex", "^x", "usa", True),
        ("regex", "^é+$", "éé", True),
        ("regex", "a", "\ud800a", True),  # a lone surrogate (valid JSON) neither crashes nor hides a match
        ("regex", r"(a)\1", "aa", False),  # backreference: RE2 cannot compile it, so it never matches
        ("not_regex", r"(a)\1", "b", False),
        ("regex", "(?=u)", "usa", False),
        ("regex", "[invalid", "usa", False),
    ],
)
def test_regex_semantics(operator, pattern, value, matches):
    assert match_property({"key": "p", "operator": operator, "value": pattern}, {"p": value}) is matches


@pytest.mark.parametrize("operator", ["regex", "not_regex"])
def test_catastrophic_pattern_answers_at_once(operator):
    rule = {"key": "p", "operator": operator, "value": CATASTROPHIC}
    assert finishes(match_property, rule, {"p": HOSTILE_VALUE}) is (operator == "not_regex")
    assert finishes(match_property, rule, {"p": "a" * 100_000}) is (operator == "regex")


@pytest.mark.django_db(transaction=True)
def test_public_flags_request_with_hostile_value_answers_at_once(project):
    FeatureFlagFactory(
        project=project,
        key="regex-flag",
        filters={
            "groups": [
                {
                    "properties": [
                        {"key": "name", "operator": "regex", "value": CATASTROPHIC, "type": "person"}
                    ],
                    "rollout_percentage": 100,
                }
            ]
        },
    )
    body = json.dumps(
        {
            "api_key": project.api_token,
            "distinct_id": "attacker",
            "person_properties": {"name": HOSTILE_VALUE},
        }
    )

    def ask():
        return Client().generic("POST", "/flags/?v=2", body, content_type="application/json")

    response = finishes(ask)
    assert response.status_code == 200
    assert response.json()["flags"]["regex-flag"]["enabled"] is False


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=lookahead)", "(?<!x)y", "[unclosed", "a{1000}{1000}"])
@pytest.mark.parametrize("operator", ["regex", "not_regex"])
def test_pattern_re2_cannot_compile_is_refused_on_save(api, operator, pattern):
    filters = {
        "groups": [
            {
                "properties": [{"key": "email", "operator": operator, "value": pattern, "type": "person"}],
                "rollout_percentage": 100,
            }
        ]
    }
    response = api.post(api.url("feature_flags/"), {"key": "guarded", "filters": filters}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == REGEX_NOT_SUPPORTED.format(operator=operator)
    assert not FeatureFlag.objects.filter(project=api.project, key="guarded").exists()


def test_catastrophic_but_compilable_pattern_is_accepted(api):
    filters = {
        "groups": [
            {
                "properties": [
                    {"key": "email", "operator": "regex", "value": CATASTROPHIC, "type": "person"}
                ],
                "rollout_percentage": 100,
            }
        ]
    }
    response = api.post(api.url("feature_flags/"), {"key": "linear", "filters": filters}, format="json")
    assert response.status_code == 201, response.json()
