"""What the flags app asks about the experiments that run on flags (`flags.hooks.FlagExperiments`),
answered from the experiment's relations to its flag and exposure cohort."""

from django.db.models import Prefetch

from experiments.models import Experiment
from flags.hooks import COHORT_EXPERIMENTS_ATTRIBUTE, LIVE_EXPERIMENTS_ATTRIBUTE
from flags.models import Cohort, FeatureFlag

# A flag a live experiment runs on is governed by the experiment's policies before its own.
EXPERIMENT_KEYS_FOR_FLAG_CHANGES = {
    "enable": ["experiment.resume"],
    "disable": ["experiment.pause"],
    "update": ["experiment.update"],
}


class ExperimentFlagLinks:
    def live_experiments_prefetch(self) -> Prefetch:
        return Prefetch(
            "experiment_set",
            queryset=Experiment.objects.filter(deleted=False).only("id", "feature_flag_id").order_by("id"),
            to_attr=LIVE_EXPERIMENTS_ATTRIBUTE,
        )

    def live_experiment_ids(self, flag: FeatureFlag) -> list[int]:
        return list(
            Experiment.objects.filter(feature_flag=flag, deleted=False)
            .order_by("id")
            .values_list("id", flat=True)
        )

    def flag_ids_with_live_experiments(self, flag_ids: list[int]) -> set[int]:
        if not flag_ids:
            return set()
        return set(
            Experiment.objects.filter(feature_flag_id__in=flag_ids, deleted=False).values_list(
                "feature_flag_id", flat=True
            )
        )

    def has_deleted_experiments(self, flag: FeatureFlag) -> bool:
        return Experiment.objects.filter(feature_flag=flag, deleted=True).exists()

    def approval_keys_for_flag(self, flag: FeatureFlag) -> dict[str, list[str]]:
        if flag.pk is None or not Experiment.objects.filter(feature_flag=flag, deleted=False).exists():
            return {}
        return {kind: list(keys) for kind, keys in EXPERIMENT_KEYS_FOR_FLAG_CHANGES.items()}

    def cohort_experiments_prefetch(self) -> Prefetch:
        return Prefetch(
            "experiment_set",
            queryset=Experiment.objects.only("id", "exposure_cohort_id").order_by("id"),
            to_attr=COHORT_EXPERIMENTS_ATTRIBUTE,
        )

    def cohort_experiment_ids(self, cohort: Cohort) -> list[int]:
        return list(
            Experiment.objects.filter(exposure_cohort=cohort).order_by("id").values_list("id", flat=True)
        )
