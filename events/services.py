"""Writes for events: storing captured batches and discovering group types from them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from events.clickhouse import ClickHouseClient, EventRow, clickhouse_client
from events.models import MAX_GROUP_TYPES_PER_PROJECT, Event, GroupTypeMapping, PendingEvent

MAX_EVENT_NAME_LENGTH = 400
MAX_DISTINCT_ID_LENGTH = 200
MAX_GROUP_TYPE_LENGTH = 400
KNOWN_GROUP_TYPES_CACHE_KEY = "known-group-types:{project_id}"
KNOWN_GROUP_TYPES_CACHE_SECONDS = 300


class InvalidEvent(ValueError):
    """One event of a batch is malformed; `attr` names the field (e.g. `batch__2__distinct_id`)."""

    def __init__(self, message: str, attr: str) -> None:
        super().__init__(message)
        self.message = message
        self.attr = attr


@dataclass(frozen=True)
class CapturedEvent:
    """An event as validated from an SDK payload, ready to store."""

    uuid: uuid.UUID
    event: str
    distinct_id: str
    timestamp: dt.datetime
    properties: dict[str, Any]


def parse_moment(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = parse_datetime(value.strip())
    except ValueError:
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def event_timestamp(raw: Mapping[str, Any], sent_at: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """When the event happened, corrected for the sender's clock as PostHog does.

    With `sent_at` (when the SDK sent the batch, by its clock), the event is placed `sent_at -
    timestamp` before the server's `now`; with posthog-js's `offset` (ms before sending), `offset`
    before `now`. A missing or unreadable timestamp means now.
    """
    offset = raw.get("offset")
    if isinstance(offset, int | float) and not isinstance(offset, bool) and 0 <= offset < 10**12:
        return now - dt.timedelta(milliseconds=offset)
    moment = parse_moment(raw.get("timestamp"))
    if moment is None:
        return now
    if sent_at is not None:
        return now + (moment - sent_at)
    return moment


def captured_event(
    raw: Any, *, index: int | None, sent_at: dt.datetime | None, now: dt.datetime
) -> CapturedEvent:
    """Validate one event from a capture payload. Raises InvalidEvent naming the bad field."""
    prefix = "" if index is None else f"batch__{index}__"
    if not isinstance(raw, dict):
        raise InvalidEvent("Each event must be a JSON object.", prefix.rstrip("_") or "batch")
    name = raw.get("event")
    if not isinstance(name, str) or not name.strip():
        raise InvalidEvent("Each event needs a non-empty event name.", f"{prefix}event")

    properties = raw.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise InvalidEvent("Event properties must be a JSON object.", f"{prefix}properties")
    properties = dict(properties)
    for top_level in ("$set", "$set_once"):
        if isinstance(raw.get(top_level), dict):
            properties.setdefault(top_level, raw[top_level])

    distinct_id = raw.get("distinct_id", properties.get("distinct_id", properties.get("$distinct_id")))
    if (
        isinstance(distinct_id, bool)
        or not isinstance(distinct_id, str | int | float)
        or not str(distinct_id).strip()
    ):
        raise InvalidEvent(
            "Each event needs a distinct_id (a non-empty string or a number).", f"{prefix}distinct_id"
        )

    raw_uuid = raw.get("uuid")
    if raw_uuid is None:
        event_uuid = uuid.uuid4()
    else:
        try:
            event_uuid = uuid.UUID(str(raw_uuid))
        except ValueError as error:
            raise InvalidEvent("The event uuid is not a valid UUID.", f"{prefix}uuid") from error

    return CapturedEvent(
        uuid=event_uuid,
        event=name[:MAX_EVENT_NAME_LENGTH],
        distinct_id=str(distinct_id)[:MAX_DISTINCT_ID_LENGTH],
        timestamp=event_timestamp(raw, sent_at, now),
        properties=properties,
    )


def events_capture(*, project_id: int, events: Iterable[CapturedEvent]) -> int:
    """Store the events (append-only) and learn their group types. Returns how many were new.

    An event whose uuid the project already has is skipped, so an SDK retrying a batch it could
    not confirm does not count exposures twice. With `EVENTS_BACKEND=clickhouse` they are stored as
    pending events (the outbox `pending_events_drain` empties), never sent to ClickHouse from here:
    intake does not wait on, or fail with, ClickHouse.
    """
    events = list(events)
    model = PendingEvent if settings.EVENTS_BACKEND == "clickhouse" else Event
    rows = [
        model(
            uuid=event.uuid,
            project_id=project_id,
            event=event.event,
            distinct_id=event.distinct_id,
            timestamp=event.timestamp,
            properties=event.properties,
        )
        for event in events
    ]
    created = model.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    group_types_ensure(project_id=project_id, group_types=_group_types_in(events))
    return len(created)


def _group_types_in(events: Iterable[CapturedEvent]) -> set[str]:
    names: set[str] = set()
    for event in events:
        groups = event.properties.get("$groups")
        if isinstance(groups, dict):
            names.update(name for name in groups if isinstance(name, str))
        if event.event == "$groupidentify" and isinstance(event.properties.get("$group_type"), str):
            names.add(event.properties["$group_type"])
    return {name for name in names if name.strip() and len(name) <= MAX_GROUP_TYPE_LENGTH}


def group_types_ensure(*, project_id: int, group_types: Iterable[str]) -> None:
    """Give each new group type the lowest free index (0–4); types beyond five are not recorded."""
    wanted = set(group_types)
    cache_key = KNOWN_GROUP_TYPES_CACHE_KEY.format(project_id=project_id)
    if not wanted or wanted <= cache.get(cache_key, set()):
        return
    for _attempt in range(MAX_GROUP_TYPES_PER_PROJECT + 1):
        existing = dict(
            GroupTypeMapping.objects.filter(project_id=project_id).values_list(
                "group_type", "group_type_index"
            )
        )
        missing = sorted(wanted - existing.keys())
        free = [index for index in range(MAX_GROUP_TYPES_PER_PROJECT) if index not in existing.values()]
        if not missing or not free:
            # All recorded, or no index left for the rest: remember, so later batches skip the query.
            cache.set(cache_key, set(existing) | set(missing), KNOWN_GROUP_TYPES_CACHE_SECONDS)
            return
        try:
            with transaction.atomic():
                GroupTypeMapping.objects.create(
                    project_id=project_id,
                    group_type=missing[0],
                    group_type_index=free[0],
                    created_at=timezone.now(),
                )
        except IntegrityError:
            continue  # another request took that name or index meanwhile; look again


CLICKHOUSE_ROW_FIELDS = ("id", "project_id", "uuid", "event", "distinct_id", "timestamp", "properties_text")


def clickhouse_rows(stored: QuerySet) -> list[EventRow]:
    """Event rows for ClickHouse from `Event` or `PendingEvent` rows, properties as PostgreSQL's own
    JSON text (no decoding and re-encoding here, and numbers spelled as results on PostgreSQL see them)."""
    values = stored.annotate(properties_text=Cast("properties", TextField())).values_list(
        *CLICKHOUSE_ROW_FIELDS
    )
    return [
        EventRow(
            project_id=project_id,
            uuid=str(event_uuid),
            event=event,
            distinct_id=distinct_id,
            timestamp=timestamp,
            seq=row_id,
            properties=properties,
        )
        for row_id, project_id, event_uuid, event, distinct_id, timestamp, properties in values
    ]


def pending_events_drain(*, batch_size: int | None = None, client: ClickHouseClient | None = None) -> int:
    """Move pending events to ClickHouse, oldest first, until none are left; returns how many moved.

    Each batch is inserted while its rows are locked and deleted in the same transaction, so a
    batch ClickHouse refuses stays pending (ClickHouseUnavailable is raised after the batches that
    did move). Delivery is at-least-once: if the delete does not commit after ClickHouse took the
    batch, the batch is sent again — with the same de-duplication token, and the table collapses
    rows by uuid in any case. Several drains at once take disjoint batches (SKIP LOCKED).
    """
    batch_size = batch_size or settings.CLICKHOUSE_DRAIN_BATCH_SIZE
    client = client or clickhouse_client()
    moved = 0
    while True:
        with transaction.atomic():
            locked = PendingEvent.objects.select_for_update(skip_locked=True).order_by("id")[:batch_size]
            batch = clickhouse_rows(locked)
            if not batch:
                return moved
            client.insert_events(
                batch, deduplication_token=f"pending:{batch[0].seq}:{batch[-1].seq}:{len(batch)}"
            )
            PendingEvent.objects.filter(id__in=[event.seq for event in batch]).delete()
        moved += len(batch)


def events_backfill_to_clickhouse(
    *,
    after_id: int = 0,
    project_id: int | None = None,
    batch_size: int | None = None,
    client: ClickHouseClient | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Copy stored PostgreSQL events with id > `after_id` to ClickHouse in id order; returns how many.

    Safe to repeat or to resume from the last id `progress(copied, last_id)` reported: rows are
    collapsed by uuid, so a second copy of an event never counts twice.
    """
    batch_size = batch_size or settings.CLICKHOUSE_DRAIN_BATCH_SIZE
    client = client or clickhouse_client()
    stored = Event.objects.order_by("id")
    if project_id is not None:
        stored = stored.filter(project_id=project_id)
    copied, last_id = 0, after_id
    while True:
        batch = clickhouse_rows(stored.filter(id__gt=last_id)[:batch_size])
        if not batch:
            return copied
        client.insert_events(
            batch, deduplication_token=f"backfill:{batch[0].seq}:{batch[-1].seq}:{len(batch)}"
        )
        copied += len(batch)
        last_id = batch[-1].seq
        if progress is not None:
            progress(copied, last_id)
