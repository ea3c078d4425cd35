"""Policy conditions: which changes a policy gates.

An intent describes a change as `current_state` and `gated_changes`, each `{field: [{path, value}]}`
(for example `rollout_percentage` at `groups[0].rollout_percentage`). A condition is one of:

- `{"type": "before_after", "field", "operator", "value"}`: some new value satisfies `new OP value`;
- `{"type": "change_amount", "field", "operator", "value"}`: for a path present before and after,
  `(new - old) OP value`;
- `{"type": "any_change", "field"}`: some path of the field appears, disappears or changes.

Empty conditions match every change. A condition this engine does not understand (unknown type or
operator, missing keys) also matches: an unreadable policy gates rather than lets changes through.
A list of conditions matches when all of them match.
"""

import operator
from collections.abc import Callable
from typing import Any

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
CONDITION_TYPES = ("before_after", "change_amount", "any_change")


def values_by_path(state: dict[str, Any], field: str) -> dict[str, Any]:
    entries = state.get(field) if isinstance(state, dict) else None
    if not isinstance(entries, list):
        return {}
    return {str(entry.get("path")): entry.get("value") for entry in entries if isinstance(entry, dict)}


def compare(left: Any, op: Callable[[Any, Any], bool], right: Any) -> bool | None:
    """The comparison, or None when the two values cannot be compared."""
    if isinstance(left, bool) or isinstance(right, bool):
        return op(left, right) if op in (operator.eq, operator.ne) else None
    try:
        return bool(op(left, right))
    except TypeError:
        return None


def condition_matches(condition: Any, intent: dict[str, Any]) -> bool:
    if not isinstance(condition, dict) or condition.get("type") not in CONDITION_TYPES:
        return True
    field = condition.get("field")
    if not isinstance(field, str) or not field:
        return True
    before = values_by_path(intent.get("current_state") or {}, field)
    after = values_by_path(intent.get("gated_changes") or {}, field)

    if condition["type"] == "any_change":
        return any(before.get(path) != after.get(path) for path in set(before) | set(after))

    op = OPERATORS.get(condition.get("operator"))
    if op is None or "value" not in condition:
        return True
    threshold = condition["value"]
    if condition["type"] == "before_after":
        return any(compare(value, op, threshold) for value in after.values())
    for path in set(before) & set(after):
        try:
            delta = after[path] - before[path]
        except TypeError:
            continue
        if compare(delta, op, threshold):
            return True
    return False


def conditions_match(conditions: Any, intent: dict[str, Any]) -> bool:
    """Whether a policy's conditions select this change (empty: always)."""
    if conditions in (None, {}, []):
        return True
    if isinstance(conditions, list):
        return all(condition_matches(condition, intent) for condition in conditions)
    return condition_matches(conditions, intent)
