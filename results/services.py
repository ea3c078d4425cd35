"""Experiment results: one metric's result, and an experiment's exposures, as PostHog's `/query/` returns them.

These are the entry points the `/query/` API and the timeseries worker call. They read events and
experiments; the only thing they write is the metric's rollup (`results.rollups`), a cache of
per-entity values. The engine returns per-variant sufficient statistics; everything
PostHog does after its SQL (drop `$multiple`, zero-fill, order by the flag, statistics) is here.
"""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone
from rest_framework.exceptions import ValidationError

from experiments.models import Experiment
from results.definitions import (
    analysed_variants,
    analysis_window,
    exposure_definition,
    metric_analysis,
    project_timezone_name,
)
from results.engines.base import (
    MULTIPLE_VARIANTS_KEY,
    FunnelMetric,
    RatioMetric,
    ResultsEngine,
    RetentionMetric,
)
from results.engines.factory import configured_results_engine, rollups_enabled
from results.rollups import metric_rollup_statistics
from results.statistics import (
    UNABLE_TO_CALCULATE_MESSAGE,
    ExperimentStatisticsError,
    VariantStatistics,
    compare_variants,
    resolve_stats_config,
    sample_ratio_mismatch,
)

# PostHog flags a split as biased when more than this share of exposed entities saw several variants.
BIAS_RISK_MULTIPLE_SHARE = 0.001
# Legacy `ExperimentQueryResponse` fields: always null for new-style metrics.
LEGACY_RESPONSE_FIELDS = (
    "insight",
    "variants",
    "probability",
    "significant",
    "significance_code",
    "p_value",
    "credible_intervals",
    "stats_version",
)


def results_engine() -> ResultsEngine:
    return configured_results_engine()


def empty_statistics(key: str, metric: Any) -> VariantStatistics:
    """What a variant nobody was exposed to contributes: zeros of the metric's shape."""
    if isinstance(metric, FunnelMetric):
        return VariantStatistics(
            key=key, number_of_samples=0, sum=0, sum_squares=0, step_counts=[0] * len(metric.steps)
        )
    if isinstance(metric, RatioMetric | RetentionMetric):
        return VariantStatistics(
            key=key,
            number_of_samples=0,
            sum=0,
            sum_squares=0,
            denominator_sum=0,
            denominator_sum_squares=0,
            numerator_denominator_sum_product=0,
        )
    return VariantStatistics(key=key, number_of_samples=0, sum=0, sum_squares=0)


def experiment_metric_statistics(
    *, experiment: Experiment, metric: dict[str, Any], as_of: datetime | None = None
) -> tuple[list[VariantStatistics], str, str]:
    """Per-variant sufficient statistics of one metric in flag order (zero-filled), with the
    baseline key and metric type. The current result (no `as_of`) is read from the metric's
    incremental rollup; a result as of a given time is computed in full from the events. Raises
    ValidationError for what cannot be analysed."""
    analysis = metric_analysis(experiment=experiment, metric=metric, as_of=as_of, now=timezone.now())
    rows = None
    if as_of is None and rollups_enabled():
        rows = metric_rollup_statistics(
            experiment_id=experiment.id,
            exposure=analysis.exposure,
            metric=analysis.metric,
            matured_before=analysis.matured_before,
        )
    if rows is None:
        rows = results_engine().metric_statistics(
            exposure=analysis.exposure, metric=analysis.metric, matured_before=analysis.matured_before
        )
    by_key = {row.key: row for row in rows}
    ordered = [by_key.get(key) or empty_statistics(key, analysis.metric) for key in analysis.variants]
    return ordered, analysis.baseline_key, analysis.metric_type


def experiment_metric_result(
    *, experiment: Experiment, metric: dict[str, Any], as_of: datetime | None = None
) -> dict[str, Any]:
    """The `ExperimentQueryResponse` body for one `ExperimentMetric` of `experiment`, as of `as_of`.

    `as_of` (default: now, or the end date of an ended experiment) closes the analysis window, so
    the timeseries worker gets the cumulative result at the end of each day by passing that
    instant. Returns `{"kind", "baseline", "variant_results", "breakdown_results", ...}` with no
    cache envelope. Raises `rest_framework.exceptions.ValidationError` for a metric or experiment
    that cannot be analysed (a draft, an unsupported math, no baseline variant).
    """
    statistics, baseline_key, metric_type = experiment_metric_statistics(
        experiment=experiment, metric=metric, as_of=as_of
    )
    baseline = next(row for row in statistics if row.key == baseline_key)
    treatments = [row for row in statistics if row.key != baseline_key]
    try:
        compared = compare_variants(
            baseline=baseline,
            treatments=treatments,
            metric_type=metric_type,
            config=resolve_stats_config(experiment.stats_config),
        )
    except ExperimentStatisticsError:
        raise ValidationError(UNABLE_TO_CALCULATE_MESSAGE) from None
    return {
        "kind": "ExperimentQuery",
        **dict.fromkeys(LEGACY_RESPONSE_FIELDS),
        "baseline": compared["baseline"],
        "variant_results": compared["variant_results"],
        "breakdown_results": None,
        "clickhouse_sql": None,
        "hogql": None,
        "is_precomputed": False,
        "metric": metric,
    }


def cumulative_series(days: list, counts_by_day: dict) -> list[int]:
    running, series = 0, []
    for day in days:
        running += counts_by_day.get(day, 0)
        series.append(running)
    return series


def experiment_exposure_result(*, experiment: Experiment, as_of: datetime | None = None) -> dict[str, Any]:
    """The `ExperimentExposureQueryResponse` body: cumulative first exposures per variant and day
    (project timezone), totals, the sample-ratio-mismatch check and the bias risk."""
    now = timezone.now()
    date_from, date_to = analysis_window(experiment, as_of, now)
    variants = analysed_variants(experiment)
    exposure = exposure_definition(experiment, date_from, date_to, variants)
    tz_name = project_timezone_name(experiment.project)
    rows = results_engine().daily_first_exposures(exposure=exposure, timezone=tz_name)
    tz = ZoneInfo(tz_name)
    first_day, last_day = date_from.astimezone(tz).date(), max(date_from, date_to).astimezone(tz).date()
    days = [first_day + timedelta(days=offset) for offset in range((last_day - first_day).days + 1)]
    per_variant: dict[str, dict] = {}
    for row in rows:
        per_variant.setdefault(row.variant, {})[row.day] = row.entities
    series_keys = list(variants)
    if MULTIPLE_VARIANTS_KEY in per_variant:
        series_keys.append(MULTIPLE_VARIANTS_KEY)
    timeseries = []
    total_exposures: dict[str, int] = {}
    for key in series_keys:
        counts = cumulative_series(days, per_variant.get(key, {}))
        timeseries.append(
            {"variant": key, "days": [day.isoformat() for day in days], "exposure_counts": counts}
        )
        total_exposures[key] = counts[-1] if counts else 0
    rollouts = {
        variant.get("key"): variant.get("rollout_percentage") or 0
        for variant in experiment.feature_flag.variants
        if isinstance(variant, dict) and isinstance(variant.get("key"), str)
    }
    srm = sample_ratio_mismatch(
        observed_counts={key: total_exposures.get(key, 0) for key in variants},
        rollout_percentages=rollouts,
        excluded_variants=list(experiment.excluded_variants or []),
    )
    return {
        "kind": "ExperimentExposureQuery",
        "timeseries": timeseries,
        "total_exposures": total_exposures,
        "date_range": {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()},
        "sample_ratio_mismatch": srm,
        "bias_risk": bias_risk(experiment, exposure.multiple_variant_handling, rollouts, total_exposures),
    }


def bias_risk(
    experiment: Experiment, handling: str, rollouts: dict[str, Any], total_exposures: dict[str, int]
) -> dict[str, float] | None:
    """PostHog's warning that `$multiple` entities, dropped from an uneven split, bias the result."""
    everyone = sum(total_exposures.values())
    multiple = total_exposures.get(MULTIPLE_VARIANTS_KEY, 0)
    uneven = len(set(rollouts.values())) > 1
    if handling != "exclude" or not uneven or experiment.end_date is not None or not everyone:
        return None
    if multiple / everyone <= BIAS_RISK_MULTIPLE_SHARE:
        return None
    return {"multiple_variant_percentage": round(100 * multiple / everyone, 4)}
