from typing import Any

from accounts.access import user_access_level
from accounts.representations import user_basic
from experiments_api.representation import api_datetime
from flags.hooks import LIVE_EXPERIMENTS_ATTRIBUTE, flag_experiments
from flags.models import FeatureFlag
from flags.payload_encryption import plain_filters


def live_experiment_ids(flag: FeatureFlag) -> list[int]:
    prefetched = getattr(flag, LIVE_EXPERIMENTS_ATTRIBUTE, None)
    if prefetched is not None:
        return [experiment.id for experiment in prefetched]
    return flag_experiments().live_experiment_ids(flag)


def is_simple_flag(flag: FeatureFlag) -> bool:
    filters = flag.filters or {}
    groups = filters.get("groups") or []
    return (
        len(groups) == 1
        and isinstance(groups[0], dict)
        and not groups[0].get("properties")
        and not filters.get("multivariate")
        and filters.get("aggregation_group_type_index") is None
    )


def flag_status(flag: FeatureFlag) -> str:
    if flag.deleted:
        return "DELETED"
    return "ACTIVE" if flag.active else "INACTIVE"


def minimal_flag(flag: FeatureFlag) -> dict[str, Any]:
    """The flag as embedded in an experiment (PostHog's `MinimalFeatureFlag`)."""
    return {
        "id": flag.id,
        "team_id": flag.project_id,
        "name": flag.name,
        "key": flag.key,
        "filters": flag.filters,
        "deleted": flag.deleted,
        "active": flag.active,
        "ensure_experience_continuity": flag.ensure_experience_continuity,
        "has_encrypted_payloads": flag.has_encrypted_payloads,
        "version": flag.version,
        "evaluation_runtime": flag.evaluation_runtime,
        "bucketing_identifier": "distinct_id",
        "evaluation_tags": [],
        "evaluation_contexts": [],
    }


def flag_full(flag: FeatureFlag, *, user_id: int | None, membership_level: int) -> dict[str, Any]:
    """A flag as PostHog's `FeatureFlag` schema, for the fields that apply to this server."""
    simple = is_simple_flag(flag)
    return {
        "id": flag.id,
        "name": flag.name,
        "key": flag.key,
        "filters": plain_filters(flag.filters or {}, encrypted=flag.has_encrypted_payloads),
        "deleted": flag.deleted,
        "active": flag.active,
        "created_by": user_basic(flag.created_by),
        "created_at": api_datetime(flag.created_at),
        "updated_at": api_datetime(flag.updated_at),
        "version": flag.version,
        "last_modified_by": user_basic(flag.last_modified_by),
        "ensure_experience_continuity": flag.ensure_experience_continuity,
        "experiment_set": live_experiment_ids(flag),
        "is_remote_configuration": flag.is_remote_configuration,
        "is_simple_flag": simple,
        "rollout_percentage": flag.filters["groups"][0].get("rollout_percentage") if simple else None,
        "can_edit": True,
        "user_access_level": (
            user_access_level(
                user_id=user_id, membership_level=membership_level, created_by_id=flag.created_by_id
            )
            if user_id is not None
            else None
        ),
        "has_encrypted_payloads": flag.has_encrypted_payloads,
        "status": flag_status(flag),
        "evaluation_runtime": flag.evaluation_runtime,
        "tags": list(flag.tags or []),
        "evaluation_tags": [],
        "surveys": {},
        "features": {},
        "usage_dashboard": None,
        "analytics_dashboards": [],
        "has_enriched_analytics": False,
        "rollback_conditions": None,
        "performed_rollback": False,
        "last_called_at": None,
    }
