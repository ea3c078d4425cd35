"""From an experiment and a metric (PostHog JSON) to the engine's exposure and metric definitions.

Everything a request can send is checked here, so the engines only ever see supported, typed
values; what this server cannot compute yet is a 400 that says so.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from math import isfinite as math_isfinite
from typing import Any
from zoneinfo import ZoneInfo

from rest_framework.exceptions import ValidationError

from accounts.models import Project
from events.models import GroupTypeMapping
from experiments.metric_schema import validate_metrics
from experiments.models import Experiment
from results.engines.base import (
    SUPPORTED_OPERATORS,
    EntityValue,
    EventSelector,
    ExposureDefinition,
    FunnelMetric,
    MeanMetric,
    MetricDefinition,
    PropertyFilter,
    RatioMetric,
    RetentionMetric,
)
from results.statistics import resolve_stats_config

DEFAULT_EXPOSURE_EVENT = "$feature_flag_called"
DEFAULT_BASELINE_KEY = "control"
MULTIPLE_VARIANT_HANDLINGS = ("exclude", "first_seen")
WINDOW_UNIT_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 604800,
    "month": 2592000,
}
MEAN_MATHS = ("total", "sum", "avg", "min", "max", "unique_session", "dau", "unique_group")
PROPERTY_MATHS = ("sum", "avg", "min", "max")
MAX_FUNNEL_STEPS = 20
MAX_RETENTION_WINDOW = 1000
RETENTION_START_HANDLINGS = ("first_seen", "last_seen")

NOT_STARTED = "Experiment has not been started yet"
NO_BASELINE = "No control variant found"
ACTIONS_NOT_SUPPORTED = "Actions are not supported by this server's results engine: use an EventsNode."
WAREHOUSE_NOT_SUPPORTED = "Data warehouse sources are not supported by this server's results engine."
FUNNEL_ORDERS = ("ordered", "strict")
FUNNEL_ORDER_NOT_SUPPORTED = (
    "Only ordered and strict funnels are computed by this server (funnel_order_type)."
)
HOGQL_NOT_SUPPORTED = "HogQL math is not supported by this server's results engine."
SESSION_PROPERTY_NOT_SUPPORTED = "Session-property math is not supported by this server's results engine."
BREAKDOWNS_NOT_SUPPORTED = "Breakdowns are not computed by this server yet."


@dataclass(frozen=True)
class Analysis:
    """One metric of one experiment, ready for an engine, with the variant order and baseline."""

    exposure: ExposureDefinition
    metric: MetricDefinition
    metric_type: str
    variants: tuple[str, ...]
    baseline_key: str
    matured_before: datetime | None


def project_timezone_name(project: Project) -> str:
    """The project's timezone if Python knows it, else UTC."""
    name = project.timezone or "UTC"
    try:
        ZoneInfo(name)
    except (KeyError, ValueError):
        return "UTC"
    return name


def analysis_window(
    experiment: Experiment, as_of: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """`[start_date, min(as_of, end_date)]`; `as_of` defaults to the end date, else now."""
    if experiment.start_date is None:
        raise ValidationError(NOT_STARTED)
    if as_of is None:
        as_of = experiment.end_date or now
    date_to = min(as_of, experiment.end_date) if experiment.end_date else as_of
    return experiment.start_date, date_to


def analysed_variants(experiment: Experiment) -> tuple[str, ...]:
    """The flag's variants in flag order minus `excluded_variants` (a holdout is never one)."""
    excluded = set(experiment.excluded_variants or [])
    return tuple(
        key for key in experiment.feature_flag.variant_keys if isinstance(key, str) and key not in excluded
    )


def baseline_key(experiment: Experiment, variants: tuple[str, ...]) -> str:
    key = (experiment.stats_config or {}).get("baseline_variant_key") or DEFAULT_BASELINE_KEY
    if key not in variants:
        raise ValidationError(NO_BASELINE)
    return key


def group_type_of(project_id: int, group_type_index: Any) -> str | None:
    if (
        group_type_index is None
        or isinstance(group_type_index, bool)
        or not isinstance(group_type_index, int)
    ):
        return None
    mapping = GroupTypeMapping.objects.filter(
        project_id=project_id, group_type_index=group_type_index
    ).first()
    # A group-aggregated flag whose group type no event has announced yet has no exposures.
    return mapping.group_type if mapping else f"$unknown-group-type-{group_type_index}"


def property_filters(raw: Any, where: str) -> tuple[PropertyFilter, ...]:
    filters = []
    for prop in raw or []:
        if not isinstance(prop, dict) or not isinstance(prop.get("key"), str):
            raise ValidationError(f"{where}: every property filter needs a string 'key'.")
        prop_type = prop.get("type", "event")
        if prop_type != "event":
            raise ValidationError(
                f"{where}: only event property filters are supported by this server's results engine "
                f"(got type {str(prop_type)[:40]!r})."
            )
        operator = prop.get("operator") or "exact"
        if operator not in SUPPORTED_OPERATORS:
            raise ValidationError(
                f"{where}: property operator {str(operator)[:40]!r} is not supported; "
                f"supported: {', '.join(SUPPORTED_OPERATORS)}."
            )
        value = prop.get("value")
        if operator in ("gt", "gte", "lt", "lte"):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValidationError(f"{where}: operator {operator} needs a numeric value.") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise ValidationError(f"{where}: operator {operator} needs a finite numeric value.")
        elif operator in ("icontains", "not_icontains") and not isinstance(value, str | int | float):
            raise ValidationError(f"{where}: operator {operator} needs a string value.")
        filters.append(PropertyFilter(key=prop["key"], operator=operator, value=value))
    return tuple(filters)


def event_selector(node: Any, where: str) -> EventSelector:
    if not isinstance(node, dict):
        raise ValidationError(f"{where}: must be an object.")
    kind = node.get("kind", "EventsNode")
    if kind == "ActionsNode":
        raise ValidationError(ACTIONS_NOT_SUPPORTED)
    if kind == "ExperimentDataWarehouseNode":
        raise ValidationError(WAREHOUSE_NOT_SUPPORTED)
    event = node.get("event")
    if event is not None and not isinstance(event, str):
        raise ValidationError(f"{where}: 'event' must be a string or null.")
    return EventSelector(event=event, properties=property_filters(node.get("properties"), where))


def exposure_definition(
    experiment: Experiment, date_from: datetime, date_to: datetime, variants: tuple[str, ...]
) -> ExposureDefinition:
    flag = experiment.feature_flag
    flag_key = flag.key
    criteria = experiment.exposure_criteria if isinstance(experiment.exposure_criteria, dict) else {}
    handling = criteria.get("multiple_variant_handling") or "exclude"
    if handling not in MULTIPLE_VARIANT_HANDLINGS:
        raise ValidationError(
            f"exposure_criteria.multiple_variant_handling must be one of {', '.join(MULTIPLE_VARIANT_HANDLINGS)}."
        )
    flag_condition = PropertyFilter(key="$feature_flag", operator="exact", value=flag_key)
    config = criteria.get("exposure_config")
    if isinstance(config, dict) and config:
        if config.get("kind") == "ActionsNode":
            raise ValidationError(ACTIONS_NOT_SUPPORTED)
        custom = event_selector({**config, "kind": "EventsNode"}, "exposure_criteria.exposure_config")
        if custom.event == DEFAULT_EXPOSURE_EVENT:
            selector = EventSelector(event=custom.event, properties=(flag_condition, *custom.properties))
            variant_property = "$feature_flag_response"
        else:
            selector = custom
            variant_property = f"$feature/{flag_key}"
    else:
        selector = EventSelector(event=DEFAULT_EXPOSURE_EVENT, properties=(flag_condition,))
        variant_property = "$feature_flag_response"
    return ExposureDefinition(
        project_id=experiment.project_id,
        selector=selector,
        variant_property=variant_property,
        variants=variants,
        date_from=date_from,
        date_to=date_to,
        multiple_variant_handling=handling,
        group_type=group_type_of(
            experiment.project_id, (flag.filters or {}).get("aggregation_group_type_index")
        ),
    )


def percentile(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValidationError(f"{field} must be a number between 0 and 1.")
    return float(value)


def entity_value(
    node: Any, where: str, outliers: dict[str, Any], threshold: Any, project_id: int
) -> EntityValue:
    selector = event_selector(node, where)
    math = node.get("math") or "total"
    if math == "hogql":
        raise ValidationError(HOGQL_NOT_SUPPORTED)
    if math not in MEAN_MATHS:
        raise ValidationError(
            f"{where}: math {str(math)[:40]!r} is not supported; supported: {', '.join(MEAN_MATHS)}."
        )
    math_property = node.get("math_property")
    if math in PROPERTY_MATHS:
        if not isinstance(math_property, str) or not math_property:
            raise ValidationError(f"{where}: math {math} needs a math_property.")
        if math_property == "$session_duration" or node.get("math_property_type") == "session_properties":
            raise ValidationError(SESSION_PROPERTY_NOT_SUPPORTED)
    math_group_type = None
    if math == "unique_group":
        math_group_type = group_type_of(project_id, node.get("math_group_type_index"))
        if math_group_type is None:
            raise ValidationError(f"{where}: math unique_group needs a math_group_type_index.")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math_isfinite(threshold)
    ):
        raise ValidationError("threshold must be a finite number.")
    return EntityValue(
        selector=selector,
        math=math,
        math_property=math_property if math in PROPERTY_MATHS else None,
        math_group_type=math_group_type,
        threshold=float(threshold) if threshold is not None else None,
        lower_bound_percentile=percentile(outliers.get("lower_bound_percentile"), "lower_bound_percentile"),
        upper_bound_percentile=percentile(outliers.get("upper_bound_percentile"), "upper_bound_percentile"),
        ignore_zeros=bool(outliers.get("ignore_zeros")),
    )


def conversion_window_seconds(metric: dict[str, Any]) -> int:
    window = metric.get("conversion_window")
    if window is None:
        return 0
    unit = metric.get("conversion_window_unit") or "day"
    if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= 10_000:
        raise ValidationError("conversion_window must be an integer between 0 and 10000.")
    if unit not in WINDOW_UNIT_SECONDS:
        raise ValidationError(f"conversion_window_unit must be one of {', '.join(WINDOW_UNIT_SECONDS)}.")
    return window * WINDOW_UNIT_SECONDS[unit]


def outlier_settings(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be an object.")
    return value


def metric_definition(
    metric: dict[str, Any],
    project_id: int,
    *,
    cuped_lookback_days: int | None = None,
    timezone: str = "UTC",
    matured_at: datetime | None = None,
) -> MetricDefinition:
    """The engine's definition of a validated `ExperimentMetric`. `cuped_lookback_days` (None:
    CUPED off) is passed on to the metrics PostHog applies CUPED to; retention truncates days and
    hours in `timezone` and, with `matured_at`, keeps only starters whose window has passed."""
    if metric.get("breakdownFilter") and (metric["breakdownFilter"] or {}).get("breakdowns"):
        raise ValidationError(BREAKDOWNS_NOT_SUPPORTED)
    window = conversion_window_seconds(metric)
    metric_type = metric["metric_type"]
    if metric_type == "mean":
        value = entity_value(metric["source"], "source", metric, metric.get("threshold"), project_id)
        return MeanMetric(
            value=value,
            conversion_window_seconds=window,
            cuped_lookback_days=cuped_lookback_days if value.threshold is None else None,
        )
    if metric_type == "ratio":
        numerator, denominator = (
            entity_value(
                metric[side],
                side,
                outlier_settings(metric.get(f"{side}_outlier_handling"), f"{side}_outlier_handling"),
                None,
                project_id,
            )
            for side in ("numerator", "denominator")
        )
        return RatioMetric(numerator=numerator, denominator=denominator, conversion_window_seconds=window)
    if metric_type == "funnel":
        order = metric.get("funnel_order_type") or "ordered"
        if order not in FUNNEL_ORDERS:
            raise ValidationError(FUNNEL_ORDER_NOT_SUPPORTED)
        if len(metric["series"]) > MAX_FUNNEL_STEPS:
            raise ValidationError(f"A funnel metric can have at most {MAX_FUNNEL_STEPS} steps.")
        steps = tuple(event_selector(step, f"series[{index}]") for index, step in enumerate(metric["series"]))
        return FunnelMetric(
            steps=steps,
            conversion_window_seconds=window,
            cuped_lookback_days=cuped_lookback_days,
            order=order,
        )
    return retention_metric(metric, window, timezone, matured_at)


def retention_metric(
    metric: dict[str, Any], window: int, timezone: str, matured_at: datetime | None
) -> RetentionMetric:
    window_start, window_end = metric["retention_window_start"], metric["retention_window_end"]
    if not 0 <= window_start <= window_end <= MAX_RETENTION_WINDOW:
        raise ValidationError(
            f"retention_window_start and retention_window_end must satisfy 0 <= start <= end <= {MAX_RETENTION_WINDOW}."
        )
    start_handling = metric["start_handling"]
    if start_handling not in RETENTION_START_HANDLINGS:
        raise ValidationError(f"start_handling must be one of {', '.join(RETENTION_START_HANDLINGS)}.")
    return RetentionMetric(
        start=event_selector(metric["start_event"], "start_event"),
        completion=event_selector(metric["completion_event"], "completion_event"),
        window_start=window_start,
        window_end=window_end,
        unit=metric["retention_window_unit"],
        start_handling=start_handling,
        conversion_window_seconds=window,
        timezone=timezone,
        matured_at=matured_at,
    )


def metric_analysis(
    *, experiment: Experiment, metric: Any, as_of: datetime | None, now: datetime
) -> Analysis:
    """Validate `metric` for `experiment` and resolve everything the engine needs."""
    validate_metrics([metric])
    date_from, date_to = analysis_window(experiment, as_of, now)
    variants = analysed_variants(experiment)
    baseline = baseline_key(experiment, variants)
    stats = resolve_stats_config(experiment.stats_config)
    definition = metric_definition(
        metric,
        experiment.project_id,
        cuped_lookback_days=stats.cuped_lookback_days if stats.cuped_enabled else None,
        timezone=project_timezone_name(experiment.project),
        # Retention matures on the start event rather than on the last exposure.
        matured_at=now if experiment.only_count_matured_users else None,
    )
    matured_before = None
    if (
        experiment.only_count_matured_users
        and definition.conversion_window_seconds
        and not isinstance(definition, RetentionMetric)
    ):
        matured_before = now - timedelta(seconds=definition.conversion_window_seconds)
    return Analysis(
        exposure=exposure_definition(experiment, date_from, date_to, variants),
        metric=definition,
        metric_type=metric["metric_type"],
        variants=variants,
        baseline_key=baseline,
        matured_before=matured_before,
    )
