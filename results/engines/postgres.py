"""The PostgreSQL results engine: PostHog's two-stage experiment SQL over the `events_event` table.

Stage one builds `exposures` (one row per entity: variant, first and last exposure); stage two
computes one row per exposed entity from its metric events (`entity_rows_query`), and
`statistics_query` applies maturity, threshold and winsorization and sums per variant. The same
statistics query reads the stored entity rows of a rollup (`results.rollups`), which this engine
refreshes for a given set of entities. Every value from a request reaches SQL as a bound
parameter; only identifiers this module chooses are formatted into the text.

Numbers are read from JSON by `number_expression`: JSON numbers and numeric strings count,
anything else (missing, text, |x| ≥ 1e100, whose square could overflow) is NULL, which the metric
maths treat as 0 as PostHog does.
"""

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from psycopg.errors import QueryCanceled
from rest_framework.exceptions import APIException

from results.engines.base import (
    MULTIPLE_VARIANTS_KEY,
    DailyExposures,
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
from results.statistics import VariantStatistics

# PostHog runs funnels without a conversion window with a three-year one.
DEFAULT_FUNNEL_WINDOW = timedelta(days=3 * 365)
EMPTY_SESSION_IDS = ("", "00000000-0000-0000-0000-000000000000")
NUMERIC_STRING = r"^\s*[-+]?[0-9]{1,90}(\.[0-9]{1,90})?\s*$"
MAX_ABS_NUMBER = 1e100


@dataclass
class Sql:
    """SQL text with its positional parameters, built up in order."""

    parts: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)

    def add(self, text: str, *params: object) -> "Sql":
        self.parts.append(text)
        self.params.extend(params)
        return self

    def text(self) -> str:
        return "".join(self.parts)


def like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def as_text_values(value: object) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(item).lower() if isinstance(item, bool) else str(item) for item in values if item is not None]


def property_condition(sql: Sql, prop: PropertyFilter, alias: str) -> None:
    """Append ` AND <condition>` for one property filter on `alias.properties`."""
    text = f"{alias}.properties ->> %s"
    if prop.operator == "exact":
        values = as_text_values(prop.value)
        if len(values) == 1:
            sql.add(f" AND {text} = %s", prop.key, values[0])
        else:
            sql.add(f" AND {text} = ANY(%s)", prop.key, values)
    elif prop.operator == "is_not":
        sql.add(
            f" AND ({text} IS NULL OR NOT ({text} = ANY(%s)))", prop.key, prop.key, as_text_values(prop.value)
        )
    elif prop.operator == "is_set":
        sql.add(f" AND {text} IS NOT NULL", prop.key)
    elif prop.operator == "is_not_set":
        sql.add(f" AND {text} IS NULL", prop.key)
    elif prop.operator == "icontains":
        sql.add(f" AND {text} ILIKE %s", prop.key, like_pattern(str(prop.value)))
    elif prop.operator == "not_icontains":
        sql.add(f" AND coalesce({text}, '') NOT ILIKE %s", prop.key, like_pattern(str(prop.value)))
    else:
        comparison = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[prop.operator]
        sql.add(" AND ")
        number_expression(sql, alias, prop.key)
        sql.add(f" {comparison} %s", float(prop.value))


def number_expression(sql: Sql, alias: str, key: str) -> None:
    """A property as float8 or NULL. The nested CASE fixes the evaluation order, so a value is only
    cast once its JSON type (and, for text, its shape) is known to allow it."""
    value = f"{alias}.properties ->> %s"
    sql.add(
        f"CASE jsonb_typeof({alias}.properties -> %s)"
        f" WHEN 'number' THEN CASE WHEN abs(({value})::numeric) < %s THEN ({value})::float8 END"
        f" WHEN 'string' THEN CASE WHEN {value} ~ %s THEN ({value})::float8 END END",
        key,
        key,
        MAX_ABS_NUMBER,
        key,
        key,
        NUMERIC_STRING,
        key,
    )


def entity_expression(sql: Sql, group_type: str | None, alias: str) -> None:
    if group_type is None:
        sql.add(f"{alias}.distinct_id")
    else:
        sql.add(f"nullif({alias}.properties -> '$groups' ->> %s, '')", group_type)


def selector_conditions(
    sql: Sql, project_id: int, selector: EventSelector, alias: str, scope: "EntityScope | None" = None
) -> None:
    sql.add(f"{alias}.project_id = %s", project_id)
    if selector.event is not None:
        sql.add(f" AND {alias}.event = %s", selector.event)
    for prop in selector.properties:
        property_condition(sql, prop, alias)
    if scope is not None:
        sql.add(" AND ")
        entity_expression(sql, scope.group_type, alias)
        sql.add(" = ANY(%s)", scope.entities)


@dataclass(frozen=True)
class EntityScope:
    """Restricts every event a query reads to these entities (an incremental refresh)."""

    entities: list[str]
    group_type: str | None


def exposure_ctes(sql: Sql, exposure: ExposureDefinition, scope: EntityScope | None = None) -> None:
    """`exposure_events` (every matching exposure) and `exposures` (one row per entity)."""
    sql.add("exposure_events AS (SELECT ")
    entity_expression(sql, exposure.group_type, "e")
    sql.add(" AS entity, e.id, e.timestamp, e.properties ->> %s AS variant FROM events_event e WHERE ")
    sql.params.append(exposure.variant_property)
    selector_conditions(sql, exposure.project_id, exposure.selector, "e", scope)
    sql.add(
        " AND e.timestamp >= %s AND e.timestamp <= %s AND e.properties ->> %s = ANY(%s)",
        exposure.date_from,
        exposure.date_to,
        exposure.variant_property,
        list(exposure.variants),
    )
    if exposure.group_type is not None:
        sql.add(" AND nullif(e.properties -> '$groups' ->> %s, '') IS NOT NULL", exposure.group_type)
    sql.add("), exposures AS (SELECT entity, ")
    if exposure.multiple_variant_handling == "first_seen":
        sql.add("(array_agg(variant ORDER BY timestamp, id))[1]")
    else:
        sql.add("CASE WHEN min(variant) <> max(variant) THEN %s ELSE min(variant) END", MULTIPLE_VARIANTS_KEY)
    sql.add(
        " AS variant, min(timestamp) AS first_at, max(timestamp) AS last_at FROM exposure_events GROUP BY entity)"
    )


def per_event_value(sql: Sql, value: EntityValue) -> None:
    if value.math in ("sum", "avg", "min", "max"):
        number_expression(sql, "m", value.math_property or "")
    elif value.math == "unique_session":
        sql.add("nullif(nullif(m.properties ->> '$session_id', %s), %s)", *EMPTY_SESSION_IDS)
    elif value.math == "unique_group":
        sql.add("nullif(m.properties -> '$groups' ->> %s, '')", value.math_group_type or "")
    else:
        sql.add("NULL")


# Per-entity aggregates of the joined metric events `m`; `{only}` is empty or a FILTER clause that
# splits the events into the post-exposure value and the pre-exposure CUPED covariate.
ENTITY_AGGREGATES = {
    "total": "count(m.timestamp) {only}::float8",
    "dau": "least(count(m.timestamp) {only}, 1)::float8",
    "sum": "coalesce(sum(coalesce(m.value, 0)) {only}, 0)",
    "avg": "coalesce(avg(coalesce(m.value, 0)) {only}, 0)",
    "min": "coalesce(min(coalesce(m.value, 0)) {only}, 0)",
    "max": "coalesce(max(coalesce(m.value, 0)) {only}, 0)",
    "unique_session": "count(DISTINCT m.value) {only}::float8",
    "unique_group": "count(DISTINCT m.value) {only}::float8",
}
AFTER_FIRST_EXPOSURE = "FILTER (WHERE m.timestamp >= x.first_at)"
BEFORE_FIRST_EXPOSURE = "FILTER (WHERE m.timestamp < x.first_at)"
# The columns every metric's entity rows have, in this order (see `entity_rows_query`).
ENTITY_ROW_COLUMNS = (
    "entity",
    "variant",
    "first_at",
    "last_at",
    "value",
    "denominator",
    "covariate",
    "started_at",
)


def entity_value_cte(
    sql: Sql,
    name: str,
    value: EntityValue,
    exposure: ExposureDefinition,
    window: timedelta,
    lookback: timedelta | None,
    scope: EntityScope | None,
) -> None:
    """`<name>(entity, variant, first_at, last_at, value, covariate)`: the raw value of every analysed
    entity (threshold and winsorization are applied when aggregating), and with a `lookback` its
    CUPED covariate (else NULL)."""
    sql.add(f", {name}_events AS (SELECT ")
    entity_expression(sql, exposure.group_type, "m")
    sql.add(" AS entity, m.timestamp, ")
    per_event_value(sql, value)
    sql.add(" AS value FROM events_event m WHERE ")
    selector_conditions(sql, exposure.project_id, value.selector, "m", scope)
    sql.add(
        " AND m.timestamp >= %s AND m.timestamp < %s)",
        exposure.date_from - (lookback or timedelta(0)),
        exposure.date_to + window,
    )
    sql.add(f", {name} AS (SELECT x.entity, x.variant, x.first_at, x.last_at, ")
    sql.add(ENTITY_AGGREGATES[value.math].format(only=AFTER_FIRST_EXPOSURE if lookback else ""))
    sql.add(" AS value, ")
    sql.add(ENTITY_AGGREGATES[value.math].format(only=BEFORE_FIRST_EXPOSURE) if lookback else "NULL::float8")
    sql.add(f" AS covariate FROM exposures x LEFT JOIN {name}_events m ON m.entity = x.entity")
    if lookback:
        sql.add(" AND m.timestamp >= x.first_at - %s", lookback)
        post_window = "m.timestamp < x.first_at OR m.timestamp < x.last_at + %s" if window else "true"
    else:
        sql.add(" AND m.timestamp >= x.first_at")
        post_window = "m.timestamp < x.last_at + %s" if window else "true"
    if window:
        sql.add(f" AND ({post_window})", window)
    sql.add(
        " WHERE x.variant <> %s GROUP BY x.entity, x.variant, x.first_at, x.last_at)", MULTIPLE_VARIANTS_KEY
    )


def window_of(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)


def mean_rows(sql: Sql, exposure: ExposureDefinition, metric: MeanMetric, scope: EntityScope | None) -> None:
    window = window_of(metric.conversion_window_seconds)
    lookback = timedelta(days=metric.cuped_lookback_days) if metric.cuped_lookback_days else None
    entity_value_cte(sql, "metric_values", metric.value, exposure, window, lookback, scope)
    sql.add(
        " SELECT entity, variant, first_at, last_at, value, NULL::float8, covariate, NULL::timestamptz"
        " FROM metric_values"
    )


def ratio_rows(
    sql: Sql, exposure: ExposureDefinition, metric: RatioMetric, scope: EntityScope | None
) -> None:
    window = window_of(metric.conversion_window_seconds)
    entity_value_cte(sql, "numerator_values", metric.numerator, exposure, window, None, scope)
    entity_value_cte(sql, "denominator_values", metric.denominator, exposure, window, None, scope)
    sql.add(
        " SELECT n.entity, n.variant, n.first_at, n.last_at, n.value, d.value, NULL::float8,"
        " NULL::timestamptz FROM numerator_values n JOIN denominator_values d USING (entity)"
    )


def funnel_rows(
    sql: Sql, exposure: ExposureDefinition, metric: FunnelMetric, scope: EntityScope | None
) -> None:
    """Every exposure starts a path; each step is the earliest matching event (not the previous
    step's own event) at or after the previous step and within the window of the path's start
    (for strict funnels: the entity's very next funnel event); an entity's value is the furthest
    step any of its paths reached."""
    window = window_of(metric.conversion_window_seconds) or DEFAULT_FUNNEL_WINDOW
    step_count = len(metric.steps)
    for index, step in enumerate(metric.steps, start=1):
        sql.add(f", step_{index}_events AS (SELECT ")
        entity_expression(sql, exposure.group_type, "m")
        sql.add(" AS entity, m.id, m.timestamp FROM events_event m WHERE ")
        selector_conditions(sql, exposure.project_id, step, "m", scope)
        sql.add(
            " AND m.timestamp >= %s AND m.timestamp <= %s)", exposure.date_from, exposure.date_to + window
        )
    reached = (
        "CASE"
        + "".join(f" WHEN s{index}.id IS NOT NULL THEN {index}" for index in range(step_count, 0, -1))
        + " ELSE 0 END AS reached"
    )
    if metric.order == "strict":
        strict_paths(sql, step_count, window, reached)
    else:
        sql.add(
            f", paths AS (SELECT x.entity, x.variant, x.first_at, x.last_at, {reached}"
            " FROM exposures x JOIN exposure_events s0 ON s0.entity = x.entity"
        )
        for index in range(1, step_count + 1):
            previous = f"s{index - 1}"
            sql.add(
                f" LEFT JOIN LATERAL (SELECT m.id, m.timestamp FROM step_{index}_events m"
                f" WHERE m.entity = x.entity AND m.timestamp >= {previous}.timestamp AND m.id <> {previous}.id"
                " AND m.timestamp <= s0.timestamp + %s ORDER BY m.timestamp, m.id LIMIT 1)"
                f" s{index} ON true",
                window,
            )
    sql.add(
        " WHERE x.variant <> %s), entity_steps AS (SELECT entity, variant, first_at, last_at,"
        " max(reached) AS reached FROM paths GROUP BY entity, variant, first_at, last_at)"
        " SELECT e.entity, e.variant, e.first_at, e.last_at, e.reached::float8, NULL::float8, ",
        MULTIPLE_VARIANTS_KEY,
    )
    if metric.cuped_lookback_days:
        sql.add("CASE WHEN EXISTS (SELECT 1 FROM events_event m WHERE ")
        selector_conditions(sql, exposure.project_id, metric.steps[-1], "m")
        sql.add(" AND ")
        entity_expression(sql, exposure.group_type, "m")
        sql.add(
            " = e.entity AND m.timestamp >= e.first_at - %s AND m.timestamp < e.first_at) THEN 1.0 ELSE 0.0 END",
            timedelta(days=metric.cuped_lookback_days),
        )
    else:
        sql.add("NULL::float8")
    sql.add(", NULL::timestamptz FROM entity_steps e")


def strict_paths(sql: Sql, step_count: int, window: timedelta, reached: str) -> None:
    """`paths` of a strict funnel: the entity's exposures and step events in one sequence (equal
    times in step order), where step k must be the event right after step k − 1, so any funnel
    event in between — another exposure too — ends the path."""
    tagged = " UNION ALL ".join(
        ["SELECT entity, id, timestamp, 0 AS step FROM exposure_events"]
        + [
            f"SELECT entity, id, timestamp, {index} FROM step_{index}_events"
            for index in range(1, step_count + 1)
        ]
    )
    flags = "".join(f", bool_or(step = {index}) AS step_{index}" for index in range(step_count + 1))
    sql.add(
        f", funnel_sequence AS (SELECT entity, id, timestamp{flags}, row_number() OVER"
        " (PARTITION BY entity ORDER BY timestamp, min(step), id) AS position"
        f" FROM ({tagged}) tagged GROUP BY entity, id, timestamp)"
        f", paths AS (SELECT x.entity, x.variant, x.first_at, x.last_at, {reached} FROM exposures x"
        " JOIN funnel_sequence s0 ON s0.entity = x.entity AND s0.step_0"
    )
    for index in range(1, step_count + 1):
        sql.add(
            f" LEFT JOIN funnel_sequence s{index} ON s{index}.entity = x.entity"
            f" AND s{index}.position = s{index - 1}.position + 1 AND s{index}.step_{index}"
            f" AND s{index}.timestamp <= s0.timestamp + %s",
            window,
        )


RETENTION_UNIT_INTERVALS = {
    "hour": "interval '1 hour'",
    "day": "interval '1 day'",
    "week": "interval '7 days'",
    "month": "interval '1 month'",
}
RETENTION_UNIT_SECONDS = {"hour": 3600, "day": 86400, "week": 604800, "month": 2592000}
# PostHog lets a completion run this far past the window's end before truncation decides.
RETENTION_BUFFERS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def retention_span(metric: RetentionMetric) -> timedelta:
    return timedelta(seconds=metric.window_end * RETENTION_UNIT_SECONDS[metric.unit])


def retention_rows(
    sql: Sql, exposure: ExposureDefinition, metric: RetentionMetric, scope: EntityScope | None
) -> None:
    """Starters (first or last start event at or after the first exposure) and whether each
    returned inside the retention window; a start event never completes itself."""
    window = window_of(metric.conversion_window_seconds)
    unit = RETENTION_UNIT_INTERVALS[metric.unit]
    end_span = retention_span(metric)
    sql.add(", start_events AS (SELECT ")
    entity_expression(sql, exposure.group_type, "m")
    sql.add(" AS entity, m.id, m.timestamp FROM events_event m WHERE ")
    selector_conditions(sql, exposure.project_id, metric.start, "m", scope)
    sql.add(" AND m.timestamp >= %s AND m.timestamp < %s)", exposure.date_from, exposure.date_to + window)
    order = "DESC" if metric.start_handling == "last_seen" else "ASC"
    sql.add(
        ", starts AS (SELECT DISTINCT ON (x.entity) x.entity, x.variant, x.first_at, x.last_at,"
        " s.id AS start_id, s.timestamp AS start_at FROM exposures x JOIN start_events s ON s.entity = x.entity"
        " AND s.timestamp >= x.first_at"
    )
    if window:
        sql.add(" AND s.timestamp <= x.first_at + %s", window)
    sql.add(
        f" WHERE x.variant <> %s ORDER BY x.entity, s.timestamp {order}, s.id {order})", MULTIPLE_VARIANTS_KEY
    )
    sql.add(", completion_events AS (SELECT ")
    entity_expression(sql, exposure.group_type, "m")
    sql.add(" AS entity, m.id, m.timestamp FROM events_event m WHERE ")
    selector_conditions(sql, exposure.project_id, metric.completion, "m", scope)
    sql.add(
        " AND m.timestamp >= %s AND m.timestamp < %s)",
        exposure.date_from,
        exposure.date_to + window + end_span,
    )
    if metric.unit in ("day", "hour"):
        completed, started = (
            f"date_trunc('{metric.unit}', {column} AT TIME ZONE %s)"
            for column in ("c.timestamp", "st.start_at")
        )
        tz_params: tuple = (metric.timezone,)
    else:
        completed, started, tz_params = "c.timestamp", "st.start_at", ()
    sql.add(
        " SELECT st.entity, st.variant, st.first_at, st.last_at, CASE WHEN EXISTS (SELECT 1"
        " FROM completion_events c WHERE c.entity = st.entity AND c.id <> st.start_id"
        " AND c.timestamp >= st.start_at AND c.timestamp <= st.start_at + %s"
        f" AND {completed} >= {started} + %s * {unit} AND {completed} <= {started} + %s * {unit})"
        " THEN 1.0 ELSE 0.0 END, NULL::float8, NULL::float8, st.start_at FROM starts st",
        end_span + RETENTION_BUFFERS.get(metric.unit, timedelta(0)),
        *tz_params,
        *tz_params,
        metric.window_start,
        *tz_params,
        *tz_params,
        metric.window_end,
    )


ROW_BUILDERS = {
    MeanMetric: mean_rows,
    RatioMetric: ratio_rows,
    FunnelMetric: funnel_rows,
    RetentionMetric: retention_rows,
}


def entity_rows_query(
    exposure: ExposureDefinition, metric: MetricDefinition, scope: EntityScope | None = None
) -> Sql:
    """One row per analysed entity (`$multiple` excluded), columns `ENTITY_ROW_COLUMNS`: `value` is
    the raw metric value (the furthest step for funnels, 1/0 retained for retention),
    `denominator` the ratio's, `covariate` the CUPED covariate, `started_at` retention's start."""
    sql = Sql().add("WITH ")
    exposure_ctes(sql, exposure, scope)
    ROW_BUILDERS[type(metric)](sql, exposure, metric, scope)
    return sql


def bounds_cte(sql: Sql, name: str, column: str, value: EntityValue) -> str:
    """Winsorization bounds of `column` over `kept_rows` as CTE `name`; returns the clamped column."""
    if value.lower_bound_percentile is None and value.upper_bound_percentile is None:
        return column
    # ClickHouse's quantileExact(level): the element at 0-based index floor(level * n) of the sorted
    # values (the last one at level 1), pooled over every variant.
    sql.add(f", {name} AS (SELECT ")
    if value.lower_bound_percentile is None:
        sql.add("NULL::float8")
    else:
        sql.add(
            f"(array_agg({column} ORDER BY {column}))[least(floor(%s * count(*))::bigint, count(*) - 1) + 1]",
            value.lower_bound_percentile,
        )
    sql.add(" AS lower_bound, ")
    if value.upper_bound_percentile is None:
        sql.add("NULL::float8")
    else:
        kept = f"FILTER (WHERE {column} <> 0)" if value.ignore_zeros else ""
        sql.add(
            f"(array_agg({column} ORDER BY {column}) {kept})"
            f"[least(floor(%s * count(*) {kept})::bigint, count(*) {kept} - 1) + 1]",
            value.upper_bound_percentile,
        )
    sql.add(" AS upper_bound FROM kept_rows)")
    return f"least(greatest({column}, {name}.lower_bound), {name}.upper_bound)"


# NULL when no covariate was collected, so the statistics know CUPED has nothing to work with.
COVARIATE_SUMS = "sum({covariate}), sum({covariate} * {covariate}), sum({value} * {covariate})"


def statistics_query(rows: Sql, metric: MetricDefinition, matured_before: datetime | None) -> Sql:
    """Per-variant sufficient statistics over entity rows (`rows` selects `ENTITY_ROW_COLUMNS`):
    maturity, threshold and winsorization are applied here, so stored rows and a fresh computation
    give the same numbers."""
    sql = Sql().add("WITH entity_rows (" + ", ".join(ENTITY_ROW_COLUMNS) + ") AS (")
    sql.parts.extend(rows.parts)
    sql.params.extend(rows.params)
    if isinstance(metric, MeanMetric) and metric.value.threshold is not None:
        columns = [
            column if column != "value" else "CASE WHEN value >= %s THEN 1.0 ELSE 0.0 END"
            for column in ENTITY_ROW_COLUMNS
        ]
        sql.add(
            "), kept_rows (" + ", ".join(ENTITY_ROW_COLUMNS) + ") AS (SELECT " + ", ".join(columns),
            metric.value.threshold,
        )
        sql.add(" FROM entity_rows")
    else:
        sql.add("), kept_rows AS (SELECT * FROM entity_rows")
    if isinstance(metric, RetentionMetric):
        if metric.matured_at is not None:
            sql.add(" WHERE started_at + %s <= %s", retention_span(metric), metric.matured_at)
    elif matured_before is not None:
        sql.add(" WHERE last_at <= %s", matured_before)
    sql.add(")")
    joins = ""
    if isinstance(metric, MeanMetric):
        value = bounds_cte(sql, "value_bounds", "value", metric.value)
        joins = " CROSS JOIN value_bounds" if "value_bounds" in value else ""
        sql.add(
            f" SELECT variant, count(*), coalesce(sum({value}), 0), coalesce(sum({value} * {value}), 0),"
            f" {COVARIATE_SUMS.format(value=value, covariate='covariate')} FROM kept_rows{joins} GROUP BY variant"
        )
    elif isinstance(metric, RatioMetric):
        numerator = bounds_cte(sql, "numerator_bounds", "value", metric.numerator)
        denominator = bounds_cte(sql, "denominator_bounds", "denominator", metric.denominator)
        for name in ("numerator_bounds", "denominator_bounds"):
            if name in numerator or name in denominator:
                joins += f" CROSS JOIN {name}"
        sql.add(
            f" SELECT variant, count(*), coalesce(sum({numerator}), 0), coalesce(sum({numerator} * {numerator}), 0),"
            f" coalesce(sum({denominator}), 0), coalesce(sum({denominator} * {denominator}), 0),"
            f" coalesce(sum({numerator} * {denominator}), 0) FROM kept_rows{joins} GROUP BY variant"
        )
    elif isinstance(metric, FunnelMetric):
        steps = len(metric.steps)
        completed = f"(CASE WHEN value >= {steps} THEN 1.0 ELSE 0.0 END)"
        sql.add(
            " SELECT variant, count(*), "
            + "".join(f"count(*) FILTER (WHERE value >= {index}), " for index in range(1, steps + 1))
            + COVARIATE_SUMS.format(value=completed, covariate="covariate")
            + " FROM kept_rows GROUP BY variant"
        )
    else:
        sql.add(
            " SELECT variant, count(*), count(*) FILTER (WHERE value >= 1) FROM kept_rows GROUP BY variant"
        )
    return sql


def metric_selectors(metric: MetricDefinition) -> list[EventSelector]:
    if isinstance(metric, MeanMetric):
        return [metric.value.selector]
    if isinstance(metric, RatioMetric):
        return [metric.numerator.selector, metric.denominator.selector]
    if isinstance(metric, FunnelMetric):
        return list(metric.steps)
    return [metric.start, metric.completion]


def variant_statistics(metric: MetricDefinition, rows: list[tuple]) -> list[VariantStatistics]:
    """The statistics query's rows as `VariantStatistics`."""
    if isinstance(metric, MeanMetric):
        return [
            VariantStatistics(
                key=row[0],
                number_of_samples=row[1],
                sum=row[2],
                sum_squares=row[3],
                **covariate_fields(row[4:7]),
            )
            for row in rows
        ]
    if isinstance(metric, RatioMetric):
        return [
            VariantStatistics(
                key=row[0],
                number_of_samples=row[1],
                sum=row[2],
                sum_squares=row[3],
                denominator_sum=row[4],
                denominator_sum_squares=row[5],
                numerator_denominator_sum_product=row[6],
            )
            for row in rows
        ]
    if isinstance(metric, RetentionMetric):
        return [
            VariantStatistics(
                key=row[0],
                number_of_samples=row[1],
                sum=float(row[2]),
                sum_squares=float(row[2]),
                denominator_sum=float(row[1]),
                denominator_sum_squares=float(row[1]),
                numerator_denominator_sum_product=float(row[2]),
            )
            for row in rows
        ]
    steps = len(metric.steps)
    return [
        VariantStatistics(
            key=row[0],
            number_of_samples=row[1],
            sum=float(row[1 + steps]),
            sum_squares=float(row[1 + steps]),
            step_counts=list(row[2 : 2 + steps]),
            **covariate_fields(row[2 + steps : 5 + steps]),
        )
        for row in rows
    ]


def covariate_fields(sums: tuple) -> dict[str, float]:
    """The CUPED sums of a result row, or nothing when no covariate was collected."""
    if sums[0] is None:
        return {}
    return {"covariate_sum": sums[0], "covariate_sum_squares": sums[1], "covariate_sum_product": sums[2]}


class PostgresResultsEngine:
    """Computes sufficient statistics with one SQL statement per metric, on the events table."""

    def metric_statistics(
        self, *, exposure: ExposureDefinition, metric: MetricDefinition, matured_before: datetime | None
    ) -> list[VariantStatistics]:
        sql = statistics_query(entity_rows_query(exposure, metric), metric, matured_before)
        return variant_statistics(metric, run(sql))

    def latest_event_id(self, *, project_id: int, after: int, received_before: datetime) -> int:
        """The highest event id of the project received before `received_before` (else `after`)."""
        rows = run(
            Sql().add(
                "SELECT id FROM events_event WHERE project_id = %s AND id > %s AND received_at < %s"
                " ORDER BY id DESC LIMIT 1",
                project_id,
                after,
                received_before,
            )
        )
        return rows[0][0] if rows else after

    def dirty_entities(
        self,
        *,
        exposure: ExposureDefinition,
        metric: MetricDefinition,
        after_event_id: int,
        covered_until: datetime,
    ) -> list[str]:
        """Entities whose rows may have changed since a refresh: those with a relevant event stored
        after `after_event_id`, and those with one timed after `covered_until` (the window end then),
        which the moving window end may have let in."""
        selectors = metric_selectors(metric) + [exposure.selector]
        names = (
            None if any(selector.event is None for selector in selectors) else [s.event for s in selectors]
        )
        sql = Sql().add("SELECT DISTINCT entity FROM (")
        for index, (column, bound) in enumerate((("id", after_event_id), ("timestamp", covered_until))):
            sql.add(" UNION ALL " if index else "")
            sql.add("SELECT ")
            entity_expression(sql, exposure.group_type, "e")
            sql.add(
                f" AS entity FROM events_event e WHERE e.project_id = %s AND e.{column} > %s",
                exposure.project_id,
                bound,
            )
            if names is not None:
                sql.add(" AND e.event = ANY(%s)", names)
        sql.add(") changed WHERE entity IS NOT NULL")
        return [row[0] for row in run(sql)]

    def rollup_store(
        self,
        *,
        rollup_id: int,
        exposure: ExposureDefinition,
        metric: MetricDefinition,
        entities: list[str] | None,
    ) -> None:
        """Replace the rollup's rows of `entities` (all of them when None) with freshly computed ones."""
        scope = None if entities is None else EntityScope(entities=entities, group_type=exposure.group_type)
        delete = Sql().add("DELETE FROM results_rollupentityrow WHERE rollup_id = %s", rollup_id)
        if entities is not None:
            delete.add(" AND entity = ANY(%s)", entities)
        execute(delete)
        rows = entity_rows_query(exposure, metric, scope)
        insert = Sql().add(
            "INSERT INTO results_rollupentityrow (rollup_id, "
            + ", ".join(ENTITY_ROW_COLUMNS)
            + ") SELECT %s, r.* FROM (",
            rollup_id,
        )
        insert.parts.extend(rows.parts)
        insert.params.extend(rows.params)
        insert.add(") r")
        execute(insert)

    def rollup_statistics(
        self, *, rollup_id: int, metric: MetricDefinition, matured_before: datetime | None
    ) -> list[VariantStatistics]:
        rows = Sql().add(
            "SELECT " + ", ".join(ENTITY_ROW_COLUMNS) + " FROM results_rollupentityrow WHERE rollup_id = %s",
            rollup_id,
        )
        return variant_statistics(metric, run(statistics_query(rows, metric, matured_before)))

    def daily_first_exposures(self, *, exposure: ExposureDefinition, timezone: str) -> list[DailyExposures]:
        sql = Sql().add("WITH ")
        exposure_ctes(sql, exposure)
        sql.add(
            " SELECT (first_at AT TIME ZONE %s)::date AS day, variant, count(*) FROM exposures"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            timezone,
        )
        return [DailyExposures(day=row[0], variant=row[1], entities=row[2]) for row in run(sql)]


class ResultsQueryTimeout(APIException):
    status_code = 504
    default_code = "query_timeout"
    default_detail = (
        "Computing this result took longer than the server allows (RESULTS_QUERY_TIMEOUT_SECONDS). "
        "Ask for it with refresh 'async' to compute it in the background."
    )


# Background computations (async `/query/` runs) set this to 0: nobody waits on them.
statement_timeout_seconds: ContextVar[int | None] = ContextVar("results_statement_timeout", default=None)


def run(sql: Sql) -> list[tuple]:
    return execute(sql, fetch=True)


def execute(sql: Sql, *, fetch: bool = False) -> list[tuple]:
    timeout = statement_timeout_seconds.get()
    if timeout is None:
        timeout = settings.RESULTS_QUERY_TIMEOUT_SECONDS
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # Row estimates for JSON property filters are guesses (typically "1 row"), which makes
            # the planner nest loops over CTEs that really hold thousands of entities: quadratic.
            # Hash and merge joins scale with the events the query reads whatever the estimate;
            # the per-entity LATERAL lookups of funnels remain nested loops, as they must.
            # The disabled nested loops make plan costs look enormous, which would switch JIT on:
            # compiling costs more than these queries take.
            cursor.execute(
                "SELECT set_config('enable_nestloop', 'off', true), set_config('jit', 'off', true)"
            )
            if timeout > 0:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{timeout * 1000}"])
            cursor.execute(sql.text(), sql.params)
            return cursor.fetchall() if fetch else []
    except OperationalError as error:
        if isinstance(error.__cause__, QueryCanceled):
            raise ResultsQueryTimeout() from None
        raise
