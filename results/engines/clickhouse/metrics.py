"""Mean, ratio and retention metrics for the ClickHouse engine: one query per metric, from the
exposures (`sql.exposure_ctes`) through one value per exposed entity to per-variant sums."""

from datetime import datetime, timedelta

from events.clickhouse import EVENTS_TABLE
from results.engines.base import (
    MULTIPLE_VARIANTS_KEY,
    EntityValue,
    ExposureDefinition,
    MeanMetric,
    RatioMetric,
    RetentionMetric,
)
from results.engines.clickhouse.sql import (
    COVARIATE_SUMS,
    NULL_FLOAT64,
    ChSql,
    entity_of,
    exposure_ctes,
    number_of,
    selector_condition,
    text_of,
)
from results.engines.plan import (
    EMPTY_SESSION_IDS,
    conversion_window,
    cuped_lookback,
    retention_reach,
    retention_span,
)


def per_event_value(sql: ChSql, value: EntityValue) -> str:
    if value.math in ("sum", "avg", "min", "max"):
        return number_of(sql, "m", value.math_property or "")
    if value.math == "unique_session":
        session = text_of(sql, "m", "$session_id")
        empty, zero = (sql.string(text) for text in EMPTY_SESSION_IDS)
        return f"nullIf(nullIf({session}, {empty}), {zero})"
    if value.math == "unique_group":
        return f"nullIf({text_of(sql, 'm', '$groups', value.math_group_type or '')}, '')"
    return NULL_FLOAT64


# Over an entity's matched metric events `m` that satisfy `{only}`; an entity with none gets 0.
ENTITY_AGGREGATES = {
    "total": "toFloat64(countIf({only}))",
    "dau": "toFloat64(least(countIf({only}), 1))",
    "sum": "sumIf(coalesce(m.value, 0), {only})",
    "avg": "if(countIf({only}) = 0, 0, avgIf(coalesce(m.value, 0), {only}))",
    "min": "if(countIf({only}) = 0, 0, minIf(coalesce(m.value, 0), {only}))",
    "max": "if(countIf({only}) = 0, 0, maxIf(coalesce(m.value, 0), {only}))",
    "unique_session": "toFloat64(uniqExactIf(m.value, {only}))",
    "unique_group": "toFloat64(uniqExactIf(m.value, {only}))",
}


def entity_value_cte(
    sql: ChSql,
    name: str,
    value: EntityValue,
    exposure: ExposureDefinition,
    window: timedelta,
    lookback: timedelta | None = None,
) -> None:
    """`<name>(entity, variant, value, covariate)`: one value per analysed entity, thresholded and
    winsorized, and with a `lookback` its CUPED covariate (the same aggregate over the entity's
    events in the `lookback` before its first exposure; else NULL)."""
    entity = entity_of(sql, exposure.group_type, "m")
    per_event = per_event_value(sql, value)
    date_from = exposure.date_from - (lookback or timedelta(0))
    date_to = exposure.date_to + window
    sql.add(
        f", {name}_events AS (SELECT {entity} AS entity, m.timestamp AS timestamp, {per_event} AS value"
        f" FROM {EVENTS_TABLE} AS m FINAL WHERE m.project_id = {sql.param(exposure.project_id, 'Int64')}"
        f" AND {selector_condition(sql, value.selector, 'm')}"
        f" AND m.timestamp >= {sql.instant(date_from)} AND m.timestamp < {sql.instant(date_to)})"
    )
    in_window = f"m.timestamp < x.last_at + {sql.seconds(window)}" if window else "1"
    if lookback:
        joined = f"m.timestamp >= x.first_at - {sql.seconds(lookback)} AND (m.timestamp < x.first_at OR {in_window})"
        after, before = "m.timestamp >= x.first_at", "m.timestamp < x.first_at"
        covariate = ENTITY_AGGREGATES[value.math].format(only=before)
    else:
        joined = f"m.timestamp >= x.first_at AND {in_window}"
        after, covariate = "1", NULL_FLOAT64
    sql.add(
        f", {name}_matched AS (SELECT x.entity AS entity,"
        f" {ENTITY_AGGREGATES[value.math].format(only=after)} AS value, {covariate} AS covariate"
        f" FROM exposures AS x INNER JOIN {name}_events AS m ON m.entity = x.entity"
        f" WHERE x.variant != {sql.string(MULTIPLE_VARIANTS_KEY)} AND {joined} GROUP BY x.entity)"
    )
    entity_value = "coalesce(v.value, 0)"
    if value.threshold is not None:
        entity_value = f"if({entity_value} >= {sql.param(float(value.threshold), 'Float64')}, 1.0, 0.0)"
    entity_covariate = "toNullable(toFloat64(coalesce(v.covariate, 0)))" if lookback else NULL_FLOAT64
    sql.add(
        f", {name}_raw AS (SELECT x.entity AS entity, x.variant AS variant, toFloat64({entity_value}) AS value,"
        f" {entity_covariate} AS covariate"
        f" FROM exposures AS x LEFT JOIN {name}_matched AS v ON v.entity = x.entity"
        f" WHERE x.variant != {sql.string(MULTIPLE_VARIANTS_KEY)})"
    )
    if value.lower_bound_percentile is None and value.upper_bound_percentile is None:
        sql.add(f", {name} AS (SELECT entity, variant, value, covariate FROM {name}_raw)")
        return
    # quantileExact(level) is the element at 0-based index floor(level * n) of the sorted values,
    # pooled over every variant; a bound with no values to take it from is no bound.
    if value.lower_bound_percentile is None:
        lower = "-inf"
    else:
        level = sql.param(float(value.lower_bound_percentile), "Float64")
        lower = f"if(count() = 0, -inf, quantileExact({level})(value))"
    if value.upper_bound_percentile is None:
        upper = "inf"
    else:
        level = sql.param(float(value.upper_bound_percentile), "Float64")
        if value.ignore_zeros:
            upper = f"if(countIf(value != 0) = 0, inf, quantileExactIf({level})(value, value != 0))"
        else:
            upper = f"if(count() = 0, inf, quantileExact({level})(value))"
    sql.add(
        f", {name}_bounds AS (SELECT {lower} AS lower_bound, {upper} AS upper_bound FROM {name}_raw)"
        f", {name} AS (SELECT r.entity AS entity, r.variant AS variant,"
        f" least(greatest(r.value, b.lower_bound), b.upper_bound) AS value, r.covariate AS covariate"
        f" FROM {name}_raw AS r CROSS JOIN {name}_bounds AS b)"
    )


def mean_query(exposure: ExposureDefinition, metric: MeanMetric, matured_before: datetime | None) -> ChSql:
    sql = ChSql().add("WITH ")
    exposure_ctes(sql, exposure, matured_before)
    window = conversion_window(metric)
    entity_value_cte(sql, "metric_values", metric.value, exposure, window, cuped_lookback(metric))
    sql.add(
        f" SELECT variant, count(), sum(value), sum(value * value), {COVARIATE_SUMS} FROM metric_values"
        " GROUP BY variant ORDER BY variant"
    )
    return sql


def ratio_query(exposure: ExposureDefinition, metric: RatioMetric, matured_before: datetime | None) -> ChSql:
    sql = ChSql().add("WITH ")
    exposure_ctes(sql, exposure, matured_before)
    window = conversion_window(metric)
    entity_value_cte(sql, "numerator_values", metric.numerator, exposure, window)
    entity_value_cte(sql, "denominator_values", metric.denominator, exposure, window)
    sql.add(
        " SELECT n.variant, count(), sum(n.value), sum(n.value * n.value), sum(d.value),"
        " sum(d.value * d.value), sum(n.value * d.value)"
        " FROM numerator_values AS n INNER JOIN denominator_values AS d ON d.entity = n.entity"
        " GROUP BY n.variant ORDER BY n.variant"
    )
    return sql


def local_wall_clock(sql: ChSql, column: str, timezone: str) -> str:
    """`column` as the wall-clock time in `timezone`, labelled UTC: naive local time, so adding
    hours or days to it is calendar arithmetic as on PostgreSQL's `timestamp AT TIME ZONE`."""
    return f"({column} + toIntervalSecond(timeZoneOffset(toTimeZone({column}, {sql.string(timezone)}))))"


RETENTION_INTERVALS = {
    "hour": "toIntervalHour",
    "day": "toIntervalDay",
    "week": "toIntervalWeek",
    "month": "toIntervalMonth",
}


def retention_query(
    exposure: ExposureDefinition, metric: RetentionMetric, matured_before: datetime | None
) -> ChSql:
    """Starters (first or last start event at or after the first exposure) and whether each
    returned inside the retention window; a start event never completes itself."""
    window = conversion_window(metric)
    end_span = retention_span(metric)
    sql = ChSql().add("WITH ")
    exposure_ctes(sql, exposure, matured_before)
    project = sql.param(exposure.project_id, "Int64")
    start_entity = entity_of(sql, exposure.group_type, "m")
    sql.add(
        f", start_events AS (SELECT {start_entity} AS entity, m.uuid AS uuid, m.seq AS seq, m.timestamp AS timestamp"
        f" FROM {EVENTS_TABLE} AS m FINAL WHERE m.project_id = {project}"
        f" AND {selector_condition(sql, metric.start, 'm')}"
        f" AND m.timestamp >= {sql.instant(exposure.date_from)}"
        f" AND m.timestamp < {sql.instant(exposure.date_to + window)})"
    )
    pick = "argMax" if metric.start_handling == "last_seen" else "argMin"
    sql.add(
        f", starts AS (SELECT x.entity AS entity, any(x.variant) AS variant,"
        f" {pick}((s.timestamp, s.uuid), (s.timestamp, s.seq)) AS start"
        " FROM exposures AS x INNER JOIN start_events AS s ON s.entity = x.entity"
        f" WHERE x.variant != {sql.string(MULTIPLE_VARIANTS_KEY)} AND s.timestamp >= x.first_at"
    )
    if window:
        sql.add(f" AND s.timestamp <= x.first_at + {sql.seconds(window)}")
    sql.add(" GROUP BY x.entity")
    if metric.matured_at is not None:
        sql.add(f" HAVING start.1 + {sql.seconds(end_span)} <= {sql.instant(metric.matured_at)}")
    sql.add(")")
    completion_entity = entity_of(sql, exposure.group_type, "m")
    sql.add(
        f", completion_events AS (SELECT {completion_entity} AS entity, m.uuid AS uuid, m.timestamp AS timestamp"
        f" FROM {EVENTS_TABLE} AS m FINAL WHERE m.project_id = {project}"
        f" AND {selector_condition(sql, metric.completion, 'm')}"
        f" AND m.timestamp >= {sql.instant(exposure.date_from)}"
        f" AND m.timestamp < {sql.instant(exposure.date_to + window + end_span)})"
    )
    if metric.unit in ("day", "hour"):
        truncate = "toStartOfDay" if metric.unit == "day" else "toStartOfHour"
        completed = f"{truncate}({local_wall_clock(sql, 'c.timestamp', metric.timezone)}, 'UTC')"
        started = f"{truncate}({local_wall_clock(sql, 'st.start.1', metric.timezone)}, 'UTC')"
    else:
        completed, started = "c.timestamp", "st.start.1"
    interval = RETENTION_INTERVALS[metric.unit]
    reach = retention_reach(metric)
    sql.add(
        ", returned AS (SELECT st.entity AS entity FROM starts AS st"
        " INNER JOIN completion_events AS c ON c.entity = st.entity"
        " WHERE c.uuid != st.start.2 AND c.timestamp >= st.start.1"
        f" AND c.timestamp <= st.start.1 + {sql.seconds(reach)}"
        f" AND {completed} >= {started} + {interval}({sql.param(metric.window_start, 'Int64')})"
        f" AND {completed} <= {started} + {interval}({sql.param(metric.window_end, 'Int64')})"
        " GROUP BY st.entity)"
        " SELECT variant, count(), countIf(entity IN (SELECT entity FROM returned))"
        " FROM starts GROUP BY variant ORDER BY variant"
    )
    return sql
