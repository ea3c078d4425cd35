"""Events SDKs send to `/batch/` (and the other capture paths), and the group types they reveal.

Events are stored append-only: they are the exposure data (`$feature_flag_called`) experiment
results will be computed from, so nothing edits or deletes single rows.
"""

import uuid

from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KT
from django.utils.timezone import now

MAX_GROUP_TYPES_PER_PROJECT = 5


class CapturedEvent(models.Model):
    """The columns of an event as an SDK sent it, shared by the stored event and the outbox row."""

    uuid = models.UUIDField(default=uuid.uuid4, editable=False)
    event = models.CharField(max_length=400)
    distinct_id = models.CharField(max_length=200)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        abstract = True


class Event(CapturedEvent):
    """One captured event. `uuid` is the SDK's id for it; a resent batch does not store it twice."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="events")

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "uuid"], name="unique_event_uuid_per_project"),
        ]
        indexes = [
            models.Index(fields=["project", "event", "timestamp"], name="event_project_name_time"),
            # Results: one experiment's exposures are a range of this partial index, and each exposed
            # entity's metric events a range of the next one.
            models.Index(
                F("project"),
                KT("properties__$feature_flag"),
                F("timestamp"),
                name="event_flag_exposure",
                condition=Q(event="$feature_flag_called"),
            ),
            models.Index(
                fields=["project", "event", "distinct_id", "timestamp"], name="event_project_entity_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} by {self.distinct_id} at {self.timestamp:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("Events are append-only: a stored event cannot be changed.")
        super().save(*args, **kwargs)


class PendingEvent(CapturedEvent):
    """An accepted event on its way to ClickHouse (`EVENTS_BACKEND=clickhouse`): the outbox.

    Intake commits events here, in PostgreSQL, and answers; `clickhouse_drain` moves them to
    ClickHouse in batches and deletes them only once ClickHouse has them, so an event accepted while
    ClickHouse is down waits here instead of being lost. The id orders the drain and becomes the
    event's `seq` in ClickHouse (the tie-break between events at the same instant).
    """

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="pending_events")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "uuid"], name="unique_pending_event_uuid_per_project"),
        ]

    def __str__(self) -> str:
        return f"pending {self.event} by {self.distinct_id} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class GroupTypeMapping(models.Model):
    """A group type ("company", "organization", …) and its index 0–4, as group-aggregated flags use.

    A flag with `aggregation_group_type_index: 0` buckets by the key of the request's group whose
    type maps to index 0. SDKs receive the mapping with the flag definitions. Types are created by
    operators in the admin or discovered from the `$groups` of captured events.
    """

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="group_types")
    group_type = models.CharField(max_length=400)
    group_type_index = models.PositiveSmallIntegerField()
    name_singular = models.CharField(max_length=400, blank=True, default="")
    name_plural = models.CharField(max_length=400, blank=True, default="")
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["project", "group_type_index"]
        constraints = [
            models.UniqueConstraint(fields=["project", "group_type"], name="unique_group_type_per_project"),
            models.UniqueConstraint(
                fields=["project", "group_type_index"], name="unique_group_type_index_per_project"
            ),
            models.CheckConstraint(
                condition=Q(group_type_index__lt=MAX_GROUP_TYPES_PER_PROJECT), name="group_type_index_below_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group_type_index}: {self.group_type}"
