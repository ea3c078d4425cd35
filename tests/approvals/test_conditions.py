"""Policy condition truth tables (PostHog's UF cases), on the pure condition engine."""

import pytest

from approvals.conditions import conditions_match


def rollout_intent(before, after):
    path = "groups[0].rollout_percentage"
    return {
        "current_state": {"rollout_percentage": [{"path": path, "value": before}]},
        "gated_changes": {"rollout_percentage": [{"path": path, "value": after}]},
    }


@pytest.mark.parametrize(
    ("operator", "threshold", "after", "expected"),
    [
        (">", 50, 80, True),
        (">", 50, 50, False),
        (">", 50, 30, False),
        (">=", 50, 50, True),
        (">=", 50, 80, True),
        (">=", 50, 30, False),
        ("<", 50, 30, True),
        ("<", 50, 50, False),
        ("<=", 50, 50, True),
        ("<=", 50, 30, True),
        ("<=", 50, 80, False),
        ("==", 50, 50, True),
        ("==", 50, 80, False),
        ("!=", 50, 80, True),
        ("!=", 50, 50, False),
    ],
)
def test_before_after(operator, threshold, after, expected):
    condition = {
        "type": "before_after",
        "field": "rollout_percentage",
        "operator": operator,
        "value": threshold,
    }
    assert conditions_match(condition, rollout_intent(30, after)) is expected


@pytest.mark.parametrize(
    ("operator", "threshold", "before", "after", "expected"),
    [
        (">", 10, 50, 80, True),
        (">", 10, 50, 55, False),
        (">=", 10, 50, 60, True),
        ("<", 10, 50, 55, True),
        ("<", 10, 50, 80, False),
    ],
)
def test_change_amount(operator, threshold, before, after, expected):
    condition = {
        "type": "change_amount",
        "field": "rollout_percentage",
        "operator": operator,
        "value": threshold,
    }
    assert conditions_match(condition, rollout_intent(before, after)) is expected


def test_any_change():
    condition = {"type": "any_change", "field": "rollout_percentage"}
    assert conditions_match(condition, rollout_intent(50, 80)) is True
    assert conditions_match(condition, rollout_intent(50, 50)) is False
    appeared = {"current_state": {}, "gated_changes": {"rollout_percentage": [{"path": "p", "value": 1}]}}
    assert conditions_match(condition, appeared) is True


@pytest.mark.parametrize("conditions", [None, {}, []])
def test_empty_conditions_match_everything(conditions):
    assert conditions_match(conditions, rollout_intent(50, 50)) is True


@pytest.mark.parametrize(
    "condition",
    [
        {"type": "nonsense", "field": "rollout_percentage"},
        {"type": "before_after", "operator": ">", "value": 50},
        {"type": "before_after", "field": "rollout_percentage", "operator": "~", "value": 50},
        {"type": "before_after", "field": "rollout_percentage", "operator": ">"},
        "not a condition",
    ],
)
def test_malformed_conditions_fail_closed(condition):
    assert conditions_match(condition, rollout_intent(50, 10)) is True


def test_non_comparable_values_are_skipped_and_missing_values_do_not_match():
    condition = {"type": "before_after", "field": "rollout_percentage", "operator": ">", "value": 50}
    assert conditions_match(condition, rollout_intent(30, None)) is False
    assert conditions_match(condition, {"current_state": {}, "gated_changes": {}}) is False


def test_a_list_of_conditions_needs_all_of_them():
    above = {"type": "before_after", "field": "rollout_percentage", "operator": ">", "value": 50}
    below = {"type": "before_after", "field": "rollout_percentage", "operator": "<", "value": 90}
    assert conditions_match([above, below], rollout_intent(30, 80)) is True
    assert conditions_match([above, below], rollout_intent(30, 95)) is False
