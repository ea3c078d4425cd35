"""Every property operator this server accepts in flag filters, decided by posthog-node's own matcher
from the definitions, gives what `/flags` gives for well-formed values: a user never gets one answer
locally and another remotely. See `conftest.py`.

posthog-node 5.74 is laxer than PostHog's server (and posthog-python) with malformed operands, so
those are left out here: it compares non-numeric operands of `gt`/`gte`/`lt`/`lte` as text, parses
non-ISO text ("1.2.3", "10") as dates, and reads a list value of the starts/ends-with operators
as a list of prefixes or suffixes (an empty one matching every string), and a list property value
as its members, where PostHog's matchers compare with the list's JSON text. This server matches as PostHog's server and posthog-python do.
"""

import re

import pytest
from rest_framework.exceptions import ValidationError

from flags.definitions import flag_definitions_changed
from flags.models import FeatureFlag
from flags.operators import DATE_OPERATORS, NUMERIC_OPERATORS, TEXT_OPERATORS
from flags.validation import validate_property
from tests.flags.test_evaluation_matches_sdk import OPERATORS, VALUES

pytestmark = pytest.mark.django_db(transaction=True)

NUMBER_TEXT = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?$")
RELATIVE_DATE = re.compile(r"^-[0-9]+[hdwmy]$")


def is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (isinstance(value, str) and bool(NUMBER_TEXT.match(value)))


def well_formed(operator: str, expected, actual) -> bool:
    """Whether the filter value and the property value are what the operator is meant to compare."""
    if operator in NUMERIC_OPERATORS:
        return is_number(expected) and is_number(actual)
    if operator in DATE_OPERATORS:
        is_date = isinstance(actual, str) and bool(ISO_DATE.match(actual))
        return (
            is_date
            and isinstance(expected, str)
            and bool(ISO_DATE.match(expected) or RELATIVE_DATE.match(expected))
        )
    if operator in TEXT_OPERATORS:
        return isinstance(expected, str) and not isinstance(actual, list)
    return True


def accepted(rule: dict, project) -> bool:
    """Whether this server's flag validation lets the filter be saved."""
    try:
        validate_property(rule, aggregation_group_type_index=None, project=project)
    except ValidationError:
        return False
    return True


def test_local_and_remote_answers_agree_for_every_operator_and_value(node):
    rules = {
        f"{operator}-{number}": {"key": "prop", "operator": operator, "value": value, "type": "person"}
        for operator in OPERATORS
        for number, value in enumerate(VALUES)
    }
    rules = {key: rule for key, rule in rules.items() if accepted(rule, node.project)}
    FeatureFlag.objects.bulk_create(
        FeatureFlag(
            project=node.project,
            key=key,
            name=key,
            active=True,
            filters={"groups": [{"properties": [rule], "rollout_percentage": 100}]},
        )
        for key, rule in rules.items()
    )
    flag_definitions_changed(node.project.id)
    local, remote = node.local(), node.remote()
    assert len(local.definitions) == len(rules)
    # The SDK names the flags whose filter value it cannot parse (semantic version "abc", or an integer
    # it cannot tell from a float); it leaves those to /flags.
    warnings = [message for message in node.messages("warn") if "(reason: unsupported_definition)" in message]
    unsupported = set(warnings[0].split("(reason: unsupported_definition): ")[1].split(". ")[0].split(", "))
    assert unsupported < set(rules)
    node.forget_problems()

    people = [
        [f"user_{number}", {"personProperties": {"prop": value}}] for number, value in enumerate(VALUES)
    ]
    from_server = remote.calls("getAllFlags", people)
    from_definitions = local.calls(
        "getAllFlags", [[did, {**options, "onlyEvaluateLocally": True}] for did, options in people]
    )

    compared = 0
    for (distinct_id, options), served, computed in zip(people, from_server, from_definitions, strict=True):
        assert set(served) == set(rules)
        actual = options["personProperties"]["prop"]
        # What the SDK cannot decide locally (an unparsable semantic version, say) it leaves out.
        decided = {
            key: value
            for key, value in computed.items()
            if well_formed(rules[key]["operator"], rules[key]["value"], actual)
        }
        assert decided == {key: served[key] for key in decided}, distinct_id
        compared += len(decided)
    assert compared > 5000
