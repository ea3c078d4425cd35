"""The ClickHouse results engine: the PostgreSQL engine's two-stage semantics in ClickHouse's dialect.

Stage one builds `exposures` (one row per entity: variant, first and last exposure); stage two one
value per exposed entity, then per-variant sufficient statistics. Rules and numbers are those of
`results.engines.postgres` — a test loads the same events into both and compares every statistic.
Events are read `FINAL`, so a row drained twice (at-least-once delivery) counts once.

Properties are JSON text. `text_of` reads a property as PostgreSQL's `->>` does (strings as they
are, numbers and booleans as their JSON text, missing or null as NULL), `number_of` as the
PostgreSQL engine's `number_expression` (JSON numbers below 1e100 and numeric strings; else NULL).
Every value from a request is a `{name:Type}` parameter; only identifiers chosen here are formatted
into the text. Ties between events at the same instant are broken by `seq` (the PostgreSQL row id
the event had), as the PostgreSQL engine breaks them by id.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from rest_framework.exceptions import APIException

from events.clickhouse import (
    EVENTS_TABLE,
    ClickHouseClient,
    ClickHouseTimeout,
    ClickHouseUnavailable,
    instant_text,
)
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
from results.engines.postgres import (
    DEFAULT_FUNNEL_WINDOW,
    EMPTY_SESSION_IDS,
    MAX_ABS_NUMBER,
    NUMERIC_STRING,
    RETENTION_BUFFERS,
    RETENTION_UNIT_SECONDS,
    ResultsQueryTimeout,
    as_text_values,
    covariate_fields,
    statement_timeout_seconds,
)
from results.statistics import VariantStatistics


@dataclass
class ChSql:
    """SQL text with named `{pN:Type}` parameters, built up in order."""

    parts: list[str] = field(default_factory=list)
    params: dict[str, object] = field(default_factory=dict)

    def add(self, text: str) -> "ChSql":
        self.parts.append(text)
        return self

    def param(self, value: object, type_name: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{type_name}}}"

    def text(self) -> str:
        return "".join(self.parts)

    def string(self, value: str) -> str:
        return self.param(value, "String")

    def instant(self, moment: datetime) -> str:
        return self.param(instant_text(moment), "DateTime64(6, 'UTC')")

    def seconds(self, window: timedelta) -> str:
        return f"toIntervalSecond({self.param(int(window.total_seconds()), 'Int64')})"


def json_path(sql: ChSql, keys: tuple[str, ...]) -> str:
    return ", ".join(sql.string(key) for key in keys)


def text_of(sql: ChSql, alias: str, *keys: str) -> str:
    """A property (or nested property) as Nullable(String), as PostgreSQL's `->>` reads it."""
    path = json_path(sql, keys)
    column = f"{alias}.properties"
    return (
        f"multiIf(JSONType({column}, {path}) = 'String', toNullable(JSONExtractString({column}, {path})),"
        f" JSONType({column}, {path}) = 'Null', NULL, toNullable(JSONExtractRaw({column}, {path})))"
    )


def number_of(sql: ChSql, alias: str, key: str) -> str:
    """A property as Nullable(Float64): JSON numbers with |x| < 1e100 and numeric strings."""
    path = json_path(sql, (key,))
    column = f"{alias}.properties"
    number = f"JSONExtractFloat({column}, {path})"
    text = f"JSONExtractString({column}, {path})"
    return (
        f"multiIf(JSONType({column}, {path}) IN ('Int64', 'UInt64', 'Double'),"
        f" if(abs({number}) < {sql.param(MAX_ABS_NUMBER, 'Float64')}, toNullable({number}), NULL),"
        f" JSONType({column}, {path}) = 'String',"
        f" if(match({text}, {sql.string(NUMERIC_STRING)}), toFloat64OrNull(trimBoth({text})), NULL), NULL)"
    )


def property_condition(sql: ChSql, prop: PropertyFilter, alias: str) -> str:
    text = text_of(sql, alias, prop.key)
    if prop.operator == "exact":
        values = as_text_values(prop.value)
        if len(values) == 1:
            return f"{text} = {sql.string(values[0])}"
        return f"has({sql.param(values, 'Array(String)')}, {text})"
    if prop.operator == "is_not":
        values = sql.param(as_text_values(prop.value), "Array(String)")
        return f"({text} IS NULL OR NOT has({values}, {text}))"
    if prop.operator == "is_set":
        return f"{text} IS NOT NULL"
    if prop.operator == "is_not_set":
        return f"{text} IS NULL"
    if prop.operator == "icontains":
        return f"positionCaseInsensitiveUTF8({text}, {sql.string(str(prop.value))}) > 0"
    if prop.operator == "not_icontains":
        return f"positionCaseInsensitiveUTF8(coalesce({text}, ''), {sql.string(str(prop.value))}) = 0"
    comparison = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[prop.operator]
    return f"{number_of(sql, alias, prop.key)} {comparison} {sql.param(float(prop.value), 'Float64')}"


def selector_condition(sql: ChSql, selector: EventSelector, alias: str) -> str:
    """The event name and property filters of `selector`, without the project (`1` for anything)."""
    conditions = []
    if selector.event is not None:
        conditions.append(f"{alias}.event = {sql.string(selector.event)}")
    conditions.extend(property_condition(sql, prop, alias) for prop in selector.properties)
    return " AND ".join(f"({condition})" for condition in conditions) or "1"


def entity_of(sql: ChSql, group_type: str | None, alias: str) -> str:
    if group_type is None:
        return f"{alias}.distinct_id"
    return f"nullIf({text_of(sql, alias, '$groups', group_type)}, '')"


def exposure_ctes(
    sql: ChSql, exposure: ExposureDefinition, matured_before: datetime | None, with_starts: bool = False
) -> None:
    """`exposure_events` (every matching exposure) and `exposures` (one row per entity); with
    `with_starts`, each entity also carries its exposures as `starts` (timestamp, seq, uuid)."""
    entity = entity_of(sql, exposure.group_type, "e")
    variant = text_of(sql, "e", exposure.variant_property)
    sql.add(
        f"exposure_events AS (SELECT {entity} AS entity, e.uuid AS uuid, e.seq AS seq,"
        f" e.timestamp AS timestamp, {variant} AS exposed_variant FROM {EVENTS_TABLE} AS e FINAL"
        f" WHERE e.project_id = {sql.param(exposure.project_id, 'Int64')}"
        f" AND {selector_condition(sql, exposure.selector, 'e')}"
        f" AND e.timestamp >= {sql.instant(exposure.date_from)} AND e.timestamp <= {sql.instant(exposure.date_to)}"
        f" AND has({sql.param(list(exposure.variants), 'Array(String)')}, exposed_variant)"
    )
    if exposure.group_type is not None:
        sql.add(" AND entity IS NOT NULL")
    sql.add("), exposures AS (SELECT entity, ")
    if exposure.multiple_variant_handling == "first_seen":
        sql.add("argMin(exposed_variant, (timestamp, seq))")
    else:
        sql.add(
            f"if(min(exposed_variant) != max(exposed_variant), {sql.string(MULTIPLE_VARIANTS_KEY)},"
            " min(exposed_variant))"
        )
    sql.add(" AS variant, min(timestamp) AS first_at, max(timestamp) AS last_at")
    if with_starts:
        sql.add(", groupArray((timestamp, seq, uuid)) AS starts")
    sql.add(" FROM exposure_events GROUP BY entity")
    if matured_before is not None:
        sql.add(f" HAVING max(timestamp) <= {sql.instant(matured_before)}")
    sql.add(")")


def per_event_value(sql: ChSql, value: EntityValue) -> str:
    if value.math in ("sum", "avg", "min", "max"):
        return number_of(sql, "m", value.math_property or "")
    if value.math == "unique_session":
        session = text_of(sql, "m", "$session_id")
        empty, zero = (sql.string(text) for text in EMPTY_SESSION_IDS)
        return f"nullIf(nullIf({session}, {empty}), {zero})"
    if value.math == "unique_group":
        return f"nullIf({text_of(sql, 'm', '$groups', value.math_group_type or '')}, '')"
    return "CAST(NULL, 'Nullable(Float64)')"


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
NO_COVARIATE = "CAST(NULL, 'Nullable(Float64)')"


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
        after, covariate = "1", NO_COVARIATE
    sql.add(
        f", {name}_matched AS (SELECT x.entity AS entity,"
        f" {ENTITY_AGGREGATES[value.math].format(only=after)} AS value, {covariate} AS covariate"
        f" FROM exposures AS x INNER JOIN {name}_events AS m ON m.entity = x.entity"
        f" WHERE x.variant != {sql.string(MULTIPLE_VARIANTS_KEY)} AND {joined} GROUP BY x.entity)"
    )
    entity_value = "coalesce(v.value, 0)"
    if value.threshold is not None:
        entity_value = f"if({entity_value} >= {sql.param(float(value.threshold), 'Float64')}, 1.0, 0.0)"
    entity_covariate = "toNullable(toFloat64(coalesce(v.covariate, 0)))" if lookback else NO_COVARIATE
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


# NULL when no covariate was collected, so the statistics know CUPED has nothing to work with.
COVARIATE_SUMS = "sum(covariate), sum(covariate * covariate), sum(value * covariate)"


def mean_query(exposure: ExposureDefinition, metric: MeanMetric, matured_before: datetime | None) -> ChSql:
    sql = ChSql().add("WITH ")
    exposure_ctes(sql, exposure, matured_before)
    lookback = timedelta(days=metric.cuped_lookback_days) if metric.cuped_lookback_days else None
    window = timedelta(seconds=metric.conversion_window_seconds)
    entity_value_cte(sql, "metric_values", metric.value, exposure, window, lookback)
    sql.add(
        f" SELECT variant, count(), sum(value), sum(value * value), {COVARIATE_SUMS} FROM metric_values"
        " GROUP BY variant ORDER BY variant"
    )
    return sql


def ratio_query(exposure: ExposureDefinition, metric: RatioMetric, matured_before: datetime | None) -> ChSql:
    sql = ChSql().add("WITH ")
    exposure_ctes(sql, exposure, matured_before)
    window = timedelta(seconds=metric.conversion_window_seconds)
    entity_value_cte(sql, "numerator_values", metric.numerator, exposure, window)
    entity_value_cte(sql, "denominator_values", metric.denominator, exposure, window)
    sql.add(
        " SELECT n.variant, count(), sum(n.value), sum(n.value * n.value), sum(d.value),"
        " sum(d.value * d.value), sum(n.value * d.value)"
        " FROM numerator_values AS n INNER JOIN denominator_values AS d ON d.entity = n.entity"
        " GROUP BY n.variant ORDER BY n.variant"
    )
    return sql


def funnel_query(
    exposure: ExposureDefinition, metric: FunnelMetric, matured_before: datetime | None
) -> ChSql:
    """Each entity's step events form one array sorted by (timestamp, seq); every exposure starts
    a path, and step k of a path is the first element of that array matching step k at or after
    step k-1's instant, other than step k-1's own event, within the window of the path's start —
    the PostgreSQL engine's lateral joins, one `arrayFirstIndex` per step."""
    window = timedelta(seconds=metric.conversion_window_seconds) or DEFAULT_FUNNEL_WINDOW
    step_count = len(metric.steps)
    sql = ChSql().add("WITH ")
    exposure_ctes(sql, exposure, matured_before, with_starts=True)
    step_conditions = [selector_condition(sql, step, "m") for step in metric.steps]
    entity = entity_of(sql, exposure.group_type, "m")
    sql.add(
        f", funnel_events AS (SELECT {entity} AS entity, m.timestamp AS timestamp, m.seq AS seq, m.uuid AS uuid,"
        f" [{', '.join(f'toUInt8({condition})' for condition in step_conditions)}] AS matches"
        f" FROM {EVENTS_TABLE} AS m FINAL WHERE m.project_id = {sql.param(exposure.project_id, 'Int64')}"
        f" AND m.timestamp >= {sql.instant(exposure.date_from)}"
        f" AND m.timestamp <= {sql.instant(exposure.date_to + window)}"
        f" AND ({' OR '.join(f'({condition})' for condition in step_conditions)}))"
    )
    if metric.order == "strict":
        strict_entity_steps(sql, step_count, window)
    else:
        ordered_entity_steps(sql, step_count, window)
    if metric.cuped_lookback_days:
        # The covariate: did the entity do the last step in the lookback before its first exposure.
        lookback = timedelta(days=metric.cuped_lookback_days)
        covariate_entity = entity_of(sql, exposure.group_type, "m")
        sql.add(
            f", covariate_events AS (SELECT {covariate_entity} AS entity, m.timestamp AS timestamp"
            f" FROM {EVENTS_TABLE} AS m FINAL WHERE m.project_id = {sql.param(exposure.project_id, 'Int64')}"
            f" AND {selector_condition(sql, metric.steps[-1], 'm')}"
            f" AND m.timestamp >= {sql.instant(exposure.date_from - lookback)}"
            f" AND m.timestamp < {sql.instant(exposure.date_to)})"
            ", covariates AS (SELECT x.entity AS entity, 1.0 AS covariate FROM exposures AS x"
            " INNER JOIN covariate_events AS c ON c.entity = x.entity"
            f" WHERE c.timestamp >= x.first_at - {sql.seconds(lookback)} AND c.timestamp < x.first_at"
            " GROUP BY x.entity)"
            ", funnel_values AS (SELECT e.entity AS entity, e.variant AS variant, e.reached AS reached,"
            f" if(e.reached >= {step_count}, 1.0, 0.0) AS value,"
            " toNullable(toFloat64(coalesce(c.covariate, 0))) AS covariate"
            " FROM entity_steps AS e LEFT JOIN covariates AS c ON c.entity = e.entity)"
        )
    else:
        sql.add(
            ", funnel_values AS (SELECT entity, variant, reached,"
            f" if(reached >= {step_count}, 1.0, 0.0) AS value, {NO_COVARIATE} AS covariate FROM entity_steps)"
        )
    sql.add(" SELECT variant, count()")
    for index in range(1, step_count + 1):
        sql.add(f", countIf(reached >= {index})")
    sql.add(f", {COVARIATE_SUMS} FROM funnel_values GROUP BY variant ORDER BY variant")
    return sql


def ordered_entity_steps(sql: ChSql, step_count: int, window: timedelta) -> None:
    """`entity_steps` of an ordered funnel (other events may come between steps)."""
    sql.add(
        ", entity_events AS (SELECT entity, arraySort(item -> (item.1, item.2),"
        " groupArray((timestamp, seq, uuid, matches))) AS items FROM funnel_events GROUP BY entity)"
        ", exposure_paths AS (SELECT x.entity AS entity, x.variant AS variant, start.1 AS start_at,"
        " start.3 AS start_uuid FROM exposures AS x ARRAY JOIN x.starts AS start"
        f" WHERE x.variant != {sql.string(MULTIPLE_VARIANTS_KEY)})"
        ", paths AS (SELECT p.entity AS entity, p.variant AS variant, p.start_at AS start_at,"
        " p.start_uuid AS start_uuid, ee.items AS items"
        " FROM exposure_paths AS p LEFT JOIN entity_events AS ee ON ee.entity = p.entity)"
    )
    deadline = f"start_at + {sql.seconds(window)}"
    steps = []
    for index in range(1, step_count + 1):
        if index == 1:
            previous_at, previous_uuid = "start_at", "start_uuid"
        else:
            previous = f"items[step_{index - 1}]"
            previous_at, previous_uuid = f"tupleElement({previous}, 1)", f"tupleElement({previous}, 3)"
        search = (
            f"arrayFirstIndex(item -> item.4[{index}] = 1 AND item.1 >= {previous_at}"
            f" AND item.3 != {previous_uuid} AND item.1 <= {deadline}, items)"
        )
        steps.append(search if index == 1 else f"if(step_{index - 1} = 0, 0, {search})")
    sql.add(
        ", path_steps AS (SELECT entity, variant, "
        + ", ".join(f"{search} AS step_{index}" for index, search in enumerate(steps, start=1))
        + ", multiIf("
        + ", ".join(f"step_{index} > 0, {index}" for index in range(step_count, 0, -1))
        + ", 0) AS reached FROM paths)"
        ", entity_steps AS (SELECT entity, variant, max(reached) AS reached FROM path_steps"
        " GROUP BY entity, variant)"
    )


def strict_entity_steps(sql: ChSql, step_count: int, window: timedelta) -> None:
    """`entity_steps` of a strict funnel: the entity's exposures and step events in one sequence
    (one element per event, equal instants in step order, then by seq); step k must be the element
    right after step k − 1, so any funnel event in between — another exposure too — ends the path.
    Each element carries a bit mask: bit 0 an exposure, bit k step k."""
    mask = "arraySum(arrayMap((flag, step) -> flag * bitShiftLeft(toUInt64(1), step), matches, arrayEnumerate(matches)))"
    lowest_step = "bitAnd(item.2, bitNot(item.2) + 1)"
    deadline = f"tupleElement(items[start], 1) + {sql.seconds(window)}"
    conditions = [
        f"bitTest(tupleElement(items[start + {index}], 2), {index})"
        f" AND tupleElement(items[start + {index}], 1) <= {deadline}"
        for index in range(1, step_count + 1)
    ]
    reached = (
        "multiIf("
        + ", ".join(
            f"{' AND '.join(f'({condition})' for condition in conditions[:index])}, {index}"
            for index in range(step_count, 0, -1)
        )
        + ", 0)"
    )
    sql.add(
        ", strict_tagged AS (SELECT entity, uuid, seq, timestamp, toUInt64(1) AS mask FROM exposure_events"
        f" UNION ALL SELECT entity, uuid, seq, timestamp, {mask} AS mask FROM funnel_events)"
        ", strict_sequences AS (SELECT entity, arraySort(item -> (item.1, "
        + lowest_step
        + ", item.3), groupArray((timestamp, mask, seq))) AS items FROM (SELECT entity, uuid,"
        " any(timestamp) AS timestamp, groupBitOr(mask) AS mask, any(seq) AS seq FROM strict_tagged"
        " GROUP BY entity, uuid) GROUP BY entity)"
        ", entity_steps AS (SELECT x.entity AS entity, x.variant AS variant,"
        f" arrayMax(arrayMap(start -> if(bitTest(tupleElement(items[start], 2), 0), {reached}, 0),"
        " arrayEnumerate(items))) AS reached FROM exposures AS x"
        " INNER JOIN strict_sequences AS q ON q.entity = x.entity"
        f" WHERE x.variant != {sql.string(MULTIPLE_VARIANTS_KEY)})"
    )


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
    window = timedelta(seconds=metric.conversion_window_seconds)
    end_span = timedelta(seconds=metric.window_end * RETENTION_UNIT_SECONDS[metric.unit])
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
    reach = end_span + RETENTION_BUFFERS.get(metric.unit, timedelta(0))
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


class ClickHouseResultsEngine:
    """Computes sufficient statistics with one ClickHouse query per metric, on the events table."""

    def __init__(self, client: ClickHouseClient) -> None:
        self.client = client

    def metric_statistics(
        self, *, exposure: ExposureDefinition, metric: MetricDefinition, matured_before: datetime | None
    ) -> list[VariantStatistics]:
        if isinstance(metric, MeanMetric):
            rows = self.run(mean_query(exposure, metric, matured_before))
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
            rows = self.run(ratio_query(exposure, metric, matured_before))
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
            rows = self.run(retention_query(exposure, metric, matured_before))
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
        rows = self.run(funnel_query(exposure, metric, matured_before))
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

    def daily_first_exposures(self, *, exposure: ExposureDefinition, timezone: str) -> list[DailyExposures]:
        sql = ChSql().add("WITH ")
        exposure_ctes(sql, exposure, None)
        sql.add(
            f" SELECT toDate(first_at, {sql.string(timezone)}) AS day, variant, count() FROM exposures"
            " GROUP BY day, variant ORDER BY day, variant"
        )
        return [DailyExposures(day=row[0], variant=row[1], entities=row[2]) for row in self.run(sql)]

    def run(self, sql: ChSql) -> list[tuple]:
        timeout = statement_timeout_seconds.get()
        if timeout is None:
            timeout = settings.RESULTS_QUERY_TIMEOUT_SECONDS
        query_settings = {"join_use_nulls": 1}
        if timeout > 0:
            query_settings["max_execution_time"] = timeout
        try:
            return self.client.query(sql.text(), sql.params, query_settings)
        except ClickHouseTimeout:
            raise ResultsQueryTimeout() from None
        except ClickHouseUnavailable:
            raise ResultsStoreUnavailable() from None


class ResultsStoreUnavailable(APIException):
    status_code = 503
    default_code = "events_store_unavailable"
    default_detail = "The ClickHouse event store cannot be reached right now; ask again shortly."
