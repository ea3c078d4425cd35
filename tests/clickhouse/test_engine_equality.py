"""The same events in PostgreSQL and in ClickHouse give the same per-variant sufficient statistics,
for every metric kind, math, filter operator and exposure option.

The events are random (fixed seed) and sent through `/batch/` into PostgreSQL; the backfill copies
them to ClickHouse (chDB, or the server at CLICKHOUSE_URL). Then both engines answer every
combination. Values are multiples of 0.25, so sums are exact; averages are compared to 1e-12.
"""

import dataclasses
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from events.services import events_backfill_to_clickhouse
from results.engines.base import (
    EntityValue,
    EventSelector,
    ExposureDefinition,
    FunnelMetric,
    MeanMetric,
    PropertyFilter,
    RatioMetric,
    RetentionMetric,
)
from results.engines.clickhouse import ClickHouseResultsEngine
from results.engines.postgres import PostgresResultsEngine

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, tzinfo=UTC)
FLAG = "equality-flag"
VARIANTS = ("control", "test", "third")
AMOUNTS = [0, 0.25, 1.5, 10, 42.75, -3, "7.5", " 2 ", "abc", True, None, 1e120, "1e5"]
SESSIONS = ["s1", "s2", "s3", "", "00000000-0000-0000-0000-000000000000"]
PLANS = ["pro", "free", "Pro plan", 3, 3.5, False, None]


def minute(rng: random.Random, low_days: float, high_days: float) -> datetime:
    minutes = rng.randint(int(low_days * 1440), int(high_days * 1440))
    return START + timedelta(minutes=minutes)


def random_events(rng: random.Random) -> list[dict]:
    events = []

    def add(name, distinct_id, when, **properties):
        events.append(
            {
                "event": name,
                "distinct_id": distinct_id,
                "timestamp": when.isoformat(),
                "uuid": str(uuid.uuid4()),
                "properties": properties,
            }
        )

    for index in range(70):
        user = f"user-{index}"
        company = f"company-{index % 9}"
        groups = {"company": company} if index % 11 else {"company": ""}
        exposed_at = minute(rng, -1, 10)
        # Mostly one variant per company, so group-aggregated exposures are not all `$multiple`.
        variant = VARIANTS[index % 9 % 3] if rng.random() < 0.8 else rng.choice(VARIANTS + ("holdout-1",))
        add(
            "$feature_flag_called",
            user,
            exposed_at,
            **{"$feature_flag": FLAG, "$feature_flag_response": variant, "$groups": groups},
        )
        if rng.random() < 0.3:  # a second exposure, maybe another variant, maybe at the same instant
            again = exposed_at if rng.random() < 0.5 else minute(rng, 0, 12)
            second = variant if rng.random() < 0.5 else rng.choice(VARIANTS)
            add(
                "$feature_flag_called",
                user,
                again,
                **{"$feature_flag": FLAG, "$feature_flag_response": second, "$groups": groups},
            )
        if rng.random() < 0.4:
            add("viewed", user, minute(rng, 0, 10), variant=rng.choice(VARIANTS), **{"$groups": groups})
        for _ in range(rng.randint(0, 7)):
            when = exposed_at if rng.random() < 0.15 else minute(rng, -2, 16)
            name = rng.choice(["purchase", "purchase", "signup", "checkout", "other"])
            properties = {"$groups": groups, "$session_id": rng.choice(SESSIONS)}
            amount = rng.choice(AMOUNTS)
            if amount is not None:
                properties["amount"] = amount
            plan = rng.choice(PLANS)
            if plan is not None:
                properties["plan"] = plan
            add(name, user, when, **properties)
    return events


@pytest.fixture
def loaded(project, clickhouse_store, settings):
    """A project whose random events are in PostgreSQL and in ClickHouse."""
    settings.EVENTS_BACKEND = "postgres"
    _, client = clickhouse_store
    client.command("TRUNCATE TABLE events")
    events = random_events(random.Random(20261203))
    for offset in range(0, len(events), 200):
        response = Client().post(
            "/batch/",
            json.dumps({"api_key": project.api_token, "batch": events[offset : offset + 200]}),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
    copied = events_backfill_to_clickhouse(project_id=project.id, batch_size=97, client=client)
    assert copied == len(events)
    return project, PostgresResultsEngine(), ClickHouseResultsEngine(client)


def exposures(project_id: int, **options) -> ExposureDefinition:
    fields = {
        "project_id": project_id,
        "selector": EventSelector("$feature_flag_called", (PropertyFilter("$feature_flag", "exact", FLAG),)),
        "variant_property": "$feature_flag_response",
        "variants": VARIANTS,
        "date_from": START,
        "date_to": START + timedelta(days=10),
    }
    fields.update(options)
    return ExposureDefinition(**fields)


EXPOSURE_OPTIONS = {
    "exclude": {},
    "first_seen": {"multiple_variant_handling": "first_seen"},
    "group": {"group_type": "company"},
    "group_first_seen": {"group_type": "company", "multiple_variant_handling": "first_seen"},
    "custom_event": {"selector": EventSelector("viewed"), "variant_property": "variant"},
    "two_variants_short_window": {"variants": ("control", "test"), "date_to": START + timedelta(days=4)},
}

PROPERTY_FILTERS = [
    (),
    (PropertyFilter("plan", "exact", "pro"),),
    (PropertyFilter("plan", "exact", ["pro", "3", "false"]),),
    (PropertyFilter("plan", "is_not", ["pro"]),),
    (PropertyFilter("plan", "is_set"),),
    (PropertyFilter("plan", "is_not_set"),),
    (PropertyFilter("plan", "icontains", "PRO"),),
    (PropertyFilter("plan", "not_icontains", "pro"),),
    (PropertyFilter("amount", "gt", 1),),
    (PropertyFilter("amount", "gte", 0.25), PropertyFilter("amount", "lt", 11)),
    (PropertyFilter("amount", "lte", 0),),
]

ENTITY_VALUES = [
    EntityValue(EventSelector("purchase")),
    EntityValue(EventSelector("purchase"), math="dau"),
    EntityValue(EventSelector("purchase"), math="sum", math_property="amount"),
    EntityValue(EventSelector("purchase"), math="avg", math_property="amount"),
    EntityValue(EventSelector("purchase"), math="min", math_property="amount"),
    EntityValue(EventSelector("purchase"), math="max", math_property="amount"),
    EntityValue(EventSelector("purchase"), math="unique_session"),
    EntityValue(EventSelector(None), math="unique_group", math_group_type="company"),
    EntityValue(EventSelector("purchase"), threshold=2),
    EntityValue(EventSelector("purchase"), math="sum", math_property="amount", threshold=5.5),
    EntityValue(EventSelector("purchase"), math="sum", math_property="amount", upper_bound_percentile=0.9),
    EntityValue(EventSelector("purchase"), math="sum", math_property="amount", lower_bound_percentile=0.2),
    EntityValue(
        EventSelector("purchase"),
        math="sum",
        math_property="amount",
        lower_bound_percentile=0.1,
        upper_bound_percentile=0.75,
        ignore_zeros=True,
    ),
    EntityValue(EventSelector("purchase"), upper_bound_percentile=0.5, ignore_zeros=True),
    EntityValue(EventSelector(None)),
]


def normalized(rows) -> list[dict]:
    return sorted((dataclasses.asdict(row) for row in rows), key=lambda row: row["key"])


def assert_same(pg_rows, ch_rows, label: str) -> None:
    pg, ch = normalized(pg_rows), normalized(ch_rows)
    assert [row["key"] for row in pg] == [row["key"] for row in ch], label
    for pg_row, ch_row in zip(pg, ch, strict=True):
        for name, pg_value in pg_row.items():
            ch_value = ch_row[name]
            if isinstance(pg_value, float) and ch_value is not None:
                assert ch_value == pytest.approx(pg_value, rel=1e-12, abs=1e-12), (label, pg_row["key"], name)
            else:
                assert ch_value == pg_value, (label, pg_row["key"], name)


def both(engines, exposure, metric, matured_before=None):
    _, pg_engine, ch_engine = engines
    arguments = {"exposure": exposure, "metric": metric, "matured_before": matured_before}
    return pg_engine.metric_statistics(**arguments), ch_engine.metric_statistics(**arguments)


@pytest.mark.parametrize("option", list(EXPOSURE_OPTIONS))
def test_mean_metrics_match_for_every_math_and_exposure_option(loaded, option):
    project = loaded[0]
    exposure = exposures(project.id, **EXPOSURE_OPTIONS[option])
    nonempty = 0
    for index, value in enumerate(ENTITY_VALUES):
        for window in (0, 3 * 86400):
            pg_rows, ch_rows = both(loaded, exposure, MeanMetric(value, conversion_window_seconds=window))
            assert_same(pg_rows, ch_rows, f"{option} value {index} window {window}")
            nonempty += any(row.sum for row in pg_rows)
    assert nonempty > len(ENTITY_VALUES)  # the fixture really produces metric values to compare


def test_every_property_filter_operator_matches(loaded):
    project = loaded[0]
    exposure = exposures(project.id)
    for filters in PROPERTY_FILTERS:
        for value in (
            EntityValue(EventSelector("purchase", filters)),
            EntityValue(EventSelector(None, filters), math="sum", math_property="amount"),
        ):
            pg_rows, ch_rows = both(loaded, exposure, MeanMetric(value))
            assert_same(pg_rows, ch_rows, f"filters {filters} math {value.math}")
    custom = exposures(
        project.id,
        selector=EventSelector(
            "$feature_flag_called", (PropertyFilter("$feature_flag", "icontains", "EQUALITY"),)
        ),
    )
    assert_same(*both(loaded, custom, MeanMetric(ENTITY_VALUES[0])), "exposure filter")


@pytest.mark.parametrize("option", list(EXPOSURE_OPTIONS))
def test_ratio_and_funnel_metrics_match(loaded, option):
    project = loaded[0]
    exposure = exposures(project.id, **EXPOSURE_OPTIONS[option])
    ratio = RatioMetric(
        numerator=EntityValue(EventSelector("purchase"), math="sum", math_property="amount"),
        denominator=EntityValue(EventSelector(None)),
        conversion_window_seconds=5 * 86400,
    )
    assert_same(*both(loaded, exposure, ratio), f"{option} ratio")
    funnels = [
        FunnelMetric((EventSelector("purchase"),)),
        FunnelMetric((EventSelector("signup"), EventSelector("purchase"))),
        FunnelMetric((EventSelector("purchase"), EventSelector("purchase"), EventSelector("checkout"))),
        FunnelMetric(
            (EventSelector(None, (PropertyFilter("plan", "is_set"),)), EventSelector("checkout")),
            conversion_window_seconds=2 * 86400,
        ),
        FunnelMetric((EventSelector("$feature_flag_called"), EventSelector("purchase"))),
    ]
    funnels += [dataclasses.replace(funnel, order="strict") for funnel in funnels]
    funnels.append(
        FunnelMetric(
            (EventSelector("purchase"), EventSelector("purchase")),
            conversion_window_seconds=3600,
            order="strict",
        )
    )
    reached = 0
    for index, funnel in enumerate(funnels):
        pg_rows, ch_rows = both(loaded, exposure, funnel)
        assert_same(pg_rows, ch_rows, f"{option} funnel {index}")
        reached += sum(row.step_counts[-1] for row in pg_rows)
    assert reached > 0


@pytest.mark.parametrize("option", ["exclude", "first_seen", "group"])
def test_cuped_covariates_match(loaded, option):
    project = loaded[0]
    exposure = exposures(project.id, **EXPOSURE_OPTIONS[option])
    covariates = 0
    for index, value in enumerate(ENTITY_VALUES):
        for window in (0, 2 * 86400):
            metric = MeanMetric(value, conversion_window_seconds=window, cuped_lookback_days=3)
            pg_rows, ch_rows = both(loaded, exposure, metric)
            assert_same(pg_rows, ch_rows, f"{option} cuped value {index} window {window}")
            covariates += sum(1 for row in pg_rows if row.covariate_sum)
    funnel = FunnelMetric((EventSelector("signup"), EventSelector("purchase")), cuped_lookback_days=2)
    assert_same(*both(loaded, exposure, funnel), f"{option} cuped funnel")
    assert covariates > 0


RETENTIONS = [
    {"unit": "day", "window_start": 1, "window_end": 3},
    {"unit": "day", "window_start": 0, "window_end": 0, "timezone": "America/Los_Angeles"},
    {
        "unit": "day",
        "window_start": 1,
        "window_end": 2,
        "timezone": "Asia/Kathmandu",
        "start_handling": "last_seen",
    },
    {"unit": "hour", "window_start": 2, "window_end": 30, "timezone": "Australia/Adelaide"},
    {"unit": "week", "window_start": 0, "window_end": 1},
    {"unit": "month", "window_start": 0, "window_end": 1, "start_handling": "last_seen"},
    {"unit": "day", "window_start": 1, "window_end": 5, "conversion_window_seconds": 86400},
    {"unit": "day", "window_start": 1, "window_end": 2, "matured_at": START + timedelta(days=8)},
]


@pytest.mark.parametrize("option", ["exclude", "first_seen", "group", "custom_event"])
def test_retention_metrics_match(loaded, option):
    project = loaded[0]
    exposure = exposures(project.id, **EXPOSURE_OPTIONS[option])
    retained = 0
    for fields in RETENTIONS:
        for start, completion in (("purchase", "purchase"), ("signup", "checkout"), (None, "purchase")):
            metric = RetentionMetric(
                start=EventSelector(start), completion=EventSelector(completion), **fields
            )
            pg_rows, ch_rows = both(loaded, exposure, metric)
            assert_same(pg_rows, ch_rows, f"{option} retention {fields} {start}->{completion}")
            retained += sum(row.sum for row in pg_rows)
    assert retained > 0


def test_matured_users_and_daily_exposures_match(loaded):
    project, pg_engine, ch_engine = loaded
    for option in EXPOSURE_OPTIONS.values():
        exposure = exposures(project.id, **option)
        matured = START + timedelta(days=6)
        assert_same(*both(loaded, exposure, MeanMetric(ENTITY_VALUES[2]), matured), f"matured {option}")
        for zone in ("UTC", "Pacific/Kiritimati", "America/Los_Angeles"):
            pg_days = pg_engine.daily_first_exposures(exposure=exposure, timezone=zone)
            ch_days = ch_engine.daily_first_exposures(exposure=exposure, timezone=zone)
            assert ch_days == pg_days, (option, zone)
            assert sum(day.entities for day in pg_days) > 0
