from typing import Any

from accounts.representations import user_basic
from experiments_api.representation import api_datetime
from holdouts.models import ExperimentHoldout


def holdout_body(holdout: ExperimentHoldout | None) -> dict[str, Any] | None:
    if holdout is None:
        return None
    return {
        "id": holdout.id,
        "name": holdout.name,
        "description": holdout.description,
        "filters": holdout.filters,
        "created_by": user_basic(holdout.created_by),
        "created_at": api_datetime(holdout.created_at),
        "updated_at": api_datetime(holdout.updated_at),
    }
