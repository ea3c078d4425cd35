"""The gateable actions. A policy names one of these keys.

Each action says when a change is one of its kind (`detect`, from the facets services report while
a gated call runs), what to store about it (`intent`, `display`), whether the target has changed
since the request was made (`is_stale`), and how to carry it out once approved (`apply`: replay the
recorded service call as the requester through the same gate).

PostHog's keys work as in PostHog (`feature_flag.*` for flag writes, which covers experiment
launches, pauses, ships and running split edits through their flag; `experiment_holdout.*`). Every
experiment write also has its own `experiment.*` key; for a flag owned by an experiment, an
`experiment.*` policy governs when one exists, otherwise the matching `feature_flag.*` policy does.
"""

from dataclasses import dataclass
from typing import Any

from approvals.gate import replay, stale_reason
from approvals.models import ChangeRequest
from approvals.observer import Facet


@dataclass(frozen=True)
class GatedAction:
    key: str
    resource_type: str
    description: str

    def detect(self, facet: Facet) -> bool:
        """Whether this action's policy may govern the change the facet describes."""
        return self.key in facet.action_keys

    def intent(self, facets: list[Facet]) -> dict[str, Any]:
        from approvals.gate import merged_intent

        return merged_intent([facet for facet in facets if self.detect(facet)])

    def display(self, intent: dict[str, Any], facets: list[Facet]) -> dict[str, Any]:
        own_first = sorted(facets, key=lambda facet: facet.resource_type != self.resource_type)
        details = [facet.description for facet in own_first if facet.description]
        return {
            "description": "; ".join(details) or self.description,
            "before": intent.get("current_state", {}),
            "after": intent.get("gated_changes", {}),
        }

    def is_stale(self, change_request: ChangeRequest) -> str | None:
        """Why the request's target changed since it was made, or None."""
        return stale_reason(change_request.intent.get("preconditions") or {})

    def apply(self, change_request: ChangeRequest) -> Any:
        return replay(change_request, user=change_request.created_by)


ACTIONS: dict[str, GatedAction] = {
    action.key: action
    for action in (
        GatedAction("feature_flag.enable", "feature_flag", "Enable a feature flag"),
        GatedAction("feature_flag.disable", "feature_flag", "Disable a feature flag"),
        GatedAction("feature_flag.update", "feature_flag", "Change a feature flag's rollout"),
        GatedAction(
            "experiment_holdout.update", "experiment_holdout", "Change a holdout's exclusion percentage"
        ),
        GatedAction("experiment_holdout.delete", "experiment_holdout", "Delete a holdout"),
        GatedAction("experiment.launch", "experiment", "Launch an experiment"),
        GatedAction("experiment.pause", "experiment", "Pause an experiment"),
        GatedAction("experiment.resume", "experiment", "Resume an experiment"),
        GatedAction("experiment.end", "experiment", "End an experiment"),
        GatedAction("experiment.ship_variant", "experiment", "Ship an experiment variant"),
        GatedAction("experiment.reset", "experiment", "Reset an experiment to draft"),
        GatedAction("experiment.archive", "experiment", "Archive or unarchive an experiment"),
        GatedAction("experiment.update", "experiment", "Update an experiment"),
        GatedAction("experiment.delete", "experiment", "Delete an experiment"),
    )
}
