"""The PostgreSQL engine's SQL builder and the pieces every query is made of: which events match a
selector, whose they are (the entity), and who was exposed to which variant (`exposure_ctes`).

Every value from a request reaches SQL as a bound parameter; only identifiers this package chooses
are formatted into the text. Numbers are read from JSON by `number_expression`: JSON numbers and
numeric strings count, anything else (missing, text, |x| ≥ 1e100, whose square could overflow) is
NULL, which the metric maths treat as 0 as PostHog does.
"""

from dataclasses import dataclass, field

from results.engines.base import MULTIPLE_VARIANTS_KEY, EventSelector, ExposureDefinition, PropertyFilter
from results.engines.plan import MAX_ABS_NUMBER, NUMBER_COMPARISONS, NUMERIC_STRING, as_text_values


@dataclass
class Sql:
    """SQL text with its positional parameters, built up in order."""

    parts: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)

    def add(self, text: str, *params: object) -> "Sql":
        self.parts.append(text)
        self.params.extend(params)
        return self

    def extend(self, other: "Sql") -> "Sql":
        """Append another statement's text and parameters (a subquery)."""
        self.parts.extend(other.parts)
        self.params.extend(other.params)
        return self

    def text(self) -> str:
        return "".join(self.parts)


def like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


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
        sql.add(" AND ")
        number_expression(sql, alias, prop.key)
        sql.add(f" {NUMBER_COMPARISONS[prop.operator]} %s", float(prop.value))


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


@dataclass(frozen=True)
class EntityScope:
    """Restricts every event a query reads to these entities (an incremental refresh)."""

    entities: list[str]
    group_type: str | None


def selector_conditions(
    sql: Sql, project_id: int, selector: EventSelector, alias: str, scope: EntityScope | None = None
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
