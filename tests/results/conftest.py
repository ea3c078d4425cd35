"""Every results test runs on both event stores: PostgreSQL, and ClickHouse (chDB, or the server at
CLICKHOUSE_URL) fed through the outbox and its drain."""

import pytest


@pytest.fixture(autouse=True, params=["postgres", "clickhouse"])
def events_backend(request, settings) -> str:
    if request.param == "clickhouse":
        request.getfixturevalue("clickhouse_backend")
    else:
        settings.EVENTS_BACKEND = "postgres"
    return request.param
