"""Experiment statistics, computed the way PostHog computes them for new-style ``ExperimentMetric``s.

Pure Python (standard library only, no Django): the engine that reads events hands over per-variant
sufficient statistics and gets back PostHog's ``ExperimentQueryResponse`` fields. Formulas follow
``shared/spec/posthog-experiment-stats.md`` (§4 statistics, §6 SRM, §7 sample size), paraphrased.

Public interface:

- ``VariantStatistics``: one variant's sufficient statistics (count, sum, sum of squares, funnel step
  counts, ratio and CUPED covariate sums).
- ``StatsConfig`` / ``resolve_stats_config(stats_config, ...)``: an experiment's ``stats_config`` (plus
  team defaults) resolved with PostHog's defaults and fall-backs.
- ``compare_variants(*, baseline, treatments, metric_type, config) -> dict``: validation failures,
  then one test per treatment against the baseline; returns ``{"baseline": {...},
  "variant_results": [...]}`` in PostHog's shape. Raises ``ExperimentStatisticsError`` only for an
  unusable configuration (PostHog's 400 "Unable to calculate experiment statistics...").
- ``sample_ratio_mismatch(*, observed_counts, rollout_percentages, ...) -> dict | None``: the SRM
  chi-square check of the exposures query.
- The running-time calculator (§7): ``recommended_sample_size`` and its helpers.

Methods: Bayesian (flat Gaussian prior on the effect: chance to win = Φ(Δ/√V), credible interval),
frequentist (Welch t-test, two-sided p-value computed as 2·(1 − F_t(|t|)) like PostHog, confidence
interval), frequentist sequential (always-valid mixture test), CUPED variance reduction for mean and
funnel metrics, the delta method for ratio and retention metrics. Effects and intervals are fractions
(0.1 means +10%), relative to the baseline unless the config asks for absolute differences.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UNABLE_TO_CALCULATE_MESSAGE = "Unable to calculate experiment statistics. Please ensure your experiment has sufficient data and try again."


class ExperimentStatisticsError(ValueError):
    """The configuration makes statistics impossible (e.g. ci_level exactly 0 or 1); maps to a 400."""


class MetricType(enum.StrEnum):
    MEAN = "mean"
    FUNNEL = "funnel"
    RATIO = "ratio"
    RETENTION = "retention"


class StatsMethod(enum.StrEnum):
    BAYESIAN = "bayesian"
    FREQUENTIST = "frequentist"


class DifferenceType(enum.StrEnum):
    RELATIVE = "relative"
    ABSOLUTE = "absolute"


class ValidationFailure(enum.StrEnum):
    NOT_ENOUGH_EXPOSURES = "not-enough-exposures"
    BASELINE_MEAN_IS_ZERO = "baseline-mean-is-zero"
    NOT_ENOUGH_METRIC_DATA = "not-enough-metric-data"


@dataclass(frozen=True)
class VariantStatistics:
    """One variant's sufficient statistics, as the metric query returns them.

    ``sum``/``sum_squares`` are over the per-entity values (for funnels and retention: the number of
    converted entities, twice). Ratio and retention metrics fill the ``denominator_*`` and
    ``numerator_denominator_sum_product`` fields; CUPED fills the ``covariate_*`` fields (``Σx``,
    ``Σx²`` and ``Σy·x`` of the pre-exposure covariate x and the post value y).
    """

    key: str
    number_of_samples: int
    sum: float
    sum_squares: float
    step_counts: Sequence[int] | None = None
    denominator_sum: float | None = None
    denominator_sum_squares: float | None = None
    numerator_denominator_sum_product: float | None = None
    covariate_sum: float | None = None
    covariate_sum_squares: float | None = None
    covariate_sum_product: float | None = None


@dataclass(frozen=True)
class StatsConfig:
    """An experiment's statistics settings after PostHog's defaults and fall-backs (spec §4.1, §3.8)."""

    method: StatsMethod = StatsMethod.BAYESIAN
    ci_level: float = 0.95
    alpha: float = 0.05
    difference_type: DifferenceType = DifferenceType.RELATIVE
    sequential_testing_enabled: bool = False
    sequential_tuning_parameter: int = 5000
    cuped_enabled: bool = False
    cuped_lookback_days: int = 14


def resolve_stats_config(
    stats_config: Mapping[str, Any] | None,
    *,
    default_sequential_testing_enabled: bool = False,
    default_sequential_tuning_parameter: Any = None,
    default_cuped_enabled: bool = False,
    default_cuped_lookback_days: Any = None,
) -> StatsConfig:
    """Resolve ``experiment.stats_config`` (any JSON) with the team defaults; never raises."""
    raise NotImplementedError


def compare_variants(
    *,
    baseline: VariantStatistics,
    treatments: Sequence[VariantStatistics],
    metric_type: MetricType | str,
    config: StatsConfig,
) -> dict[str, Any]:
    """Validate every variant and test each treatment against the baseline (PostHog's response shape)."""
    raise NotImplementedError


def sample_ratio_mismatch(
    *,
    observed_counts: Mapping[str, int],
    rollout_percentages: Mapping[str, float],
    excluded_variants: Sequence[str] = (),
) -> dict[str, Any] | None:
    """SRM chi-square goodness of fit: ``{"expected": {variant: count}, "p_value": p}`` or None."""
    raise NotImplementedError
