"""Experiments, saved (shared) metrics and the links between them."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

LEGACY_METRIC_KINDS = ("ExperimentTrendsQuery", "ExperimentFunnelsQuery")


class Experiment(models.Model):
    """An A/B experiment. Its variants, rollout and holdout live on its feature flag (the single
    source of truth SDKs evaluate); the experiment holds dates, metrics and analysis settings.

    Stored `status` is draft/running/stopped, recomputed from the dates on every save; `paused`
    (running with an inactive flag) is derived in `experiments/lifecycle.py` and never stored."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        STOPPED = "stopped"

    class Conclusion(models.TextChoices):
        WON = "won"
        LOST = "lost"
        INCONCLUSIVE = "inconclusive"
        STOPPED_EARLY = "stopped_early"
        INVALID = "invalid"

    class Type(models.TextChoices):
        WEB = "web"
        PRODUCT = "product"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=400)
    description = models.CharField(max_length=3000, null=True, blank=True)
    filters = models.JSONField(default=dict)
    parameters = models.JSONField(null=True, blank=True, default=dict)
    secondary_metrics = models.JSONField(null=True, blank=True, default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    feature_flag = models.ForeignKey("flags.FeatureFlag", on_delete=models.RESTRICT)
    exposure_cohort = models.ForeignKey("flags.Cohort", on_delete=models.SET_NULL, null=True, blank=True)
    holdout = models.ForeignKey(
        "holdouts.ExperimentHoldout", on_delete=models.SET_NULL, null=True, blank=True
    )
    start_date = models.DateTimeField(null=True, blank=True)
    end_date = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)
    archived = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    type = models.CharField(max_length=40, choices=Type.choices, null=True, blank=True, default=Type.PRODUCT)
    variants = models.JSONField(null=True, blank=True, default=dict)
    exposure_criteria = models.JSONField(null=True, blank=True, default=dict)
    metrics = models.JSONField(null=True, blank=True, default=list)
    metrics_secondary = models.JSONField(null=True, blank=True, default=list)
    primary_metrics_ordered_uuids = models.JSONField(null=True, blank=True, default=None)
    secondary_metrics_ordered_uuids = models.JSONField(null=True, blank=True, default=None)
    saved_metrics = models.ManyToManyField(
        "experiments.ExperimentSavedMetric", through="experiments.ExperimentToSavedMetric", blank=True
    )
    stats_config = models.JSONField(null=True, blank=True, default=dict)
    scheduling_config = models.JSONField(null=True, blank=True, default=dict)
    running_time_calculation = models.JSONField(null=True, blank=True, default=dict)
    excluded_variants = models.JSONField(null=True, blank=True, default=None)
    only_count_matured_users = models.BooleanField(default=False)
    exposure_preaggregation_enabled = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, null=True, blank=True)
    conclusion = models.CharField(max_length=30, choices=Conclusion.choices, null=True, blank=True)
    conclusion_comment = models.TextField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["project", "-created_at"],
                condition=Q(deleted=False),
                name="experiment_live_by_created",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # Status follows the dates on every save, including saves limited to some fields.
        self.status = self.stored_status()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "status"}
        super().save(*args, **kwargs)

    @property
    def feature_flag_key(self) -> str:
        """The flag key, without the suffix a soft-deleted flag's key carries."""
        return self.feature_flag.key.split(":deleted:")[0]

    @property
    def is_draft(self) -> bool:
        return self.start_date is None

    @property
    def is_running(self) -> bool:
        return self.start_date is not None and self.end_date is None

    @property
    def is_stopped(self) -> bool:
        return self.start_date is not None and self.end_date is not None

    def stored_status(self) -> str:
        if self.start_date is None:
            return self.Status.DRAFT
        if self.end_date is None:
            return self.Status.RUNNING
        return self.Status.STOPPED


class ExperimentSavedMetric(models.Model):
    """A metric definition shared between experiments ("shared metric" in PostHog's UI)."""

    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="experiment_saved_metrics"
    )
    name = models.CharField(max_length=400)
    description = models.CharField(max_length=400, null=True, blank=True)
    query = models.JSONField()
    metadata = models.JSONField(null=True, blank=True, default=dict)
    tags = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class ExperimentToSavedMetric(models.Model):
    """An experiment's use of a saved metric; `metadata.type` is `primary` (default) or `secondary`."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE)
    saved_metric = models.ForeignKey(ExperimentSavedMetric, on_delete=models.CASCADE)
    metadata = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "saved_metric"], name="unique_experiment_saved_metric"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id} -> {self.saved_metric_id}"

    @property
    def metric_type(self) -> str:
        return (self.metadata or {}).get("type", "primary")


class ExperimentMetricResult(models.Model):
    """A computed result of one metric, cumulative from the experiment's start up to `query_to`.
    Written by the results worker: one row per day of a timeseries (`query_to` = the end of that day
    in the project's timezone), and one per metrics recalculation (`query_to` = its cutoff)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        FAILED = "failed"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="metric_results")
    metric_uuid = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, null=True, blank=True)
    query_from = models.DateTimeField(null=True, blank=True)
    query_to = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    result = models.JSONField(null=True, blank=True)
    query_id = models.CharField(max_length=255, null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "metric_uuid", "query_to"], name="unique_experiment_metric_result_day"
            )
        ]
        indexes = [
            models.Index(fields=["experiment", "metric_uuid", "fingerprint"], name="metric_result_lookup")
        ]

    def __str__(self) -> str:
        return f"{self.metric_uuid} to {self.query_to:%Y-%m-%d}: {self.status}"


class ExperimentTimeseriesRecalculation(models.Model):
    """A request to recompute a metric's timeseries. At most one is active (pending or in
    progress) per experiment and fingerprint, which the database guarantees."""

    class Status(models.TextChoices):
        PENDING = "pending"
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        FAILED = "failed"

    ACTIVE_STATUSES = (Status.PENDING, Status.IN_PROGRESS)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="+")
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="timeseries_recalculations"
    )
    metric = models.JSONField()
    fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    last_successful_date = models.DateField(null=True, blank=True)
    # Why the last attempt failed; kept while it is retried, final once the status is failed.
    error_message = models.TextField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "fingerprint"],
                condition=Q(status__in=["pending", "in_progress"]),
                name="one_active_timeseries_recalculation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint[:12]}: {self.status}"


class ExperimentMetricsRecalculation(models.Model):
    """One run computing every metric of an experiment as of `query_to` (PostHog's newest results
    surface). At most one is active (pending or in progress) per experiment, which the database
    guarantees; each metric's outcome is an `ExperimentMetricResult` row with the same `query_to`."""

    class Status(models.TextChoices):
        PENDING = "pending"
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        COLD_RUN = "cold_run"
        STALE_REFRESH = "stale_refresh"
        AUTO_REFRESH = "auto_refresh"
        CONFIG_CHANGE = "config_change"

    ACTIVE_STATUSES = (Status.PENDING, Status.IN_PROGRESS)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="+")
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="metrics_recalculations"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    # The metrics (with their fingerprints) as they were when the run was requested.
    metrics = models.JSONField(default=list)
    metric_uuids = models.JSONField(default=list)
    total_metrics = models.PositiveIntegerField(default=0)
    completed_metrics = models.PositiveIntegerField(default=0)
    failed_metrics = models.PositiveIntegerField(default=0)
    metric_errors = models.JSONField(default=dict)
    # The exposures (per-variant totals, cumulative counts per day, sample-ratio check) as of query_to.
    exposures = models.JSONField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    query_to = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment"],
                condition=Q(status__in=["pending", "in_progress"]),
                name="one_active_metrics_recalculation",
            )
        ]
        indexes = [models.Index(fields=["experiment", "-created_at"], name="metrics_recalc_latest")]

    def __str__(self) -> str:
        return f"{self.experiment_id} to {self.query_to:%Y-%m-%d %H:%M}: {self.status}"
