"""What a gated call is about to change, as seen by the services while they run.

A gated service call runs once inside a transaction that the gate may roll back. While it runs,
the services report each gateable change here as a `Facet` (a flag enabled, a rollout changed, an
experiment launched, a holdout changed, ...), with the before/after values policy conditions look
at. The gate then decides from these facets, so detection always describes exactly what the call
would have written. Outside a gated call, reporting is a no-op.

This module imports no app models so every app can report to it.
"""

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

FLAG_ENABLE = "enable"
FLAG_DISABLE = "disable"
FLAG_UPDATE = "update"


@dataclass
class Facet:
    """One gateable aspect of a change. `action_keys` lists, in order, the policy action keys that
    may govern it: the first key with a policy governs."""

    action_keys: list[str]
    resource_type: str
    resource_id: str | None
    description: str
    current_state: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    gated_changes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def intent(self) -> dict[str, Any]:
        return {
            "current_state": self.current_state,
            "gated_changes": self.gated_changes,
            "triggered_paths": sorted(
                {entry["path"] for entries in self.gated_changes.values() for entry in entries}
                | {entry["path"] for entries in self.current_state.values() for entry in entries}
            ),
        }


@dataclass
class Recorder:
    """Collects the facets of one gated call. `flag_action_keys` maps a flag facet kind (enable,
    disable, update) to the keys that govern it, in this call, before its `feature_flag.*` key."""

    flag_action_keys: dict[str, list[str]]
    facets: list[Facet] = field(default_factory=list)


current_recorder: ContextVar[Recorder | None] = ContextVar("approval_recorder", default=None)


def record(facet: Facet) -> None:
    recorder = current_recorder.get()
    if recorder is not None:
        recorder.facets.append(facet)


def state(values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """`{field: value}` as the `{field: [{path, value}]}` shape conditions read."""
    return {name: [{"path": name, "value": value}] for name, value in values.items()}


def merged_intent(facets: list[Facet]) -> dict[str, Any]:
    intent: dict[str, Any] = {"current_state": {}, "gated_changes": {}, "triggered_paths": []}
    for facet in facets:
        part = facet.intent()
        for key in ("current_state", "gated_changes"):
            for field_name, entries in part[key].items():
                intent[key].setdefault(field_name, []).extend(entries)
        intent["triggered_paths"] = sorted({*intent["triggered_paths"], *part["triggered_paths"]})
    return intent


def rollout_values(filters: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every rollout a flag's filters carry, by path: release conditions, variants and holdout."""
    filters = filters or {}
    values = []
    for index, group in enumerate(filters.get("groups") or []):
        if isinstance(group, dict):
            values.append(
                {"path": f"groups[{index}].rollout_percentage", "value": group.get("rollout_percentage")}
            )
    for variant in (filters.get("multivariate") or {}).get("variants") or []:
        if isinstance(variant, dict):
            path = f"multivariate.variants[{variant.get('key')}].rollout_percentage"
            values.append({"path": path, "value": variant.get("rollout_percentage")})
    holdout = filters.get("holdout")
    if isinstance(holdout, dict):
        values.append({"path": "holdout.exclusion_percentage", "value": holdout.get("exclusion_percentage")})
    return values


def flag_keys(kind: str) -> list[str]:
    recorder = current_recorder.get()
    first = recorder.flag_action_keys.get(kind, []) if recorder is not None else []
    return [*first, f"feature_flag.{kind}"]


def record_flag_change(
    *, flag_id: int | None, flag_key: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """Report a flag write: enabling, disabling and rollout changes are separate facets."""
    if current_recorder.get() is None:
        return
    resource_id = str(flag_id) if flag_id is not None else None
    was_active, is_active = bool(before.get("active")), bool(after.get("active"))
    if is_active and not was_active:
        record(
            Facet(
                flag_keys(FLAG_ENABLE),
                "feature_flag",
                resource_id,
                f"Enable feature flag '{flag_key}'",
                state({"active": was_active}),
                state({"active": True}),
            )
        )
    if was_active and not is_active:
        record(
            Facet(
                flag_keys(FLAG_DISABLE),
                "feature_flag",
                resource_id,
                f"Disable feature flag '{flag_key}'",
                state({"active": was_active}),
                state({"active": False}),
            )
        )
    old_rollouts, new_rollouts = rollout_values(before.get("filters")), rollout_values(after.get("filters"))
    if old_rollouts != new_rollouts:
        old_by_path = {entry["path"]: entry["value"] for entry in old_rollouts}
        changed = [
            entry for entry in new_rollouts if old_by_path.get(entry["path"], object()) != entry["value"]
        ]
        summary = "; ".join(
            f"rollout percentage at {entry['path']}: {old_by_path.get(entry['path'])}% -> {entry['value']}%"
            for entry in changed
        )
        record(
            Facet(
                flag_keys(FLAG_UPDATE),
                "feature_flag",
                resource_id,
                f"Update rollout percentage for feature flag '{flag_key}': {summary or 'conditions changed'}",
                {"rollout_percentage": old_rollouts},
                {"rollout_percentage": new_rollouts},
            )
        )
