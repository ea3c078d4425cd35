"""Stored `/query/` computations: the cache of results and the status of asynchronous runs."""

import uuid

from django.db import models
from django.utils.timezone import now


class QueryRun(models.Model):
    """One computation of a `/query/` request for a project.

    A completed run is the cache entry for its `cache_key` (the newest one wins); a queued or
    running one is what `GET /query/{id}/` reports and `DELETE /query/{id}/` cancels.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETE = "complete"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="+")
    cache_key = models.CharField(max_length=64)
    query = models.JSONField()
    query_async = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    result = models.JSONField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "cache_key", "status"], name="query_run_by_cache_key")]

    def __str__(self) -> str:
        return (
            f"{self.query.get('kind') if isinstance(self.query, dict) else 'query'} {self.id} ({self.status})"
        )
