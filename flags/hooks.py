"""What flags need to know about the apps built on them, registered by those apps.

Flags are a lower layer than experiments and holdouts and import neither. Experiments run on flags
and use cohorts, and a flag's filters may reference a holdout, so each of those apps registers what
flags need to ask in its `AppConfig.ready()` (as Django's admin does), and flags ask through the
functions here. (Group types, which come from events, are looked up through `accounts.group_types`.)
"""

from collections.abc import Callable
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Prefetch

from accounts.models import Project
from flags.models import Cohort, FeatureFlag

# Where the prefetches of `FlagExperiments` put the experiments they read.
LIVE_EXPERIMENTS_ATTRIBUTE = "live_experiments"
COHORT_EXPERIMENTS_ATTRIBUTE = "linked_experiments"


class FlagExperiments(Protocol):
    """The experiments that run on flags and use cohorts as their exposure cohort."""

    def live_experiments_prefetch(self) -> Prefetch:
        """For a flag queryset: each flag's live experiments, by id, in `LIVE_EXPERIMENTS_ATTRIBUTE`."""

    def live_experiment_ids(self, flag: FeatureFlag) -> list[int]:
        """Ids of the live (not deleted) experiments running on `flag`, ascending."""

    def flag_ids_with_live_experiments(self, flag_ids: list[int]) -> set[int]:
        """Which of these flags a live experiment runs on."""

    def has_deleted_experiments(self, flag: FeatureFlag) -> bool:
        """Whether a deleted experiment still points at `flag` (its row must be kept)."""

    def approval_keys_for_flag(self, flag: FeatureFlag) -> dict[str, list[str]]:
        """For each flag change kind (`enable`, `disable`, `update`), the approval action keys that
        govern it before its `feature_flag.*` key: a flag experiments run on is theirs first."""

    def cohort_experiments_prefetch(self) -> Prefetch:
        """For a cohort queryset: the experiments using each cohort, in `COHORT_EXPERIMENTS_ATTRIBUTE`."""

    def cohort_experiment_ids(self, cohort: Cohort) -> list[int]:
        """Ids of the experiments using `cohort` as their exposure cohort, ascending."""


class _Registry:
    experiments: FlagExperiments | None = None
    holdout_exists: Callable[[Project, int], bool] | None = None


def _not_registered(name: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"No installed app registered the flags hook {name!r}")


def register_flag_experiments(experiments: FlagExperiments) -> None:
    """Called by the experiments app's `ready()`."""
    _Registry.experiments = experiments


def flag_experiments() -> FlagExperiments:
    if _Registry.experiments is None:
        raise _not_registered("experiments")
    return _Registry.experiments


def register_holdout_lookup(exists: Callable[[Project, int], bool]) -> None:
    """Called by the holdouts app: `exists(project, holdout_id)` says whether the project has it."""
    _Registry.holdout_exists = exists


def holdout_exists(project: Project, holdout_id: int) -> bool:
    if _Registry.holdout_exists is None:
        raise _not_registered("holdout_exists")
    return _Registry.holdout_exists(project, holdout_id)
