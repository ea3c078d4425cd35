"""The ClickHouse engine's SQL builder and the pieces every query is made of: which events match a
selector, whose they are (the entity), and who was exposed to which variant (`exposure_ctes`).

Properties are JSON text. `text_of` reads a property as PostgreSQL's `->>` does (strings as they
are, numbers and booleans as their JSON text, missing or null as NULL), `number_of` as the
PostgreSQL engine's `number_expression` (JSON numbers below 1e100 and numeric strings; else NULL).
Every value from a request is a `{name:Type}` parameter; only identifiers chosen here are formatted
into the text. Events are read `FINAL`, so a row drained twice (at-least-once delivery) counts once.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from events.clickhouse import EVENTS_TABLE, instant_text
from results.engines.base import MULTIPLE_VARIANTS_KEY, EventSelector, ExposureDefinition, PropertyFilter
from results.engines.plan import MAX_ABS_NUMBER, NUMBER_COMPARISONS, NUMERIC_STRING, as_text_values

NULL_FLOAT64 = "CAST(NULL, 'Nullable(Float64)')"
# NULL when no covariate was collected, so the statistics know CUPED has nothing to work with.
COVARIATE_SUMS = "sum(covariate), sum(covariate * covariate), sum(value * covariate)"


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
    comparison = NUMBER_COMPARISONS[prop.operator]
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
