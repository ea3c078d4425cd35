"""Stage two of the PostgreSQL engine: one row per exposed entity from its metric events.

`entity_rows_query` starts from the exposures (stage one, `sql.exposure_ctes`) and adds the CTEs of
the metric's kind; its rows (`ENTITY_ROW_COLUMNS`) are summed per variant by
`sufficient_statistics.statistics_query`, or stored as a rollup's rows and summed later.
"""

from datetime import timedelta

from results.engines.base import (
    MULTIPLE_VARIANTS_KEY,
    EntityValue,
    ExposureDefinition,
    FunnelMetric,
    MeanMetric,
    MetricDefinition,
    RatioMetric,
    RetentionMetric,
)
from results.engines.plan import (
    EMPTY_SESSION_IDS,
    conversion_window,
    cuped_lookback,
    retention_reach,
    retention_span,
)
from results.engines.postgres.funnels import funnel_rows
from results.engines.postgres.sql import (
    EntityScope,
    Sql,
    entity_expression,
    exposure_ctes,
    number_expression,
    selector_conditions,
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


def mean_rows(sql: Sql, exposure: ExposureDefinition, metric: MeanMetric, scope: EntityScope | None) -> None:
    window = conversion_window(metric)
    entity_value_cte(sql, "metric_values", metric.value, exposure, window, cuped_lookback(metric), scope)
    sql.add(
        " SELECT entity, variant, first_at, last_at, value, NULL::float8, covariate, NULL::timestamptz"
        " FROM metric_values"
    )


def ratio_rows(
    sql: Sql, exposure: ExposureDefinition, metric: RatioMetric, scope: EntityScope | None
) -> None:
    window = conversion_window(metric)
    entity_value_cte(sql, "numerator_values", metric.numerator, exposure, window, None, scope)
    entity_value_cte(sql, "denominator_values", metric.denominator, exposure, window, None, scope)
    sql.add(
        " SELECT n.entity, n.variant, n.first_at, n.last_at, n.value, d.value, NULL::float8,"
        " NULL::timestamptz FROM numerator_values n JOIN denominator_values d USING (entity)"
    )


RETENTION_UNIT_INTERVALS = {
    "hour": "interval '1 hour'",
    "day": "interval '1 day'",
    "week": "interval '7 days'",
    "month": "interval '1 month'",
}


def retention_rows(
    sql: Sql, exposure: ExposureDefinition, metric: RetentionMetric, scope: EntityScope | None
) -> None:
    """Starters (first or last start event at or after the first exposure) and whether each
    returned inside the retention window; a start event never completes itself."""
    window = conversion_window(metric)
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
        retention_reach(metric),
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
