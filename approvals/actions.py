"""The gateable actions. A policy names one of these keys.

Each action says when a change is one of its kind (`detect`, from the facets services report while
a gated call runs) and what to store about it (`intent`, `display`). Carrying out an approved
request is the same for every action: the gate replays the recorded service call.

The apps that own the writes register their actions in `AppConfig.ready()` (`register_actions`), so
this app knows no other app: `feature_flag.*` from flags, `experiment_holdout.*` from holdouts,
`experiment.*` from experiments. PostHog's keys work as in PostHog (`feature_flag.*` for flag writes,
which covers experiment launches, pauses, ships and running split edits through their flag); for a
flag owned by an experiment, an `experiment.*` policy governs when one exists, otherwise the matching
`feature_flag.*` policy does.
"""

from dataclasses import dataclass
from typing import Any

from approvals.observer import Facet, merged_intent


@dataclass(frozen=True)
class GatedAction:
    key: str
    resource_type: str
    description: str

    def detect(self, facet: Facet) -> bool:
        """Whether this action's policy may govern the change the facet describes."""
        return self.key in facet.action_keys

    def intent(self, facets: list[Facet]) -> dict[str, Any]:
        return merged_intent([facet for facet in facets if self.detect(facet)])

    def display(self, intent: dict[str, Any], facets: list[Facet]) -> dict[str, Any]:
        own_first = sorted(facets, key=lambda facet: facet.resource_type != self.resource_type)
        details = [facet.description for facet in own_first if facet.description]
        return {
            "description": "; ".join(details) or self.description,
            "before": intent.get("current_state", {}),
            "after": intent.get("gated_changes", {}),
        }


_registered_actions: dict[str, GatedAction] = {}


def register_actions(*actions: GatedAction) -> None:
    """Make these actions gateable (called from the owning app's `AppConfig.ready()`). Registering
    the same action again is harmless; registering another action under a taken key is an error."""
    for action in actions:
        existing = _registered_actions.setdefault(action.key, action)
        if existing != action:
            raise ValueError(f"Approval action {action.key!r} is already registered as {existing}")


def gated_action(key: str) -> GatedAction | None:
    """The registered action with this key, or None."""
    return _registered_actions.get(key)


def gated_action_keys() -> list[str]:
    """Every registered action key, sorted."""
    return sorted(_registered_actions)
