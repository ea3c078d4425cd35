"""Reads of holdouts."""

from accounts.models import Project
from holdouts.models import ExperimentHoldout


def holdout_exists(project: Project, holdout_id: int) -> bool:
    """Whether the project has a holdout with this id."""
    return ExperimentHoldout.objects.filter(project=project, pk=holdout_id).exists()
