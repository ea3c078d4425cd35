"""Validation (§4.2), CUPED (§4.8) and one test per treatment against the baseline, rendered in the
shape of PostHog's ``ExperimentQueryResponse`` (§5)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from results.statistics.config import (
    ExperimentStatisticsError,
    MetricType,
    StatsConfig,
    StatsMethod,
    ValidationFailure,
)
from results.statistics.groups import (
    OPTIONAL_SUM_FIELDS,
    Group,
    VariantStatistics,
    build_group,
    cuped_adjust,
    cuped_theta,
)
from results.statistics.methods import bayesian_test, sequential_test, welch_t_test

MINIMUM_EXPOSURES = 50
MINIMUM_CONVERSIONS = 5

_CUPED_METRIC_TYPES = (MetricType.MEAN, MetricType.FUNNEL)


def validation_failures(
    variant: VariantStatistics, metric_type: MetricType, *, is_baseline: bool
) -> list[ValidationFailure]:
    """Why a variant is too thin to test; an empty list means it may be tested."""
    failures = []
    if variant.number_of_samples < MINIMUM_EXPOSURES:
        failures.append(ValidationFailure.NOT_ENOUGH_EXPOSURES)
    if metric_type in (MetricType.FUNNEL, MetricType.RETENTION) and variant.sum < MINIMUM_CONVERSIONS:
        failures.append(ValidationFailure.NOT_ENOUGH_METRIC_DATA)
    if is_baseline and variant.sum == 0:
        failures.append(ValidationFailure.BASELINE_MEAN_IS_ZERO)
    return failures


def _counts(variant: VariantStatistics, failures: list[ValidationFailure]) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "key": variant.key,
        "number_of_samples": variant.number_of_samples,
        "sum": variant.sum,
        "sum_squares": variant.sum_squares,
        "step_counts": list(variant.step_counts) if variant.step_counts is not None else None,
        "validation_failures": [str(failure) for failure in failures],
    }
    for field in OPTIONAL_SUM_FIELDS:
        value = getattr(variant, field)
        if value is not None:
            rendered[field] = value
    return rendered


def _no_statistics(method: StatsMethod) -> dict[str, Any]:
    if method is StatsMethod.BAYESIAN:
        return {"method": str(method), "chance_to_win": None, "credible_interval": None, "significant": None}
    return {"method": str(method), "p_value": None, "confidence_interval": None, "significant": None}


def _require_valid_levels(config: StatsConfig) -> None:
    level = config.ci_level if config.method is StatsMethod.BAYESIAN else config.alpha
    if not (0.0 < level < 1.0):
        raise ExperimentStatisticsError()


def _uses_cuped(
    config: StatsConfig, metric_type: MetricType, treatment: VariantStatistics, baseline: VariantStatistics
) -> bool:
    return (
        config.cuped_enabled
        and metric_type in _CUPED_METRIC_TYPES
        and treatment.has_covariate
        and baseline.has_covariate
    )


def _test_variant(
    treatment: VariantStatistics,
    baseline: VariantStatistics,
    metric_type: MetricType,
    config: StatsConfig,
) -> dict[str, Any]:
    treatment_group = build_group(treatment, metric_type)
    control_group = build_group(baseline, metric_type)
    relative_denominator = None
    if _uses_cuped(config, metric_type, treatment, baseline):
        # θ is pooled over this pair only, so each treatment gets its own; the relative effect is still
        # measured against the unadjusted baseline mean.
        theta = cuped_theta(treatment, baseline)
        relative_denominator = control_group.mean
        treatment_group = cuped_adjust(treatment_group, treatment, theta).group
        control_group = cuped_adjust(control_group, baseline, theta).group
    return _run_test(treatment_group, control_group, config, relative_denominator)


def _run_test(
    treatment: Group, control: Group, config: StatsConfig, relative_denominator: float | None
) -> dict[str, Any]:
    if config.method is StatsMethod.BAYESIAN:
        bayesian = bayesian_test(
            treatment,
            control,
            ci_level=config.ci_level,
            difference_type=config.difference_type,
            relative_denominator=relative_denominator,
        )
        return {
            "method": str(StatsMethod.BAYESIAN),
            "chance_to_win": bayesian.chance_to_win,
            "credible_interval": list(bayesian.credible_interval),
            "significant": bayesian.significant,
        }
    if config.sequential_testing_enabled:
        frequentist = sequential_test(
            treatment,
            control,
            alpha=config.alpha,
            tuning_parameter=config.sequential_tuning_parameter,
            difference_type=config.difference_type,
            relative_denominator=relative_denominator,
        )
    else:
        frequentist = welch_t_test(
            treatment,
            control,
            alpha=config.alpha,
            difference_type=config.difference_type,
            relative_denominator=relative_denominator,
        )
    return {
        "method": str(StatsMethod.FREQUENTIST),
        "p_value": frequentist.p_value,
        "confidence_interval": list(frequentist.confidence_interval),
        "significant": frequentist.significant,
    }


def compare_variants(
    *,
    baseline: VariantStatistics,
    treatments: Sequence[VariantStatistics],
    metric_type: MetricType | str,
    config: StatsConfig,
) -> dict[str, Any]:
    """Validate every variant and test each treatment against the baseline, as PostHog does.

    Returns ``{"baseline": {...}, "variant_results": [...]}``; the baseline carries counts and
    validation failures only. A treatment gets null statistics when the baseline or the treatment
    fails validation, or when its numbers admit no test (zero variance, a non-positive baseline for a
    relative Bayesian effect, ...). Raises ``ExperimentStatisticsError`` only when the configuration
    makes every test impossible (ci_level or alpha of exactly 0 or 1).
    """
    metric_type = MetricType(metric_type)
    _require_valid_levels(config)
    baseline_failures = validation_failures(baseline, metric_type, is_baseline=True)
    variant_results = []
    for treatment in treatments:
        failures = validation_failures(treatment, metric_type, is_baseline=False)
        result = _counts(treatment, failures)
        statistics = _no_statistics(config.method)
        if not baseline_failures and not failures:
            # Numbers that admit no test leave this variant without statistics, as in PostHog.
            with contextlib.suppress(ArithmeticError, ValueError):
                statistics = _test_variant(treatment, baseline, metric_type, config)
        result.update(statistics)
        variant_results.append(result)
    return {"baseline": _counts(baseline, baseline_failures), "variant_results": variant_results}
