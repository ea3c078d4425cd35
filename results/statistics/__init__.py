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
  chi-square check of the exposures query (flag it when ``p_value < SRM_P_VALUE_THRESHOLD``).
- ``combine_variant_statistics(key, parts)``: a variant's sums over breakdown buckets (§3.6).
- The running-time calculator (§7): ``recommended_sample_size`` and its helpers.

Modules: ``config`` (enums, ``StatsConfig``), ``groups`` (statistic objects, CUPED), ``methods`` (the
Bayesian, Welch and sequential tests), ``comparison`` (validation and the response), ``srm``,
``sample_size``, ``distributions`` (normal, t and chi-square functions written here, no scipy).

Methods: Bayesian (flat Gaussian prior on the effect: chance to win = Φ(Δ/√V), credible interval),
frequentist (Welch t-test, two-sided p-value computed as 2·(1 − F_t(|t|)) like PostHog, confidence
interval), frequentist sequential (always-valid mixture test), CUPED variance reduction for mean and
funnel metrics, the delta method for ratio and retention metrics. Effects and intervals are fractions
(0.1 means +10%), relative to the baseline unless the config asks for absolute differences.

Left to the caller (the engine), as in PostHog's runner: drop the ``$multiple`` row, zero-fill
analysed variants with no exposures, pick the baseline (``stats_config.baseline_variant_key``, else
``control``), order treatments by flag order, collect covariates only for metrics that support CUPED
(``StatsConfig.cuped_enabled`` and ``cuped_lookback_days`` say whether and how far back), and call
``compare_variants`` once per breakdown bucket plus once on ``combine_variant_statistics`` totals.

What PostHog does and this module therefore does too, though it may surprise: a Bayesian funnel
needs at least 5 successes and 5 failures per group; a relative Bayesian effect needs a positive
baseline mean while the frequentist one accepts a negative baseline; the Welch p-value underflows to
exactly 0.0 for |t| beyond about 8.3; ``difference_type`` selects absolute only when spelled
``"ABSOLUTE"``; a clear loser is "significant" in the Bayesian method too.
"""

from results.statistics.comparison import (
    MINIMUM_CONVERSIONS,
    MINIMUM_EXPOSURES,
    compare_variants,
    validation_failures,
)
from results.statistics.config import (
    UNABLE_TO_CALCULATE_MESSAGE,
    DifferenceType,
    ExperimentStatisticsError,
    MetricType,
    StatsConfig,
    StatsMethod,
    ValidationFailure,
    resolve_stats_config,
)
from results.statistics.groups import StatisticsError, VariantStatistics, combine_variant_statistics
from results.statistics.sample_size import (
    CalculatorMetricType,
    baseline_value_from_stats,
    ratio_variance_from_stats,
    recommended_running_time_days,
    recommended_sample_size,
    remaining_running_days,
    resolve_minimum_detectable_effect,
    variance_for,
)
from results.statistics.srm import SRM_MINIMUM_EXPOSURES, SRM_P_VALUE_THRESHOLD, sample_ratio_mismatch

__all__ = [
    "MINIMUM_CONVERSIONS",
    "MINIMUM_EXPOSURES",
    "SRM_MINIMUM_EXPOSURES",
    "SRM_P_VALUE_THRESHOLD",
    "UNABLE_TO_CALCULATE_MESSAGE",
    "CalculatorMetricType",
    "DifferenceType",
    "ExperimentStatisticsError",
    "MetricType",
    "StatisticsError",
    "StatsConfig",
    "StatsMethod",
    "ValidationFailure",
    "VariantStatistics",
    "baseline_value_from_stats",
    "combine_variant_statistics",
    "compare_variants",
    "ratio_variance_from_stats",
    "recommended_running_time_days",
    "recommended_sample_size",
    "remaining_running_days",
    "resolve_minimum_detectable_effect",
    "resolve_stats_config",
    "sample_ratio_mismatch",
    "validation_failures",
    "variance_for",
]
