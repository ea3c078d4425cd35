"""The periodic drain of the ClickHouse outbox, as a results-worker task (procrastinate).

procrastinate's Django app loads every installed app's `tasks` module, so this registers itself
wherever the worker runs; without a worker, `manage.py clickhouse_drain --every SECONDS` does the
same job. The queueing lock keeps one drain waiting at a time; several running at once would still
be safe (they take disjoint batches).
"""

import logging

from django.conf import settings
from procrastinate.contrib.django import app

from events.clickhouse import ClickHouseUnavailable
from events.services import pending_events_drain

logger = logging.getLogger(__name__)

EVENTS_QUEUE = "events"


@app.periodic(cron="* * * * *")
@app.task(name="events.drain_to_clickhouse", queue=EVENTS_QUEUE, queueing_lock="events.drain")
def drain_to_clickhouse(timestamp: int) -> None:
    if settings.EVENTS_BACKEND != "clickhouse":
        return
    try:
        moved = pending_events_drain()
    except ClickHouseUnavailable as error:
        # Not a job failure to retry: the events stay pending and the next minute's run tries again.
        logger.warning("ClickHouse unavailable, events stay pending: %s", error)
        return
    if moved:
        logger.info("Moved %s events to ClickHouse", moved)
