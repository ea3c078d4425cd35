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


class MetricRollup(models.Model):
    """The per-entity rows of one metric of one experiment, kept current incrementally.

    `definition_key` covers everything the rows depend on except the end of the analysis window,
    which only moves forward: `covered_until` is the window end of the last refresh and
    `event_watermark` the id up to which events have been folded in. A change to the experiment or
    the metric gives a new key, hence a fresh rollup.
    """

    experiment = models.ForeignKey("experiments.Experiment", on_delete=models.CASCADE, related_name="+")
    definition_key = models.CharField(max_length=64)
    event_watermark = models.BigIntegerField(default=0)
    covered_until = models.DateTimeField()
    refreshed_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "definition_key"], name="unique_rollup_per_definition"
            )
        ]

    def __str__(self) -> str:
        return f"rollup {self.definition_key[:12]} of experiment {self.experiment_id}"


class RollupEntityRow(models.Model):
    """One exposed entity's metric value in a rollup (the columns of the engine's entity rows)."""

    rollup = models.ForeignKey(MetricRollup, on_delete=models.CASCADE, related_name="rows")
    entity = models.TextField()
    variant = models.TextField()
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    value = models.FloatField()
    denominator = models.FloatField(null=True)
    covariate = models.FloatField(null=True)
    started_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rollup", "entity"], name="unique_rollup_entity")]

    def __str__(self) -> str:
        return f"{self.entity}: {self.value}"
