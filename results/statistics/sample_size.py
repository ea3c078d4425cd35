"""Running-time calculator: how many exposures an experiment needs, and for how many days (spec §7).

Sizes for 95% confidence and 80% power with the usual rule of thumb N = 16·σ²/δ² per variant, where
δ is the minimum detectable effect (a percentage of the baseline) in absolute terms.
"""

from __future__ import annotations

import enum
import math

from results.statistics.groups import VariantStatistics

SAMPLE_SIZE_CONSTANT = 16
DEFAULT_MINIMUM_DETECTABLE_EFFECT = 30
MINIMUM_DAYS_FOR_OBSERVED_RATE = 0.1
# Before a day has passed or 100 users are exposed, the estimate ignores what is already collected.
SETTLED_AFTER_DAYS = 1
SETTLED_AFTER_EXPOSURES = 100


class CalculatorMetricType(enum.StrEnum):
    FUNNEL = "funnel"
    MEAN_COUNT = "mean_count"
    MEAN_SUM_OR_AVG = "mean_sum_or_avg"
    RATIO = "ratio"
    RETENTION = "retention"


_RATIO_LIKE = (CalculatorMetricType.RATIO, CalculatorMetricType.RETENTION)


def baseline_value_from_stats(metric_type: CalculatorMetricType, stats: VariantStatistics) -> float | None:
    """The baseline's metric value: mean, conversion rate (last funnel step) or ratio; None when undefined."""
    n = stats.number_of_samples
    if n <= 0:
        return None
    if metric_type is CalculatorMetricType.FUNNEL:
        return (stats.step_counts[-1] if stats.step_counts else stats.sum) / n
    if metric_type in _RATIO_LIKE:
        if not stats.denominator_sum:
            return None
        return stats.sum / stats.denominator_sum
    return stats.sum / n


def ratio_variance_from_stats(stats: VariantStatistics) -> float | None:
    """Delta-method variance of a ratio with population (÷n) moments, as PostHog's calculator uses."""
    n = stats.number_of_samples
    if (
        n <= 0
        or stats.denominator_sum is None
        or stats.denominator_sum_squares is None
        or stats.numerator_denominator_sum_product is None
    ):
        return None
    m = stats.sum / n
    d = stats.denominator_sum / n
    if d == 0:
        return None
    numerator_variance = stats.sum_squares / n - m * m
    denominator_variance = stats.denominator_sum_squares / n - d * d
    covariance = stats.numerator_denominator_sum_product / n - m * d
    return numerator_variance / d**2 + m**2 * denominator_variance / d**4 - 2.0 * m * covariance / d**3


def variance_for(
    metric_type: CalculatorMetricType, baseline_value: float, stats: VariantStatistics | None = None
) -> float | None:
    """The per-user variance the sample size needs; None for funnels (p(1 − p) is used instead) and
    for ratio or retention metrics without stats."""
    if metric_type is CalculatorMetricType.MEAN_COUNT:
        return 2.0 * baseline_value
    if metric_type is CalculatorMetricType.MEAN_SUM_OR_AVG:
        return 0.25 * baseline_value**2
    if metric_type in _RATIO_LIKE and stats is not None:
        return ratio_variance_from_stats(stats)
    return None


def recommended_sample_size(
    *,
    metric_type: CalculatorMetricType | str,
    minimum_detectable_effect: float,
    number_of_variants: int,
    baseline_value: float,
    variance: float | None = None,
) -> int | None:
    """Total exposures over all variants; None when it cannot be sized (no MDE, no variance, a funnel
    rate above 1, a negative variance)."""
    metric_type = CalculatorMetricType(metric_type)
    delta = minimum_detectable_effect / 100 * baseline_value
    delta_squared = delta * delta
    if not minimum_detectable_effect or not delta_squared:
        return None
    if metric_type is CalculatorMetricType.FUNNEL:
        per_variant = SAMPLE_SIZE_CONSTANT * baseline_value * (1 - baseline_value) / delta_squared
    elif variance is None:
        return None
    else:
        per_variant = SAMPLE_SIZE_CONSTANT * variance / delta_squared
    total = per_variant * number_of_variants
    if not math.isfinite(total) or total <= 0:
        return None
    return math.ceil(total)


def recommended_running_time_days(
    *, sample_size: int | None, exposure_rate_per_day: float | None
) -> int | None:
    if sample_size is None or not exposure_rate_per_day or not 0 < exposure_rate_per_day < math.inf:
        return None
    return math.ceil(sample_size / exposure_rate_per_day)


def resolve_minimum_detectable_effect(experiment_value: float | None, team_default: float | None) -> float:
    """The experiment's MDE, else the team's, else 30%; a zero at either level falls through."""
    return experiment_value or team_default or DEFAULT_MINIMUM_DETECTABLE_EFFECT


def remaining_running_days(
    *,
    target_sample_size: int,
    current_exposures: int,
    days_elapsed: float,
    exposure_rate_per_day: float | None = None,
) -> int | None:
    """Days still needed. ``exposure_rate_per_day`` is the manual rate; without it the observed rate
    (exposures per elapsed day, once 0.1 days have passed) is used."""
    rate = exposure_rate_per_day
    if rate is None and days_elapsed >= MINIMUM_DAYS_FOR_OBSERVED_RATE:
        rate = current_exposures / days_elapsed
    if not rate or not 0 < rate < math.inf:
        return None
    if days_elapsed < SETTLED_AFTER_DAYS or current_exposures < SETTLED_AFTER_EXPOSURES:
        return math.ceil(target_sample_size / rate)
    if current_exposures >= target_sample_size:
        return 0
    return math.ceil((target_sample_size - current_exposures) / rate)
